"""The search-space protocol: what every space can do with an architecture.

An architecture is identified by its canonical *string* in its space (hashable,
printable, what benchmark tables and CLIs use). A space turns strings into
:class:`~archgen.graph.ArchGraph` and back, samples and mutates them, and
builds them as trainable ``torch.nn.Module``.
"""

from __future__ import annotations

import random
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from ..errors import InvalidArchError
from ..graph import ArchGraph
from ..ops import NUMERIC_ATTRS
from ..validation import MAX_SAMPLE, check_count, check_seed

#: graph views an encoder can read: the architecture as built, or with ``none``
#: ops and the ops they cut off from the output removed (what the network computes)
VIEWS: tuple[str, ...] = ("full", "pruned")


def check_view(view: str) -> str:
    if view not in VIEWS:
        raise ValueError(f"unknown graph view {view!r}; valid: {', '.join(VIEWS)}")
    return view


#: digits a number in an arch string may have: every valid one has at most 3, and int()
#: of hundreds of digits is slow (of more than 4,300, a ValueError)
MAX_DIGITS = 6


def arch_number(digits: str, what: str) -> int:
    """The int of a run of ASCII digits read from an arch string, or an
    :class:`InvalidArchError` naming ``what`` for one too long to be any valid value."""
    if len(digits) > MAX_DIGITS:
        raise InvalidArchError(f"{what} {digits[:12]}... has {len(digits):,} digits; no valid value has more "
                               f"than {MAX_DIGITS}")
    return int(digits)


def chain_order(graph: ArchGraph, what: str) -> list[int]:
    """The nodes of a single-chain graph (``what``, e.g. "an FBNet graph") from its
    one source to its sink; an :class:`InvalidArchError` saying where it branches otherwise."""
    g = graph.nx
    sources = [n for n in g if g.in_degree(n) == 0]
    if len(sources) != 1:
        raise InvalidArchError(f"{what} is a single chain with one start, found {len(sources)} nodes without inputs")
    order, node = sources[:1], sources[0]
    while g.out_degree(node):
        succ = list(g.successors(node))
        if len(succ) != 1:
            raise InvalidArchError(f"{what} is a single chain, but node {node} ({g.nodes[node]['op']}) "
                                   f"has {len(succ)} successors")
        node = succ[0]
        if g.in_degree(node) != 1:
            raise InvalidArchError(f"{what} is a single chain, but node {node} ({g.nodes[node]['op']}) "
                                   f"has {g.in_degree(node)} inputs")
        order.append(node)
    if len(order) != g.number_of_nodes():
        raise InvalidArchError(f"{what} is a single chain of all its nodes; the chain from its start covers "
                               f"{len(order)} of {g.number_of_nodes()} nodes")
    return order


@dataclass(frozen=True)
class DecisionLayout:
    """The choices that make up an architecture of a space, laid out as a DAG.

    An architecture is one option index per *slot*; every vector of indices in
    range decodes to a valid architecture, so generators that emit such vectors
    are valid by construction. The DAG (``node_ops``, ``edges``) is the space's
    template: slot nodes (``node_ops[v] is None``) take their slot's chosen op,
    fixed nodes (input, output, ...) keep theirs. Where a space lets topology
    vary, an edge's presence is itself a slot with options ("off", "on").
    """

    options: tuple[tuple[str, ...], ...]  # per slot: the op names it can take
    slot_nodes: tuple[int, ...]  # per slot: its node in the template DAG
    node_ops: tuple[str | None, ...]  # per node: fixed op, or None for a slot node
    edges: tuple[tuple[int, int], ...]  # template DAG edges (src, dst), topologically numbered

    @property
    def num_slots(self) -> int:
        return len(self.options)

    @property
    def num_nodes(self) -> int:
        return len(self.node_ops)


