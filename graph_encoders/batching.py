"""Architectures -> ``torch_geometric`` batches, fast enough for scoring tens of
thousands of candidates a second (each graph is converted once and cached)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch_geometric.data import Batch, Data


#: graph views an encoder can read: the architecture as built, or with ``none``
#: ops and the ops they cut off from the output removed (what the network computes)
VIEWS = ("full", "pruned")


class GraphBatcher:
    """Converts arch strings of one search space into batches, caching each
    graph's ``Data`` by arch string (bounded by ``max_cache`` entries)."""

    def __init__(self, space, view: str = "full", max_cache: int = 200_000):
        if view not in VIEWS:
            raise ValueError(f"unknown graph view {view!r}; valid: {', '.join(VIEWS)}")
        self.space = space
        self.view = view
        self.max_cache = max_cache
        self._cache: dict[str, Data] = {}

    def data(self, arch: str) -> Data:
        d = self._cache.get(arch)
        if d is None:
            graph = self.space.to_graph(arch)
            d = (graph.pruned() if self.view == "pruned" else graph).to_pyg()
            if len(self._cache) >= self.max_cache:
                self._cache.pop(next(iter(self._cache)))
            self._cache[arch] = d
        return d

    def batch(self, archs: Sequence[str]) -> Batch:
        """One ``Batch`` of the graphs of ``archs`` (canonical strings of the space)."""
        if len(archs) == 0:
            raise ValueError("cannot batch an empty list of architectures")
        datas = [self.data(a) for a in archs]
        sizes = torch.tensor([d.num_nodes for d in datas])
        ptr = torch.zeros(len(datas) + 1, dtype=torch.long)
        ptr[1:] = torch.cumsum(sizes, 0)
        edge_index = torch.cat([d.edge_index + int(ptr[i]) for i, d in enumerate(datas)], dim=1)
        return Batch(
            x=torch.cat([d.x for d in datas]),
            op=torch.cat([d.op for d in datas]),
            edge_index=edge_index,
            batch=torch.repeat_interleave(torch.arange(len(datas)), sizes),
            ptr=ptr,
        )
