"""Exception types.

Every error a user can cause derives from :class:`ArchGenError` *and* from the
built-in type a caller would naturally catch (``ValueError``/``KeyError``/
``FileNotFoundError``), so ``except ValueError`` keeps working.
"""

from __future__ import annotations

from collections.abc import Iterable


class ArchGenError(Exception):
    """Base class of every archgen error."""


class InvalidGraphError(ArchGenError, ValueError):
    """An :class:`~archgen.graph.ArchGraph` breaks a structural rule."""


class InvalidArchError(ArchGenError, ValueError):
    """An architecture is not a member of the search space it was given to."""


class DataError(ArchGenError, FileNotFoundError):
    """Benchmark data is missing or malformed."""


class UnknownNameError(ArchGenError, KeyError):
    """A device, task, space or op name that is not known."""

    def __init__(self, kind: str, name: object, valid: Iterable[str]):
        self.kind, self.name, self.valid = kind, name, sorted(valid)
        super().__init__(f"unknown {kind} {name!r}; valid: {', '.join(self.valid)}")

    def __str__(self) -> str:  # KeyError would quote the message otherwise
        return str(self.args[0])


class BundleError(ArchGenError, ValueError):
    """A bundle file that cannot be used (corrupt, foreign, or from another version)."""


class BudgetError(ArchGenError, ValueError):
    """A latency budget no architecture of the space is predicted to meet."""


class DomainError(ArchGenError, ValueError):
    """A prediction asked outside the part of the space a target was learned on
    (e.g. OFA ImageNet accuracy, labelled at resolution 224 only, at 160)."""


class GenerationWarning(UserWarning):
    """A generation request returned fewer candidates than asked for (the message says why)."""
