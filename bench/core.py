"""Foundation figures (issue 2): enumeration and hashing, ONNX parity and speed,
parameter counts of named architectures. Prints JSON.

    python bench/core.py [--onnx-archs 20] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime
import torch

from archgen.hardware import count_flops, count_parameters, measure_latency, run_onnx, to_onnx
from archgen.spaces import get_space

NAMED = {
    # best CIFAR-10 cell of the benchmark table (94.37 %)
    "best_cifar10": "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|",
    # the ResNet-like cell, all edges nor_conv_3x3 (the largest network)
    "all_conv3x3": "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|",
    # all-none cell: only stem, reductions and head remain (the smallest network)
    "all_none": "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|",
}


def enumeration_figures(space) -> dict:
    start = time.perf_counter()
    graphs, pruned, functional = set(), set(), set()
    n = 0
    for arch in space.enumerate():
        g = space.to_graph(arch)
        graphs.add(g.canonical_hash())
        pruned.add(g.pruned().canonical_hash())
        functional.add(space.equivalence_key(arch))
        n += 1
    return {
        "architectures": n,
        "seconds": round(time.perf_counter() - start, 2),
        "distinct_canonical_graphs": len(graphs),
        "distinct_after_pruning_none_and_dead_ops": len(pruned),
        "functional_classes": len(functional),
    }


def onnx_figures(space, n: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, arch in enumerate(space.sample(n, seed=seed)):
            module = space.to_module(arch).eval()
            t0 = time.perf_counter()
            path = to_onnx(module, Path(tmp) / f"{i}.onnx", (1, 3, 32, 32))
            export_s = time.perf_counter() - t0
            x = rng.standard_normal((1, 3, 32, 32)).astype(np.float32)
            with torch.no_grad():
                expected = module(torch.from_numpy(x)).numpy()
            diff = float(np.abs(run_onnx(path, x) - expected).max())
            scale = float(np.abs(expected).max())
            t0 = time.perf_counter()
            m = measure_latency(path, warmup=5, repeats=20, threads=1)
            rows.append({"export_s": export_s, "measure_s": time.perf_counter() - t0,
                         "max_abs_diff": diff, "rel_diff": diff / max(scale, 1.0), "median_ms": m.median_ms})
    return {
        "architectures": n,
        "max_abs_diff": max(r["max_abs_diff"] for r in rows),
        # untrained networks with many skip sums reach outputs of 1e5, where float32
        # rounding alone exceeds 1e-4 absolute; relative to max(|output|, 1) it is the fair test
        "max_rel_diff": max(r["rel_diff"] for r in rows),
        "archs_within_1e-4_abs": sum(r["max_abs_diff"] <= 1e-4 for r in rows),
        "archs_within_1e-4_rel": sum(r["rel_diff"] <= 1e-4 for r in rows),
        "export_s_mean": round(float(np.mean([r["export_s"] for r in rows])), 3),
        "measure_s_mean": round(float(np.mean([r["measure_s"] for r in rows])), 3),
        "measure_settings": "onnxruntime CPU, 1 thread, 5 warm-up + 20 timed runs, batch 1",
        "latency_ms_median_range": [round(min(r["median_ms"] for r in rows), 3), round(max(r["median_ms"] for r in rows), 3)],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--onnx-archs", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    space = get_space("nb201")
    result = {
        "machine": {"cpu": platform.processor() or platform.machine(), "torch_threads": torch.get_num_threads(),
                    "torch": torch.__version__, "onnxruntime": onnxruntime.__version__},
        "enumeration": enumeration_figures(space),
        "onnx": onnx_figures(space, args.onnx_archs, args.seed),
        "parameters": {
            name: {"arch": arch, "params": count_parameters(m := space.to_module(arch)),
                   "params_M": round(count_parameters(m) / 1e6, 4),
                   "mult_adds_M": round(count_flops(m, (1, 3, 32, 32)) / 2e6, 2)}
            for name, arch in NAMED.items()
        },
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
