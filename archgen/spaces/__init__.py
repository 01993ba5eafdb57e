"""Search spaces behind one protocol (:class:`SearchSpace`), found by name."""

from __future__ import annotations

from ..errors import UnknownNameError
from .anb import AnbSpace
from .base import SearchSpace
from .fbnet import FBNetSpace
from .mbv3 import MBv3Space
from .nb201 import NB201Space
from .transnas import TransNASMicroSpace

_SPACES: dict[str, type[SearchSpace]] = {s.name: s for s in (NB201Space, FBNetSpace, MBv3Space, AnbSpace,
                                                               TransNASMicroSpace)}
_ALIASES = {"nasbench201": "nb201", "nas-bench-201": "nb201", "nats-tss": "nb201",
            "hw-nas-bench-fbnet": "fbnet", "ofa": "mbv3", "ofa_mbv3": "mbv3", "mobilenetv3": "mbv3",
            "accel_nasbench": "anb", "accel-nasbench": "anb",
            "transnas101_micro": "transnas_micro", "transnas-micro": "transnas_micro"}


def available_spaces() -> list[str]:
    return sorted(_SPACES)


def get_space(name: str | SearchSpace) -> SearchSpace:
    """The search space called ``name`` (e.g. ``"nb201"``); a space passes through."""
    if isinstance(name, SearchSpace):
        return name
    key = _ALIASES.get(str(name).lower(), str(name).lower())
    if key not in _SPACES:
        raise UnknownNameError("search space", name, _SPACES)
    return _SPACES[key]()


__all__ = ["SearchSpace", "AnbSpace", "FBNetSpace", "MBv3Space", "NB201Space", "TransNASMicroSpace", "available_spaces",
           "get_space"]
