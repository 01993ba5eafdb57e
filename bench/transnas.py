"""A new task from k labels over TransNAS-Bench-101 micro (issue 16). Prints JSON.

    python bench/transnas.py --part prior     # leave one task out, k = 20: calibration vs the best other task
    python bench/transnas.py --part costs     # the shipped bundle's cost "devices" on cells it never saw

Protocol: each of the 6 Taskonomy tasks is held out in turn. An accuracy predictor (the
space's shipped encoder and settings for a 711-arch table) is pretrained on the other 5
tasks over all 711 cells; the held-out task is then calibrated from k labelled cells and
ranked on the other cells (Kendall tau against the table), with either head of
:meth:`~predictors.predictor.MetricPredictor.calibrate`: ``linear`` (a linear head under
the prior learned from the pretrained tasks) or ``gp`` (:mod:`predictors.task_gp`: a GP
whose kernels are learned from them). The labelled cells are chosen

- at random (seeds 0-4), or
- actively (:meth:`~predictors.predictor.MetricPredictor.choose_informative` over the 711
  labelled cells, deterministic), and compared with
- the best single other task: the pretraining task whose true values rank the k labelled
  cells best, used as it is (the baseline a user with a related benchmark would pick).

No held-out task value is seen in pretraining; all figures are on cells outside the k.
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
# benchmarks neither read nor write the user's stored calibrations (archgen.calibrations)
os.environ["ARCHGEN_CALIBRATIONS"] = tempfile.mkdtemp(prefix="archgen-bench-calibrations-")

import numpy as np
import torch
from scipy.stats import kendalltau

from archgen import get_space
from archgen.data import load_table
from predictors.fit import ACCURACY_FIT, fit_predictor, for_table
from predictors.predictor import TASK_HEADS

K = 20
SEEDS = (0, 1, 2, 3, 4)


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def prior(threads: int) -> dict:
    torch.set_num_threads(threads)
    space, table = get_space("transnas_micro"), load_table("transnas_micro")
    archs, tasks = list(table.archs), table.tasks
    values = {t: table.accuracy(t) for t in tasks}
    n = len(archs)
    config = for_table(ACCURACY_FIT, n, "accuracy", space=space)
    rows = {}
    for held in tasks:
        others = [t for t in tasks if t != held]
        start = time.perf_counter()
        pred = fit_predictor(space, archs, {t: values[t] for t in others}, kind="accuracy", unit="score",
                             normalisation="standard", config=config, progress=False)
        fit_s = time.perf_counter() - start
        y = values[held]
        out = {f"{head}_{choice}": [] for head in TASK_HEADS for choice in ("random", "active")}
        out["best_other_task"] = []
        for seed in SEEDS:
            labelled = np.random.default_rng(seed).choice(n, K, replace=False)
            rest = np.setdiff1d(np.arange(n), labelled)
            for head in TASK_HEADS:
                pred.calibrate("held_out", [archs[i] for i in labelled], y[labelled], replace=True, head=head)
                out[f"{head}_random"].append(kendalltau(pred.predict([archs[i] for i in rest], "held_out").mean,
                                                        y[rest])[0])
            taus = [kendalltau(values[t][labelled], y[labelled])[0] for t in others]
            best = others[int(np.nanargmax(taus))]
            out["best_other_task"].append(kendalltau(values[best][rest], y[rest])[0])
        chosen = pred.choose_informative(archs, K)
        labelled = np.array([archs.index(a) for a in chosen])
        rest = np.setdiff1d(np.arange(n), labelled)
        for head in TASK_HEADS:
            pred.calibrate("held_out", chosen, y[labelled], replace=True, head=head)
            out[f"{head}_active"].append(kendalltau(pred.predict([archs[i] for i in rest], "held_out").mean,
                                                    y[rest])[0])
        row = {name: round(float(np.mean(v)), 3) for name, v in out.items()}
        row["pretrain_s"] = round(fit_s, 1)
        rows[held] = row
        log(f"{held}: {row}")
    keys = [k for k in next(iter(rows.values())) if k != "pretrain_s"]
    return {
        "protocol": f"TransNAS-Bench-101 micro, 711 cells, 6 tasks; each task held out in turn: predictor pretrained "
                    f"on the other 5 (all cells), the held-out task from k={K} labels (random: seeds {list(SEEDS)}; "
                    "active: choose_informative, deterministic), heads linear and gp of MetricPredictor.calibrate; "
                    "Kendall tau on the other cells. best_other_task: the pretraining task whose true values rank "
                    "the k labels best",
        "threads": threads,
        "per_task": rows,
        "mean": {k: round(float(np.mean([r[k] for r in rows.values()])), 3) for k in keys},
    }


def costs(threads: int, n: int = 500) -> dict:
    """The shipped bundle's latency side (pretrained on :mod:`archgen.costs` of the 711
    table cells) scored on ``n`` of the 3,385 cells outside the table (seed 0), against
    the exact costs; with the time to predict and to count them (the exact count is the
    alternative a user has: it decomposes each network)."""
    from scipy.stats import spearmanr

    from archgen import ArchGen
    from archgen.costs import cost_targets

    torch.set_num_threads(threads)
    ag = ArchGen.pretrained("transnas_micro", threads=threads)
    table = set(load_table("transnas_micro").archs)
    unseen = [a for a in ag.space.enumerate() if a not in table]
    pick = [unseen[i] for i in np.random.default_rng(0).choice(len(unseen), n, replace=False)]
    start = time.perf_counter()
    truth = cost_targets(ag.space, pick)
    rows = {"held_out_cells": n, "exact_count_s": round(time.perf_counter() - start, 2)}
    for name, values in truth.items():
        start = time.perf_counter()
        predicted = ag.predict_latency(pick, name).mean
        rows[name] = {"spearman": round(float(spearmanr(predicted, values)[0]), 4),
                      "median_rel_error": round(float(np.median(np.abs(predicted / values - 1))), 4),
                      "predict_s": round(time.perf_counter() - start, 3)}
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=["prior", "costs"], default="prior", help="which figure (default prior)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    args = parser.parse_args()
    part = {"prior": prior, "costs": costs}[args.part]
    print(json.dumps({args.part: part(args.threads)}, indent=2))


if __name__ == "__main__":
    main()
