"""Encoders and their batchers by name, importing torch_geometric only for graph encoders."""

from __future__ import annotations

from archgen.errors import UnknownNameError

#: encoder names: graph networks over ArchGraphs (torch_geometric) and the decision-vector encoder
ENCODER_NAMES: tuple[str, ...] = ("gin", "dag", "choices")
#: encoders that read option-index vectors rather than graphs
CHOICE_ENCODERS: frozenset[str] = frozenset({"choices"})


def _check(name: str) -> str:
    if name not in ENCODER_NAMES:
        raise UnknownNameError("graph encoder", name, ENCODER_NAMES)
    return name


def build_encoder(name: str, **options):
    """An encoder by name (``"gin"``, ``"dag"`` or ``"choices"``) with its keyword options."""
    if _check(name) in CHOICE_ENCODERS:
        from .choices import ChoiceEncoder

        return ChoiceEncoder(**options)
    from .encoders import ENCODERS

    return ENCODERS[name](**options)


def make_batcher(space, view: str, encoder: str):
    """What turns arch strings into the inputs of ``encoder``."""
    if _check(encoder) in CHOICE_ENCODERS:
        from .choices import ChoiceBatcher

        return ChoiceBatcher(space)
    from .batching import GraphBatcher

    return GraphBatcher(space, view)


def encoder_options(space, encoder: str) -> dict:
    """Space-dependent options an encoder is built with: the node feature width
    for graph encoders (the op one-hot and the space's ``node_attrs``), the option
    count per slot for the choice encoder."""
    if _check(encoder) in CHOICE_ENCODERS:
        return {"options": [len(o) for o in space.decisions.options]}
    from archgen.ops import legacy_feature_width

    width = legacy_feature_width(space.node_attrs)
    if width is None:
        raise ValueError(f"{type(space).__name__}.node_attrs must be a prefix of archgen.ops.NUMERIC_ATTRS, "
                         f"got {space.node_attrs}")
    return {"in_dim": width}
