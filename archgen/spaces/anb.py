"""The Accel-NASBench space: MnasNet-style MBConv stages on the EfficientNet-B0 skeleton (ImageNet).

Network (``AccelNASBenchNet`` of afzalxo/ANB-DatasetCollection, ``models/accelbenchnet.py``):
a 3x3 stem conv stride 2 to 32 channels on a 3x224x224 input; seven MBConv stages of
output widths :data:`STAGE_WIDTHS`, the first layer of a stage striding by
:data:`STAGE_STRIDES`; a 1x1 conv to 1280, global average pooling, dropout and a
linear classifier. Per stage four choices: expansion ratio ``e`` in {1, 4, 6},
depthwise kernel ``k`` in {3, 5}, number of layers ``l`` and squeeze-excite on/off.
As in the benchmark's configuration space (``configurationspaces/configuration_space_writer.py``,
``searchables/searchables.py``: "Choices are 1,2,3 for all blocks except 6th") a stage
has 1..3 layers, except the 6th (the EfficientNet-B0 stage of four 192-wide layers),
which has 1..4: :data:`STAGE_LAYERS`. Hence ``36**6 * 48 = 104,485,552,128``
architectures (about 1.04e11; with 1..4 layers everywhere it would be
``48**7`` = about 5.87e11). All 4,626 benchmark architectures lie in it.

Arch string: the 7 stages joined by ``-``, each ``e{E}_k{K}_l{L}`` plus ``_se`` when
squeeze-excite is on, e.g. EfficientNet-B0:
``e1_k3_l1_se-e6_k3_l2_se-e6_k5_l2_se-e6_k3_l3_se-e6_k5_l3_se-e6_k5_l4_se-e6_k3_l1_se``.
Benchmark records (lists ``e``, ``k``, ``l``, ``se`` of 7) convert with
:meth:`AnbSpace.from_record`.

Graph form: a chain ``input -> conv (stem) -> 7 x 4 slot nodes -> conv (1280) ->
global_pool -> linear -> output``, where a stage's used layers are ``mbconv`` nodes
(kernel, expand, stride, channels, input resolution, ``se`` 1/0) and its unused slots
``skip_connect`` nodes, so every architecture has the same 34-node template.
"""

from __future__ import annotations

import functools
import math
import numbers
import re
from collections.abc import Mapping, Sequence
from typing import NamedTuple

import numpy as np

from ..errors import InvalidArchError
from ..graph import ArchGraph
from ..ops import NUMERIC_ATTRS, OP_INDEX, encode_attr
from .base import DecisionLayout, SearchSpace, chain_order, check_view
from .mbv3 import _rounded, conv_out

EXPANDS: tuple[int, ...] = (1, 4, 6)
KERNELS: tuple[int, ...] = (3, 5)
NUM_STAGES = 7
#: per stage: the numbers of layers it may have (the benchmark's configuration space)
STAGE_LAYERS: tuple[tuple[int, ...], ...] = ((1, 2, 3),) * 5 + ((1, 2, 3, 4),) + ((1, 2, 3),)
#: graph slots per stage (the deepest any stage can be)
MAX_LAYERS = max(max(options) for options in STAGE_LAYERS)
NUM_SLOTS = NUM_STAGES * MAX_LAYERS
#: per stage: output channels and the stride of its first layer
STAGE_WIDTHS: tuple[int, ...] = (16, 24, 40, 80, 112, 192, 320)
STAGE_STRIDES: tuple[int, ...] = (1, 2, 2, 2, 1, 2, 1)
STEM_WIDTH = 32
#: the head's 1x1 conv width (4 x the last stage's 320, as the reference builds it)
HEAD_WIDTH = 1280
#: input side of the benchmark's networks
RESOLUTION = 224
#: classes of the benchmark's network (ImageNet); the graph's classifier node has these
GRAPH_CLASSES = 1000

