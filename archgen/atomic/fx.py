"""``from_module``: a ``torch.nn.Module`` as an atomic graph, via torch.fx.

The module is traced with a :class:`torch.fx.Tracer` (standard ``torch.nn``
layers stay leaves), shapes are propagated with
:class:`~torch.fx.passes.shape_prop.ShapeProp` on a zero input, and every node
that computes a tensor from the input becomes an atomic node, a pass-through
(bridged) or an unsupported op (reported). Shape arithmetic (``x.size(0)``,
``x.shape[1]``) and constants produce no tensor from the input and disappear.
When tracing fails (data-dependent control flow, iterating a proxy), the module
is exported to ONNX and read with :func:`~archgen.atomic.onnx.from_onnx`.
"""

from __future__ import annotations

import operator
import os
import re
import tempfile
import traceback
import warnings
from pathlib import Path

import torch
import torch.fx
import torch.nn.functional as F
from torch import nn
from torch.fx.passes.shape_prop import ShapeProp, TensorMetadata

from ..graph import ArchGraph
from .core import (
    PASS,
    UNSUPPORTED,
    AtomicFallbackWarning,
    AtomicGraphError,
    IRNode,
    UnsupportedOpError,
    build,
    tensor_channels,
    tensor_resolution,
)

_TORCH_DIR = os.path.dirname(torch.__file__)

# -- modules (checked in order with isinstance) ------------------------------------------------
_MODULE_OPS: tuple[tuple[tuple[type, ...], str], ...] = (
    ((nn.Identity, nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout), PASS),
    ((nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm), "batch_norm"),
    ((nn.LayerNorm, nn.GroupNorm, nn.InstanceNorm1d, nn.InstanceNorm2d, nn.InstanceNorm3d), "layer_norm"),
    ((nn.ReLU, nn.Hardtanh, nn.LeakyReLU, nn.PReLU), "relu"),  # ReLU6 is a Hardtanh
    ((nn.Hardswish, nn.Hardsigmoid), "hardswish"),
    ((nn.Sigmoid, nn.Softmax, nn.LogSoftmax), "sigmoid"),
    ((nn.GELU, nn.SiLU, nn.Tanh, nn.Mish, nn.ELU, nn.SELU, nn.CELU, nn.Softplus), "gelu"),
    ((nn.Flatten, nn.Unflatten, nn.PixelShuffle, nn.PixelUnshuffle, nn.ChannelShuffle,
      nn.ZeroPad2d, nn.ConstantPad2d, nn.ReflectionPad2d, nn.ReplicationPad2d), "reshape"),
)

_ADD = {operator.add, operator.iadd, operator.sub, operator.isub, torch.add, torch.sub}
_MUL = {operator.mul, operator.imul, operator.truediv, operator.itruediv, torch.mul, torch.div}
_FUNCTION_OPS: dict = {
    **{f: "add" for f in _ADD},
    **{f: "mul" for f in _MUL},
    torch.cat: "concat", torch.concat: "concat", torch.concatenate: "concat",
    torch.relu: "relu", F.relu: "relu", F.relu6: "relu", F.leaky_relu: "relu", F.hardtanh: "relu",
    torch.clamp: "relu", torch.clip: "relu",
    F.hardswish: "hardswish", F.hardsigmoid: "hardswish",
    torch.sigmoid: "sigmoid", F.sigmoid: "sigmoid", torch.softmax: "sigmoid", F.softmax: "sigmoid",
    F.log_softmax: "sigmoid",
    F.gelu: "gelu", F.silu: "gelu", torch.tanh: "gelu", F.tanh: "gelu", F.mish: "gelu", F.elu: "gelu",
    F.softplus: "gelu", torch.erf: "gelu",
    F.batch_norm: "batch_norm", F.layer_norm: "layer_norm", F.group_norm: "layer_norm",
    F.linear: "linear", torch.matmul: "linear", operator.matmul: "linear", torch.mm: "linear",
    torch.bmm: "linear",
    torch.flatten: "reshape", torch.reshape: "reshape", torch.permute: "reshape", torch.transpose: "reshape",
    torch.squeeze: "reshape", torch.unsqueeze: "reshape", torch.t: "reshape", torch.movedim: "reshape",
    torch.swapaxes: "reshape", torch.narrow: "reshape", torch.channel_shuffle: "reshape", F.pad: "reshape",
    F.pixel_shuffle: "reshape",
    # splitting: each piece taken (getitem) is one reshape, as each Slice/Split output is in ONNX
    torch.chunk: PASS, torch.split: PASS, torch.unbind: PASS, torch.tensor_split: PASS,
    F.dropout: PASS, F.dropout2d: PASS,
}
_CONV_FUNCTIONS = {F.conv1d, F.conv2d, F.conv3d, torch.conv1d, torch.conv2d, torch.conv3d}
_POOL_FUNCTIONS = {F.max_pool1d: "max_pool", F.max_pool2d: "max_pool", F.max_pool3d: "max_pool",
                   torch.max_pool2d: "max_pool", F.avg_pool1d: "avg_pool", F.avg_pool2d: "avg_pool",
                   F.avg_pool3d: "avg_pool", torch.avg_pool1d: "avg_pool"}
