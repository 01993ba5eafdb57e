"""The search-space protocol: what every space can do with an architecture.

An architecture is identified by its canonical *string* in its space (hashable,
printable, what benchmark tables and CLIs use). A space turns strings into
:class:`~archgen.graph.ArchGraph` and back, samples and mutates them, and
builds them as trainable ``torch.nn.Module``.
"""

from __future__ import annotations

import random
from abc import ABC, abstractmethod
from collections.abc import Iterator

from ..errors import InvalidArchError
from ..graph import ArchGraph

#: graph views an encoder can read: the architecture as built, or with ``none``
#: ops and the ops they cut off from the output removed (what the network computes)
VIEWS: tuple[str, ...] = ("full", "pruned")


def check_view(view: str) -> str:
    if view not in VIEWS:
        raise ValueError(f"unknown graph view {view!r}; valid: {', '.join(VIEWS)}")
    return view


class SearchSpace(ABC):
    """Base class of search spaces. Subclasses set :attr:`name` and implement the
    abstract methods; finite spaces also implement :meth:`enumerate`."""

    #: short name used by the registry, the CLI and bundles
    name: str = ""
    #: input tensor shape (C, H, W) the built networks expect by default
    input_shape: tuple[int, int, int] = (3, 32, 32)

    # -- identity -------------------------------------------------------------
    @abstractmethod
    def parse(self, text: str) -> str:
        """Validate ``text`` and return the canonical arch string; raise
        :class:`InvalidArchError` naming the offending token."""

    @property
    def size(self) -> int | None:
        """Number of architectures, or None where not finite/known."""
        return None

    def equivalence_key(self, arch: str) -> str:
        """A key equal for architectures that compute the same function
        (default: the canonical hash of the pruned graph)."""
        return self.to_graph(arch).pruned().canonical_hash()

    # -- graphs -----------------------------------------------------------------
    @abstractmethod
    def to_graph(self, arch: str) -> ArchGraph:
        """The architecture's :class:`ArchGraph`."""

    @abstractmethod
    def from_graph(self, graph: ArchGraph) -> str:
        """Decode a graph of this space back to its arch string; raise
        :class:`InvalidArchError` when the graph is not a member of the space."""

    def graph_arrays(self, arch: str, view: str = "full"):
        """:meth:`ArchGraph.to_arrays` of the architecture's graph (``view="full"``) or
        of its pruned graph (``view="pruned"``). Spaces with a fixed template
        override this with a fast path that gives identical arrays."""
        graph = self.to_graph(arch)
        return (graph.pruned() if check_view(view) == "pruned" else graph).to_arrays()

    # -- exploration ------------------------------------------------------------
    @abstractmethod
    def sample(self, n: int, seed: int = 0) -> list[str]:
        """``n`` architectures drawn uniformly at random (distinct where the space
        has at least ``n``), reproducible from ``seed``."""

    @abstractmethod
    def mutate(self, arch: str, seed: int = 0) -> str:
        """A neighbour of ``arch`` differing in one choice."""

    def enumerate(self) -> Iterator[str]:
        raise NotImplementedError(f"the {self.name} space is too large to enumerate")

    # -- building -----------------------------------------------------------------
    @abstractmethod
    def to_module(self, arch: str, num_classes: int = 10, **options):
        """A trainable ``torch.nn.Module`` for ``arch``."""

    # -- shared helpers -------------------------------------------------------------
    def coerce(self, arch: str | ArchGraph) -> str:
        """Accept an arch string or an ArchGraph of this space; return the canonical string."""
        if isinstance(arch, ArchGraph):
            return self.from_graph(arch)
        if not isinstance(arch, str):
            raise InvalidArchError(
                f"expected a {self.name} arch string or an ArchGraph, got {type(arch).__name__}"
            )
        return self.parse(arch)

    @staticmethod
    def _rng(seed: int) -> random.Random:
        if not isinstance(seed, int) or isinstance(seed, bool):
            raise TypeError(f"seed must be an int, got {seed!r}")
        return random.Random(seed)

    @staticmethod
    def _check_count(n: int) -> int:
        if not isinstance(n, int) or isinstance(n, bool) or n < 0:
            raise ValueError(f"n must be a non-negative int, got {n!r}")
        return n

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"
