"""An encoder of an architecture's decisions, for spaces where a graph network costs too much.

A generation request in a space too large to enumerate scores tens of thousands
of proposals that nobody encoded before; a GNN over a 30-node graph costs about
0.4 ms per architecture on a CPU core, which caps a request at about a hundred
samples. Every architecture of a space with a :class:`~archgen.spaces.base.DecisionLayout`
*is* its vector of option indices, so an encoder can read that vector directly:
one learned embedding per (slot, option), concatenated, through an MLP. It costs
microseconds per architecture, needs neither torch_geometric nor an arch string
(:meth:`ChoiceBatcher.from_choices`), and what it loses against the graph network
is measured by ``bench/anb.py --part accuracy``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn


@dataclass
class ChoiceBatch:
    """``choices``: ``[num_archs, num_slots]`` option indices (long). Not frozen:
    Lightning moves a batch to the device by rebuilding its dataclass."""

    choices: torch.Tensor

    @property
    def num_graphs(self) -> int:
        return self.choices.size(0)


class ChoiceBatcher:
    """Arch strings (or option-index arrays) of one space -> :class:`ChoiceBatch`."""

    def __init__(self, space):
        self.space = space

    def batch(self, archs: Sequence[str]) -> ChoiceBatch:
        if len(archs) == 0:
            raise ValueError("cannot batch an empty list of architectures")
        return ChoiceBatch(torch.tensor([self.space.encode_choices(a) for a in archs], dtype=torch.long))

    def from_choices(self, choices: np.ndarray) -> ChoiceBatch:
        """A batch straight from ``[n, S]`` option indices (canonicalised by the space)."""
        return ChoiceBatch(torch.from_numpy(np.ascontiguousarray(self.space.canonical_choices(choices), dtype=np.int64)))


class ChoiceEncoder(nn.Module):
    """``options[s]`` options per slot -> ``[n, out_dim]``: per-(slot, option)
    embeddings of ``embed`` dims, concatenated, then ``Linear -> ReLU -> Linear -> ReLU -> Linear``."""

    def __init__(self, options: Sequence[int], hidden: int = 128, out_dim: int = 8, embed: int = 8):
        super().__init__()
        options = [int(o) for o in options]
        if not options or min(options) < 1:
            raise ValueError(f"options must list at least one slot with >= 1 option each, got {options}")
        self.out_dim = out_dim
        self.register_buffer("offsets", torch.tensor(np.concatenate([[0], np.cumsum(options)[:-1]]), dtype=torch.long),
                             persistent=False)
        self.embed = nn.Embedding(int(sum(options)), embed)
        self.mlp = nn.Sequential(nn.Linear(len(options) * embed, hidden), nn.ReLU(), nn.Linear(hidden, hidden),
                                 nn.ReLU(), nn.Linear(hidden, out_dim))

    def forward(self, batch: ChoiceBatch) -> torch.Tensor:
        e = self.embed(batch.choices + self.offsets)  # [n, S, embed]
        return self.mlp(e.flatten(1))
