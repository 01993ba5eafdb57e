"""A :class:`MetricPredictor` as plain tensors, numbers and strings, and back
(the predictor part of :class:`archgen.bundle.Bundle`)."""

from __future__ import annotations

from dataclasses import asdict

from .calibration import CalibrationPrior
from .model import EmbeddingPredictor
from .predictor import MetricPredictor


def pack_predictor(p: MetricPredictor) -> dict:
    return {
        "kind": p.kind, "unit": p.unit, "normalisation": p.normalisation, "view": p.view,
        "targets": list(p.model.targets), "config": dict(p.model.config),
        "norms": {t: list(v) for t, v in p.norms.items()},
        "state": {k: v.detach().clone() for k, v in p.model.state_dict().items()},
        "prior": {**asdict(p.prior), "noise_grid": list(p.prior.noise_grid)},
    }


def unpack_predictor(space, d: dict) -> MetricPredictor:
    model = EmbeddingPredictor(d["targets"], **d["config"])
    model.load_state_dict(d["state"])
    return MetricPredictor(
        space=space, model=model, kind=d["kind"], unit=d["unit"], normalisation=d["normalisation"],
        view=d["view"], norms={t: tuple(v) for t, v in d["norms"].items()},
        prior=CalibrationPrior(**{**d["prior"], "noise_grid": tuple(d["prior"]["noise_grid"])}),
    )