class SearchSpace(ABC):
    """Base class of search spaces. Subclasses set :attr:`name` and implement the
    abstract methods; finite spaces also implement :meth:`enumerate`."""

    #: short name used by the registry, the CLI and bundles
    name: str = ""
    #: input tensor shape (C, H, W) the built networks expect by default
    input_shape: tuple[int, int, int] = (3, 32, 32)
    #: whether :meth:`to_graph` puts channels, kernel, stride, groups, expansion
    #: and resolution on every node (then :meth:`complexity` reads them off)
    shaped_graphs: bool = False
    #: the numeric node attributes its graphs use, a prefix of :data:`~archgen.ops.NUMERIC_ATTRS`:
    #: graph encoders read the op one-hot and just these (``se`` is informative only
    #: where squeeze-excite is a choice, as in ``anb``; elsewhere it would only
    #: change how a predictor's first layer is initialised)
    node_attrs: tuple[str, ...] = NUMERIC_ATTRS[:7]
    #: the encoder of its shipped accuracy predictor (:mod:`graph_encoders`): a graph
    #: network, or ``"choices"`` (an MLP over the decision vector) where that ranks
    #: the table's labels better (``bench/anb.py``)
    accuracy_encoder: str = "gin"
    #: the encoder of its shipped latency predictor
    latency_encoder: str = "gin"

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

    def view_graph(self, arch: str, view: str = "full") -> ArchGraph:
        """The architecture's graph (``view="full"``) or its pruned graph (``view="pruned"``)."""
        graph = self.to_graph(arch)
        return graph.pruned() if check_view(view) == "pruned" else graph

    def graph_arrays(self, arch: str, view: str = "full"):
        """:meth:`ArchGraph.to_arrays` of :meth:`view_graph`. Spaces with a fixed
        template override this with a fast path that gives identical arrays."""
        return self.view_graph(arch, view).to_arrays()

    # -- decisions (what generators emit) ----------------------------------------
    @property
    def decisions(self) -> DecisionLayout:
        raise NotImplementedError(f"the {self.name} space has no decision layout for generators")

    def encode_choices(self, arch: str) -> tuple[int, ...]:
        """Option index per slot of :attr:`decisions` for ``arch``."""
        raise NotImplementedError(f"the {self.name} space has no decision layout for generators")

    def decode_choices(self, choices: Sequence[int]) -> str:
        """The arch string of one option index per slot (inverse of :meth:`encode_choices`)."""
        raise NotImplementedError(f"the {self.name} space has no decision layout for generators")

    def canonical_choices(self, choices):
        """``[n, S]`` option indices with every vector replaced by the one
        :meth:`encode_choices` gives for what it decodes to (vectorised). The
        default is the identity, right for spaces where distinct vectors are
        distinct architectures; spaces whose vectors can alias override it."""
        return choices

    def _check_choices(self, choices: Sequence[int]) -> list[int]:
        options = self.decisions.options
        values = [int(c) for c in choices]
        if len(values) != len(options):
            raise InvalidArchError(f"a {self.name} architecture has {len(options)} choices, got {len(values)}")
        for slot, (c, opts) in enumerate(zip(values, options)):
            if not 0 <= c < len(opts):
                raise InvalidArchError(f"choice {c} of slot {slot} is out of range 0..{len(opts) - 1}")
        return values

    # -- exploration ------------------------------------------------------------
    @abstractmethod
    def sample(self, n: int, seed: int = 0) -> list[str]:
        """``n`` architectures drawn uniformly at random (distinct where the space
        has at least ``n``), reproducible from ``seed``. ``n``: 0 to
        :data:`~archgen.validation.MAX_SAMPLE` (1,000,000); ``seed``: 0 to 2**63-1;
        others are a :class:`~archgen.errors.RequestError`."""

    @abstractmethod
    def mutate(self, arch: str, seed: int = 0) -> str:
        """A neighbour of ``arch`` differing in one choice (``seed``: 0 to 2**63-1)."""

    def enumerate(self) -> Iterator[str]:
        raise NotImplementedError(f"the {self.name} space is too large to enumerate")

    def index_of(self, arch: str) -> int:
        """Position of the canonical string ``arch`` in :meth:`enumerate` order."""
        raise NotImplementedError(f"the {self.name} space is too large to enumerate")

    # -- building -----------------------------------------------------------------
    def input_shape_of(self, arch: str) -> tuple[int, int, int]:
        """Input tensor shape (C, H, W) of ``arch``'s network: :attr:`input_shape`,
        except in spaces where the resolution is itself a choice."""
        return self.input_shape

    @abstractmethod
    def to_module(self, arch: str, num_classes: int = 10, **options):
        """A trainable ``torch.nn.Module`` for ``arch``."""

    def complexity(self, arch: str):
        """MACs and parameters of the built network (:class:`~archgen.complexity.Complexity`):
        read off the graph where it carries shapes (:attr:`shaped_graphs`;
        microseconds), else built and counted (tens of milliseconds)."""
        from ..complexity import Complexity, graph_complexity
        from ..hardware import count_flops, count_parameters

        if self.shaped_graphs:
            return graph_complexity(self.to_graph(arch))
        module = self.to_module(arch)
        return Complexity(count_flops(module, (1, *self.input_shape_of(arch))) / 2, float(count_parameters(module)))

    def kernel_cover(self) -> list[str]:
        """Architectures whose networks together run every distinct kernel of the space
        (:func:`archgen.kernels.space_kernels`). Default: for each option position j, the
        architecture taking option j at every slot that has one (option 0 elsewhere),
        right where a kernel depends only on its slot's option and position."""
        options = self.decisions.options
        return list(dict.fromkeys(
            self.decode_choices([j if j < len(o) else 0 for o in options])
            for j in range(max(len(o) for o in options))))

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
        """The generator of ``sample``/``mutate``: ``seed`` an int from 0 to 2**63-1
        (:func:`~archgen.validation.check_seed`), else a :class:`~archgen.errors.RequestError`."""
        return random.Random(check_seed(seed))

    @staticmethod
    def _check_count(n: int) -> int:
        """``n`` of ``sample(n)``: an int from 0 to :data:`~archgen.validation.MAX_SAMPLE`
        (a million; more would spend minutes building strings before running out of memory)."""
        return check_count("n", n, minimum=0, maximum=MAX_SAMPLE)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"
