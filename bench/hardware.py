"""Hardware-in-the-loop figures (issue 6), on this machine. Prints JSON.

    python bench/hardware.py --part local       # calibrate "local" from k=10 measurements; Spearman on 200 others;
                                                # budget satisfaction of generated top-5, measured for real
    python bench/hardware.py --part retest      # the same archs timed twice: how repeatable this machine's timing is
    python bench/hardware.py --part throughput  # architectures measured per second (export included), cache hits
    python bench/hardware.py --part training    # train the top generated candidate on digits: test accuracy, time
    python bench/hardware.py --part ray         # 8 candidates trained serially vs on a local 2-worker Ray cluster

This machine is a device no predictor was pretrained on: it enters only through
the k measured architectures. The 200 evaluation architectures are disjoint
from them. Measurements use onnxruntime on the CPU with 1 thread, batch 1, 10
warm-up runs and 5 interleaved rounds of 10 timed runs (the lowest round's
10th percentile; archgen.measurements.RuntimeSettings).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

# bench/predictors.py would shadow the `predictors` package: drop bench/ from the path
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
# benchmarks neither read nor write the user's stored calibrations (archgen.calibrations)
os.environ["ARCHGEN_CALIBRATIONS"] = tempfile.mkdtemp(prefix="archgen-bench-calibrations-")

import numpy as np
from scipy.stats import kendalltau, spearmanr

from archgen import ArchGen
from archgen.errors import BudgetError, GenerationWarning
from archgen.measurements import MeasurementCache, RuntimeSettings, machine_fingerprint, measure_archs

K, EVAL = 10, 200
#: candidates a request may measure here while generating (the loop rows of --part local)
LOOP = 10


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def local(cache: Path, space_name: str = "nb201", task: str = "cifar10", seeds=(0, 1, 2)) -> dict:
    ag = ArchGen.pretrained(space_name)
    space = ag.space
    archs = space.sample(K + EVAL, seed=123)
    start = time.perf_counter()
    measured = np.array([m.latency_ms for m in measure_archs(space, archs, cache=cache, progress=False)])
    log(f"measured {len(archs)} archs in {time.perf_counter() - start:.0f} s")
    out = {"machine": machine_fingerprint(), "protocol": f"calibrate 'local' from k={K} of {K + EVAL} random measured "
           f"{space_name} archs (seeds {list(seeds)} choose which), Spearman/Kendall of predicted vs measured on the other "
           f"{EVAL}; budget at the median measured latency of those {EVAL}; top-5 candidates of each generator "
           f"measured for real, generated without and with measuring up to {LOOP} candidates here while generating"}
    rows = []
    measure = ag.local_measure(cache=cache)
    for seed in seeds:
        pick = np.random.default_rng(seed).choice(len(archs), K, replace=False)
        rest = np.setdiff1d(np.arange(len(archs)), pick)
        ag.calibrate_device("local", [archs[i] for i in pick], measured[pick], replace=True)
        pred = ag.predict_latency([archs[i] for i in rest], "local")
        row = {"seed": seed, "spearman": round(float(spearmanr(pred.mean, measured[rest])[0]), 4),
               "kendall": round(float(kendalltau(pred.mean, measured[rest])[0]), 4)}
        budget = float(np.median(measured[rest]))
        row["budget_ms"] = round(budget, 3)
        for g in ("diffusion", "autoregressive"):
            for label, measurements in ((g, 0), (f"{g}_measuring_{LOOP}", LOOP)):
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", GenerationWarning)
                    try:
                        cands = ag.generate(task, "local", budget, n=5, generator=g, seed=seed,
                                            measure=measure, measurements=measurements)
                    except BudgetError as exc:  # nothing predicted within budget with the margin: no answer
                        row[label] = {"no_candidate": str(exc)}
                        continue
                    finally:  # the loop teaches "local" what it measured: start each run from the k=10
                        ag.calibrate_device("local", [archs[i] for i in pick], measured[pick], replace=True)
                real = measure([c.arch for c in cands])
                row[label] = {"within_budget": float(np.mean([r <= budget for r in real])),
                              "measured_ms": [round(r, 3) for r in real],
                              "predicted_ms": [round(c.predicted_latency_ms, 3) for c in cands],
                              "measured_while_generating": cands.report.measurements,
                              f"predicted_{task}": [round(c.predicted_accuracy, 2) for c in cands]}
        rows.append(row)
        log(json.dumps(row))
    out["rows"] = rows
    out["mean_spearman"] = round(float(np.mean([r["spearman"] for r in rows])), 4)
    out["min_spearman"] = round(float(np.min([r["spearman"] for r in rows])), 4)
    for g in ("diffusion", "autoregressive", f"diffusion_measuring_{LOOP}", f"autoregressive_measuring_{LOOP}"):
        answered = [r[g]["within_budget"] for r in rows if "within_budget" in r[g]]
        out[f"{g}_top5_within_budget"] = round(float(np.mean(answered)), 3) if answered else None
        out[f"{g}_no_candidate_rows"] = len(rows) - len(answered)
    return out


def throughput(n: int = 30) -> dict:
    ag = ArchGen.pretrained("nb201")
    archs = ag.space.sample(n, seed=77)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "fresh.sqlite"
        start = time.perf_counter()
        measure_archs(ag.space, archs, cache=path, progress=False)
        cold = time.perf_counter() - start
        start = time.perf_counter()
        hits = measure_archs(ag.space, archs, cache=path, progress=False)
        warm = time.perf_counter() - start
        assert all(h.cached for h in hits)
        with MeasurementCache(path) as cache:
            size = len(cache)
    return {"archs": n, "settings": RuntimeSettings().__dict__, "threads_of_this_process": os.cpu_count(),
            "measured_archs_per_s_export_included": round(n / cold, 2), "cache_hit_archs_per_s": round(n / warm, 1),
            "cache_speedup": round(cold / warm, 1), "cached_rows": size}


def training(cache: Path) -> dict:
    """The top CIFAR-10 candidate generated for this machine (budget: median latency
    of 50 measured random archs), trained on scikit-learn's digits from scratch."""
    import torch

    ag = ArchGen.pretrained("nb201")
    ag.calibrate_local(K, cache=cache, progress=False)
    sample = measure_archs(ag.space, ag.space.sample(50, seed=5), cache=cache, progress=False)
    budget = float(np.median([m.latency_ms for m in sample]))
    top = ag.generate("cifar10", "local", budget, n=1, seed=0)[0]
    with tempfile.TemporaryDirectory() as tmp:
        result = top.train("digits", run_dir=tmp, progress=False)
    return {"protocol": "top-1 generated candidate (diffusion, cifar10 predictor, local device calibrated from "
                        f"k={K}, budget = median measured latency of 50 random archs); trained with the Lightning "
                        "Trainer on digits (1,797 real 8x8 images upsampled to 32x32; stratified 70/15/15 split), "
                        "NB201 network at C=8, N=1, SGD, up to 15 epochs with early stopping",
            "torch_threads": torch.get_num_threads(), "budget_ms": round(budget, 3), **result.to_dict()}


