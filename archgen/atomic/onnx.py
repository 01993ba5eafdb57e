"""``from_onnx``: an ONNX model as an atomic graph.

The model is loaded with ``onnx.load`` (external tensor data left on disk) and its
shapes inferred with ``onnx.shape_inference.infer_shapes(data_prop=True)``. A value is
on the *data path* when it is computed from a graph input; Shape/Size start shape
arithmetic, which (like Constant nodes and initializers) never reaches the graph.
Weight shapes give kernel, groups and channels; inferred shapes give resolution and
channels_out.

The model is never executed: a file is untrusted input, and running it to learn a shape
lets a small crafted file spend minutes and gigabytes (two 12000x12000 MatMuls on
ConstantOfShape weights). Where inference leaves a shape open, the nodes concerned lack
those attributes and an :class:`~archgen.atomic.core.AtomicShapeWarning` names them.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import networkx as nx
import numpy as np
import onnx
from onnx import helper, numpy_helper

from ..graph import ArchGraph
from ..validation import quote
from .core import (
    PASS,
    UNSUPPORTED,
    AtomicGraphError,
    AtomicShapeWarning,
    IRNode,
    ModelFileNotFoundError,
    build,
    tensor_channels,
    tensor_resolution,
)

_SIMPLE: dict[str, str] = {
    **dict.fromkeys(("Identity", "Dropout", "Cast", "CastLike"), PASS),
    **dict.fromkeys(("BatchNormalization",), "batch_norm"),
    **dict.fromkeys(("LayerNormalization", "InstanceNormalization", "GroupNormalization"), "layer_norm"),
    **dict.fromkeys(("Relu", "Clip", "LeakyRelu", "PRelu", "ThresholdedRelu"), "relu"),
    **dict.fromkeys(("HardSwish", "HardSigmoid"), "hardswish"),
    **dict.fromkeys(("Sigmoid", "Softmax", "LogSoftmax"), "sigmoid"),
    **dict.fromkeys(("Gelu", "Tanh", "Elu", "Selu", "Celu", "Softplus", "Mish"), "gelu"),
    **dict.fromkeys(("Add", "Sub", "Sum"), "add"),
    **dict.fromkeys(("Mul", "Div"), "mul"),
    **dict.fromkeys(("Concat",), "concat"),
    **dict.fromkeys(("Flatten", "Reshape", "Transpose", "Squeeze", "Unsqueeze", "Slice", "Split", "Gather",
                     "Expand", "Tile", "Pad", "DepthToSpace", "SpaceToDepth"), "reshape"),
    **dict.fromkeys(("GlobalAveragePool", "GlobalMaxPool", "GlobalLpPool"), "global_pool"),
}
_REDUCE = {"ReduceMean": "mean", "ReduceSum": "sum", "ReduceMax": "max"}
#: ops whose output is shape arithmetic even when they read a data tensor
_META = {"Shape", "Size", "EyeLike", "RandomNormalLike", "RandomUniformLike", "ConstantOfShape"}
_CONTROL_FLOW = {"If", "Loop", "Scan"}


#: nodes named in one error or warning message (the rest are counted)
_NAMED = 10


def _load(path_or_model) -> tuple[onnx.ModelProto, str]:
    """The model and how messages name it. A missing path, a directory, an empty file and
    bytes that are not an ONNX model each get their own message (protobuf alone would
    parse many non-ONNX files into an empty model, or fail with a bare DecodeError)."""
    if isinstance(path_or_model, onnx.ModelProto):
        return path_or_model, f"ONNX model {quote(path_or_model.graph.name or '(unnamed)')}"
    if not isinstance(path_or_model, (str, os.PathLike)):
        raise TypeError(f"from_onnx needs a path or an onnx.ModelProto, got {type(path_or_model).__name__}")
    path = Path(path_or_model)
    shown = quote(str(path))
    if not path.exists():
        raise ModelFileNotFoundError(f"ONNX file {shown} does not exist")
    if path.is_dir():
        raise AtomicGraphError(f"ONNX path {shown} is a directory; give the path of an .onnx file")
    if not path.is_file():
        raise AtomicGraphError(f"ONNX path {shown} is not a regular file")
    if path.stat().st_size == 0:
        raise AtomicGraphError(f"ONNX file {shown} is empty (0 bytes)")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # noqa: BLE001 -- protobuf raises several types
        reason = str(exc)[:200] or type(exc).__name__
        raise AtomicGraphError(f"ONNX file {shown} is not an ONNX model (protobuf cannot parse it: {reason})") from exc
    if model.ir_version <= 0 or not model.HasField("graph") or not model.opset_import:
        raise AtomicGraphError(f"ONNX file {shown} is not an ONNX model (it parses, but has no "
                               "IR version, graph or opset)")
    return model, f"ONNX model {shown}"


def _node_name(node: onnx.NodeProto, index: int) -> str:
    return node.name or f"{node.op_type}_{index}"


def _listed(names: list[str]) -> str:
    shown = ", ".join(names[:_NAMED])
    return shown + (f" and {len(names) - _NAMED} more" if len(names) > _NAMED else "")


def _ordered(graph: onnx.GraphProto, source: str) -> list[int]:
    """Indices of the graph's nodes in a topological order (the file's own where it is one).

    ONNX requires a sorted graph, but a crafted or broken file need not be; reading its
    nodes in file order would silently drop the edges that point backwards. A value
    written by two nodes, or a cycle, is an error naming the nodes."""
    producer: dict[str, int] = {}
    for index, node in enumerate(graph.node):
        for v in node.output:
            if not v:
                continue
            if v in producer:
                first = producer[v]
                raise AtomicGraphError(
                    f"{source} is not a valid ONNX graph: value {quote(v)} is written by two nodes, "
                    f"{quote(_node_name(graph.node[first], first))} and {quote(_node_name(node, index))}")
            producer[v] = index
    deps = nx.DiGraph()
    deps.add_nodes_from(range(len(graph.node)))
    for index, node in enumerate(graph.node):
        deps.add_edges_from((producer[v], index) for v in node.input if v in producer)
    try:
        return list(nx.lexicographical_topological_sort(deps))
    except nx.NetworkXUnfeasible:
        cycle = [u for u, _ in nx.find_cycle(deps)]
        names = [quote(_node_name(graph.node[i], i)) for i in cycle]
        raise AtomicGraphError(f"the ONNX graph of {source} has a cycle through nodes {_listed(names)}; "
                               "an ONNX graph must be acyclic") from None


class _Model:
    """Shapes and constant values of a (shape-inferred) ONNX graph."""

    def __init__(self, model: onnx.ModelProto):
        graph = model.graph
        self.constants: dict[str, onnx.TensorProto] = {t.name: t for t in graph.initializer}
        self.shapes: dict[str, list[int | None]] = {}
        for vi in (*graph.input, *graph.value_info, *graph.output):
            tensor = vi.type.tensor_type
            if tensor.HasField("shape"):
                self.shapes[vi.name] = [d.dim_value if d.HasField("dim_value") else None for d in tensor.shape.dim]
        for t in graph.initializer:
            self.shapes[t.name] = list(t.dims)
        for node in graph.node:  # Constant nodes, and Identity of constants (shared weights)
            if node.op_type == "Constant" and node.output:
                for a in node.attribute:
                    if a.name == "value":
                        self.constants[node.output[0]] = a.t
                        self.shapes[node.output[0]] = list(a.t.dims)
                    elif a.name in ("value_float", "value_int", "value_floats", "value_ints"):
                        value = np.array(helper.get_attribute_value(a))
                        self.constants[node.output[0]] = numpy_helper.from_array(value)
                        self.shapes[node.output[0]] = list(value.shape)
            elif node.op_type == "Identity" and node.input and node.input[0] in self.constants:
                self.constants[node.output[0]] = self.constants[node.input[0]]
                self.shapes[node.output[0]] = self.shapes.get(node.input[0])

    def shape(self, name: str) -> list[int | None] | None:
        return self.shapes.get(name)

    def value(self, name: str):
        """The constant's values, or None (not a constant, or its data left in an external file)."""
        tensor = self.constants.get(name)
        if tensor is None:
            return None
        try:
            return numpy_helper.to_array(tensor)
        except Exception:  # noqa: BLE001 -- external or malformed data: treat as unknown
            return None


