"""Masked (absorbing-state) discrete diffusion over a space's decision graph.

Forward process: each slot's op is replaced by a mask token independently with
probability ``t`` (t in [0, 1]). The denoiser, a direction-aware GIN over the
space's template DAG (:class:`~generators.layers.TemplateGINConv`) with the time as input,
predicts every masked slot's op from the unmasked ones; training is
cross-entropy on the masked slots (the MaskGIT / MDLM simplification of the
D3PM bound). Sampling starts fully masked and, over ``steps`` steps, unmasks
each remaining slot with probability ``1/k`` at step k, drawing its op from the
denoiser. Ops are categorical over each slot's own options, so every sample is
a valid architecture. Guidance plugs in through :mod:`generators.guidance`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .layers import MLP, TemplateGINConv
from .layout import LayoutTensors


class MaskedDiffusionModel(nn.Module):
    """Denoiser ``p(x0 | xt, t)`` for every slot of a decision layout."""

    def __init__(self, layout: LayoutTensors, hidden: int = 64, layers: int = 3):
        super().__init__()
        self.layout = layout
        self.token = nn.Embedding(len(layout.vocab), hidden)
        self.position = nn.Embedding(layout.num_nodes, hidden)
        self.time = MLP([1, hidden, hidden])
        edges, n = layout.edge_index, layout.num_nodes
        self.forward_convs = nn.ModuleList(TemplateGINConv(MLP([hidden] * 3), edges, n) for _ in range(layers))
        self.backward_convs = nn.ModuleList(TemplateGINConv(MLP([hidden] * 3), edges.flip(0), n) for _ in range(layers))
        self.context = nn.ModuleList(nn.Linear(hidden, hidden) for _ in range(layers))
        self.head = MLP([hidden, hidden, len(layout.vocab)])

    def forward(self, choices: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Logits ``[B, S, O]`` over each slot's options, given ``[B, S]`` option
        indices with -1 for masked slots and ``[B]`` times."""
        tokens = self.layout.node_tokens(choices)
        h = self.token(tokens) + self.position.weight + self.time(t.view(-1, 1)).unsqueeze(1)  # [B, N, H]
        for fwd, bwd, ctx in zip(self.forward_convs, self.backward_convs, self.context):
            h = torch.relu(fwd(h) + bwd(h) + ctx(h.mean(dim=1)).unsqueeze(1)) + h
        return self.layout.option_logits(self.head(h[:, self.layout.slot_nodes]))

    def loss(self, choices: torch.Tensor) -> torch.Tensor:
        """Cross-entropy of the masked slots at a random time per graph."""
        b, s = choices.shape
        t = torch.rand(b, device=choices.device)
        masked = torch.rand(b, s, device=choices.device) < t.unsqueeze(1)
        # at least one masked slot per graph, so every graph teaches something
        masked[torch.arange(b), torch.randint(0, s, (b,))] = True
        logits = self(torch.where(masked, -1, choices), t)
        return nn.functional.cross_entropy(logits[masked], choices[masked])


@dataclass
class DiffusionState:
    choices: torch.Tensor  # [B, S], -1 = still masked
    step: int  # steps left


class DiffusionSampler:
    """The sequential-sampler interface of :func:`generators.guidance.guided_sample`
    for a :class:`MaskedDiffusionModel`."""

    def __init__(self, model: MaskedDiffusionModel, steps: int | None = None):
        self.model = model.eval()
        self.steps = steps or model.layout.num_slots
        if self.steps < 1:
            raise ValueError(f"steps must be >= 1, got {self.steps}")

    def start(self, n: int, generator: torch.Generator) -> DiffusionState:
        return DiffusionState(torch.full((n, self.model.layout.num_slots), -1, dtype=torch.long), self.steps)

    def done(self, state: DiffusionState) -> bool:
        return state.step == 0

    @torch.no_grad()
    def propose(self, state: DiffusionState, m: int, generator: torch.Generator) -> torch.Tensor:
        """``[B, m, S]`` complete architectures drawn from ``p(x0 | xt)``."""
        b, s = state.choices.shape
        t = torch.full((b,), state.step / self.steps)
        probs = torch.softmax(self.model(state.choices, t), dim=-1)  # [B, S, O]
        draws = torch.multinomial(probs.reshape(b * s, -1), m, replacement=True, generator=generator)
        draws = draws.view(b, s, m).permute(0, 2, 1)  # [B, m, S]
        return torch.where(state.choices.unsqueeze(1) >= 0, state.choices.unsqueeze(1), draws)

    def advance(self, state: DiffusionState, pick: torch.Tensor, generator: torch.Generator) -> DiffusionState:
        """Unmask each masked slot with probability 1/k (all at the last step), taking ``pick``'s ops."""
        reveal = torch.rand(state.choices.shape, generator=generator) < 1.0 / state.step
        choices = torch.where((state.choices < 0) & reveal, pick, state.choices)
        return DiffusionState(choices, state.step - 1)

    def result(self, state: DiffusionState) -> torch.Tensor:
        return state.choices
