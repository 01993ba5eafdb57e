"""The part both front ends share: an intermediate node list, the fusions that
turn multi-node idioms into one atomic op, the builder of the ArchGraph, the
error types and the printed summary.

A front end (``fx.py``, ``onnx.py``) walks its model once and emits one
:class:`IRNode` per operation on the *data path* (anything computed from a model
input; shape arithmetic and constants never get here). Each node names the
values it reads and writes; an op of :data:`PASS` forwards its inputs (Identity,
Dropout, casts), and the pseudo ops ``_stack``/``_reduce``/``_erf`` are resolved
by :func:`fuse` before building.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from ..errors import ArchGenError, InvalidGraphError
from ..graph import ArchGraph
from ..ops import NUMERIC_ATTRS, OP_NAMES

#: an operation that forwards its input unchanged (its edges are bridged)
PASS = "_pass"
#: an operation with no atomic counterpart (collected, then reported together)
UNSUPPORTED = "_unsupported"
#: atomic ops a converted graph may contain (the vocabulary minus the NB201/block ops)
ATOMIC_OPS: tuple[str, ...] = OP_NAMES[OP_NAMES.index("conv"):]


class AtomicGraphError(InvalidGraphError):
    """A model that cannot be turned into an atomic graph (a ValueError)."""


class UnsupportedOpError(AtomicGraphError):
    """The model uses operations with no counterpart in the op vocabulary.

    ``unsupported`` lists ``(op, where)`` pairs, e.g. ``("NonMaxSuppression", "node 'nms'")``.
    """

    def __init__(self, message: str, unsupported: Sequence[tuple[str, str]] = ()):
        super().__init__(message)
        self.unsupported = list(unsupported)


class ModelFileNotFoundError(ArchGenError, FileNotFoundError):
    """The model file to convert does not exist."""


class AtomicShapeWarning(UserWarning):
    """ONNX shape inference left some shapes open: the nodes named lack ``channels_out`` /
    ``resolution`` (archgen never executes a model file to learn them)."""


class AtomicFallbackWarning(UserWarning):
    """``from_module`` could not trace the module with torch.fx and read its ONNX export instead."""


@dataclass
class IRNode:
    op: str                      # an atomic op, PASS, UNSUPPORTED or a pseudo op (_stack, _reduce, _erf)
    inputs: list[str]            # data values read (duplicates kept: x + x reads x twice)
    outputs: list[str]           # values written
    attrs: dict = field(default_factory=dict)
    where: str = ""              # for error messages: "node 'conv1' (Conv2d)"
    info: dict = field(default_factory=dict)  # axis / axes / rank of pseudo ops, what of unsupported ops


# -- fusions ----------------------------------------------------------------------------------
def _is_spatial_reduction(axes, rank) -> bool:
    """Mean/sum/max over every dim but batch and one channel dim (NCHW, NHWC, NLC tokens)."""
    if axes is None or rank is None or rank < 3:
        return False
    axes = set(axes)
    return 0 not in axes and len(axes) == rank - 2 and not ({1, rank - 1} <= axes)


def fuse(nodes: list[IRNode]) -> list[IRNode]:
    """Rewrite idioms in place (and return ``nodes``):

    * ``stack([a, b, ...]).sum(k)`` / ``.mean(k)`` (ONNX: Unsqueeze -> Concat -> ReduceSum) -> one ``add``;
    * any other ``_stack`` -> ``concat``; a mean/sum/max over the spatial dims -> ``global_pool``;
    * ``x * sigmoid(x)`` (SiLU, as ONNX writes it) -> ``gelu``;
    * ``x * 0.5 * (1 + erf(x / sqrt 2))`` (GELU, as ONNX writes it) -> ``gelu``; a lone Erf -> ``gelu``;
    * a constant bias added right after a ``linear`` (ONNX MatMul + Add) is folded into it.
    """
    producer = {v: n for n in nodes for v in n.outputs}
    consumers: dict[str, list[IRNode]] = defaultdict(list)
    for n in nodes:
        for v in dict.fromkeys(n.inputs):
            consumers[v].append(n)

    def only_consumer(n: IRNode) -> IRNode | None:
        users = [u for v in n.outputs for u in consumers.get(v, [])]
        return users[0] if len(users) == 1 else None

    def src(n: IRNode, k: int = 0) -> IRNode | None:
        return producer.get(n.inputs[k]) if len(n.inputs) > k else None

    for n in nodes:
        if n.op == "_reduce":
            stack = src(n)
            if (n.info.get("kind") in ("sum", "mean") and stack is not None and stack.op == "_stack"
                    and n.info.get("axes") == (stack.info.get("axis"),) and only_consumer(stack) is n):
                stack.op, n.op = PASS, "add"
                n.attrs["resolution"] = stack.attrs.get("resolution")  # H of the stacked tensors
            elif _is_spatial_reduction(n.info.get("axes"), n.info.get("rank")):
                n.op = "global_pool"
            else:
                n.op = UNSUPPORTED
                n.info["what"] = (f"{n.info.get('kind', 'reduce')} over dims {n.info.get('axes')} "
                                  f"of a rank-{n.info.get('rank')} tensor")
    for n in nodes:
        if n.op == "_stack":
            n.op = "concat"
        elif n.op == "mul" and len(n.inputs) == 2:  # SiLU: x * sigmoid(x)
            for k in (0, 1):
                s = src(n, k)
                if (s is not None and s.op == "sigmoid" and s.inputs == [n.inputs[1 - k]]
                        and only_consumer(s) is n):
                    s.op, n.op = PASS, "gelu"
                    break
        elif n.op == "add" and n.info.get("data_operands") == 1:  # MatMul + bias
            s = src(n)
            if s is not None and s.op == "linear" and only_consumer(s) is n:
                n.op = PASS
    for n in nodes:
        if n.op == "_erf":
            _fuse_erf_gelu(n, producer, only_consumer)
    return nodes


def _fuse_erf_gelu(erf: IRNode, producer, only_consumer) -> None:
    """Collapse ``Div(x, c) -> Erf -> Add(c) -> Mul(x, .) [-> Mul(c)]`` into one gelu."""
    erf.op = "gelu"  # a lone Erf at least stays a smooth activation
    scale = producer.get(erf.inputs[0]) if erf.inputs else None
    if scale is None or scale.op != "mul" or scale.info.get("data_operands") != 1 or only_consumer(scale) is not erf:
        return
    x = scale.inputs[0]
    plus = only_consumer(erf)
    if plus is None or plus.op != "add" or plus.info.get("data_operands") != 1:
        return
    times = only_consumer(plus)
    if times is None or times.op != "mul" or sorted(times.inputs) != sorted([x, plus.outputs[0]]):
        return
    half = only_consumer(times)
    chain = [scale, erf, plus, times]
    if half is not None and half.op == "mul" and half.info.get("data_operands") == 1:
        chain.append(half)
    for node in chain[:-1]:
        node.op = PASS
    chain[-1].op = "gelu"


# -- building -----------------------------------------------------------------------------------
def clean_attrs(attrs: dict) -> dict:
    """Only vocabulary attributes with a known, non-negative numeric value (ints as ints)."""
    out = {}
    for key, value in attrs.items():
        if key not in NUMERIC_ATTRS or value is None or isinstance(value, bool):
            continue
        try:
            value = float(value)
        except (TypeError, ValueError):
            continue
        if value >= 0:
            out[key] = int(value) if value.is_integer() else value
    return out


def unsupported_error(items: Iterable[tuple[str, str]], source: str) -> UnsupportedOpError:
    """One line naming every unsupported op and where it occurs, grouped by op."""
    items = list(items)
    grouped: dict[str, list[str]] = defaultdict(list)
    for op, where in items:
        grouped[op].append(where)
    parts = []
    for op, wheres in grouped.items():
        shown = "; ".join(wheres[:3]) + (f"; and {len(wheres) - 3} more" if len(wheres) > 3 else "")
        parts.append(f"{op} ({len(wheres)}x: {shown})" if len(wheres) > 1 else f"{op} ({shown})")
    return UnsupportedOpError(
        f"{source} uses {len(grouped)} operation type(s) that have no atomic op "
        f"(the vocabulary: {', '.join(ATOMIC_OPS)}): " + ", ".join(parts),
        items,
    )


def build(
    nodes: list[IRNode],
    inputs: Sequence[tuple[str, dict]],
    outputs: Sequence[str],
    *,
    output_attrs: dict | None = None,
    source: str = "the model",
) -> ArchGraph:
    """The ArchGraph of a front end's node list: fusions, then one node per atomic op,
    pass-through ops bridged, nodes that do not reach the output dropped, validated."""
    fuse(nodes)
    bad = [(n.info.get("what", n.where), n.where) for n in nodes if n.op == UNSUPPORTED]
    bad += [(n.op, n.where) for n in nodes if n.op not in ATOMIC_OPS and n.op not in (PASS, UNSUPPORTED)]
    if bad:
        raise unsupported_error(bad, source)
    g = ArchGraph()
    sources: dict[str, set[int]] = {}
    for name, attrs in inputs:
        sources[name] = {g.add_node("input", **clean_attrs(attrs))}
    for n in nodes:
        src = set().union(*(sources.get(v, set()) for v in n.inputs))
        if n.op == PASS:
            ids = src
        else:
            node = g.add_node(n.op, **clean_attrs(n.attrs))
            for s in sorted(src):
                g.add_edge(s, node)
            ids = {node}
        for v in n.outputs:
            sources[v] = ids
    feeding = set().union(*(sources.get(v, set()) for v in outputs))
    if not feeding:
        raise AtomicGraphError(f"the output of {source} does not depend on its input: nothing to convert")
    out = g.add_node("output", **clean_attrs(output_attrs or {}))
    for s in sorted(feeding):
        g.add_edge(s, out)
    return g.pruned().validate()


# -- printing -------------------------------------------------------------------------------------
def op_counts(graph: ArchGraph) -> dict[str, int]:
    """Nodes per op, in vocabulary order (only ops that occur)."""
    counts = Counter(graph.ops)
    return {op: counts[op] for op in OP_NAMES if counts[op]}


def summary_table(graph: ArchGraph, nodes: int = 0) -> str:
    """Node and edge counts, conv/linear layer totals, a table of op counts and
    (``nodes > 0``) the first ``nodes`` nodes with their attributes."""
    counts = op_counts(graph)
    convs = counts.get("conv", 0) + counts.get("depthwise_conv", 0)
    lines = [
        f"atomic graph   {graph.num_nodes} nodes, {graph.nx.number_of_edges()} edges",
        f"layers         {convs} conv ({counts.get('conv', 0)} dense/grouped, "
        f"{counts.get('depthwise_conv', 0)} depthwise), {counts.get('linear', 0)} linear",
        "op counts:",
    ]
    width = max(map(len, counts), default=0)
    lines += [f"  {op:<{width}}  {k:>5}" for op, k in counts.items()]
    if nodes > 0:
        body = graph.summary().splitlines()
        lines.append(f"first {min(nodes, len(body))} of {len(body)} nodes (node op(attrs) <- inputs):")
        lines += body[:nodes]
        if len(body) > nodes:
            lines.append(f"  ... {len(body) - nodes} more")
    return "\n".join(lines)


def tensor_channels(shape) -> int | None:
    """Channels of an activation: dim 1 of NC / NCL / NCHW / NCDHW, the last dim of rank-3
    token tensors (N, L, C) -- rank 3 is read as tokens."""
    if not shape or len(shape) < 2:
        return None
    dim = shape[-1] if len(shape) == 3 else shape[1]
    return dim if isinstance(dim, int) and dim > 0 else None


def tensor_resolution(shape) -> int | None:
    """Spatial size H of an NCHW (or NCDHW) tensor."""
    if not shape or len(shape) < 4:
        return None
    dim = shape[2]
    return dim if isinstance(dim, int) and dim > 0 else None
