"""The two layers the generators' networks are made of, over a fixed template DAG.

A generator always works on its space's decision layout: the same few nodes and
edges for every architecture. Message passing over that template is one dense
``[N, N]`` adjacency product, so these layers need only torch. They keep the
parameter names of torch_geometric's ``MLP`` and ``GINConv`` (``lins.*``,
``nn.*``, ``eps``), so trained generators load either way; what they save is
the torch_geometric import (1.8 s, most of it ``torch._dynamo``), which would
otherwise be the larger part of a cold ``ArchGen.pretrained(...).generate(...)``.
"""

from __future__ import annotations

import torch
from torch import nn


class MLP(nn.Module):
    """``Linear -> ReLU -> ... -> Linear`` over ``channels`` (no norm, no dropout,
    plain last layer: torch_geometric's ``MLP(channels, norm=None)``)."""

    def __init__(self, channels: list[int]):
        super().__init__()
        if len(channels) < 2:
            raise ValueError(f"an MLP needs at least an input and an output width, got {channels}")
        self.lins = nn.ModuleList(nn.Linear(a, b) for a, b in zip(channels[:-1], channels[1:]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for lin in self.lins[:-1]:
            x = torch.relu(lin(x))
        return self.lins[-1](x)


class TemplateGINConv(nn.Module):
    """GIN over a fixed DAG: ``nn((1 + eps) * h_v + sum of h_u over edges u -> v)``
    for node states ``[B, N, H]`` (torch_geometric's ``GINConv(nn, train_eps=True)``
    with sum aggregation, for every graph of the batch at once)."""

    def __init__(self, mlp: nn.Module, edges: torch.Tensor, num_nodes: int):
        super().__init__()
        self.nn = mlp
        self.eps = nn.Parameter(torch.zeros(1))
        adjacency = torch.zeros(num_nodes, num_nodes)
        if edges.numel():  # adjacency[dst, src] counts the edges src -> dst
            adjacency.index_put_((edges[1], edges[0]), torch.ones(edges.size(1)), accumulate=True)
        self.register_buffer("adjacency", adjacency, persistent=False)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.nn((1 + self.eps) * h + torch.matmul(self.adjacency, h))
