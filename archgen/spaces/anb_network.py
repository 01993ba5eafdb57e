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
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .anb import (
    DROPOUT,
    HEAD_WIDTH,
    NUM_STAGES,
    RESOLUTION,
    SE_RATIO,
    STAGE_STRIDES,
    STAGE_WIDTHS,
    STEM_WIDTH,
    AnbStage,
)
from .mbv3_network import ConvBNAct, MBConv, he_fout_init

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
    """``AnbNetwork(stages, num_classes=1000, dropout=0.2, activation="relu", stochastic_depth=0.0, in_channels=3)``.

    ``stages``: 7 ``(expand, kernel, layers, se)`` (see :class:`~archgen.spaces.anb.AnbStage`).
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
        num_classes: int = 1000,
        dropout: float = DROPOUT,
        activation: str = "relu",
        stochastic_depth: float = 0.0,
        in_channels: int = 3,
    ):
        super().__init__()
        for name, value in (("num_classes", num_classes), ("in_channels", in_channels)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        for name, value in (("dropout", dropout), ("stochastic_depth", stochastic_depth)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
                raise ValueError(f"{name} must be a number in [0, 1), got {value!r}")
        if activation not in SE_GATES:
            raise ValueError(f"activation must be one of {', '.join(SE_GATES)}, got {activation!r}")
        if len(stages) != NUM_STAGES:
            raise ValueError(f"expected {NUM_STAGES} stages, got {len(stages)}")
        self.stages = tuple(AnbStage(int(e), int(k), int(n), bool(se)) for e, k, n, se in stages)
        self.activation = activation
        self.input_shape = (in_channels, RESOLUTION, RESOLUTION)

        self.stem = ConvBNAct(in_channels, STEM_WIDTH, 3, stride=2, act=activation)
        total = sum(s.layers for s in self.stages)
        blocks: list[nn.Module] = []
        c = STEM_WIDTH
        for stage, width, stride in zip(self.stages, STAGE_WIDTHS, STAGE_STRIDES):
            for i in range(stage.layers):
                drop = stochastic_depth * len(blocks) / total
                blocks.append(AnbBlock(c, width, stage.kernel, stage.expand, stride if i == 0 else 1, activation,
                                       stage.se, drop))
                c = width
        self.blocks = nn.Sequential(*blocks)
        self.head = ConvBNAct(c, HEAD_WIDTH, 1, act=activation)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(HEAD_WIDTH, num_classes)
        self._init_weights()

    def _init_weights(self) -> None:
        """The reference's (torchvision EfficientNet's): conv weights He-normal (fan out),
        BN 1/0, linear U(+-1/sqrt(out_features)), biases 0."""
        he_fout_init(self, linear_fan="out")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.head(self.blocks(self.stem(x)))
        return self.classifier(self.dropout(torch.flatten(x.mean((2, 3)), 1)))