#: option names of the four decision slots of a stage (:attr:`AnbSpace.decisions`)
EXPAND_OPTIONS: tuple[str, ...] = tuple(f"e{e}" for e in EXPANDS)
KERNEL_OPTIONS: tuple[str, ...] = tuple(f"k{k}" for k in KERNELS)
SE_OPTIONS: tuple[str, ...] = ("se_off", "se_on")
STAGE_LAYER_OPTIONS: tuple[tuple[str, ...], ...] = tuple(tuple(f"l{n}" for n in ls) for ls in STAGE_LAYERS)

NUM_ARCHS = math.prod(len(EXPANDS) * len(KERNELS) * len(ls) * len(SE_OPTIONS) for ls in STAGE_LAYERS)

#: EfficientNet-B0 as an arch of this space
EFFICIENTNET_B0 = "e1_k3_l1_se-e6_k3_l2_se-e6_k5_l2_se-e6_k3_l3_se-e6_k5_l3_se-e6_k5_l4_se-e6_k3_l1_se"

_STAGE_TOKEN = re.compile(r"e([0-9]+)_k([0-9]+)_l([0-9]+)(_se)?")
_EXAMPLE_STAGE = "e6_k5_l2_se"
#: graph node of the stem conv and of slot 0; the fixed head that follows the slots
STEM_NODE, FIRST_SLOT_NODE = 1, 2
_FIXED_TAIL = ("conv", "global_pool", "linear", "output")
NUM_GRAPH_NODES = FIRST_SLOT_NODE + NUM_SLOTS + len(_FIXED_TAIL)
#: the longest stretch of a bad input quoted in an error message
_QUOTE_LIMIT = 200


class AnbStage(NamedTuple):
    """One stage's choices: expansion ratio, depthwise kernel, number of layers, squeeze-excite."""

    expand: int
    kernel: int
    layers: int
    se: bool


def _quote(text: str, limit: int = _QUOTE_LIMIT) -> str:
    """``repr`` of ``text``, cut to ``limit`` characters (the rest summarised)."""
    if len(text) <= limit:
        return repr(text)
    return repr(text[:limit]) + f"... ({len(text)} characters)"


def _short(value: int) -> str:
    """An integer as text, a huge one cut short."""
    text = str(value)
    return text if len(text) <= 20 else f"{text[:20]}... ({len(text)} digits)"


def _allowed(values) -> str:
    return ", ".join(map(str, values))


def _format_stage(stage: AnbStage) -> str:
    return f"e{stage.expand}_k{stage.kernel}_l{stage.layers}" + ("_se" if stage.se else "")


