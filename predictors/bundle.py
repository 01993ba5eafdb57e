"""A :class:`MetricPredictor` as plain tensors, numbers and strings, and back
(the predictor part of :class:`archgen.bundle.Bundle`)."""

from __future__ import annotations

import math
from dataclasses import asdict

import numpy as np
import torch

from archgen.errors import BundleError
from archgen.validation import check_fields, quote

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


def unpack_predictor(space, d: dict, legacy_in_dim: int | None = None, *, where: str = "predictor") -> MetricPredictor:
    """The predictor of :func:`pack_predictor`'s dict; its network is built on
    first use (see :class:`~predictors.model.PackedEmbeddingPredictor`). A graph
    encoder saved before its config recorded ``in_dim`` reads ``legacy_in_dim``
    node features (the bundle's attribute list).

    ``d`` comes from a file: its structure is checked first, and a wrong field is a
    :class:`~archgen.errors.BundleError` naming it (``where.field``)."""
    _check_packed(d, where)
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
        domains={t: {int(k): int(v) for k, v in dom.items()} for t, dom in (d.get("domains") or {}).items()},
        student=unpack_student(d.get("student")),
    )


def _check_packed(d, where: str) -> None:
    """The structure :func:`pack_predictor` writes, field by field (types, the targets'
    norms as three finite numbers, the state as named tensors)."""
    check_fields(d, where, {
        "kind": str, "unit": str, "normalisation": str, "view": str, "targets": list, "config": dict,
        "norms": dict, "state": dict, "prior": dict, "feature_table": (torch.Tensor, type(None)),
        "memory": (dict, type(None)), "student": (dict, type(None)), "domains": (dict, type(None)),
    }, BundleError)
    kinds = ("latency", "accuracy")
    if d["kind"] not in kinds:
        raise BundleError(f"field {where}.kind must be one of {', '.join(kinds)}, got {quote(d['kind'], 40)}")
    if where in kinds and d["kind"] != where:
        raise BundleError(f"field {where}.kind is {d['kind']!r}: the {where} predictor holds a {d['kind']} one")
    if not d["targets"] or not all(isinstance(t, str) and t for t in d["targets"]):
        raise BundleError(f"field {where}.targets must be a non-empty list of names, got {quote(d['targets'], 80)}")
    for target in d["targets"]:
        norm = d["norms"].get(target)
        if (not isinstance(norm, (list, tuple)) or len(norm) != 3
                or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in norm)):
            raise BundleError(f"field {where}.norms[{quote(target, 60)}] must be 3 finite numbers (offset, scale, noise), "
                              f"got {quote(norm, 80)}")
    bad = [k for k, v in d["state"].items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        raise BundleError(f"field {where}.state must map parameter names to tensors; {quote(bad[0], 80)} does not")
    check_fields(d["prior"], f"{where}.prior", {"noise_grid": (list, tuple)}, BundleError)
    for key, value in d["prior"].items():
        numbers = value if key == "noise_grid" else [value]
        if not all(v is None or (isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v))
                   for v in numbers):
            raise BundleError(f"field {where}.prior.{key} must be finite numbers, got {quote(value, 80)}")
    if d.get("memory") is not None:
        check_fields(d["memory"], f"{where}.memory", {"targets": list, "ids": (torch.Tensor, str),
                                                      "shift": torch.Tensor, "var": torch.Tensor,
                                                      "label_var": torch.Tensor}, BundleError)
    if d.get("student") is not None:
        check_fields(d["student"], f"{where}.student", {"config": dict, "state": dict}, BundleError)