def retest(space_name: str, n: int = 48) -> dict:
    """Test-retest of this machine's timing: the same ``n`` random architectures
    measured twice (no cache), once as one block of 50 runs each (the median; the
    protocol before interleaved rounds) and once as the shipped 5 interleaved
    rounds of 10 (the lowest round's 10th percentile); Spearman between the two
    passes of each protocol."""
    from archgen.spaces import get_space

    space = get_space(space_name)
    archs = space.sample(n, seed=99)
    protocols = {"one_block_of_50_median": RuntimeSettings(repeats=50, rounds=1),
                 "five_rounds_of_10_floor": RuntimeSettings()}
    out = {"protocol": f"{n} random {space_name} archs, onnxruntime 1 thread, batch 1; two passes per protocol, "
                       "the protocols' passes alternating"}
    passes = {name: [] for name in protocols}
    for _ in range(2):
        for name, settings in protocols.items():
            found = measure_archs(space, archs, settings, cache=False, progress=False)
            passes[name].append(np.array([m.measurement.median_ms if settings.rounds == 1 else m.latency_ms
                                          for m in found]))
    for name, (a, b) in passes.items():
        out[name] = {"spearman": round(float(spearmanr(a, b)[0]), 4),
                     "median_relative_difference": round(float(np.median(np.abs(a / b - 1))), 4),
                     "range_ms": [round(float(a.min()), 3), round(float(a.max()), 3)]}
    return out


def ray_vs_serial(n: int = 8, epochs: int = 3) -> dict:
    from archgen.training import train_candidates

    ag = ArchGen.pretrained("nb201")
    archs = ag.space.sample(n, seed=21)
    timings, results = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for mode in ("serial", "ray"):
            start = time.perf_counter()
            results[mode] = train_candidates(ag.space, archs, "digits", run_dir=Path(tmp) / mode, epochs=epochs,
                                             ray=mode == "ray", workers=2)
            timings[mode] = time.perf_counter() - start
    same = [a.test_accuracy for a in results["serial"]] == [b.test_accuracy for b in results["ray"]]
    return {"protocol": f"{n} random NB201 candidates trained on digits for {epochs} epochs each (seed 0), "
                        "serially in this process vs as tasks on a local Ray cluster of 2 CPUs (started by the call)",
            "identical_test_accuracies": same, "test_accuracies": [r.test_accuracy for r in results["serial"]],
            "serial_s": round(timings["serial"], 1), "ray_s": round(timings["ray"], 1),
            "wall_time_ratio_serial_over_ray": round(timings["serial"] / timings["ray"], 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=["local", "retest", "throughput", "training", "ray", "all"], default="all")
    parser.add_argument("--cache", default="/tmp/archgen-bench/measurements.sqlite",
                        help="measurement cache of the local part (reused between runs)")
    args = parser.parse_args()
    result = {}
    if args.part in ("throughput", "all"):
        result["throughput"] = throughput()
    if args.part in ("local", "all"):
        result["local"] = local(Path(args.cache))
        result["local_fbnet"] = local(Path(args.cache), "fbnet", "proxy")
    if args.part in ("retest", "all"):
        result["retest"] = {name: retest(name) for name in ("nb201", "fbnet")}
    if args.part in ("training", "all"):
        result["training"] = training(Path(args.cache))
    if args.part in ("ray", "all"):
        result["ray"] = ray_vs_serial()
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
