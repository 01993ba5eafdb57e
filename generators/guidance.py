"""Predictor guidance for sequential samplers, without gradients.

Both generators build an architecture in steps (diffusion: unmask slots;
autoregressive: decide the next slot). At every step a sampler proposes ``m``
*complete* architectures consistent with what is decided so far (diffusion:
draws of ``x0`` from the denoiser; autoregressive: the next op plus a roll-out).
Each is scored by a reward (log of an unnormalised target density, e.g.
``lambda * accuracy_z + log P(latency <= budget)`` from the predictors) and one
is kept with probability ``softmax(reward)``; the step then commits the part it
decides from the kept proposal. This is value-based importance resampling
(SVDD, Li et al. 2024) and aims at ``p_model(x) * exp(reward(x))``. Unlike
gradient guidance (DiffusionNAG) it needs no differentiable predictor, so any
predictor -- ensembles, pruned-graph readers, a calibrated device -- guides it
exactly as it scores.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import numpy as np
import torch

#: a reward over ``[U, S]`` option-index arrays -> ``[U]`` log-weights
Reward = Callable[[np.ndarray], np.ndarray]


#: at most this many sampling steps are steered by the reward, spread evenly over
#: the run (the others draw from the model alone). Every step of a 6-slot
#: NAS-Bench-201 cell is steered; a 22-layer FBNet is steered at 6 of its 22
#: steps, which keeps scoring, the cost of guidance, near NB201's per request.
GUIDED_STEPS = 6


class SequentialSampler(Protocol):
    steps: int  # how many sampling steps a run takes

    def start(self, n: int, generator: torch.Generator): ...
    def done(self, state) -> bool: ...
    def propose(self, state, m: int, generator: torch.Generator) -> torch.Tensor: ...
    def advance(self, state, pick: torch.Tensor, generator: torch.Generator): ...
    def result(self, state) -> torch.Tensor: ...


def guided_sample(
    sampler: SequentialSampler,
    n: int,
    reward: Reward | None = None,
    proposals: int = 4,
    seed: int = 0,
    guided_steps: int = GUIDED_STEPS,
    fixed: dict[int, int] | None = None,
    progress: bool = False,
) -> np.ndarray:
    """``[n, S]`` option indices of ``n`` architectures from ``sampler``, resampled
    toward ``reward`` with ``proposals`` candidates at each of up to ``guided_steps``
    evenly spread steps (unguided if ``reward`` is None). ``fixed`` maps slots to the
    option every sample must take there (a task known only at one resolution):
    every proposal is made to agree, so a sampler commits nothing else there.
    ``progress``: a progress bar over the steps, shown once a run has taken 2 s.
    Reproducible from ``seed``."""
    from tqdm.auto import tqdm

    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"n must be a positive int, got {n!r}")
    if reward is not None and (not isinstance(proposals, int) or proposals < 1):
        raise ValueError(f"proposals must be a positive int, got {proposals!r}")
    if not isinstance(guided_steps, int) or isinstance(guided_steps, bool) or guided_steps < 1:
        raise ValueError(f"guided_steps must be a positive int, got {guided_steps!r}")
    generator = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    state = sampler.start(n, generator)
    rows = torch.arange(n)
    total = max(1, sampler.steps)
    # steered steps: the last of each of `guided_steps` equal stretches of the run
    steered = {(total * (j + 1)) // min(guided_steps, total) - 1 for j in range(min(guided_steps, total))}
    slots = torch.tensor(sorted(fixed or {}), dtype=torch.long)
    values = torch.tensor([fixed[int(s)] for s in slots], dtype=torch.long)

    def propose(m: int) -> torch.Tensor:
        cands = sampler.propose(state, m, generator)  # [n, m, S]
        if len(slots):
            cands[..., slots] = values
        return cands

    bar = tqdm(total=total, desc=f"sampling {n}", unit="step", delay=2.0, disable=not progress, leave=False)
    step = -1
    while not sampler.done(state):
        step += 1
        bar.update(1)
        if reward is None or step not in steered:
            pick = propose(1)[:, 0]
        else:
            cands = propose(proposals)
            flat = cands.reshape(n * proposals, -1).numpy()
            unique, inverse = np.unique(flat, axis=0, return_inverse=True)
            r = np.asarray(reward(unique), dtype=np.float64)[inverse.reshape(-1)].reshape(n, proposals)
            pick = cands[rows, torch.from_numpy(_sample_softmax(r, rng))]
        state = sampler.advance(state, pick, generator)
    bar.close()
    return sampler.result(state).numpy()


def _sample_softmax(logits: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One index per row drawn with probability ``softmax(row)`` (-inf allowed)."""
    top = logits.max(axis=1, keepdims=True)
    top = np.where(np.isfinite(top), top, 0.0)
    w = np.exp(logits - top)
    total = w.sum(axis=1, keepdims=True)
    w = np.where(total > 0, w / np.where(total > 0, total, 1.0), 1.0 / logits.shape[1])
    cumulative = np.cumsum(w, axis=1)
    cumulative[:, -1] = 1.0  # no row may fall off the end through rounding
    return (rng.random((len(w), 1)) < cumulative).argmax(axis=1)
