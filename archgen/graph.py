"""ArchGraph: the one architecture representation every part of archgen reads.

A directed acyclic graph of typed operation nodes (networkx underneath). Search
spaces encode their architectures into it, encoders read it as a
``torch_geometric.data.Data``, generators emit it. The canonical hash makes
isomorphic graphs (same ops, same wiring, other node numbering) compare equal,
which is what de-duplication of generated architectures needs.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import networkx as nx

from .errors import InvalidGraphError
from .ops import (
    NODE_FEATURES,
    NUMERIC_ATTRS,
    OP_INDEX,
    OP_NAMES,
    decode_attr,
    encode_attr,
)

#: Above this many search leaves the exact canonical form gives way to a
#: Weisfeiler-Lehman hash (still equal for isomorphic graphs). Only very
#: symmetric graphs (many identical parallel branches) get there.
MAX_CANONICAL_LEAVES = 2048


class ArchGraph:
    """A DAG of operation nodes. Node ids are consecutive integers from 0.

    >>> g = ArchGraph()
    >>> x = g.add_node("input"); c = g.add_node("conv", kernel=3); y = g.add_node("output")
    >>> g.add_edge(x, c); g.add_edge(c, y); g.validate()
    """

    __slots__ = ("_g", "_hash")

    def __init__(self) -> None:
        self._g = nx.DiGraph()
        self._hash: str | None = None

    # -- construction ---------------------------------------------------------
    def add_node(self, op: str, **attrs: float) -> int:
        """Add a node and return its id. Attributes must be in :data:`NUMERIC_ATTRS`."""
        node = self._g.number_of_nodes()
        self._g.add_node(node, op=op, attrs=dict(attrs))
        self._hash = None
        return node

    def add_edge(self, src: int, dst: int) -> None:
        for end in (src, dst):
            if end not in self._g:
                raise InvalidGraphError(
                    f"edge ({src}, {dst}) refers to node {end}, but the graph has nodes "
                    f"0..{self._g.number_of_nodes() - 1}"
                )
        self._g.add_edge(src, dst)
        self._hash = None

    @classmethod
    def from_lists(
        cls,
        ops: Sequence[str | tuple[str, Mapping[str, float]]],
        edges: Iterable[tuple[int, int]],
    ) -> ArchGraph:
        """Build from node ops (optionally ``(op, attrs)`` pairs) and an edge list."""
        g = cls()
        for item in ops:
            op, attrs = (item, {}) if isinstance(item, str) else item
            g.add_node(op, **dict(attrs))
        for src, dst in edges:
            g.add_edge(int(src), int(dst))
        return g

    # -- reading --------------------------------------------------------------
    @property
    def nx(self) -> nx.DiGraph:
        """The underlying networkx graph (node data: ``op``, ``attrs``). Do not mutate."""
        return self._g

    @property
    def num_nodes(self) -> int:
        return self._g.number_of_nodes()

    def __len__(self) -> int:
        return self.num_nodes

    @property
    def edges(self) -> list[tuple[int, int]]:
        return sorted(self._g.edges)

    def op(self, node: int) -> str:
        return self._g.nodes[node]["op"]

    def attrs(self, node: int) -> dict[str, float]:
        return dict(self._g.nodes[node]["attrs"])

    @property
    def ops(self) -> list[str]:
        return [self._g.nodes[n]["op"] for n in range(self.num_nodes)]

    def predecessors(self, node: int) -> list[int]:
        return sorted(self._g.predecessors(node))

    def successors(self, node: int) -> list[int]:
        return sorted(self._g.successors(node))

    def topological_order(self) -> list[int]:
        """Deterministic topological order (smallest id first among ready nodes)."""
        return list(nx.lexicographical_topological_sort(self._g))

    def __repr__(self) -> str:
        return f"ArchGraph(nodes={self.num_nodes}, edges={self._g.number_of_edges()})"

    def summary(self) -> str:
        """One line per node in topological order: ``id op(attrs) <- inputs``."""
        lines = []
        for n in self.topological_order():
            attrs = self.attrs(n)
            attr_text = ",".join(f"{k}={_fmt_num(v)}" for k, v in sorted(attrs.items()))
            inputs = ",".join(map(str, self.predecessors(n)))
            op_text = f"{self.op(n)}({attr_text})" if attr_text else self.op(n)
            lines.append(f"{n:>4} {op_text}" + (f" <- {inputs}" if inputs else ""))
        return "\n".join(lines)

    # -- validation -----------------------------------------------------------
    def validate(self) -> ArchGraph:
        """Check the structural rules; raise :class:`InvalidGraphError` naming the culprit.

        Rules: at least one node; every op known; attributes known, numeric, >= 0;
        no cycles; at least one ``input`` (no predecessors) and exactly one
        ``output`` (no successors); every node lies on a path input -> output.
        Returns ``self`` so calls chain.
        """
        g = self._g
        if g.number_of_nodes() == 0:
            raise InvalidGraphError("the graph has no nodes")
        for n, data in g.nodes(data=True):
            op = data["op"]
            if op not in OP_INDEX:
                raise InvalidGraphError(
                    f"node {n} has unknown op {op!r}; known ops: {', '.join(OP_NAMES)}"
                )
            for key, value in data["attrs"].items():
                if key not in NUMERIC_ATTRS:
                    raise InvalidGraphError(
                        f"node {n} ({op}) has unknown attribute {key!r}; "
                        f"known: {', '.join(NUMERIC_ATTRS)}"
                    )
                if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
                    raise InvalidGraphError(
                        f"node {n} ({op}) attribute {key}={value!r} must be a number >= 0"
                    )
        try:
            cycle = nx.find_cycle(g)
        except nx.NetworkXNoCycle:
            cycle = None
        if cycle:
            raise InvalidGraphError(
                "the graph has a cycle: " + " -> ".join(str(u) for u, _ in cycle) + f" -> {cycle[0][0]}"
            )
        inputs = [n for n in g if g.nodes[n]["op"] == "input"]
        outputs = [n for n in g if g.nodes[n]["op"] == "output"]
        if not inputs:
            raise InvalidGraphError("the graph has no 'input' node")
        if len(outputs) != 1:
            raise InvalidGraphError(
                f"the graph needs exactly one 'output' node, found {len(outputs)}"
                + (f" (nodes {outputs})" if outputs else "")
            )
        for n in inputs:
            if g.in_degree(n):
                raise InvalidGraphError(f"input node {n} has incoming edges from {self.predecessors(n)}")
        if g.out_degree(outputs[0]):
            raise InvalidGraphError(f"output node {outputs[0]} has outgoing edges to {self.successors(outputs[0])}")
        reachable = set(inputs).union(*(nx.descendants(g, n) for n in inputs))
        unreached = sorted(set(g) - reachable)
        if unreached:
            raise InvalidGraphError(f"dangling nodes not reachable from any input: {unreached}")
        feeding = nx.ancestors(g, outputs[0]) | {outputs[0]}
        dead = sorted(set(g) - feeding)
        if dead:
            raise InvalidGraphError(f"dangling nodes that do not reach the output: {dead}")
        return self

    # -- transformations ------------------------------------------------------
    def copy(self) -> ArchGraph:
        out = ArchGraph()
        out._g = self._g.copy()
        for n in out._g:
            out._g.nodes[n]["attrs"] = dict(out._g.nodes[n]["attrs"])
        return out

    def pruned(self, return_nodes: bool = False):
        """The graph without ``none`` (zero) ops and without nodes that no longer lie on
        an input -> output path, renumbered in topological order.

        Two architectures that differ only in computation that never reaches the
        output have equal ``pruned().canonical_hash()``. An output left with no
        inputs at all stays as a lone output node (a network computing zero).
        With ``return_nodes``, also returns the original id of each kept node.
        """
        g = self._g.copy()
        g.remove_nodes_from([n for n in list(g) if g.nodes[n]["op"] == "none"])
        inputs = [n for n in g if g.nodes[n]["op"] == "input"]
        outputs = [n for n in g if g.nodes[n]["op"] == "output"]
        live = set()
        reach = set(inputs).union(*(nx.descendants(g, n) for n in inputs))
        for o in outputs:
            live |= (nx.ancestors(g, o) | {o}) & (reach | {o})
        keep = [n for n in nx.lexicographical_topological_sort(g) if n in live]
        mapping = {old: new for new, old in enumerate(keep)}
        out = ArchGraph()
        for old in keep:
            out.add_node(g.nodes[old]["op"], **g.nodes[old]["attrs"])
        for u, v in g.edges:
            if u in mapping and v in mapping:
                out.add_edge(mapping[u], mapping[v])
        return (out, keep) if return_nodes else out

    # -- identity -------------------------------------------------------------
    def canonical_hash(self) -> str:
        """A hex digest equal for isomorphic graphs (same ops and attributes, same
        wiring, any node numbering) and different otherwise.

        Exact canonical form by colour refinement plus individualisation; for
        pathologically symmetric graphs (more than :data:`MAX_CANONICAL_LEAVES`
        search leaves) it falls back to networkx's Weisfeiler-Lehman hash, which is
        still equal for isomorphic graphs.
        """
        if self._hash is None:
            labels = [_node_label(self._g.nodes[n]) for n in range(self.num_nodes)]
            preds = [list(self._g.predecessors(n)) for n in range(self.num_nodes)]
            succs = [list(self._g.successors(n)) for n in range(self.num_nodes)]
            cert = _canonical_certificate(labels, preds, succs)
            if cert is None:
                wl = nx.weisfeiler_lehman_graph_hash(
                    _labelled_copy(self._g, labels), node_attr="label", iterations=self.num_nodes
                )
                cert = ("wl", wl)
            self._hash = hashlib.blake2b(repr(cert).encode(), digest_size=16).hexdigest()
        return self._hash

    def is_isomorphic(self, other: ArchGraph) -> bool:
        return self.canonical_hash() == other.canonical_hash()

    # -- conversions ------------------------------------------------------------
    def to_arrays(self):
        """``(op_index [n], attrs [n, len(NUMERIC_ATTRS)], edge_index [2, e])`` as numpy
        arrays, nodes in topological order, attributes log-scaled (see :meth:`to_pyg`)."""
        import numpy as np

        order = self.topological_order()
        pos = {n: i for i, n in enumerate(order)}
        ops = np.empty(len(order), dtype=np.int64)
        attrs = np.zeros((len(order), len(NUMERIC_ATTRS)), dtype=np.float32)
        for i, n in enumerate(order):
            data = self._g.nodes[n]
            ops[i] = OP_INDEX[data["op"]] if data["op"] in OP_INDEX else _raise_unknown_op(n, data["op"])
            for key, value in data["attrs"].items():
                attrs[i, NUMERIC_ATTRS.index(key)] = encode_attr(value)
        edges = sorted((pos[u], pos[v]) for u, v in self._g.edges)
        edge_index = np.array(edges, dtype=np.int64).T.reshape(2, -1)
        return ops, attrs, edge_index

    def to_pyg(self):
        """As a ``torch_geometric.data.Data``, nodes in topological order.

        ``x``: op one-hot (:data:`~archgen.ops.OP_NAMES`) followed by log-scaled
        numeric attributes (:data:`~archgen.ops.NUMERIC_ATTRS`, 0 when absent);
        ``op``: op index per node; ``edge_index``: directed, source -> target.
        """
        return arrays_to_pyg(*self.to_arrays())

    @classmethod
    def from_pyg(cls, data) -> ArchGraph:
        """Inverse of :meth:`to_pyg` (op from the one-hot argmax, attributes decoded)."""
        x = data.x
        if x.dim() != 2 or x.size(1) != NODE_FEATURES:
            raise InvalidGraphError(
                f"node features must have shape [num_nodes, {NODE_FEATURES}], got {tuple(x.shape)}"
            )
        g = cls()
        ops = x[:, : len(OP_NAMES)].argmax(dim=1).tolist()
        for i, k in enumerate(ops):
            attrs = {
                name: decode_attr(v)
                for name, v in zip(NUMERIC_ATTRS, x[i, len(OP_NAMES):].tolist())
                if v != 0.0
            }
            g.add_node(OP_NAMES[k], **attrs)
        for u, v in data.edge_index.t().tolist():
            g.add_edge(int(u), int(v))
        return g

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: ``{"nodes": [{"op":..., **attrs}], "edges": [[u, v], ...]}``."""
        return {
            "nodes": [{"op": self.op(n), **self.attrs(n)} for n in range(self.num_nodes)],
            "edges": [list(e) for e in self.edges],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ArchGraph:
        try:
            ops = [(node["op"], {k: v for k, v in node.items() if k != "op"}) for node in data["nodes"]]
            edges = [tuple(e) for e in data["edges"]]
        except (KeyError, TypeError) as exc:
            raise InvalidGraphError(
                f"graph dict needs 'nodes' (list of {{'op': ...}}) and 'edges' (list of [u, v]): {exc}"
            ) from None
        return cls.from_lists(ops, edges)


# -- helpers ------------------------------------------------------------------
def node_features(op, attrs):
    """Node feature matrix ``x``: op one-hot next to the encoded attributes (tensors)."""
    import torch

    return torch.cat([torch.nn.functional.one_hot(op, len(OP_NAMES)).float(), attrs], dim=1)


def arrays_to_pyg(ops, attrs, edge_index):
    """A ``Data`` from :meth:`ArchGraph.to_arrays` output."""
    import torch
    from torch_geometric.data import Data

    op = torch.as_tensor(ops, dtype=torch.long)
    x = node_features(op, torch.as_tensor(attrs))
    return Data(x=x, op=op, edge_index=torch.as_tensor(edge_index, dtype=torch.long), num_nodes=len(op))


def _fmt_num(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else f"{v:g}"


def _raise_unknown_op(node: int, op: str) -> int:
    raise InvalidGraphError(f"node {node} has unknown op {op!r}; known ops: {', '.join(OP_NAMES)}")


def _node_label(data: Mapping[str, Any]) -> str:
    attrs = ",".join(f"{k}={_fmt_num(v)}" for k, v in sorted(data["attrs"].items()))
    return f"{data['op']}[{attrs}]"


def _labelled_copy(g: nx.DiGraph, labels: list[str]) -> nx.DiGraph:
    h = nx.DiGraph()
    h.add_nodes_from((n, {"label": labels[n]}) for n in g)
    h.add_edges_from(g.edges)
    return h


def _refine(colors: list[int], preds: list[list[int]], succs: list[list[int]]) -> list[int]:
    """Colour refinement to a stable partition. Colours depend only on structure."""
    n_classes = len(set(colors))
    while True:
        sigs = [
            (colors[v], tuple(sorted(colors[u] for u in preds[v])), tuple(sorted(colors[w] for w in succs[v])))
            for v in range(len(colors))
        ]
        rank = {s: i for i, s in enumerate(sorted(set(sigs)))}
        colors = [rank[s] for s in sigs]
        if len(rank) == n_classes:
            return colors
        n_classes = len(rank)


def _canonical_certificate(labels, preds, succs):
    """Minimal certificate over an individualisation-refinement search, or None
    when the search would need more than MAX_CANONICAL_LEAVES leaves."""
    label_rank = {s: i for i, s in enumerate(sorted(set(labels)))}
    start = _refine([label_rank[s] for s in labels], preds, succs)
    best = None
    leaves = 0
    stack = [start]
    while stack:
        colors = stack.pop()
        counts: dict[int, int] = {}
        for c in colors:
            counts[c] = counts.get(c, 0) + 1
        ties = [c for c, k in counts.items() if k > 1]
        if not ties:
            leaves += 1
            if leaves > MAX_CANONICAL_LEAVES:
                return None
            order = sorted(range(len(colors)), key=colors.__getitem__)
            cert = (
                tuple(labels[v] for v in order),
                tuple(sorted((colors[u], colors[v]) for u in range(len(colors)) for v in succs[u])),
            )
            if best is None or cert < best:
                best = cert
            continue
        target = min(ties)
        for v in (v for v in range(len(colors)) if colors[v] == target):
            split = [2 * c for c in colors]
            split[v] += 1
            stack.append(_refine(split, preds, succs))
    return best
