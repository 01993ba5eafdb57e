"""Task in the loop on real images (issue 16): learn a task from k proxy trainings, generate
for it under a latency budget on this machine, and train the result in full. Prints JSON.

    python bench/task_loop.py            # NB201 on scikit-learn's digits (1,797 real images)

Protocol:
1. ``ag.learn_task("digits", "digits", k=20, epochs=3)``: 20 architectures chosen by
   ``choose_task_archs``, trained for 3 epochs each (one thread), calibrated with the GP head.
2. This machine as the device: ``calibrate_local(k=10)``; the budget is the median measured
   latency of 30 other random architectures.
3. The top generated candidate for the task under that budget, and 10 random architectures
   measured within the same budget, are each trained in full (``train_candidates`` defaults:
   up to 15 epochs with early stopping, seed 0) on the same split; their test accuracies are
   compared (the candidate must beat the random median). The candidate is measured too.

The task's labels never come from a benchmark table: only from the proxy runs on digits.
The measurement and training caches, the calibration store and the checkpoints live in a
temporary folder.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
_SCRATCH = tempfile.mkdtemp(prefix="archgen-bench-task-loop-")
# a fresh measurement cache, training cache and calibration store: nothing of the user's is read or written
os.environ["ARCHGEN_CACHE"] = str(Path(_SCRATCH) / "measurements.sqlite")
os.environ["ARCHGEN_CALIBRATIONS"] = str(Path(_SCRATCH) / "calibrations")

import numpy as np

from archgen import ArchGen
from archgen.training import train_candidates

RANDOM = 10


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def task_loop(k: int, proxy_epochs: int, seed: int) -> dict:
    ag = ArchGen.pretrained("nb201", restore=False)
    space = ag.space
    start = time.perf_counter()
    learned = ag.learn_task("digits", "digits", k=k, epochs=proxy_epochs, seed=seed, progress=False)
    learn_s = time.perf_counter() - start
    log(f"learned the task from {k} proxy runs in {learn_s:.0f} s (fit Spearman {learned.calibration.fit_spearman:.2f})")
    ag.calibrate_local(10, seed=seed, progress=False, persist=False)
    probe = space.sample(30, seed=seed + 1)
    budget = float(np.median([m.latency_ms for m in ag.measure(probe, progress=False)]))
    cands = ag.generate(task="digits", device="local", max_latency_ms=budget, n=1, seed=seed, progress=False)
    top = cands[0]
    top_ms = ag.measure([top.arch], progress=False)[0].latency_ms
    pool = space.sample(60, seed=seed + 2)
    pool_ms = [m.latency_ms for m in ag.measure(pool, progress=False)]
    randoms = [a for a, ms in zip(pool, pool_ms) if ms <= budget][:RANDOM]
    log(f"budget {budget:.3f} ms; candidate {top.arch} measured {top_ms:.3f} ms; {len(randoms)} random within budget")
    start = time.perf_counter()
    results = train_candidates(space, [top.arch, *randoms], "digits", seed=seed, progress=False,
                               run_dir=Path(_SCRATCH) / "runs")
    train_s = time.perf_counter() - start
    top_acc, random_acc = results[0].test_accuracy, [r.test_accuracy for r in results[1:]]
    return {
        "protocol": __doc__.split("Protocol:")[1].strip(),
        "k": k, "proxy_epochs": proxy_epochs, "seed": seed,
        "proxy_trainings_s": round(learn_s, 1), "proxy_trained": learned.trained, "proxy_cached": learned.cached,
        "calibration_fit_spearman": round(float(learned.calibration.fit_spearman), 3),
        "budget_ms": round(budget, 4),
        "candidate": {"arch": top.arch, "predicted_accuracy": round(float(top.predicted_accuracy), 2),
                      "test_accuracy": round(top_acc, 2), "measured_ms": round(top_ms, 4),
                      "within_budget": bool(top_ms <= budget)},
        "random_within_budget": {"count": len(randoms), "test_accuracies": [round(a, 2) for a in random_acc],
                                 "median": round(float(np.median(random_acc)), 2)},
        "candidate_beats_random_median": bool(top_acc > np.median(random_acc)),
        "full_trainings_s": round(train_s, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-k", type=int, default=20, help="proxy trainings (default 20)")
    parser.add_argument("--epochs", type=int, default=3, help="epochs of each proxy training (default 3)")
    parser.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    args = parser.parse_args()
    print(json.dumps({"task_loop": task_loop(args.k, args.epochs, args.seed)}, indent=2))


if __name__ == "__main__":
    main()