def _as_int(value, what: str):
    """``value`` as an int when it is an integral number; else raise naming ``what``."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise InvalidArchError(f"{what} must be an integer, got {_quote(repr(value), 60)}")
    if isinstance(value, numbers.Integral):
        return int(value)
    if not math.isfinite(value) or value != int(value):
        raise InvalidArchError(f"{what} must be an integer, got {value!r}")
    return int(value)


def _check_stage(expand, kernel, layers, se, stage: int, where: str = "") -> AnbStage:
    """A validated stage (``stage`` is 1-based); messages name the stage and the allowed values."""
    at = f"in stage {stage}{where}"
    expand = _as_int(expand, f"expansion {at}")
    kernel = _as_int(kernel, f"kernel {at}")
    layers = _as_int(layers, f"layers {at}")
    if expand not in EXPANDS:
        raise InvalidArchError(f"expansion {_short(expand)} {at}; allowed: {_allowed(EXPANDS)}")
    if kernel not in KERNELS:
        raise InvalidArchError(f"kernel {_short(kernel)} {at}; allowed: {_allowed(KERNELS)}")
    if layers not in STAGE_LAYERS[stage - 1]:
        raise InvalidArchError(f"layers {_short(layers)} {at}; allowed: {_allowed(STAGE_LAYERS[stage - 1])}")
    if isinstance(se, (bool, np.bool_)):
        se = bool(se)
    elif isinstance(se, numbers.Integral) and int(se) in (0, 1):
        se = bool(se)
    else:
        raise InvalidArchError(f"squeeze-excite {at} must be true or false, got {_quote(repr(se), 60)}")
    return AnbStage(expand, kernel, layers, se)


def _number(digits: str, kind: str, stage: int, allowed) -> int:
    """The integer of a run of digits, or an error for one too long to be any allowed
    value (no int() of a thousand digits)."""
    if len(digits) > 9:
        raise InvalidArchError(f"{kind} {_short(digits)} in stage {stage}; allowed: {_allowed(allowed)}")
    return int(digits)


def _stage_nodes(s_idx: int, stage: AnbStage, c_in: int, size: int) -> tuple[list[tuple[str, dict]], int]:
    """The 4 slot nodes (op, attrs) of stage ``s_idx`` (0-based) entered with ``c_in``
    channels at ``size``; and the size after the stage."""
    width, nodes = STAGE_WIDTHS[s_idx], []
    for slot in range(MAX_LAYERS):
        if slot < stage.layers:
            stride = STAGE_STRIDES[s_idx] if slot == 0 else 1
            nodes.append(("mbconv", dict(kernel=stage.kernel, expand=stage.expand, stride=stride, channels_in=c_in,
                                         channels_out=width, resolution=size, se=int(stage.se))))
            size, c_in = conv_out(size, stride), width
        else:
            nodes.append(("skip_connect", dict(stride=1, channels_in=width, channels_out=width, resolution=size)))
    return nodes, size


def _stage_inputs() -> tuple[tuple[int, int], ...]:
    """Per stage: (input channels, input size); fixed, since every stage has a layer."""
    out, c, size = [], STEM_WIDTH, conv_out(RESOLUTION, 2)
    for width, stride in zip(STAGE_WIDTHS, STAGE_STRIDES):
        out.append((c, size))
        c, size = width, conv_out(size, stride)
    return tuple(out)


STAGE_INPUTS = _stage_inputs()
HEAD_RESOLUTION = conv_out(STAGE_INPUTS[-1][1], STAGE_STRIDES[-1])
_PREFIX_NODES = (
    ("input", {}),
    ("conv", dict(kernel=3, stride=2, channels_in=3, channels_out=STEM_WIDTH, resolution=RESOLUTION)),
)
_TAIL_NODES = (
    ("conv", dict(kernel=1, stride=1, channels_in=STAGE_WIDTHS[-1], channels_out=HEAD_WIDTH,
                  resolution=HEAD_RESOLUTION)),
    ("global_pool", dict(channels_in=HEAD_WIDTH, channels_out=HEAD_WIDTH, resolution=HEAD_RESOLUTION)),
    ("linear", dict(channels_in=HEAD_WIDTH, channels_out=GRAPH_CLASSES)),
    ("output", {}),
)


def _attr_row(attrs: dict) -> np.ndarray:
    row = np.zeros(len(NUMERIC_ATTRS), dtype=np.float32)
    for key, value in attrs.items():
        row[NUMERIC_ATTRS.index(key)] = encode_attr(value)
    return row


@functools.lru_cache(maxsize=None)
def _stage_rows(s_idx: int, stage: AnbStage) -> tuple[np.ndarray, np.ndarray]:
    """Op indices [4] and attribute rows [4, A] of a stage's slot nodes (for graph_arrays)."""
    nodes, _ = _stage_nodes(s_idx, stage, *STAGE_INPUTS[s_idx])
    return (np.array([OP_INDEX[op] for op, _ in nodes], dtype=np.int64),
            np.stack([_attr_row(attrs) for _, attrs in nodes]))


@functools.lru_cache(maxsize=1)
def _fixed_arrays() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    ops = np.zeros(NUM_GRAPH_NODES, dtype=np.int64)
    attrs = np.zeros((NUM_GRAPH_NODES, len(NUMERIC_ATTRS)), dtype=np.float32)
    fixed = {**dict(enumerate(_PREFIX_NODES)),
             **{FIRST_SLOT_NODE + NUM_SLOTS + i: node for i, node in enumerate(_TAIL_NODES)}}
    for pos, (op, a) in fixed.items():
        ops[pos], attrs[pos] = OP_INDEX[op], _attr_row(a)
    edges = np.array([(i, i + 1) for i in range(NUM_GRAPH_NODES - 1)], dtype=np.int64).T.reshape(2, -1)
    return ops, attrs, edges


