"""Kernel-level latency profiles (issue 17), on this machine. Prints JSON.

    python bench/kernels.py                       # nb201, fbnet, mbv3, anb
    python bench/kernels.py --spaces fbnet --truth 200
    python bench/kernels.py --spaces transnas_micro --truth 60

This machine stands in for a device no predictor was pretrained on. Per space:

- **profiling**: ``ArchGen.profile_local()`` times every distinct kernel with a cold
  (new, empty) measurement cache, then again with the warm one;
- **truth**: ``--truth`` (200) random whole networks measured here (onnxruntime, 1 thread,
  batch 1, the project's protocol: 10 warm-up runs, 5 interleaved rounds of 10, the lowest
  round's 10th percentile). They are disjoint from the 10 networks used to calibrate and
  from the 30 that set the generation budget;
- **predictors scored on the truth** (Spearman, Kendall, relative errors):
  ``profile``: the profile alone (no whole-network measurement);
  ``profile_plus_10``: the profile corrected by the 10 calibration networks;
  ``prior_10`` (baseline): the pretrained latency prior calibrated from the same 10, as
  ``calibrate_local`` does without a profile;
  ``nearest_device`` (baseline): the pretrained device whose predictions rank the 10 best,
  rescaled to them (``transnas_micro``, whose table has no latencies: the best of its cost
  targets ``macs``, ``traffic``, ``kernels``, i.e. "use MACs as the latency");
- **generation**: the budget is the median measured latency of the 30 budget networks;
  the top-5 candidates generated for ``device="local"`` under it are measured for real, in
  one interleaved run with the 30 budget networks: this VM's speed drifts between minutes,
  so they are judged against the budget and against the 30's median in that same run
  (``drift``: that median over the budget's).

The benchmark tables hold no kernel timings: everything here is measured on this CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
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
from archgen.kernels import space_kernels
from archgen.measurements import MeasurementCache, machine_fingerprint, measure_archs

SPACES = ("nb201", "fbnet", "mbv3", "anb")
#: the task each space generates for (the bundle's accuracy task on real labels where it has one)
TASKS = {"nb201": "cifar10", "fbnet": "proxy", "mbv3": "imagenet", "anb": "imagenet", "transnas_micro": "class_scene"}
K, BUDGET_ARCHS = 10, 30


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def scores(pred: np.ndarray, truth: np.ndarray) -> dict:
    rel = np.abs(pred / truth - 1)
    return {"spearman": round(float(spearmanr(pred, truth)[0]), 4),
            "kendall": round(float(kendalltau(pred, truth)[0]), 4),
            "median_rel_error": round(float(np.median(rel)), 4),
            "p90_rel_error": round(float(np.quantile(rel, 0.9)), 4)}


def archs_for(ag: ArchGen, n: int, seed: int, task: str | None) -> list[str]:
    """``n`` distinct random architectures inside ``task``'s domain (mbv3's imagenet: r224)."""
    archs = ag.space.sample(n, seed=seed)
    if task is not None and ag.task_domain(task):
        fixed = ag.bundle.accuracy.domain(task)
        coded = []
        for a in archs:
            choices = list(ag.space.encode_choices(a))
            for slot, option in fixed.items():
                choices[slot] = option
            coded.append(ag.space.decode_choices(choices))
        archs = list(dict.fromkeys(coded))
    return archs


def generated(ag: ArchGen, task, budget: float, budget_archs: list[str], cache: Path, seed: int = 0) -> dict:
    """The top-5 for ``device="local"`` under ``budget``, measured for real. This VM's speed
    drifts by up to 20 % between minutes, so the candidates are measured in one interleaved
    run with the budget networks (no cache) and judged against both the budget and the
    median of the budget networks in that same run."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", GenerationWarning)
        try:
            cands = ag.generate(task, "local", budget, n=5, seed=seed, progress=False)
        except BudgetError as exc:
            return {"no_candidate": str(exc)}
    archs = [c.arch for c in cands]
    both = measure_archs(ag.space, archs + budget_archs, cache=False, progress=False)
    real = np.array([m.latency_ms for m in both[:len(archs)]])
    same_run = float(np.median([m.latency_ms for m in both[len(archs):]]))
    with MeasurementCache(cache) as store:  # the budget networks as first measured
        first = float(np.median([m.latency_ms for m in measure_archs(ag.space, budget_archs, cache=store,
                                                                      progress=False)]))
    return {"within_budget": int((real <= budget).sum()), "within_same_run_budget": int((real <= same_run).sum()),
            "of": len(cands), "same_run_budget_ms": round(same_run, 4), "drift": round(same_run / first, 3),
            "measured_ms": [round(float(r), 4) for r in real],
            "predicted_ms": [round(c.predicted_latency_ms, 4) for c in cands]}


