"""The NAS-Bench-201 CIFAR network as a trainable ``torch.nn.Module``.

Stem 3x3 conv to C, three stages of N cells at C, 2C, 4C with a residual
reduction block between stages, BN-ReLU, global average pooling, linear head --
the network whose 200-epoch accuracies the benchmark table reports.

The cell comes in as ``{(node j, node i): op}``, so this module never imports its
space (:mod:`archgen.spaces.nb201` imports it, lazily, to build): no import cycle, and
the space stays importable without torch.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from ..validation import check_positive_ints


class ReLUConvBN(nn.Sequential):
    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1):
        super().__init__(
            nn.ReLU(),
            nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=kernel // 2, bias=False),
            nn.BatchNorm2d(c_out),
        )


def make_op(name: str, channels: int) -> nn.Module | None:
    """The module of one cell edge; ``None`` for ``none`` (the edge is left out)."""
    if name == "none":
        return None
    if name == "skip_connect":
        return nn.Identity()
    if name == "nor_conv_1x1":
        return ReLUConvBN(channels, channels, 1)
    if name == "nor_conv_3x3":
        return ReLUConvBN(channels, channels, 3)
    if name == "avg_pool_3x3":
        return nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)
    raise ValueError(f"unknown NAS-Bench-201 op {name!r}")


class NodeSum(nn.Module):
    """The sum of a cell node's incoming terms (a module so that it is one kernel of the
    network's latency profile, :mod:`archgen.kernels`; it exports as the same graph)."""

    def forward(self, *terms: torch.Tensor) -> torch.Tensor:
        return torch.stack(terms).sum(0)


class ZeroNode(nn.Module):
    """A node with no incoming edge: zeros of the input's shape, ``x * 0`` rather than
    ``zeros_like`` to keep the input in the exported graph."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * 0.0


class Cell(nn.Module):
    """A cell of ``1 + max j`` nodes: node j = sum over i < j of op_(j,i)(node i);
    ``edges`` maps ``(j, i)`` to the op on that edge (edges left out act as ``none``)."""

    def __init__(self, edges: Mapping[tuple[int, int], str], channels: int):
        super().__init__()
        self.num_nodes = 1 + max(j for j, _ in edges)
        self.edges = nn.ModuleDict()
        for (j, i), op in edges.items():
            module = make_op(op, channels)
            if module is not None:
                self.edges[f"{j}_{i}"] = module
        self.sum, self.zero = NodeSum(), ZeroNode()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nodes = [x]
        for j in range(1, self.num_nodes):
            terms = [self.edges[f"{j}_{i}"](nodes[i]) for i in range(j) if f"{j}_{i}" in self.edges]
            nodes.append(self.sum(*terms) if len(terms) > 1 else terms[0] if terms else self.zero(x))
        return nodes[-1]


class ResidualReduction(nn.Module):
    """ResNet basic block with stride 2 that doubles the channels between stages."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.conv_a = ReLUConvBN(c_in, c_out, 3, stride=2)
        self.conv_b = ReLUConvBN(c_out, c_out, 3)
        self.shortcut = nn.Sequential(nn.AvgPool2d(2, stride=2), nn.Conv2d(c_in, c_out, 1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv_b(self.conv_a(x)) + self.shortcut(x)


class NB201Network(nn.Module):
    """``NB201Network(cell, num_classes=10, channels=16, cells_per_stage=5, in_channels=3)``.

    ``cell``: the op of each cell edge as ``{(node j, node i): op}`` with ``0 <= i < j``
    (:meth:`NB201Space.to_module <archgen.spaces.nb201.NB201Space.to_module>` passes the
    six edges of an arch string). ``channels`` (C) and ``cells_per_stage`` (N) default to
    the benchmark's 16 and 5; smaller values give a faster proxy network of the same cell.
    """

    def __init__(
        self,
        cell: Mapping[tuple[int, int], str],
        num_classes: int = 10,
        channels: int = 16,
        cells_per_stage: int = 5,
        in_channels: int = 3,
    ):
        super().__init__()
        check_positive_ints(num_classes=num_classes, channels=channels,
                            cells_per_stage=cells_per_stage, in_channels=in_channels)
        if not isinstance(cell, Mapping) or not cell or not all(
                isinstance(e, tuple) and len(e) == 2 and 0 <= e[1] < e[0] for e in cell):
            raise ValueError(f"cell must map (node j, node i) edges with 0 <= i < j to ops, got {cell!r}")
        self.cell = dict(cell)
        self.stem = nn.Sequential(nn.Conv2d(in_channels, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels))
        layers: list[nn.Module] = []
        c = channels
        for stage in range(3):
            if stage > 0:
                layers.append(ResidualReduction(c, 2 * c))
                c *= 2
            layers.extend(Cell(self.cell, c) for _ in range(cells_per_stage))
        self.cells = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.BatchNorm2d(c), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, num_classes))

    #: the modules that are one kernel each in its latency profile (:mod:`archgen.kernels`),
    #: by type and by name
    kernel_types = (ReLUConvBN, nn.AvgPool2d, ResidualReduction, NodeSum, ZeroNode)
    kernel_names = ("stem", "head")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.cells(self.stem(x)))
