"""The Once-for-All MobileNetV3 subnet as a trainable ``torch.nn.Module``.

Layer for layer the network OFA's ``ofa_mbv3_d234_e346_k357_w1.0`` supernet
yields for a choice of depths, kernels and expand ratios (``get_active_subnet``):
stem 3x3 conv stride 2 to 16 (BN, h-swish); an MBConv k3 e1 16->16 block (ReLU,
residual); five stages of inverted residuals (1x1 expand + BN + act, kxk
depthwise + BN + act, optional squeeze-excite, 1x1 project + BN; residual where
stride is 1 and the width is kept); 1x1 conv to 960 (BN, h-swish), global
average pooling, 1x1 conv to 1280 (h-swish), dropout, linear classifier.

The widths, strides and activations come in as an :class:`MBv3Skeleton` built by
:mod:`archgen.spaces.mbv3` (which owns them and imports this module lazily, to build),
so this module never imports its space: no import cycle, and the space stays
importable without torch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from ..validation import check_positive_ints


@dataclass(frozen=True)
class MBv3Skeleton:
    """The fixed parts of an OFA MobileNetV3 network, per searchable stage and around them."""

    stem_width: int
    stage_widths: tuple[int, ...]
    stage_strides: tuple[int, ...]
    stage_acts: tuple[str, ...]  # relu / hswish
    stage_se: tuple[bool, ...]
    final_expand_width: int
    last_channel: int


def make_divisible(v: float, divisor: int = 8, min_value: int | None = None) -> int:
    """OFA's channel rounding: nearest multiple of ``divisor``, never below 90% of ``v``."""
    min_value = min_value or divisor
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


_ACTS = {"relu": nn.ReLU, "hswish": nn.Hardswish, "swish": nn.SiLU, "sigmoid": nn.Sigmoid, "hsigmoid": nn.Hardsigmoid}


def make_act(name: str) -> nn.Module:
    """A fresh activation module by name: relu, hswish, swish (SiLU), sigmoid, hsigmoid."""
    if name not in _ACTS:
        raise ValueError(f"unknown activation {name!r}; valid: {', '.join(_ACTS)}")
    return _ACTS[name]()


def he_fout_init(module: nn.Module, linear_fan: str = "in") -> None:
    """Conv weights He-normal over fan-out (N(0, 2 / (k*k*out))), BN 1/0, linear weights
    U(+-1/sqrt(fan)) with ``linear_fan`` its ``"in"`` (OFA) or ``"out"`` features
    (torchvision's EfficientNet), biases 0."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            bound = 1.0 / (m.in_features if linear_fan == "in" else m.out_features) ** 0.5
            nn.init.uniform_(m.weight, -bound, bound)
            nn.init.zeros_(m.bias)


class ConvBNAct(nn.Sequential):
    """Conv (no bias, 'same' padding) -> BatchNorm -> activation (``act=None``: none)."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1, groups: int = 1, act: str | None = "relu"):
        layers: list[nn.Module] = [
            nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=kernel // 2, groups=groups, bias=False),
            nn.BatchNorm2d(c_out),
        ]
        if act is not None:
            layers.append(make_act(act))
        super().__init__(*layers)


class SqueezeExcite(nn.Module):
    """Global pool -> 1x1 reduce (to ``make_divisible(channels / 4, 8)``, or ``mid``) ->
    ``act`` (ReLU) -> 1x1 expand -> ``gate`` (hard sigmoid), multiplied onto the input."""

    def __init__(self, channels: int, reduction: int = 4, *, mid: int | None = None, act: str = "relu",
                 gate: str = "hsigmoid"):
        super().__init__()
        mid = make_divisible(channels / reduction, 8) if mid is None else mid
        self.reduce = nn.Conv2d(channels, mid, 1, bias=True)
        self.act = make_act(act)
        self.expand = nn.Conv2d(mid, channels, 1, bias=True)
        self.gate = make_act(gate)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x.mean((2, 3), keepdim=True)
        return x * self.gate(self.expand(self.act(self.reduce(y))))