_ADAPTIVE_FUNCTIONS = {F.adaptive_avg_pool1d: "avg_pool", F.adaptive_avg_pool2d: "avg_pool",
                       F.adaptive_avg_pool3d: "avg_pool", torch.adaptive_avg_pool1d: "avg_pool",
                       F.adaptive_max_pool2d: "max_pool", F.adaptive_max_pool1d: "max_pool"}
_REDUCE_FUNCTIONS = {torch.mean: "mean", torch.sum: "sum", torch.amax: "max"}
_CONSTANT_FUNCTIONS = {torch.zeros_like, torch.ones_like, torch.full_like, torch.empty_like, torch.rand_like,
                       torch.randn_like}

_METHOD_OPS: dict[str, str] = {
    **dict.fromkeys(("add", "add_", "sub", "sub_", "__add__", "__radd__", "__sub__"), "add"),
    **dict.fromkeys(("mul", "mul_", "div", "div_", "__mul__", "__rmul__", "__truediv__"), "mul"),
    **dict.fromkeys(("view", "reshape", "flatten", "permute", "transpose", "transpose_", "squeeze", "unsqueeze",
                     "expand", "expand_as", "repeat", "unflatten", "narrow", "t", "view_as", "reshape_as",
                     "movedim", "swapaxes", "roll", "flip"), "reshape"),
    **dict.fromkeys(("chunk", "split", "unbind", "tensor_split"), PASS),
    **dict.fromkeys(("contiguous", "clone", "detach", "to", "float", "half", "double", "bfloat16", "type",
                     "type_as", "requires_grad_", "cpu", "cuda"), PASS),
    **dict.fromkeys(("relu", "relu_", "clamp", "clamp_", "clip", "clamp_min", "clamp_min_"), "relu"),
    **dict.fromkeys(("sigmoid", "sigmoid_", "softmax", "log_softmax"), "sigmoid"),
    **dict.fromkeys(("tanh", "tanh_", "erf"), "gelu"),
    **dict.fromkeys(("matmul", "mm", "bmm", "__matmul__"), "linear"),
}
_REDUCE_METHODS = {"mean": "mean", "sum": "sum", "amax": "max"}
#: methods whose tensor argument only lends its shape or dtype (no edge from it)
_SHAPE_ARGUMENT_METHODS = {"expand_as", "view_as", "reshape_as", "type_as"}
_SPLITS = {torch.chunk, torch.split, torch.unbind, torch.tensor_split, "chunk", "split", "unbind", "tensor_split"}
_CONSTANT_METHODS = {"new_zeros", "new_ones", "new_full", "new_empty", "new_tensor", "zero_", "fill_"}


