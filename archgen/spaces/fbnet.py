"""The FBNet space of HW-NAS-Bench (CIFAR setting): 22 layers, 9 blocks each (9^22).

Network: a 3x3 stem conv to 16 channels on a 3x32x32 input, 22 searchable layers
in 7 stages (:data:`STAGE_LAYERS` layers of :data:`STAGE_CHANNELS` output channels,
the first layer of a stage striding by :data:`STAGE_STRIDES`), a 1x1 conv to 1504
channels, global average pooling and a linear classifier (100 classes in the
benchmark). Each layer is one of :data:`BLOCKS`: ``k{K}_e{E}[_g2]`` is an inverted
residual with a KxK depthwise conv and expansion E (``_g2``: grouped 1x1 convs and a
channel shuffle), ``skip`` an identity (a 1x1 conv where the layer changes shape).

Arch string: the 22 block names in layer order joined by ``-``, e.g.
``k3_e1-skip-k5_e6-...`` (block names contain no ``-``). Graph form: a chain
input -> stem ``conv`` -> one node per layer (``mbconv`` or ``skip_connect``, with
its shape as attributes) -> ``conv`` 1x1 -> ``global_pool`` -> ``linear`` -> output.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import InvalidArchError
from ..graph import ArchGraph
from ..ops import NUMERIC_ATTRS, OP_INDEX, encode_attr
from ..validation import quote
from .base import DecisionLayout, SearchSpace, chain_order, check_view

#: the nine block choices, in HW-NAS-Bench's op-index order
BLOCKS: tuple[str, ...] = ("k3_e1", "k3_e1_g2", "k3_e3", "k3_e6", "k5_e1", "k5_e1_g2", "k5_e3", "k5_e6", "skip")
SKIP = "skip"
#: (kernel, expand, groups) of each inverted-residual block
BLOCK_CONFIG: dict[str, tuple[int, int, int]] = {
    name: (int(name[1]), int(name.split("_")[1][1:]), 2 if name.endswith("_g2") else 1)
    for name in BLOCKS if name != SKIP
}
STAGE_LAYERS: tuple[int, ...] = (1, 4, 4, 4, 4, 4, 1)
STAGE_CHANNELS: tuple[int, ...] = (16, 24, 32, 64, 112, 184, 352)
STAGE_STRIDES: tuple[int, ...] = (1, 1, 2, 2, 1, 2, 1)  # HW-NAS-Bench's CIFAR setting
STEM_CHANNELS = 16
HEAD_CHANNELS = 1504
INPUT_RESOLUTION = 32
#: classes of the benchmark's head (CIFAR-100); the graph's ``linear`` node has this many outputs
NUM_CLASSES = 100
NUM_LAYERS = sum(STAGE_LAYERS)
NUM_ARCHS = len(BLOCKS) ** NUM_LAYERS
_BLOCK_POSITION = {name: i for i, name in enumerate(BLOCKS)}


@dataclass(frozen=True)
class LayerShape:
    """Where a layer sits and the tensor shapes around it (fixed by the space)."""

    stage: int
    channels_in: int
    channels_out: int
    stride: int
    resolution: int  # input spatial size

    @property
    def identity_skip(self) -> bool:
        """Whether ``skip`` is an identity here (else a shape-adapting 1x1 conv)."""
        return self.stride == 1 and self.channels_in == self.channels_out


def _layer_shapes() -> tuple[LayerShape, ...]:
    shapes, c_in, res = [], STEM_CHANNELS, INPUT_RESOLUTION
    for stage, (n, c_out, stride) in enumerate(zip(STAGE_LAYERS, STAGE_CHANNELS, STAGE_STRIDES)):
        for i in range(n):
            s = stride if i == 0 else 1
            shapes.append(LayerShape(stage, c_in, c_out, s, res))
            c_in, res = c_out, -(-res // s)
    return tuple(shapes)


#: the shape of each of the 22 layers
LAYER_SHAPES: tuple[LayerShape, ...] = _layer_shapes()
HEAD_RESOLUTION = -(-LAYER_SHAPES[-1].resolution // LAYER_SHAPES[-1].stride)

# -- the graph template: node ids in chain order --------------------------------------
_FIRST_LAYER_NODE = 2  # 0 input, 1 stem
LAYER_NODES: tuple[int, ...] = tuple(range(_FIRST_LAYER_NODE, _FIRST_LAYER_NODE + NUM_LAYERS))
_PREFIX: tuple[tuple[str, dict], ...] = (
    ("input", {}),
    ("conv", dict(kernel=3, stride=1, channels_in=3, channels_out=STEM_CHANNELS, resolution=INPUT_RESOLUTION)),
)
_SUFFIX: tuple[tuple[str, dict], ...] = (
    ("conv", dict(kernel=1, stride=1, channels_in=STAGE_CHANNELS[-1], channels_out=HEAD_CHANNELS,
                  resolution=HEAD_RESOLUTION)),
    ("global_pool", dict(channels_in=HEAD_CHANNELS, channels_out=HEAD_CHANNELS, resolution=HEAD_RESOLUTION)),
    ("linear", dict(channels_in=HEAD_CHANNELS, channels_out=NUM_CLASSES)),
    ("output", {}),
)
NUM_NODES = len(_PREFIX) + NUM_LAYERS + len(_SUFFIX)
TEMPLATE_EDGES: tuple[tuple[int, int], ...] = tuple((v, v + 1) for v in range(NUM_NODES - 1))


def layer_node(block: str, shape: LayerShape) -> tuple[str, dict]:
    """Op and attributes of the graph node of ``block`` at a layer of shape ``shape``."""
    attrs = dict(stride=shape.stride, channels_in=shape.channels_in, channels_out=shape.channels_out,
                 resolution=shape.resolution)
    if block == SKIP:
        return "skip_connect", attrs
    kernel, expand, groups = BLOCK_CONFIG[block]
    return "mbconv", dict(kernel=kernel, expand=expand, groups=groups, **attrs)


def _attr_row(attrs: dict) -> np.ndarray:
    row = np.zeros(len(NUMERIC_ATTRS), dtype=np.float32)
    for key, value in attrs.items():
        row[NUMERIC_ATTRS.index(key)] = encode_attr(value)
    return row


# fast-path tables for graph_arrays: the fixed nodes, and every (layer, block) node
_FIXED_NODES = (*_PREFIX, *([None] * NUM_LAYERS), *_SUFFIX)
_BASE_OPS = np.array([OP_INDEX[n[0]] if n else 0 for n in _FIXED_NODES], dtype=np.int64)
_BASE_ATTRS = np.stack([_attr_row(n[1]) if n else _attr_row({}) for n in _FIXED_NODES])
_LAYER_OPS = np.array([[OP_INDEX[layer_node(b, s)[0]] for b in BLOCKS] for s in LAYER_SHAPES], dtype=np.int64)
_LAYER_ATTRS = np.stack([np.stack([_attr_row(layer_node(b, s)[1]) for b in BLOCKS]) for s in LAYER_SHAPES])
_EDGE_INDEX = np.array(TEMPLATE_EDGES, dtype=np.int64).T.reshape(2, -1)
_LAYER_RANGE = np.arange(NUM_LAYERS)


def _canonical_layers(text) -> tuple[str, ...] | None:
    """The blocks of an exactly canonical arch string, else None (a fast path)."""
    if not isinstance(text, str):
        return None
    layers = tuple(text.split("-"))
    return layers if len(layers) == NUM_LAYERS and all(b in _BLOCK_POSITION for b in layers) else None


def _num(value) -> float | None:
    return None if isinstance(value, bool) or not isinstance(value, (int, float)) else float(value)


class FBNetSpace(SearchSpace):
    """HW-NAS-Bench's FBNet space (CIFAR-100 setting, input 3x32x32)."""

    name = "fbnet"
    shaped_graphs = True
    input_shape = (3, 32, 32)
    blocks = BLOCKS

    # -- strings ------------------------------------------------------------------
    def parse(self, text: str) -> str:
        """Validate an arch string (``-``-joined block names, whitespace around
        tokens tolerated) and return its canonical form."""
        return text if _canonical_layers(text) else self.format(self.parse_layers(text))

    def parse_layers(self, text: str) -> tuple[str, ...]:
        """The 22 block names of an arch string, in layer order."""
        layers = _canonical_layers(text)
        if layers:
            return layers  # the common, well-formed case; errors take the long way below
        if not isinstance(text, str):
            raise InvalidArchError(f"an FBNet arch must be a string, got {type(text).__name__}")
        tokens = [t.strip() for t in text.strip().split("-")]
        if tokens == [""]:
            tokens = []
        if len(tokens) != NUM_LAYERS:
            raise InvalidArchError(
                f"FBNet has {NUM_LAYERS} layers, got {len(tokens)} in {quote(text)} "
                f"(expected {NUM_LAYERS} block names joined by '-', e.g. {'-'.join(['k3_e1'] * 3)}-...)"
            )
        return self._check_layers(tokens)

    @staticmethod
    def _check_layers(layers: Sequence) -> tuple[str, ...]:
        for i, block in enumerate(layers):
            if block not in _BLOCK_POSITION:
                raise InvalidArchError(
                    f"layer {i} has unknown block {quote(block, 60)}; FBNet blocks: {', '.join(BLOCKS)}"
                )
        return tuple(layers)

    @classmethod
    def format(cls, layers: Sequence[str]) -> str:
        """Arch string of 22 block names in layer order."""
        if isinstance(layers, str) or not isinstance(layers, Sequence):
            raise InvalidArchError(
                f"format takes a sequence of {NUM_LAYERS} block names, got {type(layers).__name__}"
            )
        if len(layers) != NUM_LAYERS:
            raise InvalidArchError(f"FBNet has {NUM_LAYERS} layers, got {len(layers)}")
        return "-".join(cls._check_layers(layers))

    def from_record(self, layers: Sequence[str]) -> str:
        """The arch string of a benchmark table row (``layer0 ... layer21``, index
        column excluded): 22 block names, whitespace around them tolerated. A
        string is read as an arch string (:meth:`parse`)."""
        if isinstance(layers, str):
            return self.parse(layers)
        if not isinstance(layers, Sequence):
            raise InvalidArchError(
                f"an FBNet record is a sequence of {NUM_LAYERS} block names, got {type(layers).__name__}"
            )
        return self.format([b.strip() if isinstance(b, str) else b for b in layers])

    # -- index (base-9 code of the blocks, layer 0 most significant) ------------------
    @property
    def size(self) -> int:
        return NUM_ARCHS

    def index_of(self, arch: str) -> int:
        """Base-9 code of the blocks (:data:`BLOCKS` positions, layer 0 most significant)."""
        code = 0
        for block in self.parse_layers(arch):
            code = code * len(BLOCKS) + _BLOCK_POSITION[block]
        return code

    def arch_at(self, index: int) -> str:
        """Inverse of :meth:`index_of`."""
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < NUM_ARCHS:
            raise InvalidArchError(f"FBNet index must be an int in 0..9^22-1, got {quote(index, 60)}")
        digits = []
        for _ in range(NUM_LAYERS):
            index, r = divmod(index, len(BLOCKS))
            digits.append(BLOCKS[r])
        return "-".join(reversed(digits))

    # -- graphs -------------------------------------------------------------------------
    def to_graph(self, arch: str) -> ArchGraph:
        layers = self.parse_layers(arch)
        g = ArchGraph()
        for op, attrs in _PREFIX:
            g.add_node(op, **attrs)
        for block, shape in zip(layers, LAYER_SHAPES):
            op, attrs = layer_node(block, shape)
            g.add_node(op, **attrs)
        for op, attrs in _SUFFIX:
            g.add_node(op, **attrs)
        for src, dst in TEMPLATE_EDGES:
            g.add_edge(src, dst)
        return g

    def from_graph(self, graph: ArchGraph) -> str:
        """Decode an FBNet chain graph (any node numbering); every node's op and
        attributes must be those :meth:`to_graph` gives at its position."""
        if not isinstance(graph, ArchGraph):
            raise InvalidArchError(f"expected an ArchGraph, got {type(graph).__name__}")
        if graph.num_nodes != NUM_NODES:
            raise InvalidArchError(
                f"an FBNet graph has {NUM_NODES} nodes (input, stem, {NUM_LAYERS} layers, head conv, "
                f"global_pool, linear, output), got {graph.num_nodes}"
            )
        order = chain_order(graph, "an FBNet graph")
        layers = []
        for i, shape in enumerate(LAYER_SHAPES):
            node = order[_FIRST_LAYER_NODE + i]
            layers.append(self._decode_layer(i, shape, graph.op(node), graph.attrs(node), node))
        expected = self.to_graph(self.format(layers))
        for position, node in enumerate(order):
            if not _same_node(expected.op(position), expected.attrs(position), graph.op(node), graph.attrs(node)):
                raise InvalidArchError(
                    f"node {node} (position {position} of the chain) is {_describe(graph.op(node), graph.attrs(node))}; "
                    f"an FBNet graph has {_describe(expected.op(position), expected.attrs(position))} there"
                )
        return self.format(layers)

    @staticmethod
    def _decode_layer(i: int, shape: LayerShape, op: str, attrs: dict, node: int) -> str:
        if op == "skip_connect":
            return SKIP
        if op == "mbconv":
            config = tuple(_num(attrs.get(k)) for k in ("kernel", "expand", "groups"))
            for block, known in BLOCK_CONFIG.items():
                if config == tuple(map(float, known)):
                    return block
            raise InvalidArchError(
                f"node {node} (layer {i}) is an mbconv with kernel={attrs.get('kernel')!r}, "
                f"expand={attrs.get('expand')!r}, groups={attrs.get('groups')!r}, which is no FBNet block; "
                f"FBNet blocks: {', '.join(BLOCKS)}"
            )
        raise InvalidArchError(
            f"node {node} (layer {i}) has op {op!r}; an FBNet layer is 'mbconv' or 'skip_connect'"
        )

    def graph_arrays(self, arch: str, view: str = "full"):
        """Fast path of :meth:`SearchSpace.graph_arrays`: the chain and its fixed nodes
        never change, and each layer's node row is looked up per (layer, block). FBNet
        graphs have no ``none`` ops, so the pruned view equals the full one."""
        check_view(view)
        choice = [_BLOCK_POSITION[b] for b in self.parse_layers(arch)]
        ops, attrs = _BASE_OPS.copy(), _BASE_ATTRS.copy()
        ops[LAYER_NODES[0]:LAYER_NODES[-1] + 1] = _LAYER_OPS[_LAYER_RANGE, choice]
        attrs[LAYER_NODES[0]:LAYER_NODES[-1] + 1] = _LAYER_ATTRS[_LAYER_RANGE, choice]
        return ops, attrs, _EDGE_INDEX.copy()

    # -- decisions -----------------------------------------------------------------------
    @property
    def decisions(self) -> DecisionLayout:
        """22 slots (the layer nodes of the chain template), the 9 block names each."""
        return DecisionLayout(
            options=(BLOCKS,) * NUM_LAYERS,
            slot_nodes=LAYER_NODES,
            node_ops=(*(op for op, _ in _PREFIX), *([None] * NUM_LAYERS), *(op for op, _ in _SUFFIX)),
            edges=TEMPLATE_EDGES,
        )

    def encode_choices(self, arch: str) -> tuple[int, ...]:
        return tuple(_BLOCK_POSITION[b] for b in self.parse_layers(arch))

    def decode_choices(self, choices: Sequence[int]) -> str:
        if len(choices) == NUM_LAYERS and all(type(c) is int and 0 <= c < len(BLOCKS) for c in choices):
            return "-".join(BLOCKS[c] for c in choices)  # fast path for generators
        return "-".join(BLOCKS[c] for c in self._check_choices(choices))

    # -- exploration ----------------------------------------------------------------------
    def sample(self, n: int, seed: int = 0) -> list[str]:
        """``n`` distinct architectures, each layer's block uniform and independent."""
        n = self._check_count(n)
        rng = self._rng(seed)
        seen: dict[str, None] = {}
        while len(seen) < n:  # 9^22 architectures: a repeat is astronomically rare
            seen[self.arch_at(rng.randrange(NUM_ARCHS))] = None
        return list(seen)

    def mutate(self, arch: str, seed: int = 0) -> str:
        """``arch`` with one layer (uniform) changed to another block (uniform)."""
        layers = list(self.parse_layers(arch))
        rng = self._rng(seed)
        k = rng.randrange(NUM_LAYERS)
        layers[k] = rng.choice([b for b in BLOCKS if b != layers[k]])
        return "-".join(layers)

    # -- function ---------------------------------------------------------------------------
    def equivalence_key(self, arch: str) -> str:
        """The network with its identity ``skip`` layers removed: per stage, the
        blocks that compute something, stages separated by ``/``.

        A ``skip`` at a layer of stride 1 whose input and output widths agree is an
        identity, so architectures that differ only in where such skips sit within
        a stage build the same network. Every other block (a shape-adapting
        ``skip`` included) is kept in order.
        """
        layers = self.parse_layers(arch)
        stages: list[list[str]] = [[] for _ in STAGE_LAYERS]
        for block, shape in zip(layers, LAYER_SHAPES):
            if not (block == SKIP and shape.identity_skip):
                stages[shape.stage].append(block)
        return "/".join("-".join(stage) for stage in stages)

    # -- building -----------------------------------------------------------------------------
    def to_module(self, arch: str, num_classes: int = NUM_CLASSES, **options):
        """The HW-NAS-Bench FBNet CIFAR network (see :class:`~archgen.spaces.fbnet_network.FBNetNetwork`)."""
        from .fbnet_network import FBNetNetwork

        layers = [(None if block == SKIP else BLOCK_CONFIG[block], shape)
                  for block, shape in zip(self.parse_layers(arch), LAYER_SHAPES)]
        return FBNetNetwork(layers, num_classes=num_classes, stem_channels=STEM_CHANNELS,
                            head_channels=HEAD_CHANNELS, **options)


def _same_node(op_a: str, attrs_a: dict, op_b: str, attrs_b: dict) -> bool:
    return op_a == op_b and set(attrs_a) == set(attrs_b) and all(_num(attrs_b[k]) == float(v) for k, v in attrs_a.items())


def _describe(op: str, attrs: dict) -> str:
    inner = ", ".join(f"{k}={v:g}" if _num(v) is not None else f"{k}={v!r}" for k, v in sorted(attrs.items()))
    return f"{op}({inner})"
