"""The TransNAS-Bench-101 micro space: a NAS-Bench-201 cell with 4 ops on its 6 edges
(4^6 = 4,096 cells), stacked in the Taskonomy encoder ``64-41414``.

Arch string: NAS-Bench-201's notation, ``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|`` (node j
lists its incoming edges ``op~i`` from node i), with the ops ``none``, ``skip_connect``,
``nor_conv_1x1``, ``nor_conv_3x3`` (no ``avg_pool_3x3``). :meth:`TransNASMicroSpace.parse`
also reads the benchmark's own notation ``64-41414-a_bc_def`` (or just ``a_bc_def``):
one digit per edge in the same order (node 1 from 0; node 2 from 0, 1; node 3 from
0, 1, 2), 0 ``none``, 1 ``skip_connect``, 2 ``nor_conv_1x1``, 3 ``nor_conv_3x3``.

Graphs are NAS-Bench-201's ops-on-nodes cell graphs (:mod:`archgen.spaces.nb201` builds
and decodes them), so a cell's graph is the same in both spaces. What differs is the
network around the cell (:mod:`archgen.spaces.transnas_network`), where an edge from the
cell input of a module's first cell also changes width and resolution (a ``skip_connect``
there is a factorized reduction, not the identity); hence :meth:`equivalence_key` is the
pruned graph's hash, not NAS-Bench-201's algebra of skips.
"""

from __future__ import annotations

import functools
import itertools

from ..errors import InvalidArchError
from ..graph import ArchGraph
from ..validation import quote
from .base import SearchSpace
from .nb201 import EDGES, EdgeOpCell, NB201Space

#: the ops, in the order of the benchmark's code digits 0..3
OPS: tuple[str, ...] = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3")
NUM_ARCHS = len(OPS) ** len(EDGES)
#: the encoder: stem width, macro code (one module per digit: 1 plain, 2 double the width,
#: 3 halve the resolution, 4 both) and cells per module, as in TransNAS-Bench-101
CHANNELS, MACRO, CELLS_PER_MODULE = 64, "41414", 2
ENCODER = f"{CHANNELS}-{MACRO}"
#: classes of the benchmark's scene classification task (``class_scene``), the default head
NUM_CLASSES = 47
DIGITS = "".join(str(d) for d in range(len(OPS)))
_OP_POSITION = {op: i for i, op in enumerate(OPS)}
_DIGITS_SAID = ", ".join(f"{d} {op}" for d, op in enumerate(OPS))
_NAME = "TransNAS-Bench-101 micro"
_EXAMPLE = "|nor_conv_3x3~0|+|skip_connect~0|nor_conv_1x1~1|+|nor_conv_3x3~0|none~1|nor_conv_3x3~2|"
_NB201 = NB201Space()




@functools.cache
def _all_archs() -> tuple[tuple[str, ...], dict[str, int], tuple[tuple[str, ...], ...]]:
    """Every canonical arch string in index order, the index of each, and their ops."""
    cells = tuple(itertools.product(OPS, repeat=len(EDGES)))
    archs = tuple(NB201Space.format(ops) for ops in cells)
    return archs, {a: i for i, a in enumerate(archs)}, cells


@functools.lru_cache(maxsize=NUM_ARCHS)
def _pruned_hash(arch: str) -> str:
    return _NB201.to_graph(arch).pruned().canonical_hash()


