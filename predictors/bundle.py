"""A :class:`MetricPredictor` as plain tensors, numbers and strings, and back
(the predictor part of :class:`archgen.bundle.Bundle`)."""

from __future__ import annotations

from dataclasses import asdict

import numpy as np
import torch

from .calibration import CalibrationPrior
from .memory import LabelMemory
from .model import PackedEmbeddingPredictor
from .predictor import MetricPredictor
from .student import pack_student, unpack_student


def pack_predictor(p: MetricPredictor) -> dict:
    return {
        "kind": p.kind, "unit": p.unit, "normalisation": p.normalisation, "view": p.view,
        "targets": list(p.model.targets), "config": dict(p.model.config),
        "norms": {t: list(v) for t, v in p.norms.items()},
        "state": {k: v.detach().clone() for k, v in p.model.state_dict().items()},
        "prior": {**asdict(p.prior), "noise_grid": list(p.prior.noise_grid)},
        "feature_table": None if p.feature_table is None else torch.from_numpy(np.ascontiguousarray(p.feature_table)),
        "memory": None if p.memory is None else p.memory.to_dict(),
        "student": pack_student(p.student),
        "domains": {t: {int(k): int(v) for k, v in d.items()} for t, d in p.domains.items()},
    }


def unpack_predictor(space, d: dict, legacy_in_dim: int | None = None) -> MetricPredictor:
    """The predictor of :func:`pack_predictor`'s dict; its network is built on
    first use (see :class:`~predictors.model.PackedEmbeddingPredictor`). A graph
    encoder saved before its config recorded ``in_dim`` reads ``legacy_in_dim``
    node features (the bundle's attribute list)."""
    table = d.get("feature_table")
    config = dict(d["config"])
    if config.get("encoder") != "choices" and "in_dim" not in config and legacy_in_dim is not None:
        config["in_dim"] = legacy_in_dim
    return MetricPredictor(
        space=space, model=PackedEmbeddingPredictor(d["targets"], config, d["state"]), kind=d["kind"],
        unit=d["unit"], normalisation=d["normalisation"], view=d["view"],
        norms={t: tuple(v) for t, v in d["norms"].items()},
        prior=CalibrationPrior(**{**d["prior"], "noise_grid": tuple(d["prior"]["noise_grid"])}),
        feature_table=None if table is None else table.numpy(),
        memory=None if d.get("memory") is None else LabelMemory.from_dict(d["memory"]),
        domains={t: {int(k): int(v) for k, v in dom.items()} for t, dom in d.get("domains", {}).items()},
        student=unpack_student(d.get("student")),
    )