@functools.lru_cache(maxsize=1)
def _layout() -> DecisionLayout:
    options = []
    for layer_options in STAGE_LAYER_OPTIONS:
        options += [EXPAND_OPTIONS, KERNEL_OPTIONS, layer_options, SE_OPTIONS]
    return DecisionLayout(
        options=tuple(options),
        slot_nodes=tuple(range(1, 1 + len(options))),
        node_ops=("input", *([None] * len(options)), "output"),
        edges=tuple((i, i + 1) for i in range(len(options) + 1)),
    )


#: per stage: its canonical token for every (expansion, kernel, layers, se) option index,
#: nested lists (decode_choices is called ~50,000 times a request: plain indexing)
_STAGE_TOKENS = [
    [[[[_format_stage(AnbStage(e, k, n, se)) for se in (False, True)] for n in ls] for k in KERNELS] for e in EXPANDS]
    for ls in STAGE_LAYERS
]
_NUM_OPTIONS = tuple(len(o) for ls in STAGE_LAYER_OPTIONS for o in (EXPAND_OPTIONS, KERNEL_OPTIONS, ls, SE_OPTIONS))
_EXPAND_POSITION = {e: i for i, e in enumerate(EXPANDS)}
_KERNEL_POSITION = {k: i for i, k in enumerate(KERNELS)}
_LAYERS_POSITION = [{n: i for i, n in enumerate(ls)} for ls in STAGE_LAYERS]


