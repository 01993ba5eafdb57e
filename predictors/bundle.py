"""A pretrained bundle: the latency and accuracy predictors of one space in one file.

Stored with ``torch.save`` as plain tensors, numbers and strings only, and read
with ``torch.load(weights_only=True)``: loading a bundle never unpickles code.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from archgen.errors import ArchGenError
from archgen.ops import NUMERIC_ATTRS, OP_NAMES
from archgen.spaces import get_space

from .calibration import CalibrationPrior
from .model import EmbeddingPredictor
from .predictor import MetricPredictor

FORMAT_VERSION = 1


class BundleError(ArchGenError, ValueError):
    """A bundle file that cannot be used (corrupt, foreign, or from another version)."""


def _pack(p: MetricPredictor) -> dict:
    return {
        "kind": p.kind, "unit": p.unit, "normalisation": p.normalisation, "view": p.view,
        "targets": list(p.model.targets), "config": dict(p.model.config),
        "norms": {t: list(v) for t, v in p.norms.items()},
        "state": {k: v.detach().clone() for k, v in p.model.state_dict().items()},
        "prior": {**asdict(p.prior), "noise_grid": list(p.prior.noise_grid)},
    }


def _unpack(space, d: dict) -> MetricPredictor:
    model = EmbeddingPredictor(d["targets"], **d["config"])
    model.load_state_dict(d["state"])
    return MetricPredictor(
        space=space, model=model, kind=d["kind"], unit=d["unit"], normalisation=d["normalisation"],
        view=d["view"], norms={t: tuple(v) for t, v in d["norms"].items()},
        prior=CalibrationPrior(**{**d["prior"], "noise_grid": tuple(d["prior"]["noise_grid"])}),
    )


@dataclass
class PredictorBundle:
    space: str
    latency: MetricPredictor
    accuracy: MetricPredictor
    meta: dict = field(default_factory=dict)

    def save(self, path: str | os.PathLike) -> Path:
        """Write atomically (temporary file, then rename): a crash never leaves half a bundle."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "format": FORMAT_VERSION, "space": self.space, "ops": list(OP_NAMES), "attrs": list(NUMERIC_ATTRS),
            "latency": _pack(self.latency), "accuracy": _pack(self.accuracy), "meta": self.meta,
        }
        tmp = path.with_name(path.name + ".tmp")
        torch.save(payload, tmp)
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> PredictorBundle:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"bundle {str(path)!r} does not exist")
        try:
            payload = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # torch raises several types for corrupt files
            raise BundleError(f"{path} is not a readable archgen bundle ({type(exc).__name__}: {exc})") from None
        if not isinstance(payload, dict) or payload.get("format") != FORMAT_VERSION:
            raise BundleError(f"{path} is not an archgen bundle of format {FORMAT_VERSION}")
        if payload.get("ops") != list(OP_NAMES) or payload.get("attrs") != list(NUMERIC_ATTRS):
            raise BundleError(
                f"{path} was trained with another op vocabulary; regenerate it with `archgen pretrain`"
            )
        space = get_space(payload["space"])
        try:
            return cls(payload["space"], _unpack(space, payload["latency"]), _unpack(space, payload["accuracy"]),
                       payload.get("meta", {}))
        except (KeyError, RuntimeError, TypeError) as exc:
            raise BundleError(f"{path} is incomplete or inconsistent: {exc}") from None
