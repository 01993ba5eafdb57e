"""A space's :class:`~archgen.spaces.base.DecisionLayout` as tensors generators compute with.

Nodes carry *tokens*: the op name of a fixed node, the chosen option of a slot
node, or :attr:`LayoutTensors.mask` for a slot not decided yet. Tokens are
shared across slots by op name, so "nor_conv_3x3" means the same thing wherever
it appears; a node's position embedding tells slots apart.
"""

from __future__ import annotations

import torch

from archgen.spaces.base import DecisionLayout

#: the token of a slot not decided yet
MASK = "<mask>"


class LayoutTensors:
    """Token vocabulary, option tables and wiring of one decision layout."""

    def __init__(self, layout: DecisionLayout):
        if any(src >= dst for src, dst in layout.edges):
            raise ValueError("decision layout edges must point from lower to higher node numbers")
        self.layout = layout
        names = {op for op in layout.node_ops if op is not None} | {op for opts in layout.options for op in opts}
        self.vocab: tuple[str, ...] = (*sorted(names), MASK)
        token = {name: i for i, name in enumerate(self.vocab)}
        self.mask = token[MASK]
        self.num_nodes, self.num_slots = layout.num_nodes, layout.num_slots
        self.max_options = max(len(o) for o in layout.options)
        # [S, O]: token of option o of slot s (padding rows point at MASK and are never sampled)
        self.option_tokens = torch.tensor(
            [[token[op] for op in opts] + [self.mask] * (self.max_options - len(opts)) for opts in layout.options]
        )
        self.option_valid = torch.tensor(
            [[True] * len(opts) + [False] * (self.max_options - len(opts)) for opts in layout.options]
        )
        self.slot_nodes = torch.tensor(layout.slot_nodes)
        self.slot_of_node = {node: s for s, node in enumerate(layout.slot_nodes)}
        self.fixed_tokens = torch.tensor([token[op] if op is not None else self.mask for op in layout.node_ops])
        self.edge_index = torch.tensor(layout.edges, dtype=torch.long).t().reshape(2, -1)
        self.predecessors = [[s for s, d in layout.edges if d == v] for v in range(self.num_nodes)]

    @property
    def signature(self) -> list[list[str]]:
        """What a trained generator must match to be used with a space."""
        return [list(o) for o in self.layout.options] + [[str(op) for op in self.layout.node_ops]]

    def node_tokens(self, choices: torch.Tensor) -> torch.Tensor:
        """``[B, N]`` tokens for ``[B, S]`` option indices (-1 = undecided)."""
        b = choices.size(0)
        tokens = self.fixed_tokens.expand(b, -1).clone()
        picked = self.option_tokens[torch.arange(self.num_slots), choices.clamp_min(0)]  # [B, S]
        tokens[:, self.slot_nodes] = torch.where(choices >= 0, picked, torch.full_like(picked, self.mask))
        return tokens

    def option_logits(self, token_logits: torch.Tensor) -> torch.Tensor:
        """``[B, S, V]`` logits over tokens -> ``[B, S, O]`` over each slot's options."""
        idx = self.option_tokens.expand(token_logits.size(0), -1, -1)
        logits = token_logits.gather(2, idx)
        return logits.masked_fill(~self.option_valid, float("-inf"))
