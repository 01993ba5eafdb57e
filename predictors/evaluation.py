"""Held-out evaluation of latency predictors: a device left out of pretraining
enters only through few-shot calibration, as a user's new device would."""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np

from .fit import LATENCY_FIT, FitConfig, fit_predictor, for_table
from .predictor import MetricPredictor


def measured_rows(table, devices: Sequence[str]) -> np.ndarray:
    """Rows of ``table`` whose latency is measured (finite) on at least one of ``devices``."""
    return np.flatnonzero(np.isfinite(table.latency_matrix(list(devices))).any(axis=1))


def fit_without(space, table, held_out: Sequence[str], config: FitConfig | None = None) -> MetricPredictor:
    """The latency predictor pretrained on every device of ``table`` but ``held_out``
    (every architecture measured on one of them, NaN = not measured; ``config``
    defaults to the shipped one sized for those architectures)."""
    devices = [d for d in table.devices if d not in held_out]
    rows = measured_rows(table, devices)
    return fit_predictor(space, [table.archs[i] for i in rows], {d: table.latency(d)[rows] for d in devices},
                         kind="latency", unit="ms", normalisation="ratio",
                         config=config or for_table(LATENCY_FIT, len(rows)), progress=False)


def calibrated_spearman(pred: MetricPredictor, archs: list[str], y: np.ndarray, *, ks: Sequence[int],
                        seeds: Sequence[int]) -> tuple[dict[str, float], list[float]]:
    """Calibrate a new device from k random architectures of ``archs`` (measured
    ``y``) per seed and score Spearman over all of them: ``({"k10": mean rho, ...},
    calibration seconds)``. Architectures whose ``y`` is NaN (not measured) are left out."""
    from scipy.stats import spearmanr

    y = np.asarray(y, dtype=np.float64)
    keep = np.flatnonzero(np.isfinite(y))
    if len(keep) < len(y):
        archs, y = [archs[i] for i in keep], y[keep]
    scores, seconds = {}, []
    for k in ks:
        rhos = []
        for seed in seeds:
            idx = np.random.default_rng(seed).choice(len(archs), k, replace=False)
            cal = pred.calibrate("held_out", [archs[i] for i in idx], y[idx], replace=True)
            seconds.append(cal.seconds)
            rhos.append(spearmanr(pred.predict(archs, "held_out").mean, y)[0])
        scores[f"k{k}"] = round(float(np.mean(rhos)), 4)
    pred.forget("held_out")
    return scores, seconds


def leave_one_device_out(space, table, device: str, *, ks: Sequence[int] = (5, 10, 20), seeds: Sequence[int] = range(5),
                         config: FitConfig | None = None) -> dict:
    """Pretrain without ``device`` (:func:`fit_without`) and score it by
    :func:`calibrated_spearman` over all architectures of the table measured on it. Returns
    ``{"k10": mean rho, ..., "pretrain_s", "calibration_s_max"}``."""
    start = time.perf_counter()
    pred = fit_without(space, table, [device], config)
    row = {"pretrain_s": round(time.perf_counter() - start, 1)}
    scores, seconds = calibrated_spearman(pred, list(table.archs), table.latency(device), ks=ks, seeds=seeds)
    return {**row, **scores, "calibration_s_max": round(max(seconds), 4)}
