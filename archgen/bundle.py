"""A pretrained bundle: a space's latency and accuracy predictors and its generators, in one file.

Stored with ``torch.save`` as plain tensors, numbers and strings only, and read
with ``torch.load(weights_only=True)``: loading a bundle never unpickles code. A
bundle file is untrusted input: :meth:`Bundle.load` checks its structure field by
field and refuses NaN or infinite weights, naming the field or tensor.
"""

from __future__ import annotations

import hashlib
import numbers
import os
import pickle
import zipfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .errors import ArchGenError, BundleError
from .ops import NUMERIC_ATTRS, OP_NAMES, legacy_feature_width
from .spaces import available_spaces, get_space
from .validation import check_fields, quote

FORMAT_VERSION = 2
#: what a bundle the weights_only unpickler refuses (it names a Python class or function) is told
OBJECTS_MESSAGE = ("this file contains Python objects, not only tensors; archgen never unpickles code: "
                   "regenerate it with `archgen pretrain`")


class BundleNotFoundError(ArchGenError, FileNotFoundError):
    """The bundle file named does not exist."""


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

    def fingerprint(self) -> str:
        """A sha256 digest (64 hex digits) of what a calibration made with this bundle depends
        on: its space and both predictors (weights, normalisations, calibration prior, feature
        table, label memory, student), not its generators or ``meta``. A stored calibration
        (:mod:`archgen.calibrations`) is restored only into a bundle with the same fingerprint.
        The same after :meth:`save` and :meth:`load`; computed once per object (about 10 ms
        for the embedded nb201 bundle): a bundle is not changed once pretrained."""
        cached = self.__dict__.get("_fingerprint")
        if cached is None:
            from predictors.bundle import pack_predictor

            digest = hashlib.sha256(b"archgen bundle fingerprint 1\0")
            _digest(digest, {"space": self.space, "latency": pack_predictor(self.latency),
                             "accuracy": pack_predictor(self.accuracy)})
            cached = self.__dict__["_fingerprint"] = digest.hexdigest()
        return cached

    @classmethod
    def load(cls, path: str | os.PathLike) -> Bundle:
        """Read a bundle written by :meth:`save`, checking it as untrusted input: a missing
        file, a directory, an empty or damaged file, Python objects besides tensors, a
        wrong structure and non-finite numbers are each a clear error naming the field
        (:class:`~archgen.errors.BundleError`; :class:`BundleNotFoundError` for a missing file)."""
        from generators.model import unpack_generator
        from predictors.bundle import unpack_predictor

        path = Path(path)
        payload = _read(path)
        if not isinstance(payload, dict) or payload.get("format") != FORMAT_VERSION:
            found = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
            raise BundleError(f"{path} is not an archgen bundle of format {FORMAT_VERSION} (found format "
                              f"{quote(found, 60)}); regenerate it with `archgen pretrain`")
        check_fields(payload, "bundle", {"space": str, "ops": list, "attrs": (list, type(None)), "latency": dict,
                                         "accuracy": dict, "generators": (dict, type(None)),
                                         "meta": (dict, type(None))}, BundleError)
        # attributes appended since a bundle was made are invisible to its encoders (ops.legacy_feature_width)
        width = legacy_feature_width(payload.get("attrs") or ["?"])
        if payload["ops"] != list(OP_NAMES) or width is None:
            raise BundleError(f"{path} was trained with another op vocabulary; regenerate it with `archgen pretrain`")
        try:
            space = get_space(payload["space"])
        except KeyError:
            raise BundleError(f"field bundle.space of {path} names no search space: {quote(payload['space'], 60)}; "
                              f"known: {', '.join(available_spaces())}") from None
        check_finite_tensors(payload)
        predictors = {}
        for name in ("latency", "accuracy"):
            with _field(path, name):
                predictors[name] = unpack_predictor(space, payload[name], width, where=name)
        generators = {}
        for name, packed in (payload.get("generators") or {}).items():
            with _field(path, f"generators.{name}"):
                generators[name] = unpack_generator(space, packed, where=f"generators.{name}")
        return cls(payload["space"], predictors["latency"], predictors["accuracy"], generators,
                   payload.get("meta") or {})