def _attrs(node: onnx.NodeProto) -> dict:
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _axes(node, attrs, model: _Model) -> list[int] | None:
    """Axes of Reduce*/Unsqueeze/Squeeze: an attribute before opset 13/18, an input after."""
    if "axes" in attrs:
        return list(attrs["axes"])
    if len(node.input) > 1 and node.input[1]:
        value = model.value(node.input[1])
        return None if value is None else [int(v) for v in np.ravel(value)]
    return None


def _norm(axes, rank) -> tuple[int, ...] | None:
    if axes is None or rank is None:
        return None
    return tuple(sorted(int(a) % rank for a in axes))


def _first(values, default=None):
    return values[0] if values else default


def _classify(node, model: _Model, in_shape, out_shape) -> tuple[str, dict, dict]:
    op_type, attrs = node.op_type, _attrs(node)
    if op_type == "Conv":
        w = model.shape(node.input[1])
        if not w or len(w) < 3 or w[0] is None or w[1] is None:
            return UNSUPPORTED, {}, {"what": "Conv with a weight of unknown shape"}
        groups = int(attrs.get("group", 1))
        c_in, c_out = w[1] * groups, w[0]
        depthwise = groups > 1 and groups == c_in and c_out % c_in == 0
        return ("depthwise_conv" if depthwise else "conv"), {
            "kernel": _first(attrs.get("kernel_shape"), w[2]), "stride": _first(attrs.get("strides"), 1),
            "groups": groups, "channels_in": c_in, "channels_out": c_out,
            "resolution": in_shape[2] if in_shape and len(in_shape) >= 3 else None,
        }, {}
    if op_type in ("Gemm", "MatMul"):
        b = model.shape(node.input[1])
        if op_type == "Gemm" and b and len(b) == 2:
            c_out, c_in = (b[0], b[1]) if attrs.get("transB", 0) else (b[1], b[0])
        elif op_type == "MatMul" and b and len(b) == 2 and node.input[1] in model.constants:
            c_in, c_out = b  # x @ W with a weight [in, out]
        else:
            c_in = in_shape[-1] if in_shape else None
            c_out = out_shape[-1] if out_shape else None
        return "linear", {"channels_in": c_in, "channels_out": c_out}, {}
    if op_type in ("MaxPool", "AveragePool"):
        kernel = _first(attrs.get("kernel_shape"))
        return ("max_pool" if op_type == "MaxPool" else "avg_pool"), {
            "kernel": kernel, "stride": _first(attrs.get("strides"), 1),
            "resolution": in_shape[2] if in_shape and len(in_shape) >= 3 else None,
        }, {}
    if op_type in _REDUCE:
        rank = len(in_shape) if in_shape else None
        axes = _axes(node, attrs, model)
        if axes is None and rank is not None and not attrs.get("noop_with_empty_axes", 0):
            axes = list(range(rank))  # no axes: reduce over everything
        return "_reduce", {}, {"kind": _REDUCE[op_type], "rank": rank, "axes": _norm(axes, rank)}
    if op_type == "Erf":
        return "_erf", {}, {}
    if op_type == "Gather" and node.input[0] in model.constants:
        return UNSUPPORTED, {}, {"what": "Gather from a constant table (an embedding lookup)"}
    if op_type in _SIMPLE:
        return _SIMPLE[op_type], {}, {}
    return UNSUPPORTED, {}, {}


