"""Atomic computation graphs (the GENNAPE idea): any torch module or ONNX model as
an :class:`~archgen.graph.ArchGraph` of primitive operations, so graph encoders
and predictors read networks from outside the search spaces.

>>> from archgen.atomic import from_module, from_onnx, summary_table
>>> graph = from_module(model, input_shape=(1, 3, 32, 32))   # torch.fx (ONNX fallback)
>>> graph = from_onnx("model.onnx")                          # or read an ONNX file
>>> print(summary_table(graph))

Op mapping (everything lands on the fixed vocabulary of :mod:`archgen.ops`):

================  ====================================================  ===============================================
atomic op         torch (modules, functions, tensor methods)            ONNX
================  ====================================================  ===============================================
conv              Conv1d/2d/3d, F.conv*d (groups not depthwise)         Conv
depthwise_conv    Conv with groups == in_channels > 1, out % in == 0    Conv with group == C_in > 1
linear            Linear, F.linear, matmul/mm/bmm/@                     Gemm, MatMul (a constant bias Add folds in)
batch_norm        BatchNorm1d/2d/3d, SyncBatchNorm, F.batch_norm        BatchNormalization
layer_norm        LayerNorm, GroupNorm, InstanceNorm*, F.layer_norm     LayerNormalization, InstanceNormalization,
                                                                        GroupNormalization
relu              ReLU, ReLU6, Hardtanh, LeakyReLU, PReLU, clamp        Relu, Clip, LeakyRelu, PRelu, ThresholdedRelu
hardswish         Hardswish, Hardsigmoid                                HardSwish, HardSigmoid
sigmoid           Sigmoid, Softmax, LogSoftmax                          Sigmoid, Softmax, LogSoftmax
gelu              GELU, SiLU, Tanh, Mish, ELU, SELU, CELU, Softplus,    Gelu, Tanh, Elu, Selu, Celu, Softplus, Mish,
                  erf                                                   Erf-based GELU chain, x * Sigmoid(x)
max_pool          MaxPool*, AdaptiveMaxPool (output > 1)                MaxPool
avg_pool          AvgPool*, AdaptiveAvgPool (output > 1)                AveragePool
global_pool       AdaptiveAvg/MaxPool(1), mean/sum/amax over H,W        GlobalAverage/Max/LpPool, ReduceMean/Sum/Max
                                                                        over the spatial axes
add               +, +=, -, torch.add/sub, stack(...).sum(0)            Add, Sub, Sum, Unsqueeze+Concat+ReduceSum
mul               *, *=, /, torch.mul/div                               Mul, Div
concat            torch.cat, torch.stack (not summed)                   Concat
reshape           Flatten, view, reshape, permute, transpose, squeeze,  Flatten, Reshape, Transpose, Squeeze,
                  unsqueeze, chunk, split, expand, slicing, F.pad,      Unsqueeze, Slice, Split, Gather, Expand,
                  PixelShuffle, ChannelShuffle                          Tile, Pad, DepthToSpace, SpaceToDepth
(bridged)         Identity, Dropout, .contiguous(), .to(), clone,       Identity, Dropout, Cast
                  detach, indexing a tuple
(dropped)         x.size(), x.shape, zeros_like, constants, parameters  Constant, initializers, Shape/Size chains
================  ====================================================  ===============================================

Nodes carry ``channels_out`` (from the output shape), ``resolution`` (H of an
NCHW input), and for conv/linear/pool the kernel, stride, groups and
channels_in. ONNX shapes come from shape inference alone: a model file is never
run, and nodes whose shape inference leaves open are named in an
:class:`AtomicShapeWarning`. Anything else on the data path (upsampling/Resize, ConvTranspose,
Embedding, attention modules kept as leaves, exp/log/pow, comparisons, control
flow, custom ONNX domains) raises :class:`UnsupportedOpError` naming each op and
where it occurs.
"""

from __future__ import annotations

from .core import (
    ATOMIC_OPS,
    AtomicFallbackWarning,
    AtomicGraphError,
    AtomicShapeWarning,
    ModelFileNotFoundError,
    UnsupportedOpError,
    op_counts,
    summary_table,
)
from .fx import from_module
from .onnx import from_onnx

__all__ = [
    "ATOMIC_OPS",
    "AtomicFallbackWarning",
    "AtomicGraphError",
    "AtomicShapeWarning",
    "ModelFileNotFoundError",
    "UnsupportedOpError",
    "from_module",
    "from_onnx",
    "op_counts",
    "summary_table",
]
