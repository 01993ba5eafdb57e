"""Checks of user-given numbers and quoting of user-given text, shared by the API and the CLI.

Why limits: a request for ``samples=10**9`` or ``sample(10**12)`` would spend minutes
allocating before a ``MemoryError``; a clear error at the door names the limit instead.
The limits are far above anything a request needs (a NB201 request draws 500 samples,
an ``anb`` one 1,000). Failed checks raise :class:`~archgen.errors.RequestError` (a
``ValueError``) with the parameter's name first, which the CLI turns into its flag.
"""

from __future__ import annotations

import math

from .errors import RequestError

#: most architectures one ``space.sample(n)`` / ``archgen measure --sample`` draws
MAX_SAMPLE = 1_000_000
#: most samples one generation request draws
MAX_SAMPLES = 100_000
#: most candidates one request returns
MAX_CANDIDATES = 10_000
#: most proposals one guided sampling step scores
MAX_PROPOSALS = 1_024
#: seeds are non-negative and fit in 64 bits (numpy, torch and random all accept them)
MAX_SEED = 2**63 - 1
#: error messages quote at most this many characters of a user's input
QUOTE_CHARS = 200


def quote(text: object, limit: int = QUOTE_CHARS) -> str:
    """``repr(text)``, cut to ``limit`` characters with the full length said, so a
    megabyte of bad input never becomes a megabyte of error message."""
    if isinstance(text, int) and text.bit_length() > 256:  # repr of a huge int is slow, then an error
        return f"an int of {text.bit_length():,} bits"
    shown = repr(text)
    if len(shown) <= limit:
        return shown
    return f"{shown[:limit]}... ({len(str(text)):,} characters)"


def check_count(name: str, value: object, *, minimum: int = 1, maximum: int) -> int:
    """``value`` as an int in ``[minimum, maximum]``, else a :class:`RequestError` naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise RequestError(f"{name} must be an int from {minimum} to {maximum:,}, got {quote(value)}")
    if not minimum <= value <= maximum:
        shown = f"{value:,}" if value.bit_length() <= 256 else quote(value)
        raise RequestError(f"{name} must be from {minimum} to {maximum:,}, got {shown}")
    return value


def check_positive_ints(**values: object) -> None:
    """Each of ``values`` (name=value) an int >= 1, else a ``ValueError`` naming the first
    that is not: the size options of every network builder."""
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")


def check_seed(seed: object, name: str = "seed") -> int:
    """A seed: a non-negative int below 2**63 (what numpy, torch and ``random`` all take)."""
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise RequestError(f"{name} must be an int from 0 to 2**63-1, got {quote(seed)}")
    return seed


def check_finite(name: str, value: object, *, positive: bool = False) -> float:
    """``value`` as a finite float (and > 0 with ``positive``), else a :class:`RequestError` naming ``name``."""
    ok = not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)
    if not ok or (positive and value <= 0):
        kind = "a finite number > 0" if positive else "a finite number"
        raise RequestError(f"{name} must be {kind}, got {quote(value)}")
    return float(value)


def check_fields(value: object, where: str, fields: dict, error: type[Exception] = ValueError) -> dict:
    """``value`` as a dict whose ``fields`` (``{key: type or tuple of types}``) hold values
    of those types, else ``error`` naming the field (``where.key``). Put ``type(None)``
    among a key's types to make it optional (a missing key then passes).

    Why: files a user hands over (bundles, caches) are read into nested dicts; a wrong
    one should say which field is wrong, not fail with a ``KeyError`` deep inside.
    """
    if not isinstance(value, dict):
        raise error(f"{where} must be a dict, got {type(value).__name__}")
    for key, types in fields.items():
        types = types if isinstance(types, tuple) else (types,)
        if key not in value:
            if type(None) in types:
                continue
            raise error(f"{where} lacks the field {key!r}")
        found = value[key]
        if not isinstance(found, types) or (isinstance(found, bool) and bool not in types):
            allowed = " or ".join("None" if t is type(None) else t.__name__ for t in types)
            raise error(f"field {where}.{key} must be {allowed}, got {type(found).__name__}")
    return value
