"""The Once-for-All MobileNetV3 space (``ofa_mbv3_d234_e346_k357_w1.0``, ImageNet).

A fixed stem (3x3 conv stride 2 to 16, then an MBConv k3 e1 16->16 block), five
searchable stages of widths 24, 40, 80, 112, 160 with 2..4 inverted-residual
layers each (kernel 3/5/7, expand ratio 3/4/6), a fixed head (1x1 conv to 960,
global pooling, 1x1 conv to 1280, linear classifier), and the input resolution
(128..224 in steps of 4) as a further choice.

Arch string: ``r{R}:`` then the five stages separated by ``|``, each the layers it
uses as ``k{K}e{E}`` joined by ``-`` (so a stage's depth is its number of
layers), e.g. ``r160:k3e4-k5e6|k7e3-k3e3-k5e4|k3e6-k3e3|k5e4-k5e4-k7e6-k3e3|k3e3-k3e6``.
Benchmark records (``ks``/``e``: 20 per-slot kernels and expand ratios, ``d``: 5
depths, ``r``) convert with :meth:`MBv3Space.from_record`; slots a stage does not
use do not appear in the string, so records differing only there coincide.

Graph form: a chain ``input -> conv (stem) -> mbconv (first block) -> 20 slot
nodes -> conv (960) -> global_pool -> conv (1280) -> linear -> output``, where a
stage's used layers are ``mbconv`` nodes and its unused slots ``skip_connect``
nodes, so every architecture has the same 28-node template.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Mapping, Sequence
from typing import NamedTuple

from ..errors import InvalidArchError
from ..graph import ArchGraph
from ..validation import quote
from .base import DecisionLayout, SearchSpace, arch_number, chain_order

KERNELS: tuple[int, ...] = (3, 5, 7)
EXPANDS: tuple[int, ...] = (3, 4, 6)
DEPTHS: tuple[int, ...] = (2, 3, 4)
#: slots per stage (the deepest a stage can be)
MAX_DEPTH = max(DEPTHS)
NUM_STAGES = 5
NUM_SLOTS = NUM_STAGES * MAX_DEPTH
RESOLUTIONS: tuple[int, ...] = tuple(range(128, 225, 4))

#: per searchable stage: output channels, stride of its first layer, activation, squeeze-excite
STAGE_WIDTHS: tuple[int, ...] = (24, 40, 80, 112, 160)
STAGE_STRIDES: tuple[int, ...] = (2, 2, 2, 1, 2)
STAGE_ACTS: tuple[str, ...] = ("relu", "relu", "hswish", "hswish", "hswish")
STAGE_SE: tuple[bool, ...] = (False, True, False, True, True)
STEM_WIDTH = 16
FINAL_EXPAND_WIDTH = 960
LAST_CHANNEL = 1280
#: classes of the benchmark's network (ImageNet); the graph's classifier node has these
GRAPH_CLASSES = 1000

#: option names of a layer slot in :attr:`MBv3Space.decisions` (kernel-major)
LAYER_OPTIONS: tuple[str, ...] = tuple(f"k{k}_e{e}" for k in KERNELS for e in EXPANDS)
SKIP = "skip"
#: the input sides its kernels are timed at (:mod:`archgen.kernels`); the other sides'
#: kernel latencies are interpolated along pixels between them
PROFILE_RESOLUTIONS: tuple[int, ...] = (128, 160, 192, 224)
RESOLUTION_OPTIONS: tuple[str, ...] = tuple(f"r{r}" for r in RESOLUTIONS)

NUM_ARCHS = len(RESOLUTIONS) * sum((len(KERNELS) * len(EXPANDS)) ** d for d in DEPTHS) ** NUM_STAGES

Layer = tuple[int, int]  # (kernel, expand)

_LAYER_TOKEN = re.compile(r"k([0-9]+)e([0-9]+)")
_INTEGER = re.compile(r"[0-9]+")
_FIXED_TAIL = ("conv", "global_pool", "conv", "linear", "output")
#: graph node of the stem conv, of the first fixed block, and of slot 0
STEM_NODE, FIRST_BLOCK_NODE, FIRST_SLOT_NODE = 1, 2, 3
NUM_GRAPH_NODES = FIRST_SLOT_NODE + NUM_SLOTS + len(_FIXED_TAIL)


class MBv3Arch(NamedTuple):
    """A parsed architecture: input resolution and, per stage, its used layers as (kernel, expand)."""

    resolution: int
    stages: tuple[tuple[Layer, ...], ...]

    @property
    def depths(self) -> tuple[int, ...]:
        return tuple(len(s) for s in self.stages)


def conv_out(size: int, stride: int) -> int:
    """Spatial size after a 'same'-padded odd-kernel convolution with ``stride``."""
    return math.ceil(size / stride)


def _fmt_layer(layer: Layer) -> str:
    return f"k{layer[0]}e{layer[1]}"


def _check_int(value, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidArchError(f"{what} must be an integer, got {quote(value, 60)}")
    if isinstance(value, int):
        return value  # (an int of 400 digits has no float: math.isfinite would overflow)
    if not math.isfinite(value) or value != int(value):
        raise InvalidArchError(f"{what} must be an integer, got {quote(value, 60)}")
    return int(value)


def _check_resolution(r, what: str = "resolution") -> int:
    r = _check_int(r, what)
    if not RESOLUTIONS[0] <= r <= RESOLUTIONS[-1]:
        raise InvalidArchError(
            f"{what} {quote(r, 30)} is out of range {RESOLUTIONS[0]}..{RESOLUTIONS[-1]} (a multiple of 4)"
        )
    if r % 4:
        raise InvalidArchError(
            f"{what} {r} is not a multiple of 4 (valid: {RESOLUTIONS[0]}, {RESOLUTIONS[1]}, ..., {RESOLUTIONS[-1]})"
        )
    return r


def _check_layer(kernel, expand, where: str) -> Layer:
    kernel, expand = _check_int(kernel, f"kernel of {where}"), _check_int(expand, f"expand ratio of {where}")
    if kernel not in KERNELS:
        raise InvalidArchError(f"{where} has kernel {quote(kernel, 30)}; valid kernels: {', '.join(map(str, KERNELS))}")
    if expand not in EXPANDS:
        raise InvalidArchError(
            f"{where} has expand ratio {quote(expand, 30)}; valid expand ratios: {', '.join(map(str, EXPANDS))}"
        )
    return kernel, expand


def _check_depth(depth: int, stage: int) -> None:
    if depth not in DEPTHS:
        raise InvalidArchError(
            f"stage {stage} has depth {depth}; a stage has {DEPTHS[0]}..{DEPTHS[-1]} layers"
        )


@functools.lru_cache(maxsize=1)
def _layout() -> DecisionLayout:
    node_ops: list[str | None] = ["input", None, "mbconv", *([None] * NUM_SLOTS), *_FIXED_TAIL]
    options = [RESOLUTION_OPTIONS]
    for _stage in range(NUM_STAGES):
        for slot in range(MAX_DEPTH):
            options.append(LAYER_OPTIONS if slot < DEPTHS[0] else (*LAYER_OPTIONS, SKIP))
    return DecisionLayout(
        options=tuple(options),
        slot_nodes=(STEM_NODE, *range(FIRST_SLOT_NODE, FIRST_SLOT_NODE + NUM_SLOTS)),
        node_ops=tuple(node_ops),
        edges=tuple((i, i + 1) for i in range(NUM_GRAPH_NODES - 1)),
    )


_LAYER_POSITION = {name: i for i, name in enumerate(LAYER_OPTIONS)}
_RESOLUTION_POSITION = {r: i for i, r in enumerate(RESOLUTIONS)}


class MBv3Space(SearchSpace):
    """Once-for-All MobileNetV3 space, input resolution included (OFA ``ofa_mbv3_d234_e346_k357_w1.0``).

    See the module docstring for the arch string and graph formats."""

    name = "mbv3"
    shaped_graphs = True
    #: OFA ImageNet top-1 of held-out subnets from all 1,557 training labels: Kendall 0.968
    #: for the decision-vector encoder, 0.944 for the GIN (``bench/anb.py --part ofa``)
    accuracy_encoder = "choices"
    #: the largest input; each architecture has its own, see :meth:`input_shape_of`
    input_shape = (3, 224, 224)
    kernels = KERNELS
    expands = EXPANDS
    depths = DEPTHS
    resolutions = RESOLUTIONS

    # -- strings ------------------------------------------------------------------
    def parse(self, text: str) -> str:
        return self.format(self.parse_arch(text))

    def parse_arch(self, text: str) -> MBv3Arch:
        """The resolution and per-stage layers of an arch string (validated)."""
        if not isinstance(text, str):
            raise InvalidArchError(f"a MobileNetV3 arch must be a string, got {type(text).__name__}")
        s = "".join(text.split())  # whitespace is not significant
        head, sep, body = s.partition(":")
        if not sep or not head.startswith("r"):
            raise InvalidArchError(
                f"malformed MobileNetV3 arch {quote(text)}: expected 'r<resolution>:' followed by 5 stages "
                "separated by '|', e.g. r160:k3e4-k5e6|k7e3-k3e3-k5e4|k3e6-k3e3|k5e4-k5e4-k7e6-k3e3|k3e3-k3e6"
            )
        if not _INTEGER.fullmatch(head[1:]):
            raise InvalidArchError(f"resolution {quote(head[1:], 60)} in {quote(text)} is not an integer")
        resolution = _check_resolution(arch_number(head[1:], "resolution"))
        groups = body.split("|")
        if len(groups) != NUM_STAGES:
            raise InvalidArchError(
                f"a MobileNetV3 arch has {NUM_STAGES} stages separated by '|', got {len(groups):,} in {quote(text)}"
            )
        stages = []
        for s_idx, group in enumerate(groups, start=1):
            tokens = group.split("-") if group else []
            _check_depth(len(tokens), s_idx)
            layers = []
            for l_idx, token in enumerate(tokens, start=1):
                where = f"stage {s_idx} layer {l_idx} ({quote(token, 60)})"
                match = _LAYER_TOKEN.fullmatch(token)
                if not match:
                    raise InvalidArchError(
                        f"{where} is not of the form k<kernel>e<expand>, e.g. k5e4"
                    )
                layers.append(_check_layer(arch_number(match.group(1), f"kernel of {where}"),
                                           arch_number(match.group(2), f"expand ratio of {where}"), where))
            stages.append(tuple(layers))
        return MBv3Arch(resolution, tuple(stages))

    @staticmethod
    def format(arch: MBv3Arch | tuple) -> str:
        """The canonical string of ``(resolution, stages)`` (stages: per stage its used
        ``(kernel, expand)`` layers); validates every value."""
        resolution, stages = arch
        resolution = _check_resolution(resolution)
        if len(stages) != NUM_STAGES:
            raise InvalidArchError(f"a MobileNetV3 arch has {NUM_STAGES} stages, got {len(stages)}")
        parts = []
        for s_idx, layers in enumerate(stages, start=1):
            _check_depth(len(layers), s_idx)
            checked = [
                _check_layer(k, e, f"stage {s_idx} layer {l_idx}") for l_idx, (k, e) in enumerate(layers, start=1)
            ]
            parts.append("-".join(map(_fmt_layer, checked)))
        return f"r{resolution}:" + "|".join(parts)

    # -- benchmark records ------------------------------------------------------------
    def from_record(self, record: Mapping) -> str:
        """Canonical string of a benchmark record ``{"ks": [20], "e": [20], "d": [5], "r": R}``
        (other keys, e.g. ``index``, are ignored). Every slot's kernel and expand ratio
        is validated; those of slots beyond a stage's depth are then dropped."""
        if not isinstance(record, Mapping):
            raise InvalidArchError(f"a MobileNetV3 record must be a dict with ks, e, d, r; got {type(record).__name__}")
        missing = [key for key in ("ks", "e", "d", "r") if key not in record]
        if missing:
            raise InvalidArchError(
                f"MobileNetV3 record lacks {', '.join(missing)}; expected keys ks (20 kernels), "
                "e (20 expand ratios), d (5 depths), r (resolution)"
            )
        ks, es, ds = record["ks"], record["e"], record["d"]
        for key, value, length in (("ks", ks, NUM_SLOTS), ("e", es, NUM_SLOTS), ("d", ds, NUM_STAGES)):
            if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
                raise InvalidArchError(f"record field {key!r} must be a list of {length} ints, got {quote(value, 60)}")
            if len(value) != length:
                raise InvalidArchError(f"record field {key!r} must have {length} entries, got {len(value)}")
        resolution = _check_resolution(record["r"], "record resolution r")
        slots = []
        for i in range(NUM_SLOTS):
            where = f"slot ks[{i}]/e[{i}] (stage {i // MAX_DEPTH + 1} slot {i % MAX_DEPTH + 1})"
            slots.append(_check_layer(ks[i], es[i], where))
        stages = []
        for s_idx in range(NUM_STAGES):
            depth = _check_int(ds[s_idx], f"record depth d[{s_idx}]")
            _check_depth(depth, s_idx + 1)
            stages.append(tuple(slots[s_idx * MAX_DEPTH: s_idx * MAX_DEPTH + depth]))
        return self.format((resolution, tuple(stages)))

    def to_record(self, arch: str) -> dict:
        """A benchmark-style record of ``arch``; unused slots get kernel 3, expand 3."""
        a = self.parse_arch(arch)
        ks, es = [KERNELS[0]] * NUM_SLOTS, [EXPANDS[0]] * NUM_SLOTS
        for s_idx, layers in enumerate(a.stages):
            for l_idx, (k, e) in enumerate(layers):
                ks[s_idx * MAX_DEPTH + l_idx], es[s_idx * MAX_DEPTH + l_idx] = k, e
        return {"ks": ks, "e": es, "d": list(a.depths), "r": a.resolution}

    # -- size ---------------------------------------------------------------------------
    @property
    def size(self) -> int:
        """25 resolutions x (9^2 + 9^3 + 9^4)^5 layer choices (about 5.4e20)."""
        return NUM_ARCHS

    def kernel_cover(self) -> list[str]:
        """Every layer option at every position (stages at full depth), at each of
        :data:`PROFILE_RESOLUTIONS`: 36 networks."""
        return [self.format((r, tuple(((k, e),) * MAX_DEPTH for _ in range(NUM_STAGES))))
                for r in PROFILE_RESOLUTIONS for k in KERNELS for e in EXPANDS]

    def input_shape_of(self, arch: str) -> tuple[int, int, int]:
        """``(3, r, r)``: the input shape ``arch``'s network is measured at."""
        r = self.parse_arch(arch).resolution
        return (3, r, r)

    def equivalence_key(self, arch: str) -> str:
        """The canonical string: distinct canonical strings are distinct networks."""
        return self.parse(arch)

    # -- graphs -----------------------------------------------------------------------------
    def to_graph(self, arch: str) -> ArchGraph:
        a = self.parse_arch(arch)
        r = a.resolution
        g = ArchGraph()
        nodes = [g.add_node("input")]
        size = conv_out(r, 2)
        nodes.append(g.add_node("conv", kernel=3, stride=2, channels_in=3, channels_out=STEM_WIDTH, resolution=r))
        nodes.append(g.add_node("mbconv", kernel=3, expand=1, stride=1, channels_in=STEM_WIDTH,
                                channels_out=STEM_WIDTH, resolution=size))
        c_in = STEM_WIDTH
        for s_idx, layers in enumerate(a.stages):
            width = STAGE_WIDTHS[s_idx]
            for slot in range(MAX_DEPTH):
                if slot < len(layers):
                    stride = STAGE_STRIDES[s_idx] if slot == 0 else 1
                    k, e = layers[slot]
                    nodes.append(g.add_node("mbconv", kernel=k, expand=e, stride=stride, channels_in=c_in,
                                            channels_out=width, resolution=size))
                    size, c_in = conv_out(size, stride), width
                else:
                    nodes.append(g.add_node("skip_connect", stride=1, channels_in=width, channels_out=width,
                                            resolution=size))
        nodes.append(g.add_node("conv", kernel=1, stride=1, channels_in=c_in, channels_out=FINAL_EXPAND_WIDTH,
                                resolution=size))
        nodes.append(g.add_node("global_pool", channels_in=FINAL_EXPAND_WIDTH, channels_out=FINAL_EXPAND_WIDTH,
                                resolution=size))
        nodes.append(g.add_node("conv", kernel=1, stride=1, channels_in=FINAL_EXPAND_WIDTH,
                                channels_out=LAST_CHANNEL, resolution=1))
        nodes.append(g.add_node("linear", channels_in=LAST_CHANNEL, channels_out=GRAPH_CLASSES))
        nodes.append(g.add_node("output"))
        for u, v in zip(nodes, nodes[1:]):
            g.add_edge(u, v)
        return g

    def from_graph(self, graph: ArchGraph) -> str:
        """Decode a graph of the :meth:`to_graph` form (any node numbering; attributes
        compared to within float rounding, so graphs read back from features decode)."""
        if not isinstance(graph, ArchGraph):
            raise InvalidArchError(f"expected an ArchGraph, got {type(graph).__name__}")
        if graph.num_nodes != NUM_GRAPH_NODES:
            raise InvalidArchError(
                f"a MobileNetV3 graph has {NUM_GRAPH_NODES} nodes (input, stem, first block, "
                f"{NUM_SLOTS} layer slots, 4 head nodes, output), got {graph.num_nodes}"
            )
        chain = chain_order(graph, "a MobileNetV3 graph")
        ops = [graph.op(n) for n in chain]
        attrs = [graph.attrs(n) for n in chain]
        expected_fixed = {0: "input", STEM_NODE: "conv", FIRST_BLOCK_NODE: "mbconv"}
        expected_fixed.update({FIRST_SLOT_NODE + NUM_SLOTS + i: op for i, op in enumerate(_FIXED_TAIL)})
        for pos, op in expected_fixed.items():
            if ops[pos] != op:
                raise InvalidArchError(
                    f"node {chain[pos]} (position {pos} of the chain) is {ops[pos]!r}, expected {op!r}"
                )
        r = attrs[STEM_NODE].get("resolution")
        if r is None:
            raise InvalidArchError(f"the stem conv (node {chain[STEM_NODE]}) lacks the 'resolution' attribute")
        resolution = _check_resolution(_rounded(r), f"stem resolution (node {chain[STEM_NODE]})")
        stages = []
        for s_idx in range(NUM_STAGES):
            layers: list[Layer] = []
            for slot in range(MAX_DEPTH):
                pos = FIRST_SLOT_NODE + s_idx * MAX_DEPTH + slot
                op, a = ops[pos], attrs[pos]
                where = f"stage {s_idx + 1} slot {slot + 1} (node {chain[pos]})"
                if op == "mbconv":
                    if len(layers) != slot:
                        raise InvalidArchError(f"{where} is a layer after a skipped slot; skipped slots come last")
                    if "kernel" not in a or "expand" not in a:
                        raise InvalidArchError(f"{where} lacks its kernel or expand attribute")
                    layers.append(_check_layer(_rounded(a["kernel"]), _rounded(a["expand"]), where))
                elif op != "skip_connect":
                    raise InvalidArchError(f"{where} is {op!r}; a layer slot is 'mbconv' or 'skip_connect'")
            _check_depth(len(layers), s_idx + 1)
            stages.append(tuple(layers))
        arch = self.format((resolution, tuple(stages)))
        # the rest (channels, strides, sizes, fixed nodes) must be exactly what the arch implies
        reference = self.to_graph(arch)
        for pos, node in enumerate(chain):
            want, got = reference.attrs(pos), attrs[pos]
            if set(want) != set(got) or any(not math.isclose(want[k], got[k], rel_tol=1e-3) for k in want):
                raise InvalidArchError(
                    f"node {node} ({ops[pos]}, position {pos} of the chain) has attributes {got}; "
                    f"a MobileNetV3 graph of {arch} has {want} there"
                )
        return arch

    # -- decisions ---------------------------------------------------------------------------
    @property
    def decisions(self) -> DecisionLayout:
        """Slot 0: the resolution (on the stem node, options ``r128``..``r224``); slots
        1..20: the 4 slots of each stage in order (graph nodes 3..22), options
        ``k{K}_e{E}``, the 3rd and 4th slot of a stage also ``skip``. A stage's depth is
        2 plus the number of leading non-skip among its 3rd and 4th slot (a layer in the
        4th slot after a skipped 3rd is ignored). The template DAG is the 28-node
        chain of :meth:`to_graph`."""
        return _layout()

    def encode_choices(self, arch: str) -> tuple[int, ...]:
        a = self.parse_arch(arch)
        choices = [_RESOLUTION_POSITION[a.resolution]]
        for layers in a.stages:
            for slot in range(MAX_DEPTH):
                if slot < len(layers):
                    choices.append(_LAYER_POSITION[f"k{layers[slot][0]}_e{layers[slot][1]}"])
                else:
                    choices.append(len(LAYER_OPTIONS))  # skip
        return tuple(choices)

    def canonical_choices(self, choices):
        """A layer slot after a skipped one in its stage is unused: make it ``skip`` too."""
        import numpy as np

        out = np.array(choices, dtype=np.int64, copy=True)
        skip = len(LAYER_OPTIONS)
        for s_idx in range(NUM_STAGES):
            first = 1 + s_idx * MAX_DEPTH
            for slot in range(DEPTHS[0] + 1, MAX_DEPTH):
                out[:, first + slot] = np.where(out[:, first + slot - 1] == skip, skip, out[:, first + slot])
        return out

    def decode_choices(self, choices) -> str:
        values = self._check_choices(choices)
        stages = []
        for s_idx in range(NUM_STAGES):
            layers: list[Layer] = []
            for slot in range(MAX_DEPTH):
                c = values[1 + s_idx * MAX_DEPTH + slot]
                if c == len(LAYER_OPTIONS):  # skip: this and any later slot are unused
                    break
                layers.append((KERNELS[c // len(EXPANDS)], EXPANDS[c % len(EXPANDS)]))
            stages.append(tuple(layers))
        return self.format((RESOLUTIONS[values[0]], tuple(stages)))

    # -- exploration ---------------------------------------------------------------------------
    def _random(self, rng) -> str:
        resolution = rng.choice(RESOLUTIONS)
        stages = tuple(
            tuple((rng.choice(KERNELS), rng.choice(EXPANDS)) for _ in range(rng.choice(DEPTHS)))
            for _ in range(NUM_STAGES)
        )
        return self.format((resolution, stages))

    def sample(self, n: int, seed: int = 0) -> list[str]:
        """Per stage a depth uniform in 2..4, per layer a kernel and an expand ratio
        uniform, a resolution uniform over the 25; distinct architectures."""
        n = self._check_count(n)
        rng = self._rng(seed)
        out, seen = [], set()
        while len(out) < n:
            arch = self._random(rng)
            if arch not in seen:
                seen.add(arch)
                out.append(arch)
        return out

    def mutate(self, arch: str, seed: int = 0) -> str:
        """Change one choice, picked uniformly among: each used layer's kernel, each
        used layer's expand ratio, each stage's depth (a new layer gets a random kernel
        and expand ratio; a removed one is the stage's last), the resolution."""
        a = self.parse_arch(arch)
        rng = self._rng(seed)
        stages = [list(layers) for layers in a.stages]
        targets = [("resolution", None, None)]
        targets += [("depth", s, None) for s in range(NUM_STAGES)]
        targets += [
            (kind, s, i) for s, layers in enumerate(stages) for i in range(len(layers)) for kind in ("kernel", "expand")
        ]
        kind, s, i = rng.choice(targets)
        resolution = a.resolution
        if kind == "resolution":
            resolution = rng.choice([r for r in RESOLUTIONS if r != resolution])
        elif kind == "depth":
            depth = rng.choice([d for d in DEPTHS if d != len(stages[s])])
            while len(stages[s]) < depth:
                stages[s].append((rng.choice(KERNELS), rng.choice(EXPANDS)))
            del stages[s][depth:]
        elif kind == "kernel":
            k, e = stages[s][i]
            stages[s][i] = (rng.choice([x for x in KERNELS if x != k]), e)
        else:
            k, e = stages[s][i]
            stages[s][i] = (k, rng.choice([x for x in EXPANDS if x != e]))
        return self.format((resolution, tuple(map(tuple, stages))))

    # -- building ----------------------------------------------------------------------------------
    def to_module(self, arch: str, num_classes: int = 1000, **options):
        """The OFA MobileNetV3 subnet (see :class:`~archgen.spaces.mbv3_network.MBv3Network`);
        feed it ``(N, *input_shape_of(arch))`` inputs."""
        from .mbv3_network import MBv3Network, MBv3Skeleton

        a = self.parse_arch(arch)
        skeleton = MBv3Skeleton(STEM_WIDTH, STAGE_WIDTHS, STAGE_STRIDES, STAGE_ACTS, STAGE_SE, FINAL_EXPAND_WIDTH,
                                LAST_CHANNEL)
        return MBv3Network(a.stages, skeleton, resolution=a.resolution, num_classes=num_classes, **options)


def _rounded(value: float) -> float:
    """An attribute read back from log-scaled features, snapped to the nearest integer."""
    nearest = round(value)
    return nearest if abs(value - nearest) < 1e-2 * max(1.0, abs(nearest)) else value