def _first(value):
    """First element of a size tuple (kernel_size=(3, 3) -> 3)."""
    return value[0] if isinstance(value, (tuple, list)) else value


def _arg(node: torch.fx.Node, index: int, name: str, default=None):
    if name in node.kwargs:
        return node.kwargs[name]
    return node.args[index] if len(node.args) > index else default


def _meta(value) -> TensorMetadata | None:
    """The first tensor's metadata of a node's value (a tensor, or a tuple of them)."""
    meta = value.meta.get("tensor_meta") if isinstance(value, torch.fx.Node) else value
    if isinstance(meta, TensorMetadata):
        return meta
    if isinstance(meta, (tuple, list)):
        for item in meta:
            found = _meta(item)
            if found is not None:
                return found
    if isinstance(meta, dict):
        return _meta(list(meta.values()))
    return None


def _shape(node) -> tuple | None:
    meta = _meta(node)
    return tuple(meta.shape) if meta is not None else None


def _operands(node: torch.fx.Node) -> list[torch.fx.Node]:
    """Every node among the arguments, repeats kept (``x + x`` reads x twice)."""
    found: list[torch.fx.Node] = []
    torch.fx.node.map_arg((node.args, node.kwargs), lambda n: found.append(n) or n)
    return found


def _user_frame(text: str) -> str:
    """``file:line: code`` of the innermost frame outside torch in a stack-trace text."""
    frames = re.findall(r'File "([^"]+)", line (\d+), in (\S+)\n(?:\s+(.+))?', text or "")
    user = [f for f in frames if not os.path.abspath(f[0]).startswith(_TORCH_DIR)]
    if not user:
        return ""
    file, line, func, code = user[-1]
    return f"{file}:{line} in {func}" + (f": {code.strip()}" if code and code.strip() else "")


def _where(node: torch.fx.Node, what: str, traces: dict[str, str]) -> str:
    frame = _user_frame(traces.get(node.name) or node.stack_trace or "")
    return f"node '{node.name}' {what}" + (f" at {frame}" if frame else "")


def _conv_attrs(kernel, stride, groups, c_in, c_out, in_shape) -> tuple[str, dict]:
    depthwise = groups > 1 and groups == c_in and c_out % c_in == 0
    res = in_shape[2] if in_shape and len(in_shape) >= 3 else None
    return ("depthwise_conv" if depthwise else "conv"), {
        "kernel": _first(kernel), "stride": _first(stride), "groups": groups,
        "channels_in": c_in, "channels_out": c_out, "resolution": res,
    }


def _pool_attrs(kind: str, kernel, stride, in_shape) -> tuple[str, dict]:
    kernel = _first(kernel)
    stride = _first(stride) if stride not in (None, [], ()) else kernel
    res = in_shape[2] if in_shape and len(in_shape) >= 3 else None
    return kind, {"kernel": kernel, "stride": stride, "resolution": res}