class TransNASMicroSpace(EdgeOpCell, SearchSpace):
    """TransNAS-Bench-101 micro cells (NAS-Bench-201 notation, 4 ops) in the Taskonomy encoder 64-41414."""

    name = "transnas_micro"
    #: the reference network's default input (``MacroNet(input_dim=(224, 224))``) and the size
    #: it counts FLOPs at; the benchmark trained on 256 x 256 Taskonomy images, which the
    #: fully convolutional encoder takes as well
    input_shape = (3, 224, 224)
    ops = OPS
    encoder = ENCODER

    # -- strings ------------------------------------------------------------------
    def parse(self, text: str) -> str:
        """The canonical arch string of ``text``: NAS-Bench-201 notation with this space's
        ops, or the benchmark's code ``64-41414-a_bc_def`` (or ``a_bc_def``)."""
        if isinstance(text, str) and text in _all_archs()[1]:
            return text
        return self.format(self.parse_ops(text))

    def parse_ops(self, text: str) -> tuple[str, ...]:
        """The six edge ops of an arch string or code, in :data:`~archgen.spaces.nb201.EDGES` order."""
        if not isinstance(text, str):
            raise InvalidArchError(f"a {_NAME} arch must be a string, got {type(text).__name__}")
        known = _all_archs()[1].get(text)
        if known is not None:
            return _all_archs()[2][known]  # the common, well-formed case
        s = text.strip()
        if "|" in s or "~" in s:
            return self._parse_cell(text, s)
        return self._parse_code(text, s)

    def _parse_cell(self, text: str, s: str) -> tuple[str, ...]:
        if not (s.startswith("|") and s.endswith("|")) or len(s) < 2:
            raise InvalidArchError(f"malformed {_NAME} arch {quote(text)}: it must start and end with '|', "
                                   f"e.g. {_EXAMPLE} (or the benchmark's code, e.g. {ENCODER}-3_12_303)")
        groups = s.split("+")
        if len(groups) != 3:
            raise InvalidArchError(f"malformed {_NAME} arch {quote(text)}: expected 3 node groups separated "
                                   f"by '+', got {len(groups):,}")
        ops: list[str] = []
        for j, group in enumerate(groups, start=1):
            if not (group.startswith("|") and group.endswith("|")) or len(group) < 2:
                raise InvalidArchError(f"malformed node group {quote(group, 80)} in {quote(text)}: expected |op~i|...|")
            tokens = group[1:-1].split("|")
            if len(tokens) != j:
                raise InvalidArchError(f"node {j} in {quote(text)} must list {j} incoming edge(s), got "
                                       f"{len(tokens):,}: {quote(group, 80)}")
            for i, token in enumerate(tokens):
                op, sep, src = token.partition("~")
                if not sep:
                    raise InvalidArchError(f"token {quote(token, 80)} (node {j}) in {quote(text)} is not of the "
                                           "form op~i")
                if op not in OPS:
                    raise InvalidArchError(f"token {quote(token, 80)} (edge {i}->{j}) has op {quote(op, 60)}, "
                                           f"not one of the {_NAME} ops: {', '.join(OPS)}")
                if src != str(i):
                    raise InvalidArchError(f"token {quote(token, 80)} (node {j}) must come from node {i} "
                                           f"(edges listed in order 0..{j - 1})")
                ops.append(op)
        return tuple(ops)

    def _parse_code(self, text: str, s: str) -> tuple[str, ...]:
        """Ops of the benchmark's code (a valid one has 17 characters, so errors quote 60)."""
        encoder, sep, cell = s.rpartition("-")
        if sep and encoder != ENCODER:
            raise InvalidArchError(f"{_NAME} code {quote(text, 60)} has the encoder {quote(encoder, 60)}; the micro "
                                   f"space has only {ENCODER} (codes read {ENCODER}-a_bc_def)")
        groups = cell.split("_")
        if len(groups) != 3 or any(len(g) != j for j, g in enumerate(groups, start=1)):
            raise InvalidArchError(f"malformed {_NAME} arch {quote(text, 60)}: expected NAS-Bench-201 notation, e.g. "
                                   f"{_EXAMPLE}, or the benchmark's code {ENCODER}-a_bc_def (one digit per edge: "
                                   f"{_DIGITS_SAID})")
        ops: list[str] = []
        for j, group in enumerate(groups, start=1):
            for i, digit in enumerate(group):
                if digit not in DIGITS:
                    raise InvalidArchError(f"digit {quote(digit)} of edge {i}->{j} in {_NAME} code {quote(text, 60)} "
                                           f"is not an op; digits: {_DIGITS_SAID}")
                ops.append(OPS[int(digit)])
        return tuple(ops)

    @staticmethod
    def format(ops: tuple[str, ...] | list[str]) -> str:
        """Arch string of six edge ops in :data:`~archgen.spaces.nb201.EDGES` order."""
        if len(ops) != len(EDGES):
            raise InvalidArchError(f"a {_NAME} cell has {len(EDGES)} edge ops, got {len(ops)}")
        for (j, i), op in zip(EDGES, ops):
            if op not in OPS:
                raise InvalidArchError(f"edge {i}->{j} has op {quote(op, 60)}, not one of the {_NAME} ops: "
                                       f"{', '.join(OPS)}")
        return NB201Space.format(ops)

    def code_of(self, arch: str) -> str:
        """The benchmark's code of ``arch``, e.g. ``64-41414-3_12_303``."""
        d = "".join(str(_OP_POSITION[op]) for op in self.parse_ops(arch))
        return f"{ENCODER}-{d[0]}_{d[1:3]}_{d[3:]}"

    # -- index (base-4 code of the six ops, the code's digits; NOT the benchmark API's index) ---------
    display_name = _NAME

    def _table(self) -> tuple[tuple[str, ...], dict[str, int]]:
        return _all_archs()[:2]

    # -- graphs (NAS-Bench-201's cell graphs) -----------------------------------------
    def to_graph(self, arch: str) -> ArchGraph:
        return _NB201.to_graph(self.parse(arch))

    def from_graph(self, graph: ArchGraph) -> str:
        """Decode any node numbering of the ops-on-nodes cell graph."""
        if not isinstance(graph, ArchGraph):
            raise InvalidArchError(f"expected an ArchGraph, got {type(graph).__name__}")
        bad = [(n, op) for n, op in enumerate(graph.ops) if op not in (*OPS, "input", "output")]
        if bad:
            raise InvalidArchError(f"nodes {quote(bad)} have ops outside the {_NAME} space ({', '.join(OPS)})")
        try:
            return _NB201.from_graph(graph)
        except InvalidArchError as exc:
            raise InvalidArchError(f"not a {_NAME} cell graph (a NAS-Bench-201 cell graph of its ops): {exc}") from None

    def graph_arrays(self, arch: str, view: str = "full"):
        """NAS-Bench-201's fast path (the same graphs)."""
        return _NB201.graph_arrays(self.parse(arch), view)

    def equivalence_key(self, arch: str) -> str:
        """The canonical hash of the pruned graph (``none`` ops and what they cut off from the
        output removed): cells whose live ops are wired alike. Unlike NAS-Bench-201's key, a
        ``skip_connect`` is not collapsed, since from the input of a module's first cell it
        is a factorized reduction."""
        return _pruned_hash(self.parse(arch))

    # -- building -----------------------------------------------------------------------------
    def to_module(self, arch: str, num_classes: int = NUM_CLASSES, **options):
        """The TransNAS-Bench-101 encoder ``64-41414`` of this cell with a classification head
        (:class:`~archgen.spaces.transnas_network.TransNASMicroNetwork`); ``channels=``,
        ``macro=`` and ``cells_per_module=`` override the benchmark's 64, ``"41414"`` and 2
        (e.g. a narrower proxy network of the same cell)."""
        from .transnas_network import TransNASMicroNetwork

        options = {"channels": CHANNELS, "macro": MACRO, "cells_per_module": CELLS_PER_MODULE, **options}
        return TransNASMicroNetwork(dict(zip(EDGES, self.parse_ops(arch))), num_classes=num_classes, **options)