def _digest(digest, value) -> None:
    """Feed a packed payload (nested dicts, lists, tensors, numbers, strings) into ``digest``,
    each value tagged with its type, so that equal payloads digest equally whatever Python or
    numpy type a number has (``repr`` of a numpy float changed in numpy 2)."""
    if isinstance(value, torch.Tensor):
        flat = value.detach().cpu().contiguous().reshape(-1)
        digest.update(f"T{flat.dtype}{tuple(value.shape)}:".encode())
        digest.update(flat.view(torch.uint8).numpy().tobytes())
    elif isinstance(value, dict):
        digest.update(f"D{len(value)}:".encode())
        for key in sorted(value, key=lambda k: (type(k).__name__, str(k))):
            _digest(digest, key)
            _digest(digest, value[key])
    elif isinstance(value, (list, tuple)):
        digest.update(f"L{len(value)}:".encode())
        for item in value:
            _digest(digest, item)
    elif isinstance(value, str):
        data = value.encode()
        digest.update(f"S{len(data)}:".encode() + data)
    elif value is None or isinstance(value, bool):
        digest.update(f"B{value}:".encode())
    elif isinstance(value, numbers.Real):
        digest.update(f"R{float(value).hex()}:".encode())
    elif hasattr(value, "__array__"):  # a numpy array
        _digest(digest, torch.from_numpy(np.ascontiguousarray(value)))
    else:
        raise TypeError(f"cannot fingerprint a {type(value).__name__} in a bundle")


def _read(path: Path):
    """The payload of a bundle file via ``torch.load(weights_only=True)``, with errors that
    say what is wrong with the file, never torch's advice to load it with
    ``weights_only=False`` (which would run whatever code a crafted file holds)."""
    shown = quote(str(path))
    if not path.exists():
        raise BundleNotFoundError(f"bundle {shown} does not exist")
    if path.is_dir():
        raise BundleError(f"bundle {shown} is a directory; give the path of a .pt file made by `archgen pretrain`")
    if path.stat().st_size == 0:
        raise BundleError(f"bundle {shown} is empty (0 bytes)")
    if not zipfile.is_zipfile(path):  # torch.save writes a zip archive; anything else is foreign
        raise BundleError(f"{shown} is not a readable archgen bundle (not a torch.save archive, or a damaged one); "
                          "regenerate it with `archgen pretrain`")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:  # torch's message advises weights_only=False: never repeat it
        if "GLOBAL" in str(exc):
            raise BundleError(f"{shown} is not a usable archgen bundle: {OBJECTS_MESSAGE}") from None
        raise BundleError(f"{shown} is not a readable archgen bundle (its index cannot be read as tensors and plain "
                          "values: the file is damaged or holds Python objects); regenerate it with "
                          "`archgen pretrain`") from None
    except Exception as exc:  # torch raises several types for damaged archives
        reason = str(exc).split("\n")[0][:200]
        if "weights_only" in reason:
            reason = "its contents cannot be read as tensors"
        raise BundleError(f"{shown} is not a readable archgen bundle ({type(exc).__name__}: {reason}); "
                          "regenerate it with `archgen pretrain`") from None


def check_finite_tensors(payload, where: str = "bundle") -> None:
    """A :class:`~archgen.errors.BundleError` naming the first floating tensor (anywhere in
    the nested payload) holding NaN or inf: such weights would make every prediction NaN."""
    if isinstance(payload, torch.Tensor):
        if payload.is_floating_point() or payload.is_complex():
            bad = ~torch.isfinite(payload)
            if bool(bad.any()):
                raise BundleError(f"tensor {where} (shape {tuple(payload.shape)}) holds {int(bad.sum()):,} NaN or "
                                  "infinite value(s); regenerate the bundle with `archgen pretrain`")
    elif isinstance(payload, dict):
        for key, value in payload.items():
            check_finite_tensors(value, f"{where}.{key}" if isinstance(key, str) and "." not in key
                                 else f"{where}[{quote(key, 80)}]")
    elif isinstance(payload, (list, tuple)):
        for i, value in enumerate(payload):
            check_finite_tensors(value, f"{where}[{i}]")


@contextmanager
def _field(path: Path, field: str):
    """Re-raise what unpacking ``field`` raises as a BundleError naming the field."""
    try:
        yield
    except BundleError:
        raise
    except (KeyError, RuntimeError, TypeError, ValueError, AttributeError, IndexError) as exc:
        detail = " ".join((str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)).split())
        detail = detail if len(detail) <= 300 else detail[:300] + "..."  # one line, however torch words it
        raise BundleError(f"{path}: field {field} is incomplete or inconsistent: {detail}") from None
