"""Architectures -> ``torch_geometric`` batches, fast enough for scoring tens of
thousands of candidates a second (each graph is converted once and cached)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch_geometric.data import Batch, Data

from archgen.graph import arrays_to_pyg, node_features
from archgen.spaces.base import check_view


class GraphBatcher:
    """Converts arch strings of one search space into batches, caching each
    graph's arrays by arch string (bounded by ``max_cache`` entries)."""

    def __init__(self, space, view: str = "full", max_cache: int = 200_000):
        self.space = space
        self.view = check_view(view)
        self.max_cache = max_cache
        self._cache: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}

    def arrays(self, arch: str):
        """``(op_index, attrs, edge_index)`` of one architecture (cached)."""
        arrays = self._cache.get(arch)
        if arrays is None:
            arrays = self.space.graph_arrays(arch, self.view)
            if len(self._cache) >= self.max_cache:
                self._cache.pop(next(iter(self._cache)))
            self._cache[arch] = arrays
        return arrays

    def data(self, arch: str) -> Data:
        return arrays_to_pyg(*self.arrays(arch))

    def batch(self, archs: Sequence[str]) -> Batch:
        """One ``Batch`` of the graphs of ``archs`` (canonical strings of the space),
        assembled with vectorised numpy (no per-graph ``Data`` objects)."""
        if len(archs) == 0:
            raise ValueError("cannot batch an empty list of architectures")
        parts = [self.arrays(a) for a in archs]
        sizes = np.fromiter((len(p[0]) for p in parts), dtype=np.int64, count=len(parts))
        edge_counts = np.fromiter((p[2].shape[1] for p in parts), dtype=np.int64, count=len(parts))
        ptr = np.zeros(len(parts) + 1, dtype=np.int64)
        np.cumsum(sizes, out=ptr[1:])
        edge_index = np.concatenate([p[2] for p in parts], axis=1) + np.repeat(ptr[:-1], edge_counts)
        op = torch.from_numpy(np.concatenate([p[0] for p in parts]))
        attrs = torch.from_numpy(np.concatenate([p[1] for p in parts]))
        return Batch(
            x=node_features(op, attrs), op=op, edge_index=torch.from_numpy(edge_index),
            batch=torch.repeat_interleave(torch.arange(len(parts)), torch.from_numpy(sizes)),
            ptr=torch.from_numpy(ptr),
        )
