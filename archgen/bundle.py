"""A pretrained bundle: a space's latency and accuracy predictors and its generators, in one file.

Stored with ``torch.save`` as plain tensors, numbers and strings only, and read
with ``torch.load(weights_only=True)``: loading a bundle never unpickles code.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .errors import BundleError
from .ops import NUMERIC_ATTRS, OP_NAMES, legacy_feature_width
from .spaces import get_space

FORMAT_VERSION = 2


@dataclass
class Bundle:
    """What :class:`archgen.ArchGen` runs on. ``generators`` maps a generator
    name (``"diffusion"``, ``"autoregressive"``) to a trained generator."""

    space: str
    latency: object  # predictors.predictor.MetricPredictor
    accuracy: object  # predictors.predictor.MetricPredictor
    generators: dict = field(default_factory=dict)
    meta: dict = field(default_factory=dict)

    def save(self, path: str | os.PathLike) -> Path:
        """Write atomically (temporary file, then rename): a crash never leaves half a bundle."""
        from generators.model import pack_generator
        from predictors.bundle import pack_predictor

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "format": FORMAT_VERSION, "space": self.space, "ops": list(OP_NAMES), "attrs": list(NUMERIC_ATTRS),
            "latency": pack_predictor(self.latency), "accuracy": pack_predictor(self.accuracy),
            "generators": {name: pack_generator(g) for name, g in self.generators.items()}, "meta": self.meta,
        }
        tmp = path.with_name(path.name + ".tmp")
        torch.save(payload, tmp)
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> Bundle:
        from generators.model import unpack_generator
        from predictors.bundle import unpack_predictor

        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"bundle {str(path)!r} does not exist")
        try:
            payload = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # torch raises several types for corrupt files
            raise BundleError(f"{path} is not a readable archgen bundle ({type(exc).__name__}: {exc})") from None
        if not isinstance(payload, dict) or payload.get("format") != FORMAT_VERSION:
            found = payload.get("format") if isinstance(payload, dict) else None
            raise BundleError(f"{path} is not an archgen bundle of format {FORMAT_VERSION} (found format {found}); "
                              "regenerate it with `archgen pretrain`")
        # attributes appended since a bundle was made are invisible to its encoders (ops.legacy_feature_width)
        width = legacy_feature_width(payload.get("attrs") or ["?"])
        if payload.get("ops") != list(OP_NAMES) or width is None:
            raise BundleError(f"{path} was trained with another op vocabulary; regenerate it with `archgen pretrain`")
        space = get_space(payload["space"])
        try:
            return cls(
                payload["space"], unpack_predictor(space, payload["latency"], width),
                unpack_predictor(space, payload["accuracy"], width),
                {name: unpack_generator(space, g) for name, g in payload.get("generators", {}).items()},
                payload.get("meta", {}),
            )
        except (KeyError, RuntimeError, TypeError, ValueError) as exc:
            raise BundleError(f"{path} is incomplete or inconsistent: {exc}") from None
