"""Exception types.

Every error a user can cause derives from :class:`ArchGenError` *and* from the
built-in type a caller would naturally catch (``ValueError``/``KeyError``/
``FileNotFoundError``), so ``except ValueError`` keeps working.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class ArchGenError(Exception):
    """Base class of every archgen error."""


class InvalidGraphError(ArchGenError, ValueError):
    """An :class:`~archgen.graph.ArchGraph` breaks a structural rule."""


class InvalidArchError(ArchGenError, ValueError):
    """An architecture is not a member of the search space it was given to."""


class DataError(ArchGenError, FileNotFoundError):
    """Benchmark data is missing or malformed."""


#: what to do about an unknown name, by kind, where every raiser would say the same
#: (the predictors raise unknown devices and tasks; this keeps them from each wording it)
HINTS = {
    "device": "add one with --calibration FILE.csv / ArchGen.calibrate_device, "
              "or --device local to measure this machine",
    "task": "add one with ArchGen.calibrate_task (about 20 trained architectures and their accuracies)",
}


class UnknownNameError(ArchGenError, KeyError):
    """A device, task, space or op name that is not known.

    The message lists the valid names, suggests the closest one (a typo is the
    usual cause) and, where there is one, says how to add a new name (``hint``;
    by default :data:`HINTS` of ``kind``)."""

    def __init__(self, kind: str, name: object, valid: Iterable[str], hint: str | None = None):
        self.kind, self.name, self.valid = kind, name, sorted(valid)
        self.hint = HINTS.get(kind) if hint is None else hint
        self.suggestion = closest(name, self.valid)
        guess = f" (did you mean {self.suggestion!r}?)" if self.suggestion is not None else ""
        message = f"unknown {kind} {name!r}{guess}; valid: {', '.join(self.valid) or 'none'}"
        if self.hint:
            message += f"; {self.hint}"
        super().__init__(message)

    def __str__(self) -> str:  # KeyError would quote the message otherwise
        return str(self.args[0])


def closest(name: object, valid: Iterable[str]) -> str | None:
    """The valid name most like ``name`` (case-insensitively), or None if none is close."""
    if not isinstance(name, str) or not name:
        return None
    valid = list(valid)
    lowered = {v.lower(): v for v in valid}
    if name.lower() in lowered and lowered[name.lower()] != name:
        return lowered[name.lower()]
    match = difflib.get_close_matches(name.lower(), list(lowered), n=1, cutoff=0.6)
    return lowered[match[0]] if match else None


class RequestError(ArchGenError, ValueError):
    """A request argument of the wrong type or outside its allowed range (the message
    names the parameter first, so the command line can name its flag instead)."""


class AcceleratorError(ArchGenError, ValueError):
    """An accelerator that this machine does not have (e.g. ``gpu`` without a visible CUDA GPU)."""


class BundleError(ArchGenError, ValueError):
    """A bundle file that cannot be used (corrupt, foreign, or from another version)."""


class BudgetError(ArchGenError, ValueError):
    """A latency budget no architecture of the space is predicted to meet."""


class DomainError(ArchGenError, ValueError):
    """A prediction asked outside the part of the space a target was learned on
    (e.g. OFA ImageNet accuracy, labelled at resolution 224 only, at 160)."""


class GenerationWarning(UserWarning):
    """A generation request returned fewer candidates than asked for (the message says why)."""


class CacheError(ArchGenError, ValueError):
    """A cache file archgen will not use (damaged, foreign, another schema), or a
    value that must not be stored in it; the message names the file."""


class MeasurementError(ArchGenError, RuntimeError):
    """A timing that came out unusable (not finite, or not > 0): a broken clock or
    runtime, never a latency to keep."""
