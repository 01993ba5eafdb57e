"""The NAS-Bench-201 cell space: 6 edges of a 4-node cell, 5 ops each (5^6 = 15,625).

Arch string: ``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|`` -- node j lists its incoming
edges ``op~i`` from node i. Graph form ("ops on nodes"): node 0 input, nodes 1..6
the six edge ops in string order, node 7 output; an edge op i->j reads the sum of
the ops entering cell node i (or the input) and feeds those leaving cell node j.
"""

from __future__ import annotations

import functools
import itertools
import re
from collections.abc import Iterator

import networkx as nx
import numpy as np

from ..errors import InvalidArchError
from ..graph import ArchGraph
from ..ops import NUMERIC_ATTRS, OP_INDEX
from ..validation import quote
from .base import DecisionLayout, SearchSpace, check_view

OPS: tuple[str, ...] = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
#: the six cell edges (target node j, source node i) in arch-string order
EDGES: tuple[tuple[int, int], ...] = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))
NUM_ARCHS = len(OPS) ** len(EDGES)

_GRAPH_INPUT, _GRAPH_OUTPUT = 0, len(EDGES) + 1
_CANONICAL = re.compile(r"\|(\w+)~0\|\+\|(\w+)~0\|(\w+)~1\|\+\|(\w+)~0\|(\w+)~1\|(\w+)~2\|")


def _template_edges() -> list[tuple[int, int]]:
    """Graph edges of the ops-on-nodes form (independent of the ops chosen)."""
    node_of = {edge: k + 1 for k, edge in enumerate(EDGES)}
    edges = []
    for (j, i), k in node_of.items():
        if i == 0:
            edges.append((_GRAPH_INPUT, k))
        else:
            edges.extend((node_of[e], k) for e in EDGES if e[0] == i)
        if j == 3:
            edges.append((k, _GRAPH_OUTPUT))
    return sorted(edges)


TEMPLATE_EDGES: tuple[tuple[int, int], ...] = tuple(_template_edges())

_TEMPLATE = nx.DiGraph()
_TEMPLATE.add_nodes_from(range(len(EDGES) + 2), role="op")
_TEMPLATE.nodes[_GRAPH_INPUT]["role"], _TEMPLATE.nodes[_GRAPH_OUTPUT]["role"] = "input", "output"
_TEMPLATE.add_edges_from(TEMPLATE_EDGES)


def _same_role(template_node: dict, graph_node: dict) -> bool:
    op = graph_node["op"]
    return template_node["role"] == (op if op in ("input", "output") else "op")


def _canonical_ops(text) -> tuple[str, ...] | None:
    """The ops of an exactly canonical arch string, else None (a fast path)."""
    match = _CANONICAL.fullmatch(text) if isinstance(text, str) else None
    return match.groups() if match and all(op in OPS for op in match.groups()) else None


def cell_index(op_indices, num_ops: int) -> int:
    """The enumeration index of a cell: its edges' op indices are the base-``num_ops`` digits."""
    code = 0
    for i in op_indices:
        code = code * num_ops + i
    return code


@functools.cache
def _all_archs() -> tuple[tuple[str, ...], dict[str, int]]:
    """Every canonical arch string in index order, and the index of each: the
    space is small enough that strings are built once and then looked up."""
    archs = tuple(NB201Space.format(ops) for ops in itertools.product(OPS, repeat=len(EDGES)))
    return archs, {a: i for i, a in enumerate(archs)}


@functools.lru_cache(maxsize=256)
def _wiring(view: str, none_mask: tuple[bool, ...]) -> tuple[tuple[int, ...], np.ndarray]:
    """Kept template nodes and edge_index of a cell whose ``none`` edges are ``none_mask``."""
    ops = ["none" if is_none else "skip_connect" for is_none in none_mask]
    graph = ArchGraph.from_lists(["input", *ops, "output"], TEMPLATE_EDGES)
    if view == "full":
        return tuple(range(graph.num_nodes)), graph.to_arrays()[2]
    pruned, kept = graph.pruned(return_nodes=True)
    return tuple(kept), pruned.to_arrays()[2]


