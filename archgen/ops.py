"""The operation vocabulary shared by every search space and graph encoder.

One fixed, ordered list, so that a node's one-hot feature means the same thing in
every space and in every pretrained bundle. Spaces use the subset they need.
Numeric attributes (kernel, stride, channels, ...) travel beside the op name.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .errors import UnknownNameError


@dataclass(frozen=True)
class OpType:
    name: str
    summary: str


OP_TYPES: tuple[OpType, ...] = (
    OpType("input", "graph input tensor"),
    OpType("output", "graph output tensor"),
    # NAS-Bench-201 cell operations (an op on an edge of the cell DAG)
    OpType("none", "zero: the edge carries nothing"),
    OpType("skip_connect", "identity"),
    OpType("nor_conv_1x1", "ReLU -> Conv 1x1 -> BatchNorm"),
    OpType("nor_conv_3x3", "ReLU -> Conv 3x3 -> BatchNorm"),
    OpType("avg_pool_3x3", "3x3 average pooling, stride 1"),
    # block-level ops (FBNet, MobileNetV3)
    OpType("mbconv", "inverted residual: 1x1 expand, kxk depthwise, 1x1 project"),
    # atomic computation-graph ops (any torch / ONNX model)
    OpType("conv", "dense or grouped convolution"),
    OpType("depthwise_conv", "depthwise convolution (groups == channels)"),
    OpType("linear", "fully connected layer / matmul"),
    OpType("batch_norm", "batch normalisation"),
    OpType("layer_norm", "layer normalisation"),
    OpType("relu", "ReLU / ReLU6"),
    OpType("hardswish", "hard swish / hard sigmoid"),
    OpType("sigmoid", "sigmoid"),
    OpType("gelu", "GELU / SiLU / other smooth activation"),
    OpType("max_pool", "max pooling"),
    OpType("avg_pool", "average pooling"),
    OpType("global_pool", "global average pooling"),
    OpType("add", "element-wise addition"),
    OpType("mul", "element-wise multiplication"),
    OpType("concat", "concatenation"),
    OpType("reshape", "flatten / reshape / transpose / channel shuffle"),
)

OP_NAMES: tuple[str, ...] = tuple(op.name for op in OP_TYPES)
OP_INDEX: dict[str, int] = {name: i for i, name in enumerate(OP_NAMES)}

#: Numeric node attributes, in feature order. Values are non-negative numbers.
#: ``se`` is 1 on a block with squeeze-excitation. New attributes are appended,
#: never inserted: an encoder trained on the first ``k`` of them reads the
#: leading ``len(OP_NAMES) + k`` features (see :func:`legacy_feature_width`).
NUMERIC_ATTRS: tuple[str, ...] = (
    "kernel", "stride", "channels_in", "channels_out", "groups", "expand", "resolution", "se",
)

#: Width of a node feature vector: op one-hot followed by encoded numeric attributes.
NODE_FEATURES: int = len(OP_NAMES) + len(NUMERIC_ATTRS)


def legacy_feature_width(attrs) -> int | None:
    """The node feature width of a model trained with numeric attributes ``attrs``
    (a bundle's record), or None when ``attrs`` is not a prefix of :data:`NUMERIC_ATTRS`."""
    attrs = list(attrs)
    if attrs != list(NUMERIC_ATTRS[: len(attrs)]):
        return None
    return len(OP_NAMES) + len(attrs)


def op_index(name: str) -> int:
    """Index of ``name`` in :data:`OP_NAMES`; a clear error for unknown ops."""
    try:
        return OP_INDEX[name]
    except (KeyError, TypeError):
        raise UnknownNameError("op", name, OP_NAMES) from None


def encode_attr(value: float) -> float:
    """Numeric attributes span 1..4096 (kernels to channels): log-scale them."""
    return math.log2(1.0 + float(value))


def decode_attr(feature: float) -> float:
    value = 2.0 ** float(feature) - 1.0
    rounded = round(value)
    return float(rounded) if abs(value - rounded) < 1e-3 else value
