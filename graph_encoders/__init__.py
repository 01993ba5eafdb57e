"""GNN encoders over batches of :class:`archgen.graph.ArchGraph` (torch_geometric)."""

from .batching import GraphBatcher
from .encoders import ENCODERS, DAGEncoder, GINEncoder, build_encoder

__all__ = ["ENCODERS", "DAGEncoder", "GINEncoder", "GraphBatcher", "build_encoder"]