class EdgeOpCell:
    """Index, decisions, sampling and mutation of a space whose architecture is one op per
    edge of the NAS-Bench-201 cell (:data:`EDGES`), read from the space's ``ops``,
    ``parse_ops``, ``format`` and ``_table``: NAS-Bench-201 itself, and TransNAS-Bench-101
    micro with another op list. Put before :class:`SearchSpace` among the bases."""

    ops: tuple[str, ...]
    #: what errors call the space
    display_name: str

    def _table(self) -> tuple[tuple[str, ...], dict[str, int]]:
        """Every canonical arch string in index order, and the index of each (built once)."""
        raise NotImplementedError

    # -- index (base-len(ops) code of the six ops; NOT a benchmark API's index) -------
    @property
    def size(self) -> int:
        return len(self.ops) ** len(EDGES)

    def index_of(self, arch: str) -> int:
        """Position of ``arch`` in :meth:`enumerate` order (its ops' positions as base-``len(ops)`` digits)."""
        index = self._table()[1].get(arch)
        if index is None:
            index = cell_index([self.ops.index(op) for op in self.parse_ops(arch)], len(self.ops))
        return index

    def arch_at(self, index: int) -> str:
        size = self.size
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < size:
            raise InvalidArchError(f"{self.display_name} index must be an int in 0..{size - 1}, got {quote(index, 60)}")
        return self._table()[0][index]

    def enumerate(self) -> Iterator[str]:
        return iter(self._table()[0])

    @property
    def decisions(self) -> DecisionLayout:
        """Six slots (the cell edges, as op nodes 1..6 of the template graph), one of ``ops`` each."""
        return DecisionLayout(
            options=(self.ops,) * len(EDGES), slot_nodes=tuple(range(1, len(EDGES) + 1)),
            node_ops=("input", *([None] * len(EDGES)), "output"), edges=TEMPLATE_EDGES,
        )

    def encode_choices(self, arch: str) -> tuple[int, ...]:
        return tuple(self.ops.index(op) for op in self.parse_ops(arch))

    def decode_choices(self, choices) -> str:
        if len(choices) == len(EDGES) and all(type(c) is int and 0 <= c < len(self.ops) for c in choices):
            return self.arch_at(cell_index(choices, len(self.ops)))  # fast path for generators
        return self.format(tuple(self.ops[c] for c in self._check_choices(choices)))

    def sample(self, n: int, seed: int = 0) -> list[str]:
        n = self._check_count(n)
        rng = self._rng(seed)
        size = len(self.ops) ** len(EDGES)
        if n <= size:
            return [self.arch_at(i) for i in rng.sample(range(size), n)]
        return [self.arch_at(rng.randrange(size)) for _ in range(n)]

    def mutate(self, arch: str, seed: int = 0) -> str:
        ops = list(self.parse_ops(arch))
        rng = self._rng(seed)
        k = rng.randrange(len(ops))
        ops[k] = rng.choice([op for op in self.ops if op != ops[k]])
        return self.format(tuple(ops))


