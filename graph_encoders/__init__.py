"""GNN encoders over batches of :class:`archgen.graph.ArchGraph` (torch_geometric)."""