def _stacks(nodes: list[IRNode], onnx_of: dict[int, onnx.NodeProto], model: _Model) -> None:
    """``Concat(Unsqueeze(a, k), Unsqueeze(b, k), axis=k)`` is torch.stack: mark it ``_stack``
    (and the Unsqueezes pass-through), so a following ReduceSum over k fuses into ``add``."""
    producers = {v: n for n in nodes for v in n.outputs}
    uses: dict[str, int] = {}
    for n in nodes:
        for v in set(n.inputs):
            uses[v] = uses.get(v, 0) + 1

    def unsqueezed_on(part: IRNode | None, axis, rank) -> bool:
        node = onnx_of.get(id(part)) if part is not None else None
        return (node is not None and node.op_type == "Unsqueeze" and uses.get(part.outputs[0]) == 1
                and _norm(_axes(node, _attrs(node), model), rank) == axis)

    for n in nodes:
        node = onnx_of.get(id(n))
        if node is None or node.op_type != "Concat" or not n.inputs or len(node.input) != len(n.inputs):
            continue
        rank = len(model.shape(node.output[0]) or []) or None
        axis = _norm([_attrs(node).get("axis", 0)], rank)
        parts = [producers.get(v) for v in n.inputs]
        if axis is not None and all(unsqueezed_on(p, axis, rank) for p in parts):
            n.op, n.info["axis"] = "_stack", axis[0]
            n.attrs["resolution"] = parts[0].attrs.get("resolution")  # H before the Unsqueeze
            for p in parts:
                p.op = PASS


