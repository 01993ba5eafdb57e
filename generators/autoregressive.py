"""Autoregressive generation of a DAG node by node (the D-VAE decoder family).

Nodes are visited in topological order. A node's state is a GRU update of its
op token from the gated sum of its predecessors' states (asynchronous message
passing, as in D-VAE / DAGNN). Before a slot node's op is chosen, its
distribution is read from the states of the predecessors it is wired to, the
mean state of the graph built so far and its position. Edges come from the
space's template DAG: where a space lets wiring vary, an edge is itself a slot
decided in this order. Ops are categorical over each slot's options, so every
sample is a valid architecture.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .layers import MLP
from .layout import LayoutTensors


class AutoregressiveModel(nn.Module):
    """``p(x) = prod_s p(x_s | x_<s)`` over the slots of a decision layout."""

    def __init__(self, layout: LayoutTensors, hidden: int = 64):
        super().__init__()
        self.layout = layout
        self.hidden = hidden
        self.token = nn.Embedding(len(layout.vocab), hidden)
        self.position = nn.Embedding(layout.num_nodes, hidden)
        self.cell = nn.GRUCell(hidden, hidden)
        self.gate = nn.Linear(hidden, hidden)
        self.message = nn.Linear(hidden, hidden, bias=False)
        self.head = MLP([3 * hidden, hidden, len(layout.vocab)])

    def _incoming(self, states: torch.Tensor, v: int) -> torch.Tensor:
        preds = self.layout.predecessors[v]
        if not preds:
            return states.new_zeros(states.size(0), self.hidden)
        hs = states[:, preds]  # [B, P, H]
        return (torch.sigmoid(self.gate(hs)) * self.message(hs)).sum(dim=1)

    def _slot_logits(self, states: torch.Tensor, v: int) -> torch.Tensor:
        """``[B, O]`` logits of the slot at node ``v`` (nodes < v have states)."""
        b = states.size(0)
        built = states[:, :v].mean(dim=1) if v else states.new_zeros(b, self.hidden)
        ctx = torch.cat([self._incoming(states, v), built, self.position.weight[v].expand(b, -1)], dim=1)
        s = self.layout.slot_of_node[v]
        logits = self.head(ctx).gather(1, self.layout.option_tokens[s].expand(b, -1))
        return logits.masked_fill(~self.layout.option_valid[s], float("-inf"))

    def _update(self, states: torch.Tensor, v: int, tokens: torch.Tensor) -> torch.Tensor:
        """States with node ``v``'s state computed from its ``[B]`` tokens."""
        h = self.cell(self.token(tokens) + self.position.weight[v], self._incoming(states, v))
        states = states.clone()
        states[:, v] = h
        return states

    def loss(self, choices: torch.Tensor) -> torch.Tensor:
        """Teacher-forced cross-entropy of every slot."""
        b = choices.size(0)
        tokens = self.layout.node_tokens(choices)
        states = choices.new_zeros(b, self.layout.num_nodes, self.hidden, dtype=torch.float)
        total = 0.0
        for v in range(self.layout.num_nodes):
            if v in self.layout.slot_of_node:
                total = total + nn.functional.cross_entropy(self._slot_logits(states, v), choices[:, self.layout.slot_of_node[v]])
            states = self._update(states, v, tokens[:, v])
        return total / self.layout.num_slots


@dataclass
class AutoregressiveState:
    choices: torch.Tensor  # [B, S], -1 = not decided yet
    states: torch.Tensor  # [B, N, H], filled for nodes < node
    node: int  # next node to visit (a slot node, or num_nodes when done)


class AutoregressiveSampler:
    """The sequential-sampler interface of :func:`generators.guidance.guided_sample`
    for an :class:`AutoregressiveModel`: proposals are the next slot's op
    followed by an unguided roll-out of the rest."""

    def __init__(self, model: AutoregressiveModel):
        self.model = model.eval()
        self.layout = model.layout
        self.steps = model.layout.num_slots

    def _walk_fixed(self, state: AutoregressiveState) -> AutoregressiveState:
        """Visit fixed nodes until the next slot node."""
        v, states = state.node, state.states
        while v < self.layout.num_nodes and v not in self.layout.slot_of_node:
            tokens = self.layout.fixed_tokens[v].expand(states.size(0))
            states = self.model._update(states, v, tokens)
            v += 1
        return AutoregressiveState(state.choices, states, v)

    def _decide(self, state: AutoregressiveState, option: torch.Tensor) -> AutoregressiveState:
        v = state.node
        s = self.layout.slot_of_node[v]
        choices = state.choices.clone()
        choices[:, s] = option
        states = self.model._update(state.states, v, self.layout.option_tokens[s][option])
        return self._walk_fixed(AutoregressiveState(choices, states, v + 1))

    def _draw(self, state: AutoregressiveState, m: int, generator: torch.Generator) -> torch.Tensor:
        probs = torch.softmax(self.model._slot_logits(state.states, state.node), dim=-1)
        return torch.multinomial(probs, m, replacement=True, generator=generator)  # [B, m]

    def start(self, n: int, generator: torch.Generator) -> AutoregressiveState:
        choices = torch.full((n, self.layout.num_slots), -1, dtype=torch.long)
        states = torch.zeros(n, self.layout.num_nodes, self.model.hidden)
        return self._walk_fixed(AutoregressiveState(choices, states, 0))

    def done(self, state: AutoregressiveState) -> bool:
        return state.node >= self.layout.num_nodes

    @torch.no_grad()
    def propose(self, state: AutoregressiveState, m: int, generator: torch.Generator) -> torch.Tensor:
        """``[B, m, S]``: m draws of the next op, each completed by ancestral sampling."""
        b = state.choices.size(0)
        first = self._draw(state, m, generator).reshape(-1)
        rollout = AutoregressiveState(state.choices.repeat_interleave(m, 0), state.states.repeat_interleave(m, 0), state.node)
        rollout = self._decide(rollout, first)
        while not self.done(rollout):
            rollout = self._decide(rollout, self._draw(rollout, 1, generator)[:, 0])
        return rollout.choices.view(b, m, -1)

    @torch.no_grad()
    def advance(self, state: AutoregressiveState, pick: torch.Tensor, generator: torch.Generator) -> AutoregressiveState:
        return self._decide(state, pick[:, self.layout.slot_of_node[state.node]])

    def result(self, state: AutoregressiveState) -> torch.Tensor:
        return state.choices
