"""Multiply-accumulates and parameters read off an ArchGraph's node attributes.

Spaces whose graphs carry shapes (FBNet, MobileNetV3, atomic graphs of any
model) get their cost without building a network: microseconds instead of the
tens of milliseconds a build and a counted forward pass take, which matters when
a table of thousands of architectures needs a training-free accuracy proxy.
Only convolutions, inverted-residual blocks, shape-changing skips and linear
layers are counted (normalisation, activations and pooling are negligible).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .graph import ArchGraph


@dataclass(frozen=True)
class Complexity:
    """Cost of one forward pass at batch 1."""

    macs: float
    params: float


def _conv(attrs: dict, kernel: float, cin: float, cout: float, groups: float) -> tuple[float, float]:
    out = math.ceil(attrs.get("resolution", 1) / max(attrs.get("stride", 1), 1))
    params = kernel * kernel * cin * cout / max(groups, 1)
    return params * out * out, params


def _node_cost(op: str, a: dict) -> tuple[float, float]:
    cin, cout = a.get("channels_in", 0), a.get("channels_out", 0)
    res = a.get("resolution", 1)
    if op in ("conv", "depthwise_conv"):
        groups = a.get("groups") or (cin if op == "depthwise_conv" else 1)
        return _conv(a, a.get("kernel", 1), cin, cout, groups)
    if op == "mbconv":
        mid, groups = cin * a.get("expand", 1), a.get("groups", 1) or 1
        expand = (res * res * cin * mid / groups, cin * mid / groups)
        if "se" in a and a.get("expand", 1) == 1:
            expand = (0.0, 0.0)  # a node stating ``se`` is EfficientNet's MBConv: no 1x1 expansion at e1
        depthwise = _conv(a, a.get("kernel", 3), mid, mid, mid)
        out = math.ceil(res / max(a.get("stride", 1), 1))
        project = (out * out * mid * cout / groups, mid * cout / groups)
        if a.get("se"):  # EfficientNet's squeeze-excite: 1x1 convs mid -> max(1, cin // 4) -> mid, with biases
            squeeze = max(1, int(cin) // 4)
            project = (project[0] + 2 * mid * squeeze, project[1] + 2 * mid * squeeze + mid + squeeze)
        return tuple(x + y + z for x, y, z in zip(expand, depthwise, project))
    if op == "skip_connect" and cin and cout and (cin != cout or a.get("stride", 1) != 1):
        return _conv(a, 1, cin, cout, 1)  # a shape-adapting 1x1 convolution
    if op == "linear":
        return cin * cout, cin * cout
    return 0.0, 0.0


def graph_complexity(graph: ArchGraph) -> Complexity:
    """MACs and parameters of the network ``graph`` describes, from the
    ``kernel``, ``stride``, ``groups``, ``expand``, ``channels_in``,
    ``channels_out`` and ``resolution`` (input side) of its nodes."""
    macs = params = 0.0
    for n in range(graph.num_nodes):
        m, p = _node_cost(graph.op(n), graph.attrs(n))
        macs, params = macs + m, params + p
    return Complexity(macs, params)


#: the task name of the training-free accuracy proxy, for tables without accuracies
PROXY_TASK = "proxy"


def proxy_scores(space, archs) -> "np.ndarray":
    """The training-free accuracy proxy: log2 of the network's multiply-accumulates
    (more computation, more capacity). On NAS-Bench-201 it ranks CIFAR-10 test
    accuracy at Kendall 0.59 (``bench/spaces.py --part proxy``); a real task
    calibrated from a few trained architectures replaces it."""
    import numpy as np

    return np.log2([max(space.complexity(a).macs, 1.0) for a in archs])