def bench_space(name: str, truth_n: int, folder: Path, threads: int) -> dict:
    task = TASKS[name]
    cache = folder / f"{name}-measurements.sqlite"
    kernel_cache = folder / f"{name}-kernels-{time.time_ns()}.sqlite"  # cold: a new, empty cache
    out: dict = {"space": name, "task": task, "distinct_kernels": len(space_kernels(name))}

    ag = ArchGen.pretrained(name, threads=threads)
    start = time.perf_counter()
    profile = ag.profile_local(cache=kernel_cache, progress=False, persist=False)
    out["profile_cold_s"] = round(time.perf_counter() - start, 1)
    start = time.perf_counter()
    ag.profile_local(cache=kernel_cache, progress=False, persist=False)
    out["profile_warm_s"] = round(time.perf_counter() - start, 2)
    out["overhead_ms"] = round(profile.overhead_ms, 4)
    log(f"{name}: {out['distinct_kernels']} kernels profiled in {out['profile_cold_s']} s, "
        f"again in {out['profile_warm_s']} s")

    # disjoint sets: truth, calibration, budget
    pool = ag.space.sample(truth_n + K, seed=1234)
    truth_archs, cal_archs = pool[:truth_n], pool[truth_n:]
    budget_archs = [a for a in archs_for(ag, BUDGET_ARCHS + 20, 4321, task) if a not in set(pool)][:BUDGET_ARCHS]
    start = time.perf_counter()
    with MeasurementCache(cache) as store:
        m = measure_archs(ag.space, truth_archs + cal_archs + budget_archs, cache=store, progress=False)
    out["whole_network_measure_s"] = round(time.perf_counter() - start, 1)
    y = np.array([r.latency_ms for r in m])
    y_truth, y_cal, y_budget = y[:truth_n], y[truth_n:truth_n + K], y[truth_n + K:]
    out["truth_ms_range"] = [round(float(y_truth.min()), 4), round(float(y_truth.max()), 4)]
    log(f"{name}: measured {len(y)} networks in {out['whole_network_measure_s']} s")

    sums, lacking = profile.latencies(truth_archs)
    assert not lacking, f"the full profile lacks kernels: {list(lacking.items())[:1]}"
    budget = float(np.median(y_budget))
    out["budget_ms"] = round(budget, 4)
    rows = {}

    # the profile alone
    rows["profile"] = scores(ag.predict_latency(truth_archs, "local").mean, y_truth)
    rows["profile"]["generated_top5"] = generated(ag, task, budget, budget_archs, cache)
    # the profile corrected by 10 whole-network measurements
    ag.calibrate_device("local", cal_archs, y_cal, persist=False)
    rows["profile_plus_10"] = scores(ag.predict_latency(truth_archs, "local").mean, y_truth)
    rows["profile_plus_10"]["generated_top5"] = generated(ag, task, budget, budget_archs, cache)
    # baseline: the pretrained prior calibrated from the same 10 (no profile)
    base = ArchGen.pretrained(name, threads=threads)
    base.calibrate_device("local", cal_archs, y_cal, persist=False)
    rows["prior_10"] = scores(base.predict_latency(truth_archs, "local").mean, y_truth)
    rows["prior_10"]["generated_top5"] = generated(base, task, budget, budget_archs, cache)
    # baseline: the nearest pretrained device, chosen with the 10
    ranks = {d: spearmanr(base.predict_latency(cal_archs, d).mean, y_cal)[0] for d in base.devices()
             if d != "local"}
    nearest = max(ranks, key=lambda d: ranks[d])
    near = base.predict_latency(truth_archs, nearest).mean
    rows["nearest_device"] = {"device": nearest, **scores(near * np.median(y_cal / base.predict_latency(
        cal_archs, nearest).mean), y_truth)}
    out["predictors"] = rows
    for label, row in rows.items():
        log(f"{name} {label}: " + json.dumps({k: v for k, v in row.items() if k != "generated_top5"}))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spaces", nargs="+", default=list(SPACES), choices=sorted(TASKS),
                        help="spaces to profile (default: %(default)s)")
    parser.add_argument("--truth", type=int, default=200, help="whole networks measured as the truth (default: 200)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads; onnxruntime always 1 (default: 1)")
    parser.add_argument("--folder", default="/tmp/archgen-bench-kernels",
                        help="measurement caches (whole networks reused between runs; kernels always cold)")
    args = parser.parse_args()
    folder = Path(args.folder)
    folder.mkdir(parents=True, exist_ok=True)
    result = {"machine": machine_fingerprint(), "host": platform.node(),
              "protocol": __doc__.split("\n\n", 2)[2].strip(), "spaces": {}}
    for name in args.spaces:
        result["spaces"][name] = bench_space(name, args.truth, folder, args.threads)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
