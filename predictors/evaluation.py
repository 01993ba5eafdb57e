"""Held-out evaluation of latency predictors: a device left out of pretraining
enters only through few-shot calibration, as a user's new device would."""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np

from .fit import LATENCY_FIT, FitConfig, fit_predictor


def leave_one_device_out(space, table, device: str, *, ks: Sequence[int] = (5, 10, 20), seeds: Sequence[int] = range(5),
                         config: FitConfig = LATENCY_FIT) -> dict:
    """Pretrain on every device of ``table`` but ``device`` (all architectures),
    calibrate ``device`` from k random measured architectures per seed, and score
    Spearman over all architectures of the table. Returns ``{"k10": mean rho, ...,
    "pretrain_s", "calibration_s_max"}``."""
    from scipy.stats import spearmanr

    archs = list(table.archs)
    start = time.perf_counter()
    pred = fit_predictor(space, archs, {o: table.latency(o) for o in table.devices if o != device},
                         kind="latency", unit="ms", normalisation="ratio", config=config, progress=False)
    row = {"pretrain_s": round(time.perf_counter() - start, 1)}
    y = table.latency(device)
    cal_s = []
    for k in ks:
        rhos = []
        for seed in seeds:
            idx = np.random.default_rng(seed).choice(len(archs), k, replace=False)
            cal = pred.calibrate("held_out", [archs[i] for i in idx], y[idx], replace=True)
            cal_s.append(cal.seconds)
            rhos.append(spearmanr(pred.predict(archs, "held_out").mean, y)[0])
        row[f"k{k}"] = round(float(np.mean(rhos)), 4)
    row["calibration_s_max"] = round(max(cal_s), 4)
    return row
