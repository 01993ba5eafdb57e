"""The HW-NAS-Bench FBNet CIFAR network as a trainable ``torch.nn.Module``.

Why this exact network: the benchmark's latencies (``fbnet/latency_ms.csv``) were
measured on it, so an architecture string only means those numbers when it is
built the same way. It follows HW-NAS-Bench's ``FBNet_Infer`` (CIFAR setting):
3x3 stem conv (stride 1) to 16 channels + BN + ReLU; 22 layers in 7 stages
(:data:`~archgen.spaces.fbnet.LAYER_SHAPES`); a 1x1 conv to 1504 channels + BN +
ReLU; global average pooling; a linear classifier. A ``k{K}_e{E}[_g2]`` layer is an
inverted residual (1x1 expand + BN + ReLU [+ channel shuffle for ``_g2``], KxK
depthwise with the layer's stride + BN + ReLU, 1x1 project + BN, residual add when
the shape is kept); ``skip`` is an identity, or where the layer changes shape a
1x1 conv with the stride + BN + ReLU (as FBNet's and HW-NAS-Bench's code have it).
Weights start as the benchmark's do (Kaiming-normal convs, unit BN, linear
N(0, 0.001)). Only standard ops: it exports to ONNX with the TorchScript exporter.

The layers come in fully described (block config and shape), so this module never
imports its space (:mod:`archgen.spaces.fbnet` imports it, lazily, to build): no
import cycle, and the space stays importable without torch.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import torch
from torch import nn

from ..validation import check_positive_ints

BlockConfig = tuple[int, int, int]  # (kernel, expand, groups) of an inverted residual


class Shape(Protocol):
    """Where a layer sits: what :class:`~archgen.spaces.fbnet.LayerShape` provides."""

    channels_in: int
    channels_out: int
    stride: int


class ConvBNReLU(nn.Sequential):
    """Conv (no bias, 'same'-style padding k//2) + BN, then ReLU unless ``relu=False``."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1, groups: int = 1, relu: bool = True):
        layers: list[nn.Module] = [
            nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=kernel // 2, groups=groups, bias=False),
            nn.BatchNorm2d(c_out),
        ]
        if relu:
            layers.append(nn.ReLU())
        super().__init__(*layers)


class ChannelShuffle(nn.Module):
    """Interleave the channels of ``groups`` groups (ShuffleNet): [N, g*c, H, W] ->
    [N, g, c, H, W] -> [N, c, g, H, W] -> [N, g*c, H, W]."""

    def __init__(self, groups: int):
        super().__init__()
        self.groups = groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        return x.reshape(n, self.groups, c // self.groups, h, w).transpose(1, 2).reshape(n, c, h, w)


class InvertedResidual(nn.Module):
    """One ``k{K}_e{E}[_g2]`` layer."""

    def __init__(self, c_in: int, c_out: int, kernel: int, expand: int, groups: int, stride: int):
        super().__init__()
        mid = c_in * expand
        self.expand = ConvBNReLU(c_in, mid, 1, groups=groups)
        self.shuffle = ChannelShuffle(groups) if groups > 1 else nn.Identity()
        self.depthwise = ConvBNReLU(mid, mid, kernel, stride=stride, groups=mid)
        self.project = ConvBNReLU(mid, c_out, 1, groups=groups, relu=False)
        self.residual = stride == 1 and c_in == c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.project(self.depthwise(self.shuffle(self.expand(x))))
        return y + x if self.residual else y


def make_layer(config: BlockConfig | None, shape: Shape) -> nn.Module:
    """The module of a layer of shape ``shape``: ``config`` ``(kernel, expand, groups)``
    is an inverted residual, None a ``skip`` (an identity where the shape is kept, else
    a 1x1 conv with the stride)."""
    if config is None:
        if shape.stride == 1 and shape.channels_in == shape.channels_out:
            return nn.Identity()
        return ConvBNReLU(shape.channels_in, shape.channels_out, 1, stride=shape.stride)
    kernel, expand, groups = config
    return InvertedResidual(shape.channels_in, shape.channels_out, kernel, expand, groups, shape.stride)


class FBNetNetwork(nn.Module):
    """``FBNetNetwork(layers, num_classes=100, in_channels=3, *, stem_channels, head_channels)``.

    ``layers``: per layer, ``(config, shape)``: the block's ``(kernel, expand, groups)``
    (None for ``skip``) and its :class:`~archgen.spaces.fbnet.LayerShape`;
    :meth:`FBNetSpace.to_module <archgen.spaces.fbnet.FBNetSpace.to_module>` passes the
    22 of an arch string with the benchmark's stem (16) and head (1504) widths. Any
    input size works (the head pools globally); the benchmark's is 32x32."""

    def __init__(self, layers: Sequence[tuple[BlockConfig | None, Shape]], num_classes: int = 100,
                 in_channels: int = 3, *, stem_channels: int, head_channels: int):
        super().__init__()
        check_positive_ints(num_classes=num_classes, in_channels=in_channels,
                            stem_channels=stem_channels, head_channels=head_channels)
        if not layers:
            raise ValueError("an FBNet network needs at least one layer")
        self.blocks = tuple(config for config, _ in layers)
        self.stem = ConvBNReLU(in_channels, stem_channels, 3)
        self.layers = nn.Sequential(*(make_layer(config, shape) for config, shape in layers))
        self.head = ConvBNReLU(layers[-1][1].channels_out, head_channels, 1)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(head_channels, num_classes)
        self._init_weights()

    #: the modules that are one kernel each in its latency profile (:mod:`archgen.kernels`)
    kernel_types = (InvertedResidual, ConvBNReLU, nn.AdaptiveAvgPool2d, nn.Linear)
    kernel_names = ()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, std=0.001)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.head(self.layers(self.stem(x))))
        return self.classifier(torch.flatten(x, 1))
