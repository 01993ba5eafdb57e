"""Hardware in the loop while generating: measure the candidates that decide the answer.

The most accurate architecture under a latency budget sits right at the budget,
where a predictor calibrated from ten random measurements is a few percent off
either way: kept with a safety margin it costs accuracy, kept without one it is
over budget about half the time. Where the device can be measured, a handful of
measurements spent on the right candidates settles both. Each one goes to the
most accurate sampled architecture (by predicted accuracy) that is not measured
yet, could still be within budget (``mean - optimism * spread <= budget``) and
would rank among the ``n`` best; a calibrated device is recalibrated with every
new point, so predictions near the budget sharpen as the loop runs. The loop
stops when no unmeasured architecture could displace the ``n`` confirmed ones
(measured within budget), or when the measurements run out.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

#: how optimistic the loop is about an unmeasured candidate's latency, in
#: predicted spreads below its mean: 1.0 also measures candidates with about a
#: one-in-six chance of meeting the budget (``python bench/generate.py --part
#: loop`` sweeps it on validation devices)
OPTIMISM = 1.0

#: measures architectures on the device: arch strings -> latencies in ms, in order
Measure = Callable[[list[str]], Sequence[float]]


@dataclass
class Refinement:
    """The measured latencies (arch -> ms) of sampled architectures, those the
    device was calibrated from included; how many of them the loop measured
    (``spent``); the latency predictions of every sampled architecture after the
    last recalibration."""

    measured: dict[str, float]
    spent: int
    latency: object  # predictors.predictor.Prediction


def _measure_one(measure: Measure, arch: str) -> float:
    values = list(measure([arch]))
    if len(values) != 1:
        raise ValueError(f"measure() returned {len(values)} values for 1 architecture")
    ms = values[0]
    if isinstance(ms, bool) or not isinstance(ms, (int, float, np.floating)) or not math.isfinite(ms) or ms <= 0:
        raise ValueError(f"measure() returned {ms!r} ms for {arch}; expected a positive number of milliseconds")
    return float(ms)


def refine(latency, device: str, archs: list[str], accuracy: np.ndarray, keys: list[str], budget: float, n: int,
           measure: Measure, measurements: int, optimism: float = OPTIMISM, predict=None) -> Refinement:
    """Spend up to ``measurements`` device measurements on the candidates among
    ``archs`` (predicted ``accuracy``; ``keys``: what each computes, see
    :meth:`~archgen.spaces.base.SearchSpace.equivalence_key`) that decide the
    ``n`` best distinct ones under ``budget`` ms. ``latency`` is the latency
    :class:`~predictors.predictor.MetricPredictor`; a calibrated ``device`` is
    recalibrated with every measurement (and keeps them). ``predict``: what predicts
    ``archs`` on ``device`` (default ``latency.predict(archs, device)``; generation passes
    its shortlisting :func:`~archgen.generation.predict_latency`)."""
    acc = np.asarray(accuracy, dtype=np.float64)
    if predict is None:
        def predict():
            return latency.predict(archs, device)
    calibrated = device not in latency.known_targets
    measured: dict[str, float] = {}
    if calibrated:  # what the device was calibrated from is measured already
        known = dict(zip(*latency.measurements(device)))
        measured.update({a: float(known[a]) for a in archs if a in known})
    pred = predict()
    spent = 0
    while spent < measurements:
        value = np.array([measured.get(a, np.nan) for a in archs])
        confirmed = np.flatnonzero(value <= budget)  # NaN (unmeasured) compares False
        best_keys, bar = set(), -np.inf  # the n best distinct confirmed ones, and the n-th's accuracy
        for i in confirmed[np.argsort(-acc[confirmed], kind="stable")]:
            if keys[i] not in best_keys:
                best_keys.add(keys[i])
                if len(best_keys) == n:
                    bar = acc[i]
                    break
        open_ = np.isnan(value) & (pred.mean - optimism * pred.std <= budget) & (acc > bar)
        open_ &= np.array([k not in best_keys for k in keys])
        if not open_.any():
            break
        ranked = np.lexsort((pred.mean, -acc))  # best predicted accuracy first, then the faster
        i = int(ranked[open_[ranked]][0])
        measured[archs[i]] = _measure_one(measure, archs[i])
        spent += 1
        if calibrated:
            latency.add_measurements(device, [archs[i]], [measured[archs[i]]])
            pred = predict()
    return Refinement(measured, spent, pred)
