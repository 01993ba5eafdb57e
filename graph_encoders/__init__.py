"""Encoders over batches of architectures: GNNs over :class:`archgen.graph.ArchGraph`
(torch_geometric) and the decision-vector encoder (torch only). Names resolve on
first use, so importing the package costs nothing until a graph encoder is needed."""

from .registry import CHOICE_ENCODERS, ENCODER_NAMES, build_encoder, encoder_options, make_batcher

_LAZY = {"GraphBatcher": ".batching", "ENCODERS": ".encoders", "DAGEncoder": ".encoders", "GINEncoder": ".encoders",
         "ChoiceBatcher": ".choices", "ChoiceEncoder": ".choices", "ChoiceBatch": ".choices"}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["CHOICE_ENCODERS", "ENCODER_NAMES", "build_encoder", "encoder_options", "make_batcher", *_LAZY]