class NB201Space(EdgeOpCell, SearchSpace):
    """NAS-Bench-201 (a.k.a. NATS-Bench topology) cell space."""

    name = "nb201"
    input_shape = (3, 32, 32)
    ops = OPS

    # -- strings ------------------------------------------------------------------
    def parse(self, text: str) -> str:
        if isinstance(text, str) and text in _all_archs()[1]:
            return text
        return self.format(self.parse_ops(text))

    def parse_ops(self, text: str) -> tuple[str, ...]:
        """The six edge ops of an arch string, in :data:`EDGES` order."""
        ops = _canonical_ops(text)
        if ops:
            return ops  # the common, well-formed case; errors take the long way below
        if not isinstance(text, str):
            raise InvalidArchError(f"a NAS-Bench-201 arch must be a string, got {type(text).__name__}")
        s = text.strip()
        if not (s.startswith("|") and s.endswith("|")) or len(s) < 2:
            raise InvalidArchError(
                f"malformed NAS-Bench-201 arch {quote(text)}: it must start and end with '|', "
                "e.g. |nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
            )
        nodes = s.split("+")
        if len(nodes) != 3:
            raise InvalidArchError(
                f"malformed NAS-Bench-201 arch {quote(text)}: expected 3 node groups separated by '+', got {len(nodes)}"
            )
        ops: list[str] = []
        for j, group in enumerate(nodes, start=1):
            if not (group.startswith("|") and group.endswith("|")):
                raise InvalidArchError(f"malformed node group {quote(group, 80)} in {quote(text)}: expected |op~i|...|")
            tokens = group[1:-1].split("|")
            if len(tokens) != j:
                raise InvalidArchError(
                    f"node {j} in {quote(text)} must list {j} incoming edge(s), got {len(tokens)}: {quote(group, 80)}"
                )
            for i, token in enumerate(tokens):
                op, sep, src = token.partition("~")
                if not sep:
                    raise InvalidArchError(f"token {quote(token, 80)} (node {j}) in {quote(text)} is not of the form op~i")
                if op not in OPS:
                    raise InvalidArchError(
                        f"token {quote(token, 80)} (node {j}) has unknown op {quote(op, 60)}; NAS-Bench-201 ops: {', '.join(OPS)}"
                    )
                if src != str(i):
                    raise InvalidArchError(
                        f"token {quote(token, 80)} (node {j}) must come from node {i} (edges listed in order 0..{j - 1})"
                    )
                ops.append(op)
        return tuple(ops)

    @staticmethod
    def format(ops: tuple[str, ...] | list[str]) -> str:
        """Arch string of six edge ops in :data:`EDGES` order."""
        if len(ops) != len(EDGES):
            raise InvalidArchError(f"a NAS-Bench-201 cell has {len(EDGES)} edge ops, got {len(ops)}")
        for op in ops:
            if op not in OPS:
                raise InvalidArchError(f"unknown op {quote(op, 60)}; NAS-Bench-201 ops: {', '.join(OPS)}")
        groups, k = [], 0
        for j in range(1, 4):
            groups.append("|" + "|".join(f"{ops[k + i]}~{i}" for i in range(j)) + "|")
            k += j
        return "+".join(groups)

    # -- index (base-5 code of the six ops; NOT the NAS-Bench-201 API index) -------
    display_name = "NAS-Bench-201"

    def _table(self) -> tuple[tuple[str, ...], dict[str, int]]:
        return _all_archs()

    # -- graphs -------------------------------------------------------------------------
    def to_graph(self, arch: str) -> ArchGraph:
        ops = self.parse_ops(arch)
        return ArchGraph.from_lists(["input", *ops, "output"], TEMPLATE_EDGES)

    def from_graph(self, graph: ArchGraph) -> str:
        """Decode any node numbering of the ops-on-nodes form (matched to the template)."""
        if graph.num_nodes != len(EDGES) + 2:
            raise InvalidArchError(
                f"a NAS-Bench-201 graph has {len(EDGES) + 2} nodes (input, 6 ops, output), got {graph.num_nodes}"
            )
        bad = [(n, op) for n, op in enumerate(graph.ops) if op not in (*OPS, "input", "output")]
        if bad:
            raise InvalidArchError(f"nodes {bad} have ops outside NAS-Bench-201 ({', '.join(OPS)})")
        if graph.nx.number_of_edges() == len(TEMPLATE_EDGES):
            matcher = nx.algorithms.isomorphism.DiGraphMatcher(_TEMPLATE, graph.nx, node_match=_same_role)
            # the template has no automorphisms, so the first match is the only one
            for mapping in matcher.isomorphisms_iter():
                return self.format(tuple(graph.op(mapping[k]) for k in range(1, len(EDGES) + 1)))
        raise InvalidArchError(
            "graph is not a NAS-Bench-201 cell: its wiring does not match the ops-on-nodes template "
            f"(expected edges {list(TEMPLATE_EDGES)}, got {graph.edges})"
        )

    def graph_arrays(self, arch: str, view: str = "full"):
        """Fast path of :meth:`SearchSpace.graph_arrays`: the wiring depends only on
        which edges are ``none``, so it is computed once per such pattern (by the
        generic path) and the ops are filled in."""
        ops = self.parse_ops(arch)
        kept, edge_index = _wiring(check_view(view), tuple(op == "none" for op in ops))
        names = ("input", *ops, "output")
        op_index = np.array([OP_INDEX[names[k]] for k in kept], dtype=np.int64)
        return op_index, np.zeros((len(kept), len(NUMERIC_ATTRS)), dtype=np.float32), edge_index

    # -- function ---------------------------------------------------------------------------
    def equivalence_key(self, arch: str) -> str:
        """The function the cell computes, as a canonical expression of its input ``x``.

        Merges cells equal under these rules: a ``none`` edge contributes nothing;
        an op fed only zeros contributes nothing (the NAS-Bench-201 convention,
        although BatchNorm's shift makes it not exactly zero at inference);
        ``skip_connect`` passes its input on; sums are commutative and associative.
        Returns ``"0"`` for a cell whose output is always zero.
        """
        ops = dict(zip(EDGES, self.parse_ops(arch)))
        values: dict[int, tuple[str, ...]] = {0: ("x",)}
        for j in range(1, 4):
            terms: list[str] = []
            for i in range(j):
                op, value = ops[(j, i)], values[i]
                if op == "none" or not value:
                    continue
                if op == "skip_connect":
                    terms.extend(value)
                else:
                    terms.append(f"{op}({'+'.join(value)})")
            values[j] = tuple(sorted(terms))
        return "+".join(values[3]) or "0"

    # -- building -----------------------------------------------------------------------------
    def to_module(self, arch: str, num_classes: int = 10, **options):
        """The NAS-Bench-201 CIFAR network (see :class:`~archgen.spaces.nb201_network.NB201Network`)."""
        from .nb201_network import NB201Network

        return NB201Network(dict(zip(EDGES, self.parse_ops(arch))), num_classes=num_classes, **options)