def _adaptive_attrs(kind: str, output_size, in_shape) -> tuple[str, dict]:
    out = _first(output_size)
    res = in_shape[2] if in_shape and len(in_shape) >= 3 else None
    if out == 1:
        return "global_pool", {"resolution": res}
    if out is None or res is None:
        return kind, {"resolution": res}
    return kind, {"kernel": -(-res // out), "stride": max(res // out, 1), "resolution": res}


def _dims(dim, rank) -> tuple[int, ...] | None:
    if dim is None or rank is None:
        return None
    dims = dim if isinstance(dim, (tuple, list)) else (dim,)
    if not all(isinstance(d, int) for d in dims):
        return None
    return tuple(sorted(d % rank for d in dims))


def _classify(gm: torch.fx.GraphModule, node: torch.fx.Node, in_shape) -> tuple[str, dict, dict, str]:
    """``(op, attrs, info, description)`` of a node on the data path."""
    if node.op == "call_module":
        mod = gm.get_submodule(node.target)
        kind = type(mod).__name__
        what = f"(call_module '{node.target}', {kind})"
        if isinstance(mod, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
            op, attrs = _conv_attrs(mod.kernel_size, mod.stride, mod.groups, mod.in_channels, mod.out_channels,
                                    in_shape)
            return op, attrs, {}, what
        if isinstance(mod, nn.Linear):
            return "linear", {"channels_in": mod.in_features, "channels_out": mod.out_features}, {}, what
        if isinstance(mod, (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d)):
            return (*_pool_attrs("max_pool", mod.kernel_size, mod.stride, in_shape), {}, what)
        if isinstance(mod, (nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d)):
            return (*_pool_attrs("avg_pool", mod.kernel_size, mod.stride, in_shape), {}, what)
        if isinstance(mod, (nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d)):
            return (*_adaptive_attrs("avg_pool", mod.output_size, in_shape), {}, what)
        if isinstance(mod, (nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d)):
            return (*_adaptive_attrs("max_pool", mod.output_size, in_shape), {}, what)
        for types, op in _MODULE_OPS:
            if isinstance(mod, types):
                return op, {}, {}, what
        return UNSUPPORTED, {}, {"what": f"module {kind}"}, what
    target = node.target
    rank = len(in_shape) if in_shape else None
    if node.op == "call_function":
        name = getattr(target, "__name__", str(target))
        what = f"(call_function {getattr(target, '__module__', None) or 'builtins'}.{name})"
        if target in _CONV_FUNCTIONS:
            w = _shape(_arg(node, 1, "weight"))
            if not w:
                return UNSUPPORTED, {}, {"what": f"{name} with a weight of unknown shape"}, what
            groups = _arg(node, 6, "groups", 1)
            op, attrs = _conv_attrs(w[2] if len(w) > 2 else 1, _arg(node, 3, "stride", 1), groups,
                                    w[1] * groups, w[0], in_shape)
            return op, attrs, {}, what
        if target in _POOL_FUNCTIONS:
            return (*_pool_attrs(_POOL_FUNCTIONS[target], _arg(node, 1, "kernel_size"), _arg(node, 2, "stride"),
                                 in_shape), {}, what)
        if target in _ADAPTIVE_FUNCTIONS:
            return (*_adaptive_attrs(_ADAPTIVE_FUNCTIONS[target], _arg(node, 1, "output_size"), in_shape), {}, what)
        if target in _REDUCE_FUNCTIONS:
            return "_reduce", {}, {"kind": _REDUCE_FUNCTIONS[target], "rank": rank,
                                   "axes": _dims(_arg(node, 1, "dim"), rank)}, what
        if target is torch.stack:
            out = _shape(node)
            axis = _dims(_arg(node, 1, "dim", 0), len(out) if out else None)
            return "_stack", {}, {"axis": axis[0] if axis else None}, what
        if target is operator.getitem:
            # slicing a tensor and taking a piece of chunk/split are reshapes; other tuples forward
            source = node.args[0]
            sliced = isinstance(source, torch.fx.Node) and (
                isinstance(source.meta.get("tensor_meta"), TensorMetadata)
                or (source.op in ("call_function", "call_method") and source.target in _SPLITS))
            return ("reshape" if sliced else PASS), {}, {}, what
        if target in (F.linear,):
            w = _shape(_arg(node, 1, "weight"))
            attrs = {"channels_in": w[1], "channels_out": w[0]} if w and len(w) == 2 else {}
            return "linear", attrs, {}, what
        if target in _FUNCTION_OPS:
            op = _FUNCTION_OPS[target]
            return op, _linear_attrs(node, op, in_shape), {}, what
        return UNSUPPORTED, {}, {"what": f"function {name}"}, what
    # call_method
    what = f"(call_method .{target}())"
    if target in _REDUCE_METHODS:
        return "_reduce", {}, {"kind": _REDUCE_METHODS[target], "rank": rank,
                               "axes": _dims(_arg(node, 1, "dim"), rank)}, what
    if target in _METHOD_OPS:
        op = _METHOD_OPS[target]
        return op, _linear_attrs(node, op, in_shape), {}, what
    return UNSUPPORTED, {}, {"what": f"method .{target}()"}, what


def _linear_attrs(node, op: str, in_shape) -> dict:
    """channels_in of a matmul: the contracted dim (last of the first operand)."""
    if op == "linear" and in_shape:
        return {"channels_in": in_shape[-1]}
    return {}


def _trace(module: nn.Module, stack_traces: bool = False) -> torch.fx.GraphModule:
    """Trace with the standard leaves. Recording stack traces costs seconds on first
    use, so it is done only to locate unsupported ops for the error message."""
    tracer = torch.fx.Tracer()
    tracer.record_stack_traces = stack_traces
    graph = tracer.trace(module)
    return torch.fx.GraphModule(tracer.root, graph)


def _fx_ir(gm: torch.fx.GraphModule, source: str, traces: dict[str, str] | None = None) -> ArchGraph:
    data: set[torch.fx.Node] = set()
    inputs, nodes, outputs, output_attrs = [], [], [], {}
    for node in gm.graph.nodes:
        if node.op == "placeholder":
            shape = _shape(node)
            if shape is not None:
                data.add(node)
                inputs.append((node.name, {"channels_out": tensor_channels(shape),
                                           "resolution": tensor_resolution(shape)}))
            continue
        if node.op == "get_attr":
            continue
        if node.op == "output":
            outs = [n for n in _operands(node) if n in data]
            outputs = [n.name for n in outs]
            if len(outs) == 1:
                output_attrs = {"channels_out": tensor_channels(_shape(outs[0]))}
            continue
        operands = [n for n in _operands(node) if n in data]
        if node.op == "call_method" and node.target in _SHAPE_ARGUMENT_METHODS:
            operands = operands[:1] if operands and operands[0] is node.args[0] else []
        if not operands or _meta(node) is None:
            continue  # constants and shape arithmetic (x.size(0), x.shape[1] * 2, ...)
        if node.target in _CONSTANT_FUNCTIONS or (node.op == "call_method" and node.target in _CONSTANT_METHODS):
            continue  # zeros_like(x) and friends: a constant of x's shape
        in_shape = _shape(operands[0])
        op, attrs, info, what = _classify(gm, node, in_shape)
        out_shape = _shape(node)
        attrs = {"channels_out": tensor_channels(out_shape), "resolution": tensor_resolution(in_shape), **attrs}
        info["data_operands"] = len(operands)
        data.add(node)
        nodes.append(IRNode(op, [n.name for n in operands], [node.name], attrs,
                            _where(node, what, traces) if traces is not None else f"node '{node.name}' {what}", info))
    return build(nodes, inputs, outputs, output_attrs=output_attrs, source=source)


def _trace_failure(exc: BaseException) -> str:
    frames = [f for f in traceback.extract_tb(exc.__traceback__)
              if not os.path.abspath(f.filename).startswith(_TORCH_DIR)
              and not os.path.abspath(f.filename).startswith(os.path.dirname(__file__))]
    at = ""
    if frames:
        f = frames[-1]
        at = f" at {f.filename}:{f.lineno} in {f.name}" + (f": {f.line.strip()}" if f.line else "")
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"torch.fx failed{at} ({type(exc).__name__}: {message})"


def from_module(module: nn.Module, input_shape: tuple[int, ...] = (1, 3, 32, 32)) -> ArchGraph:
    """The atomic computation graph of ``module`` run on an input of ``input_shape``.

    One ``input`` node per tensor placeholder, one node per layer/operation on the
    data path (op mapping: :mod:`archgen.atomic`), one ``output`` node; pass-through
    ops (Identity, Dropout, ``.contiguous()``, casts, indexing a tuple) are dropped
    with their edges bridged; shape arithmetic and constants do not appear.
    Convolutions carry kernel, stride, groups, channels_in/out and resolution (the
    input's spatial size H); other nodes carry channels_out and, on NCHW inputs,
    resolution.

    If torch.fx cannot trace the module (data-dependent control flow), it is
    exported to ONNX with :func:`~archgen.hardware.to_onnx` and read with
    :func:`~archgen.atomic.from_onnx` (an :class:`AtomicFallbackWarning` says so;
    the export records only the branch the example input takes).

    Raises :class:`UnsupportedOpError` naming every op with no atomic counterpart
    and :class:`AtomicGraphError` when neither path works.
    """
    from ..hardware import _check_shape

    if not isinstance(module, nn.Module):
        raise TypeError(f"from_module needs a torch.nn.Module, got {type(module).__name__}")
    shape = _check_shape(input_shape)
    source = f"module {type(module).__name__}"
    try:
        gm = _trace(module)
    except Exception as exc:  # noqa: BLE001 -- any tracing failure falls back to ONNX
        return _onnx_fallback(module, shape, _trace_failure(exc), exc)
    modes = _modes(module)
    gm.eval()
    try:
        with torch.no_grad():
            ShapeProp(gm).propagate(torch.zeros(*shape))
    except Exception as exc:  # noqa: BLE001
        _restore(modes)
        _check_runs(module, shape, source)  # the module itself fails: say so, do not fall back
        return _onnx_fallback(module, shape, f"the torch.fx graph failed to run ({_last_line(exc)})", exc)
    _restore(modes)
    try:
        return _fx_ir(gm, source)
    except UnsupportedOpError:
        pass  # raised again below, with the source line of each offending op
    traced = _trace(module, stack_traces=True)
    return _fx_ir(gm, source, {n.name: n.stack_trace for n in traced.graph.nodes})


def _last_line(exc: BaseException) -> str:
    lines = [line for line in str(exc).strip().splitlines() if line.strip()]
    return f"{type(exc).__name__}: {lines[-1] if lines else ''}"


def _modes(module: nn.Module) -> dict[nn.Module, bool]:
    """Each submodule's train/eval flag (they may differ), to put back after an eval-mode run."""
    return {m: m.training for m in module.modules()}


def _restore(modes: dict[nn.Module, bool]) -> None:
    for m, training in modes.items():
        m.training = training


def _check_runs(module: nn.Module, shape, source: str) -> None:
    modes = _modes(module)
    module.eval()
    try:
        with torch.no_grad():
            module(torch.zeros(*shape))
    except Exception as exc:  # noqa: BLE001
        raise AtomicGraphError(f"{source} fails on an input of shape {tuple(shape)}: {_last_line(exc)}") from exc
    finally:
        _restore(modes)


def _onnx_fallback(module: nn.Module, shape, reason: str, cause: BaseException) -> ArchGraph:
    from ..hardware import to_onnx
    from .onnx import from_onnx

    name = type(module).__name__
    try:
        with tempfile.TemporaryDirectory(prefix="archgen-atomic-") as tmp, warnings.catch_warnings():
            warnings.simplefilter("ignore")  # TracerWarnings about the branch being baked in
            with torch.random.fork_rng(devices=[]):
                path = to_onnx(module, Path(tmp) / f"{name}.onnx", shape)
            graph = from_onnx(path)
    except Exception as exc:  # noqa: BLE001
        detail = str(exc).strip().splitlines()
        raise AtomicGraphError(
            f"cannot convert module {name}: {reason}; the ONNX fallback failed too "
            f"({type(exc).__name__}: {detail[0] if detail else ''})"
        ) from cause
    warnings.warn(
        f"module {name}: {reason}; converted its ONNX export instead, which follows only the "
        "branches taken for the example input", AtomicFallbackWarning, stacklevel=3,
    )
    return graph
