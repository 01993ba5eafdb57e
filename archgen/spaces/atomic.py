"""Architectures of several spaces read as atomic computation graphs (GENNAPE).

Each space describes its architectures with its own graph (cell ops, blocks);
a predictor trained on one family cannot read another's. Here an architecture
is written ``"space:arch"`` (``"fbnet:k3_e1-..."``) and its graph is the atomic
computation graph of the network the space builds (:func:`archgen.atomic.from_module`:
convolutions, norms, activations, adds with their shapes), so one encoder reads
NAS-Bench-201 cells, FBNet and MobileNetV3 alike. Building and tracing costs tens
of milliseconds per architecture; graphs are kept in memory and can be saved.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from ..errors import InvalidArchError
from ..graph import ArchGraph
from .base import SearchSpace, check_view

#: the spaces an atomic view covers by default
DEFAULT_MEMBERS: tuple[str, ...] = ("nb201", "fbnet", "mbv3")


class AtomicSpace(SearchSpace):
    """The union of ``members`` spaces, each architecture read as its atomic graph."""

    name = "atomic"

    def __init__(self, members: Sequence[str] = DEFAULT_MEMBERS):
        from . import get_space

        self.members = {m: get_space(m) for m in members}
        self._arrays: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}

    def split(self, arch: str) -> tuple[SearchSpace, str]:
        """``(member space, its arch string)`` of ``"space:arch"``."""
        if not isinstance(arch, str):
            raise InvalidArchError(f"an atomic-view arch must be a 'space:arch' string, got {type(arch).__name__}")
        name, sep, inner = arch.partition(":")
        if not sep or name not in self.members:
            raise InvalidArchError(f"{arch[:60]!r} must start with one of {', '.join(f'{m}:' for m in self.members)}")
        return self.members[name], inner

    def parse(self, text: str) -> str:
        space, inner = self.split(text)
        return f"{space.name}:{space.parse(inner)}"

    def wrap(self, space: str, archs: Sequence[str]) -> list[str]:
        """``"space:arch"`` strings of ``archs`` of member ``space``."""
        return [f"{space}:{a}" for a in archs]

    def input_shape_of(self, arch: str) -> tuple[int, int, int]:
        space, inner = self.split(arch)
        return space.input_shape_of(inner)

    def to_graph(self, arch: str) -> ArchGraph:
        from ..atomic import from_module

        space, inner = self.split(arch)
        return from_module(space.to_module(inner), (1, *space.input_shape_of(inner)))

    def from_graph(self, graph: ArchGraph) -> str:
        raise InvalidArchError("an atomic graph cannot be decoded back to a search-space architecture")

    def graph_arrays(self, arch: str, view: str = "full"):
        """Arrays of the atomic graph (built once per arch, then kept). Atomic
        graphs have no ``none`` ops, so both views are the same graph."""
        check_view(view)
        arrays = self._arrays.get(arch)
        if arrays is None:
            arrays = self._arrays[arch] = self.to_graph(self.parse(arch)).to_arrays()
        return arrays

    def save_graphs(self, path: str | os.PathLike) -> None:
        """Write the graphs built so far (a cache for the next process; atomic write)."""
        items = list(self._arrays.items())
        flat = {f"{i}_{k}": a for i, (_, arrs) in enumerate(items) for k, a in zip("oae", arrs)}
        tmp = f"{path}.tmp.npz"
        np.savez_compressed(tmp, archs=np.array([a for a, _ in items]), **flat)
        os.replace(tmp, path)

    def load_graphs(self, path: str | os.PathLike) -> int:
        """Read graphs written by :meth:`save_graphs`; returns how many."""
        with np.load(path) as f:
            archs = [str(a) for a in f["archs"]]
            for i, a in enumerate(archs):
                self._arrays[a] = (f[f"{i}_o"], f[f"{i}_a"], f[f"{i}_e"])
        return len(archs)

    def sample(self, n: int, seed: int = 0) -> list[str]:
        """``n`` architectures spread evenly over the member spaces."""
        n = self._check_count(n)
        names = list(self.members)
        counts = [n // len(names) + (i < n % len(names)) for i in range(len(names))]
        return [a for i, (m, c) in enumerate(zip(names, counts))
                for a in self.wrap(m, self.members[m].sample(c, seed=seed + i))]

    def mutate(self, arch: str, seed: int = 0) -> str:
        space, inner = self.split(arch)
        return f"{space.name}:{space.mutate(inner, seed)}"

    def to_module(self, arch: str, num_classes: int = 10, **options):
        space, inner = self.split(arch)
        return space.to_module(inner, num_classes=num_classes, **options)

    def complexity(self, arch: str):
        space, inner = self.split(arch)
        return space.complexity(inner)
