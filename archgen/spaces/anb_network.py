"""The Accel-NASBench network (EfficientNet-B0 skeleton) as a trainable ``torch.nn.Module``.

Layer for layer ``AccelNASBenchNet`` of afzalxo/ANB-DatasetCollection
(``models/accelbenchnet.py``, torchvision's EfficientNet with per-stage choices): stem
3x3 conv stride 2 to 32 (BN, swish); per stage ``l`` MBConv blocks (1x1 expand + BN +
swish unless ``e == 1``; kxk depthwise with the stage's stride on its first block + BN +
swish; squeeze-excite when on: global pool, 1x1 reduce to ``max(1, block input
channels // 4)``, swish, 1x1 expand, sigmoid, multiply; 1x1 project + BN; residual where
the stride is 1 and the width is kept); 1x1 conv to 1280 (BN, swish), global average
pooling, dropout 0.2, linear classifier. By default (``activation="relu"``) it is the
variant the benchmark's proxy training and its throughput / FPGA measurements used
(ReLU everywhere, hard-sigmoid gates: the reference's ``activation_fn = relu``), so a
built network is the one whose accuracy and speed the bundle predicts;
``activation="swish"`` gives EfficientNet's SiLU and sigmoid gates.

The widths, strides and input side come in as an :class:`AnbSkeleton` built by
:mod:`archgen.spaces.anb` (which owns them and imports this module lazily, to build),
so this module never imports its space: no import cycle, and the space stays
importable without torch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from ..validation import check_positive_ints

from .mbv3_network import ConvBNAct, MBConv, he_fout_init

#: the classifier dropout of the reference network
DROPOUT = 0.2
#: squeeze-excite squeezes to ``max(1, int(block input channels * SE_RATIO))``
SE_RATIO = 0.25


@dataclass(frozen=True)
class AnbSkeleton:
    """The fixed parts of an Accel-NASBench network: stem, per-stage and head widths,
    each stage's first stride, and the benchmark's input side."""

    stem_width: int
    stage_widths: tuple[int, ...]
    stage_strides: tuple[int, ...]
    head_width: int
    resolution: int

#: activation -> the squeeze-excite gate the reference pairs with it
SE_GATES = {"swish": "sigmoid", "relu": "hsigmoid"}


class AnbBlock(MBConv):
    """:class:`~archgen.spaces.mbv3_network.MBConv` with EfficientNet's squeeze-excite
    and stochastic depth: in training, a residual block's branch is dropped per sample
    with probability ``drop`` (the survivors scaled by ``1 / (1 - drop)``)."""

    def __init__(self, c_in: int, c_out: int, kernel: int, expand: int, stride: int, act: str, se: bool,
                 drop: float = 0.0):
        super().__init__(c_in, c_out, kernel, expand, stride, act, se,
                         se_channels=max(1, int(c_in * SE_RATIO)), se_act=act, se_gate=SE_GATES[act])
        self.drop = drop

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.branch(x)
        if not self.residual:
            return y
        if self.training and self.drop > 0.0:
            keep = torch.empty((y.shape[0],) + (1,) * (y.dim() - 1), dtype=y.dtype, device=y.device)
            y = y * keep.bernoulli_(1.0 - self.drop).div_(1.0 - self.drop)
        return x + y


class AnbNetwork(nn.Module):
    """``AnbNetwork(stages, skeleton, num_classes=1000, dropout=0.2, activation="relu", stochastic_depth=0.0,
    in_channels=3)``.

    ``stages``: per stage ``(expand, kernel, layers, se)`` (see :class:`~archgen.spaces.anb.AnbStage`);
    ``skeleton``: the widths and strides (:meth:`AnbSpace.to_module
    <archgen.spaces.anb.AnbSpace.to_module>` passes the benchmark's).
    The network runs at any input size (global pooling before the head); the benchmark's
    is 224 (:attr:`input_shape`). ``dropout`` is applied before the classifier (the
    reference's 0.2). ``activation``: ``"relu"`` (ReLU, hard-sigmoid gates: what the
    benchmark trained and measured) or ``"swish"`` (EfficientNet: SiLU, sigmoid gates).
    ``stochastic_depth``: the reference trains with 0.2 (the ``i``-th of ``n`` blocks
    drops its residual branch with probability ``0.2 * i / n``); off by default.
    Weights start as the reference initialises them.
    """

    def __init__(
        self,
        stages: Sequence[Sequence],
        skeleton: AnbSkeleton,
        num_classes: int = 1000,
        dropout: float = DROPOUT,
        activation: str = "relu",
        stochastic_depth: float = 0.0,
        in_channels: int = 3,
    ):
        super().__init__()
        check_positive_ints(num_classes=num_classes, in_channels=in_channels)
        for name, value in (("dropout", dropout), ("stochastic_depth", stochastic_depth)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
                raise ValueError(f"{name} must be a number in [0, 1), got {value!r}")
        if activation not in SE_GATES:
            raise ValueError(f"activation must be one of {', '.join(SE_GATES)}, got {activation!r}")
        if len(stages) != len(skeleton.stage_widths):
            raise ValueError(f"expected {len(skeleton.stage_widths)} stages, got {len(stages)}")
        self.stages = tuple((int(e), int(k), int(n), bool(se)) for e, k, n, se in stages)
        self.activation = activation
        self.input_shape = (in_channels, skeleton.resolution, skeleton.resolution)

        self.stem = ConvBNAct(in_channels, skeleton.stem_width, 3, stride=2, act=activation)
        total = sum(layers for _, _, layers, _ in self.stages)
        blocks: list[nn.Module] = []
        c = skeleton.stem_width
        for (expand, kernel, layers, se), width, stride in zip(self.stages, skeleton.stage_widths,
                                                               skeleton.stage_strides):
            for i in range(layers):
                drop = stochastic_depth * len(blocks) / total
                blocks.append(AnbBlock(c, width, kernel, expand, stride if i == 0 else 1, activation, se, drop))
                c = width
        self.blocks = nn.Sequential(*blocks)
        self.head = ConvBNAct(c, skeleton.head_width, 1, act=activation)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(skeleton.head_width, num_classes)
        self._init_weights()

    #: the modules that are one kernel each in its latency profile (:mod:`archgen.kernels`)
    kernel_types = (MBConv, ConvBNAct, nn.Linear)
    kernel_names = ()

    def _init_weights(self) -> None:
        """The reference's (torchvision EfficientNet's): conv weights He-normal (fan out),
        BN 1/0, linear U(+-1/sqrt(out_features)), biases 0."""
        he_fout_init(self, linear_fan="out")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.head(self.blocks(self.stem(x)))
        return self.classifier(self.dropout(torch.flatten(x.mean((2, 3)), 1)))