class MBConv(nn.Module):
    """Inverted residual block; the 1x1 expansion is left out when ``expand == 1``.
    ``se_channels``, ``se_act``, ``se_gate``: the squeeze-excite's reduced width (default
    OFA's, see :class:`SqueezeExcite`), inner activation and gate."""

    def __init__(self, c_in: int, c_out: int, kernel: int, expand: int, stride: int, act: str, se: bool, *,
                 se_channels: int | None = None, se_act: str = "relu", se_gate: str = "hsigmoid"):
        super().__init__()
        mid = make_divisible(round(c_in * expand), 8)
        self.kernel, self.expand_ratio, self.stride = kernel, expand, stride
        self.expand = ConvBNAct(c_in, mid, 1, act=act) if expand != 1 else None
        self.depthwise = ConvBNAct(mid, mid, kernel, stride=stride, groups=mid, act=act)
        self.se = SqueezeExcite(mid, mid=se_channels, act=se_act, gate=se_gate) if se else None
        self.project = ConvBNAct(mid, c_out, 1, act=None)
        self.residual = stride == 1 and c_in == c_out

    def branch(self, x: torch.Tensor) -> torch.Tensor:
        """Expand, depthwise, squeeze-excite, project: the block without its residual."""
        y = self.expand(x) if self.expand is not None else x
        y = self.depthwise(y)
        if self.se is not None:
            y = self.se(y)
        return self.project(y)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.branch(x)
        return x + y if self.residual else y


class MBv3Network(nn.Module):
    """``MBv3Network(stages, skeleton, resolution=224, num_classes=1000, dropout=0.1, in_channels=3)``.

    ``stages``: for each searchable stage its layers as ``(kernel, expand)`` pairs;
    ``skeleton``: the stem, stage and head widths, strides, activations and
    squeeze-excite (:meth:`MBv3Space.to_module <archgen.spaces.mbv3.MBv3Space.to_module>`
    passes OFA's). ``resolution`` is the input size the architecture was chosen for
    (kept as :attr:`resolution` / :attr:`input_shape`); the network itself runs at any
    input size (global pooling before the head). ``dropout`` is applied before the
    classifier (OFA's default 0.1). Weights start as OFA initialises them.
    """

    def __init__(
        self,
        stages: Sequence[Sequence[tuple[int, int]]],
        skeleton: MBv3Skeleton,
        resolution: int = 224,
        num_classes: int = 1000,
        dropout: float = 0.1,
        in_channels: int = 3,
    ):
        super().__init__()
        check_positive_ints(num_classes=num_classes, in_channels=in_channels, resolution=resolution)
        if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be a number in [0, 1), got {dropout!r}")
        if len(stages) != len(skeleton.stage_widths):
            raise ValueError(f"expected {len(skeleton.stage_widths)} stages, got {len(stages)}")
        self.stages = tuple(tuple((int(k), int(e)) for k, e in layers) for layers in stages)
        self.resolution = resolution
        self.input_shape = (in_channels, resolution, resolution)

        sk = skeleton
        self.stem = ConvBNAct(in_channels, sk.stem_width, 3, stride=2, act="hswish")
        blocks: list[nn.Module] = [MBConv(sk.stem_width, sk.stem_width, 3, 1, 1, "relu", False)]
        c = sk.stem_width
        for layers, width, stride, act, se in zip(self.stages, sk.stage_widths, sk.stage_strides, sk.stage_acts,
                                                  sk.stage_se):
            for i, (kernel, expand) in enumerate(layers):
                blocks.append(MBConv(c, width, kernel, expand, stride if i == 0 else 1, act, se))
                c = width
        self.blocks = nn.Sequential(*blocks)
        self.final_expand = ConvBNAct(c, sk.final_expand_width, 1, act="hswish")
        self.feature_mix = nn.Sequential(nn.Conv2d(sk.final_expand_width, sk.last_channel, 1, bias=False),
                                         nn.Hardswish())
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(sk.last_channel, num_classes)
        self._init_weights()

    #: the modules that are one kernel each in its latency profile (:mod:`archgen.kernels`)
    kernel_types = (MBConv, ConvBNAct, nn.Linear)
    kernel_names = ("feature_mix",)

    def _init_weights(self) -> None:
        """OFA's ``he_fout``: conv weights N(0, 2 / (k*k*out)), BN 1/0, linear U(+-1/sqrt(in)), biases 0."""
        he_fout_init(self, linear_fan="in")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.final_expand(self.blocks(self.stem(x)))
        x = self.feature_mix(x.mean((2, 3), keepdim=True))
        return self.classifier(self.dropout(torch.flatten(x, 1)))