class AnbSpace(SearchSpace):
    """Accel-NASBench's MnasNet / EfficientNet-B0 space (7 MBConv stages, ImageNet 224).

    See the module docstring for the arch string and graph formats."""

    name = "anb"
    shaped_graphs = True
    #: squeeze-excite is a choice here, so encoders read the ``se`` attribute too
    node_attrs = NUMERIC_ATTRS[: NUMERIC_ATTRS.index("se") + 1]
    #: six devices over 4,626 rows: the decision-vector encoder pretrains in about a minute
    #: where the graph network takes half an hour on 2 cores (``bench/anb.py --part devices``
    #: measures what it predicts on held-out devices)
    latency_encoder = "choices"
    input_shape = (3, RESOLUTION, RESOLUTION)
    expands = EXPANDS
    kernels = KERNELS
    stage_layers = STAGE_LAYERS

    # -- strings ------------------------------------------------------------------
    def parse(self, text: str) -> str:
        return self.format(self.parse_arch(text))

    def parse_arch(self, text: str) -> tuple[AnbStage, ...]:
        """The 7 stages of an arch string (validated)."""
        if not isinstance(text, str):
            raise InvalidArchError(f"an Accel-NASBench arch must be a string, got {type(text).__name__}")
        s = "".join(text.split())  # whitespace is not significant
        tokens = s.split("-")
        if len(tokens) != NUM_STAGES:
            raise InvalidArchError(
                f"an Accel-NASBench arch has {NUM_STAGES} stages joined by '-', got {len(tokens)} in {_quote(text)}; "
                f"e.g. {EFFICIENTNET_B0}"
            )
        stages = []
        for s_idx, token in enumerate(tokens, start=1):
            match = _STAGE_TOKEN.fullmatch(token)
            if not match:
                raise InvalidArchError(
                    f"stage {s_idx} ({_quote(token, 60)}) is not of the form e<expansion>_k<kernel>_l<layers> "
                    f"with an optional _se, e.g. {_EXAMPLE_STAGE}"
                )
            e, k, n, se = match.groups()
            stages.append(_check_stage(
                _number(e, "expansion", s_idx, EXPANDS),
                _number(k, "kernel", s_idx, KERNELS),
                _number(n, "layers", s_idx, STAGE_LAYERS[s_idx - 1]),
                se is not None, s_idx,
            ))
        return tuple(stages)

    def kernel_cover(self) -> list[str]:
        """Each (expansion, kernel, squeeze-excite) in every stage at its full depth: 12 networks."""
        return [self.format([(e, k, max(STAGE_LAYERS[s]), se) for s in range(NUM_STAGES)])
                for e in EXPANDS for k in KERNELS for se in (False, True)]

    @staticmethod
    def format(stages: Sequence) -> str:
        """The canonical string of 7 stages, each ``(expand, kernel, layers, se)``; validates every value."""
        if isinstance(stages, (str, bytes)) or not isinstance(stages, Sequence) or len(stages) != NUM_STAGES:
            raise InvalidArchError(f"an Accel-NASBench arch has {NUM_STAGES} stages of (expand, kernel, layers, se)")
        return "-".join(_format_stage(_check_stage(*stage, s_idx)) for s_idx, stage in enumerate(stages, start=1))

    # -- benchmark records ------------------------------------------------------------
    def from_record(self, record: Mapping) -> str:
        """Canonical string of a benchmark record: ``{"arch": "e6_k3_l1-..."}`` and/or
        ``{"e": [7], "k": [7], "l": [7], "se": [7 bools]}`` (other keys, e.g. ``index``,
        are ignored). Where a record has both, they must agree."""
        if not isinstance(record, Mapping):
            raise InvalidArchError(
                f"an Accel-NASBench record must be a dict with 'arch' or lists e, k, l, se; got {type(record).__name__}"
            )
        keys = ("e", "k", "l", "se")
        present = [key for key in keys if key in record]
        arch = self.parse(record["arch"]) if "arch" in record else None
        if arch is None and len(present) < len(keys):
            missing = [key for key in keys if key not in record]
            raise InvalidArchError(
                f"Accel-NASBench record lacks 'arch' and {', '.join(missing)}; expected an arch string or "
                "the lists e (expansions), k (kernels), l (layers), se (squeeze-excite), 7 entries each"
            )
        if len(present) < len(keys):
            return arch
        for key in keys:
            value = record[key]
            if isinstance(value, (str, bytes)) or not isinstance(value, (Sequence, np.ndarray)):
                raise InvalidArchError(f"record field {key!r} must be a list of {NUM_STAGES} values, got "
                                       f"{_quote(repr(value), 60)}")
            if len(value) != NUM_STAGES:
                raise InvalidArchError(f"record field {key!r} must have {NUM_STAGES} entries, got {len(value)}")
        from_lists = "-".join(
            _format_stage(_check_stage(*(record[key][i] for key in keys), i + 1, f" (record entry {i})"))
            for i in range(NUM_STAGES)
        )
        if arch is not None and arch != from_lists:
            raise InvalidArchError(f"record arch {arch} disagrees with its lists e, k, l, se ({from_lists})")
        return from_lists

    def to_record(self, arch: str) -> dict:
        """``{"e": [7], "k": [7], "l": [7], "se": [7 bools]}`` of ``arch``."""
        stages = self.parse_arch(arch)
        return {"e": [s.expand for s in stages], "k": [s.kernel for s in stages],
                "l": [s.layers for s in stages], "se": [s.se for s in stages]}

    # -- size ---------------------------------------------------------------------------
    @property
    def size(self) -> int:
        """3 expansions x 2 kernels x 3 depths (4 in stage 6) x 2 (squeeze-excite) per
        stage: ``36**6 * 48 = 104,485,552,128`` (about 1.04e11)."""
        return NUM_ARCHS

    def equivalence_key(self, arch: str) -> str:
        """The canonical string: distinct canonical strings are distinct networks."""
        return self.parse(arch)

    # -- graphs -----------------------------------------------------------------------------
    def to_graph(self, arch: str) -> ArchGraph:
        stages = self.parse_arch(arch)
        g = ArchGraph()
        nodes = [g.add_node(op, **attrs) for op, attrs in _PREFIX_NODES]
        c_in, size = STEM_WIDTH, conv_out(RESOLUTION, 2)
        for s_idx, stage in enumerate(stages):
            slot_nodes, size = _stage_nodes(s_idx, stage, c_in, size)
            nodes += [g.add_node(op, **attrs) for op, attrs in slot_nodes]
            c_in = STAGE_WIDTHS[s_idx]
        nodes += [g.add_node(op, **attrs) for op, attrs in _TAIL_NODES]
        for u, v in zip(nodes, nodes[1:]):
            g.add_edge(u, v)
        return g

    def graph_arrays(self, arch: str, view: str = "full"):
        """Fast path of :meth:`SearchSpace.graph_arrays`: the template is fixed and a
        stage's slot rows depend on its own choices only. The graphs have no ``none``
        ops, so the pruned view equals the full one."""
        check_view(view)
        stages = self.parse_arch(arch)
        ops, attrs, edges = _fixed_arrays()
        ops, attrs = ops.copy(), attrs.copy()
        for s_idx, stage in enumerate(stages):
            lo = FIRST_SLOT_NODE + s_idx * MAX_LAYERS
            ops[lo:lo + MAX_LAYERS], attrs[lo:lo + MAX_LAYERS] = _stage_rows(s_idx, stage)
        return ops, attrs, edges.copy()

    def from_graph(self, graph: ArchGraph) -> str:
        """Decode a graph of the :meth:`to_graph` form (any node numbering; attributes
        compared to within float rounding, an absent attribute reading as 0, so graphs
        read back from features decode)."""
        if not isinstance(graph, ArchGraph):
            raise InvalidArchError(f"expected an ArchGraph, got {type(graph).__name__}")
        if graph.num_nodes != NUM_GRAPH_NODES:
            raise InvalidArchError(
                f"an Accel-NASBench graph has {NUM_GRAPH_NODES} nodes (input, stem, {NUM_SLOTS} layer slots, "
                f"3 head nodes, output), got {graph.num_nodes}"
            )
        chain = chain_order(graph, "an Accel-NASBench graph")
        ops = [graph.op(n) for n in chain]
        attrs = [graph.attrs(n) for n in chain]
        expected_fixed = {0: "input", STEM_NODE: "conv"}
        expected_fixed.update({FIRST_SLOT_NODE + NUM_SLOTS + i: op for i, (op, _) in enumerate(_TAIL_NODES)})
        for pos, op in expected_fixed.items():
            if ops[pos] != op:
                raise InvalidArchError(
                    f"node {chain[pos]} (position {pos} of the chain) is {ops[pos]!r}, expected {op!r}"
                )
        stages = []
        for s_idx in range(NUM_STAGES):
            first, layers = None, 0
            for slot in range(MAX_LAYERS):
                pos = FIRST_SLOT_NODE + s_idx * MAX_LAYERS + slot
                op, a = ops[pos], attrs[pos]
                where = f" slot {slot + 1} (node {chain[pos]})"
                if op == "mbconv":
                    if layers != slot:
                        raise InvalidArchError(f"stage {s_idx + 1}{where} is a layer after a skipped slot; "
                                               "skipped slots come last")
                    if "kernel" not in a or "expand" not in a:
                        raise InvalidArchError(f"stage {s_idx + 1}{where} lacks its kernel or expand attribute")
                    current = (_rounded(a["kernel"]), _rounded(a["expand"]), _rounded(a.get("se", 0)))
                    if first is None:
                        first = current
                    elif current != first:
                        raise InvalidArchError(
                            f"stage {s_idx + 1}{where} has (kernel, expand, se) {current}, but the stage's "
                            f"first layer has {first}; the layers of a stage are alike"
                        )
                    layers += 1
                elif op != "skip_connect":
                    raise InvalidArchError(
                        f"stage {s_idx + 1}{where} is {op!r}; a layer slot is 'mbconv' or 'skip_connect'"
                    )
            if first is None:
                raise InvalidArchError(f"stage {s_idx + 1} has no layer; allowed layers: "
                                       f"{_allowed(STAGE_LAYERS[s_idx])}")
            kernel, expand, se = first
            if se not in (0, 1):
                raise InvalidArchError(f"squeeze-excite in stage {s_idx + 1} must be 0 or 1, got {se!r}")
            stages.append(_check_stage(expand, kernel, layers, se, s_idx + 1))
        arch = self.format(stages)
        # the rest (channels, strides, sizes, fixed nodes) must be exactly what the arch implies
        reference = self.to_graph(arch)
        for pos, node in enumerate(chain):
            want, got = reference.attrs(pos), attrs[pos]
            if any(not math.isclose(want.get(k, 0), got.get(k, 0), rel_tol=1e-3, abs_tol=1e-6)
                   for k in set(want) | set(got)):
                raise InvalidArchError(
                    f"node {node} ({ops[pos]}, position {pos} of the chain) has attributes {got}; "
                    f"an Accel-NASBench graph of {arch} has {want} there"
                )
        return arch

    # -- decisions ---------------------------------------------------------------------------
    @property
    def decisions(self) -> DecisionLayout:
        """28 slots, four per stage in order: expansion (``e1``, ``e4``, ``e6``), kernel
        (``k3``, ``k5``), layers (``l1``..``l3``; ``l1``..``l4`` in stage 6) and
        squeeze-excite (``se_off``, ``se_on``). The template DAG is the chain
        ``input -> 28 slot nodes -> output`` (slot ``i`` on node ``i + 1``)."""
        return _layout()

    def encode_choices(self, arch: str) -> tuple[int, ...]:
        choices = []
        for s_idx, stage in enumerate(self.parse_arch(arch)):
            choices += [_EXPAND_POSITION[stage.expand], _KERNEL_POSITION[stage.kernel],
                        _LAYERS_POSITION[s_idx][stage.layers], int(stage.se)]
        return tuple(choices)

    def decode_choices(self, choices: Sequence[int]) -> str:
        if type(choices) is np.ndarray and choices.ndim == 1:
            choices = choices.tolist()
        if not (type(choices) in (list, tuple) and len(choices) == NUM_SLOTS
                and all(type(c) is int and 0 <= c < n for c, n in zip(choices, _NUM_OPTIONS))):
            choices = self._check_choices(choices)
        return "-".join([
            _STAGE_TOKENS[s][choices[4 * s]][choices[4 * s + 1]][choices[4 * s + 2]][choices[4 * s + 3]]
            for s in range(NUM_STAGES)
        ])

    # -- exploration ---------------------------------------------------------------------------
    def _random(self, rng) -> str:
        return self.format([
            (rng.choice(EXPANDS), rng.choice(KERNELS), rng.choice(layers), rng.choice((False, True)))
            for layers in STAGE_LAYERS
        ])

    def sample(self, n: int, seed: int = 0) -> list[str]:
        """Per stage an expansion, kernel, number of layers and squeeze-excite, each
        uniform over its options; distinct architectures."""
        n = self._check_count(n)
        rng = self._rng(seed)
        seen: dict[str, None] = {}
        while len(seen) < n:  # ~1e11 architectures: a repeat is rare
            seen[self._random(rng)] = None
        return list(seen)

    def mutate(self, arch: str, seed: int = 0) -> str:
        """Change one choice of one stage, picked uniformly among the 28 (expansion,
        kernel, layers or squeeze-excite of each stage), to another of its values."""
        stages = [list(s) for s in self.parse_arch(arch)]
        rng = self._rng(seed)
        s_idx, field = rng.randrange(NUM_STAGES), rng.randrange(4)
        values = (EXPANDS, KERNELS, STAGE_LAYERS[s_idx], (False, True))[field]
        stages[s_idx][field] = rng.choice([v for v in values if v != stages[s_idx][field]])
        return self.format(stages)

    # -- building ----------------------------------------------------------------------------------
    def to_module(self, arch: str, num_classes: int = 1000, **options):
        """The benchmark's network (see :class:`~archgen.spaces.anb_network.AnbNetwork`;
        options ``dropout``, ``activation``, ``stochastic_depth``, ``in_channels``); feed
        it ``(N, 3, 224, 224)`` inputs (it runs at any size)."""
        from .anb_network import AnbNetwork, AnbSkeleton

        skeleton = AnbSkeleton(STEM_WIDTH, STAGE_WIDTHS, STAGE_STRIDES, HEAD_WIDTH, RESOLUTION)
        return AnbNetwork(self.parse_arch(arch), skeleton, num_classes=num_classes, **options)