def _open_dims(shape) -> str | None:
    """What inference left open of a value's shape that the node attributes read (the
    channel dim, H of an NCHW tensor), or None when nothing they need is open."""
    if shape is None:
        return "shape unknown"
    open_dims = []
    if len(shape) >= 2 and shape[-1 if len(shape) == 3 else 1] is None:
        open_dims.append("channels")
    if len(shape) >= 4 and shape[2] is None:
        open_dims.append("resolution")
    if not open_dims:
        return None
    return " and ".join(open_dims) + " unknown (shape [" + ", ".join("?" if d is None else str(d) for d in shape) + "])"


def from_onnx(path_or_model) -> ArchGraph:
    """The atomic computation graph of an ONNX model (a path or an ``onnx.ModelProto``).

    One ``input`` node per graph input that is not an initializer, one node per
    operation on the data path, one ``output`` node fed by every graph output.
    Identity, Dropout and Cast are bridged; Constant nodes, initializers and shape
    arithmetic (Shape -> Gather -> Concat -> Reshape's shape input) do not appear.
    Shapes come from ONNX shape inference only; the model is never run. Nodes whose
    shape stays open lack ``channels_out``/``resolution`` and are named in one
    :class:`AtomicShapeWarning`.

    Raises :class:`ModelFileNotFoundError` (a ``FileNotFoundError``) for a missing file,
    :class:`AtomicGraphError` for a directory, an empty file, a file that is not ONNX and
    a graph with a cycle, and :class:`UnsupportedOpError` naming every op type (and node)
    with no atomic counterpart, control flow (If/Loop/Scan) and custom-domain ops included.
    """
    model, source = _load(path_or_model)
    order = _ordered(model.graph, source)
    try:
        model = onnx.shape_inference.infer_shapes(model, data_prop=True)  # data_prop: Shape -> Reshape chains
    except Exception:  # noqa: BLE001 -- shapes are a bonus; the graph converts without them
        pass
    info = _Model(model)
    graph = model.graph
    data: set[str] = set()
    inputs = []
    for vi in graph.input:
        if vi.name in info.constants:
            continue  # old-style models list initializers as inputs too
        data.add(vi.name)
        shape = info.shape(vi.name)
        inputs.append((vi.name, {"channels_out": tensor_channels(shape), "resolution": tensor_resolution(shape)}))
    nodes: list[IRNode] = []
    onnx_of: dict[int, onnx.NodeProto] = {}
    unknown: list[str] = []
    for index in order:
        node = graph.node[index]
        where = f"node {quote(_node_name(node, index))}"
        domain = node.domain if node.domain not in ("", "ai.onnx") else ""
        operands = [v for v in node.input if v in data]
        control = node.op_type in _CONTROL_FLOW or any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS)
                                                       for a in node.attribute)
        if not control and (not operands or (not domain and node.op_type in _META)):
            continue  # constants and shape arithmetic
        in_shape = info.shape(operands[0]) if operands else None
        out_shape = info.shape(node.output[0]) if node.output else None
        if domain or control:
            op, attrs, extra = UNSUPPORTED, {}, {}
        else:
            op, attrs, extra = _classify(node, info, in_shape, out_shape)
        kind = f"{domain}::{node.op_type}" if domain else node.op_type
        extra.setdefault("what", kind)
        extra["data_operands"] = len(operands)
        attrs = {"channels_out": tensor_channels(out_shape), "resolution": tensor_resolution(in_shape), **attrs}
        outs = [v for v in node.output if v]
        data.update(outs)
        if op not in (PASS, UNSUPPORTED) and outs:
            missing = _open_dims(out_shape)
            if missing:
                unknown.append(f"{where} ({kind if len(kind) <= 60 else quote(kind, 60)}): {missing}")
        if node.op_type == "Split" and not domain:  # one reshape per piece, like getitem of torch.chunk
            for v in outs:
                piece = {**attrs, "channels_out": tensor_channels(info.shape(v))}
                nodes.append(IRNode(op, operands, [v], piece, where, dict(extra)))
            continue
        ir = IRNode(op, operands, outs, attrs, where, extra)
        onnx_of[id(ir)] = node
        nodes.append(ir)
    _stacks(nodes, onnx_of, info)
    outputs = [o.name for o in graph.output if o.name in data]
    output_attrs = {"channels_out": tensor_channels(info.shape(outputs[0]))} if len(outputs) == 1 else {}
    built = build(nodes, inputs, outputs, output_attrs=output_attrs, source=source)
    if unknown:
        warnings.warn(
            f"ONNX shape inference left shapes open in {source}, so {len(unknown)} node(s) lack channels_out or "
            f"resolution (archgen never runs a model to learn its shapes): {_listed(unknown)}",
            AtomicShapeWarning, stacklevel=2)
    return built
