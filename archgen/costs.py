"""Device-independent costs of a network, summed over its kernels (:mod:`archgen.kernels`).

Why: a table without latencies (TransNAS-Bench-101) still needs a latency predictor
whose features know what makes a network slow, so that a real device can be added
from a kernel profile or a few measurements (:meth:`archgen.api.ArchGen.profile_local`,
:meth:`~archgen.api.ArchGen.calibrate_local`). A device's latency is close to a
positive mix of three costs (a roofline model): arithmetic, memory traffic, and one
fixed cost per runtime call. Pretrained on these as its targets, the predictor also
lets a request hold a budget of MACs (``device="macs"``) instead of milliseconds.

Each kernel's costs are counted once on its real module (PyTorch's FlopCounterMode),
each network's are the sums over the kernels it runs: milliseconds per network.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .kernels import decompose, kernel_modules

#: the cost targets, and what a "millisecond" of each means (shown as a device note)
COST_NOTES: dict[str, str] = {
    "macs": "millions of multiply-accumulates of one forward pass at batch 1, not milliseconds "
            "(a cost, not a device: max_latency_ms is read as millions of MACs)",
    "traffic": "millions of values the network's kernels read (inputs and weights), not milliseconds "
               "(a cost, not a device: max_latency_ms is read as millions of values)",
    "kernels": "kernels (runtime calls) of one forward pass, not milliseconds "
               "(a cost, not a device: max_latency_ms is read as a number of kernels)",
}
COST_TARGETS: tuple[str, ...] = tuple(COST_NOTES)


def kernel_costs(space) -> dict[str, tuple[float, float, float]]:
    """``{kernel key: (MACs, values read, 1)}`` of every distinct kernel of ``space``."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    costs = {}
    for kernel, module in kernel_modules(space):
        inputs = [torch.zeros(*shape) for shape in kernel.input_shapes]
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            module(*inputs)
        weights = sum(p.numel() for p in module.parameters())
        read = sum(int(np.prod(shape)) for shape in kernel.input_shapes) + weights
        costs[kernel.key] = (counter.get_total_flops() / 2, float(read), 1.0)
    return costs


def cost_targets(space, archs: Sequence[str]) -> dict[str, np.ndarray]:
    """The :data:`COST_TARGETS` of each of ``archs`` (``{name: [n]}``; MACs and values in
    millions), from the kernels each network runs."""
    per_kernel = kernel_costs(space)
    totals = np.array([np.sum([per_kernel[k.key] for k in decompose(space, a)], axis=0) for a in archs])
    totals = totals.reshape(len(archs), len(COST_TARGETS))
    scales = np.array([1e6, 1e6, 1.0])
    return {name: totals[:, i] / scales[i] for i, name in enumerate(COST_TARGETS)}
