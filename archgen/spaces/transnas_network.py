"""The TransNAS-Bench-101 micro encoder ``64-41414`` with a classification head, as a
trainable ``torch.nn.Module``.

Follows the reference (repository yawen-d/TransNASBench, ``lib/models/net_infer/net_macro.py``
``MacroNet``, ``cell_micro.py`` ``MicroCell``, ``lib/models/net_ops/cell_ops.py``) layer for layer:

- stem: conv 3x3 stride 2 to C/2, BN, then ReLU-conv 3x3 stride 2-BN to C (input side / 4);
- one *module* per digit of the macro code, each ``cells_per_module`` (the reference's 2)
  micro cells; digit 1 keeps width and resolution, 2 doubles the width, 3 halves the
  resolution, 4 does both (``64-41414``: 64 -> 128/2 -> 128 -> 256/2 -> 256 -> 512/2; a 224
  input ends at 512 x 7 x 7). The module's first cell makes the change: its edges *from
  the cell input* (node 0) take C_in -> C_out at the module's stride, every other edge is
  C_out -> C_out at stride 1. The cell has no residual path of its own;
- cell ops: ``none`` zero; ``skip_connect`` identity, or, where the edge changes width or
  resolution, the reference's ``FactorizedReduce`` (ReLU, two 1x1 convs with the stride, the
  second on the input shifted by one pixel, concatenated, BN); ``nor_conv_kxk`` ReLU-conv-BN
  with the edge's stride; node j = sum over i < j of op_(j,i)(node i), the cell's output node 3;
- head: global average pooling and a linear layer (the reference's ``FFDecoder``, its
  classification decoder); Kaiming-normal (fan-out) convolutions, BN weight 1 / bias 0.

Simplifications: ``none`` edges are left out rather than summed as zero tensors (the same
function); a node all of whose inputs are ``none`` is a zero tensor of the node's shape
(as the reference's ``Zero`` gives). Only the classification head is built: the
benchmark's other tasks put their own decoders (segmentation, generative, siamese) on the
encoder, which this module exposes as :meth:`TransNASMicroNetwork.features`.

The cell comes in as ``{(node j, node i): op}`` with the encoder's width, macro code and
cells per module from :mod:`archgen.spaces.transnas` (which owns them and imports this
module lazily, to build), so this module never imports its space: no import cycle, and
the space stays importable without torch.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from ..validation import check_positive_ints

from .nb201_network import NodeSum, ReLUConvBN

#: macro-code digits: (doubles the width, halves the resolution)
MODULE_KINDS: dict[str, tuple[bool, bool]] = {"1": (False, False), "2": (True, False), "3": (False, True),
                                              "4": (True, True)}


class FactorizedReduce(nn.Module):
    """ReLU, then two 1x1 convs with ``stride`` to C_out/2 each (the second on the input
    shifted by one pixel), concatenated, BN: the reference's skip across a width or
    resolution change."""

    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        if c_out % 2:
            raise ValueError(f"FactorizedReduce needs an even number of output channels, got {c_out}")
        self.relu = nn.ReLU()
        self.convs = nn.ModuleList(nn.Conv2d(c_in, c, 1, stride=stride, bias=False) for c in (c_out // 2, c_out // 2))
        self.pad = nn.ConstantPad2d((0, 1, 0, 1), 0.0)
        self.bn = nn.BatchNorm2d(c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(x)
        shifted = self.pad(x)[:, :, 1:, 1:]
        return self.bn(torch.cat([self.convs[0](x), self.convs[1](shifted)], dim=1))


def make_op(name: str, c_in: int, c_out: int, stride: int) -> nn.Module | None:
    """The module of one cell edge; ``None`` for ``none`` (the edge is left out)."""
    if name == "none":
        return None
    if name == "skip_connect":
        return nn.Identity() if stride == 1 and c_in == c_out else FactorizedReduce(c_in, c_out, stride)
    if name == "nor_conv_1x1":
        return ReLUConvBN(c_in, c_out, 1, stride)
    if name == "nor_conv_3x3":
        return ReLUConvBN(c_in, c_out, 3, stride)
    raise ValueError(f"unknown TransNAS-Bench-101 micro op {name!r}; ops: none, skip_connect, nor_conv_1x1, "
                     "nor_conv_3x3")


class ZeroNode(nn.Module):
    """A node with no incoming edge: zeros of its shape (C_out channels at the cell's
    stride), computed from the input so that the exported graph keeps it (a 1x1 pooling
    is ``x[:, :, ::s, ::s]`` without a strided slice, which ONNX exporters do not fold)."""

    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.c_in, self.c_out, self.stride = c_in, c_out, stride

    def extra_repr(self) -> str:
        return f"{self.c_in}, {self.c_out}, stride={self.stride}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = (nn.functional.avg_pool2d(x, 1, stride=self.stride) if self.stride > 1 else x) * 0.0
        return z if self.c_in == self.c_out else z[:, :1].expand(-1, self.c_out, -1, -1)


class MicroCell(nn.Module):
    """A cell of ``1 + max j`` nodes: node j = sum over i < j of op_(j,i)(node i). Edges from
    node 0 map ``c_in`` to ``c_out`` with ``stride``; the others keep ``c_out``."""

    def __init__(self, edges: Mapping[tuple[int, int], str], c_in: int, c_out: int, stride: int = 1):
        super().__init__()
        self.num_nodes = 1 + max(j for j, _ in edges)
        self.c_in, self.c_out, self.stride = c_in, c_out, stride
        self.edges = nn.ModuleDict()
        for (j, i), op in edges.items():
            module = make_op(op, c_in, c_out, stride) if i == 0 else make_op(op, c_out, c_out, 1)
            if module is not None:
                self.edges[f"{j}_{i}"] = module

        self.sum, self.zero = NodeSum(), ZeroNode(c_in, c_out, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nodes = [x]
        for j in range(1, self.num_nodes):
            terms = [self.edges[f"{j}_{i}"](nodes[i]) for i in range(j) if f"{j}_{i}" in self.edges]
            nodes.append(self.sum(*terms) if len(terms) > 1 else terms[0] if terms else self.zero(x))
        return nodes[-1]


class TransNASMicroNetwork(nn.Module):
    """``TransNASMicroNetwork(cell, num_classes, *, channels, macro, cells_per_module, in_channels=3)``.

    ``cell``: the op of each cell edge as ``{(node j, node i): op}`` with ``0 <= i < j``
    (:meth:`TransNASMicroSpace.to_module <archgen.spaces.transnas.TransNASMicroSpace.to_module>`
    passes the six edges of an arch string and the benchmark's 64, ``"41414"`` and 2).
    ``channels``: the stem's output width (even); ``macro``: digits 1-4, one module each.
    """

    def __init__(
        self,
        cell: Mapping[tuple[int, int], str],
        num_classes: int,
        *,
        channels: int,
        macro: str,
        cells_per_module: int,
        in_channels: int = 3,
    ):
        super().__init__()
        check_positive_ints(num_classes=num_classes, channels=channels,
                            cells_per_module=cells_per_module, in_channels=in_channels)
        if channels % 2:
            raise ValueError(f"channels must be even (the stem's first conv has channels / 2), got {channels}")
        if not isinstance(macro, str) or not macro or any(d not in MODULE_KINDS for d in macro):
            raise ValueError(f"macro must be a non-empty string of digits 1-4 (1 plain, 2 double the width, "
                             f"3 halve the resolution, 4 both), got {macro!r}")
        if not isinstance(cell, Mapping) or not cell or not all(
                isinstance(e, tuple) and len(e) == 2 and 0 <= e[1] < e[0] for e in cell):
            raise ValueError(f"cell must map (node j, node i) edges with 0 <= i < j to ops, got {cell!r}")
        self.cell, self.macro = dict(cell), macro
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, channels // 2, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(channels // 2),
            ReLUConvBN(channels // 2, channels, 3, stride=2),
        )
        layers: list[nn.Module] = []
        c = channels
        for digit in macro:
            wider, smaller = MODULE_KINDS[digit]
            c_out = 2 * c if wider else c
            cells = [MicroCell(self.cell, c, c_out, 2 if smaller else 1)]
            cells.extend(MicroCell(self.cell, c_out, c_out, 1) for _ in range(cells_per_module - 1))
            layers.append(nn.Sequential(*cells))
            c = c_out
        self.layers = nn.Sequential(*layers)
        self.out_channels = c
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, num_classes))
        for m in self.modules():  # the reference's _kaiming_init (the linear layer keeps torch's default)
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    #: the modules that are one kernel each in its latency profile (:mod:`archgen.kernels`)
    kernel_types = (ReLUConvBN, FactorizedReduce, NodeSum, ZeroNode)
    kernel_names = ("stem", "head")

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The encoder's feature map (``out_channels`` x side/32 x side/32): the reference's
        ``structure='backbone'``, where the benchmark's task decoders attach."""
        return self.layers(self.stem(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))
