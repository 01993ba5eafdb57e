"""The TransNAS-Bench-101 micro space (``transnas_micro``): strings and the benchmark's codes,
index, decisions, graphs, the 64-41414 network, ONNX, and its 6-task table."""

from __future__ import annotations

import csv
import re
import time

import numpy as np
import pytest

from archgen.errors import InvalidArchError, RequestError
from archgen.graph import ArchGraph
from archgen.spaces import get_space
from archgen.spaces.nb201 import EDGES
from conftest import require_file, require_table
from test_graph import permuted

OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3")
TASKS = ["autoencoder", "class_scene", "jigsaw", "normal", "room_layout", "segmentsemantic"]
ALL_NONE = "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"
#: the README's example 64-41414-1_02_333
EXAMPLE = "|skip_connect~0|+|none~0|nor_conv_1x1~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"
MB = 1_000_000


@pytest.fixture(scope="module")
def space():
    return get_space("transnas_micro")


@pytest.fixture(scope="module")
def rows(data_root):
    """The table file's rows as written (index, arch, code, the 6 tasks)."""
    from archgen.data import open_text

    path = require_file(data_root, "transnas101_micro/tasks.csv")
    with open_text(path) as f:
        return list(csv.DictReader(f))


def _ops_of_string(arch: str) -> list[str]:
    """The six edge ops of an NB201-notation string, read independently of the space."""
    groups = arch.split("+")
    ops = []
    for j, group in enumerate(groups, start=1):
        tokens = re.findall(r"(\w+)~(\d)", group)
        assert [int(i) for _, i in tokens] == list(range(j)), arch
        ops.extend(op for op, _ in tokens)
    return ops


def _ops_of_code(code: str) -> list[str]:
    """The six edge ops of a ``64-41414-a_bc_def`` code: digit k of group j is the edge k -> j."""
    channels, macro, cell = code.split("-")
    assert (channels, macro) == ("64", "41414")
    groups = cell.split("_")
    assert [len(g) for g in groups] == [1, 2, 3], code
    return [OPS[int(d)] for g in groups for d in g]


# -- registry and strings --------------------------------------------------------------------
def test_registry_and_aliases(space):
    assert space.name == "transnas_micro" and space.size == 4096
    for alias in ("transnas101_micro", "TransNAS-Micro", "transnas_micro"):
        assert get_space(alias).name == "transnas_micro"
    assert space.input_shape == (3, 224, 224) and space.input_shape_of(EXAMPLE) == (3, 224, 224)
    assert space.ops == OPS


def test_code_and_arch_agree_on_every_table_row(space, rows):
    """The code <-> arch edge mapping, read independently of the space, holds for all 711 rows;
    and the space parses both notations to the table's string and back."""
    assert len(rows) == 711
    for row in rows:
        assert _ops_of_code(row["code"]) == _ops_of_string(row["arch"]), row["index"]
        assert space.parse(row["arch"]) == row["arch"]
        assert space.parse(row["code"]) == row["arch"]
        assert space.parse(row["code"].split("-", 2)[2]) == row["arch"]  # the bare cell code
        assert space.code_of(row["arch"]) == row["code"]
        assert space.format(space.parse_ops(row["arch"])) == row["arch"]
        assert list(space.parse_ops(row["code"])) == _ops_of_string(row["arch"])


def test_readme_example_and_whitespace(space):
    assert space.parse("64-41414-1_02_333") == EXAMPLE
    assert space.parse("  64-41414-1_02_333\n") == EXAMPLE
    assert space.parse("\t" + EXAMPLE + " ") == EXAMPLE
    assert space.code_of(EXAMPLE) == "64-41414-1_02_333"
    assert space.code_of("64-41414-1_02_333") == "64-41414-1_02_333"


@pytest.mark.parametrize("text, message", [
    ("|avg_pool_3x3~0|+|none~0|none~1|+|none~0|none~1|none~2|",
     r"token 'avg_pool_3x3~0' \(edge 0->1\) has op 'avg_pool_3x3', not one of the TransNAS-Bench-101 micro ops: "
     r"none, skip_connect, nor_conv_1x1, nor_conv_3x3$"),
    ("|none~0|+|none~0|nor_conv_5x5~1|+|none~0|none~1|none~2|", r"token 'nor_conv_5x5~1' \(edge 1->2\) has op"),
    ("|none~0|+|none~0|none~1|", "expected 3 node groups"),
    ("|none~0|+|none~0|+|none~0|none~1|none~2|", "node 2 .* must list 2 incoming edge"),
    ("|none~0|+|none~0|none1|+|none~0|none~1|none~2|", "token 'none1' .* not of the form op~i"),
    ("|none~0|+|none~1|none~0|+|none~0|none~1|none~2|", "token 'none~1' .* must come from node 0"),
    ("none~0|", "must start and end with '|'"),
    ("64-41414-4_00_000", r"digit '4' of edge 0->1 in TransNAS-Bench-101 micro code .* digits: 0 none, "
                          r"1 skip_connect, 2 nor_conv_1x1, 3 nor_conv_3x3$"),
    ("64-41414-0_00_30x", r"digit 'x' of edge 2->3"),
    ("32-41414-0_00_000", r"has the encoder '32-41414'; the micro space has only 64-41414"),
    ("64-1234-basic", r"has the encoder '64-1234'"),
    ("64-41414-0_000_00", r"expected NAS-Bench-201 notation, .* or the benchmark's code 64-41414-a_bc_def"),
    ("0_00", "expected NAS-Bench-201 notation"),
    ("", "expected NAS-Bench-201 notation"),
])
def test_errors_name_the_token_and_the_allowed_ops(space, text, message):
    with pytest.raises(InvalidArchError, match=message):
        space.parse(text)


def test_non_string_arch(space):
    with pytest.raises(InvalidArchError, match="must be a string, got int"):
        space.parse(42)
    with pytest.raises(InvalidArchError, match="edge 2->3 has op 'avg_pool_3x3'"):
        space.format(("none",) * 5 + ("avg_pool_3x3",))
    with pytest.raises(InvalidArchError, match="has 6 edge ops, got 2"):
        space.format(("none", "none"))


@pytest.mark.parametrize("text", [
    "x" * MB, "|" + "a" * MB + "|", "|" + "q~0|" * (MB // 4) + "+||+||", "|" + "+" * MB + "|", "-" * MB,
    "64-41414-" + "3" * MB, "64-41414-0_00_" + "9" * MB, "9" * MB + "-41414-0_00_000",
    "|nor_conv_3x3~" + "9" * 400 + "|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|none~2|",
], ids=lambda t: f"{len(t)}chars")
def test_huge_input_is_a_short_fast_error(space, text):
    """What tests/test_hardening_spaces.py asks of every space: short messages saying the cut."""
    start = time.perf_counter()
    with pytest.raises(InvalidArchError) as info:
        space.parse(text)
    assert time.perf_counter() - start < 1.0
    message = str(info.value)
    assert len(message) < 600, message
    assert "characters" in message or "digits" in message
    assert "9" * 100 not in message and "3" * 100 not in message


# -- index, sampling, mutation -------------------------------------------------------------------
def test_enumerate_and_index(space):
    archs = list(space.enumerate())
    assert len(archs) == len(set(archs)) == space.size == 4096
    assert archs[0] == ALL_NONE and archs[-1] == space.parse("64-41414-3_33_333")
    for i in (0, 1, 3, 4, 1234, 4095):
        assert space.index_of(archs[i]) == i and space.arch_at(i) == archs[i]
        assert space.index_of(space.code_of(archs[i])) == i  # codes are accepted too
    # the index reads the code's digits in base 4
    assert space.index_of(EXAMPLE) == int("102333", 4)
    assert all(space.parse(a) == a for a in archs[::97])
    for bad in (-1, 4096, True, 1.0):
        with pytest.raises(InvalidArchError, match=r"0\.\.4095"):
            space.arch_at(bad)


def test_sample_is_reproducible_distinct_and_valid(space):
    a, b = space.sample(50, seed=7), space.sample(50, seed=7)
    assert a == b and len(set(a)) == 50 and space.sample(50, seed=8) != a
    assert all(space.parse(x) == x for x in a)
    assert sorted(space.sample(4096, seed=1)) == sorted(space.enumerate())  # all, each once
    assert len(space.sample(5000, seed=1)) == 5000  # more than the space: with repeats
    assert space.sample(0) == []
    with pytest.raises(RequestError, match="n must be from 0 to 1,000,000, got 1,000,001"):
        space.sample(MB + 1)
    with pytest.raises(RequestError, match=r"seed must be an int from 0 to 2\*\*63-1, got -1"):
        space.sample(2, seed=-1)
    assert space.sample(3, seed=2**63 - 1) == space.sample(3, seed=2**63 - 1)


def test_mutate_changes_exactly_one_edge(space):
    children = set()
    for seed in range(30):
        child = space.mutate(EXAMPLE, seed=seed)
        assert sum(x != y for x, y in zip(space.parse_ops(child), space.parse_ops(EXAMPLE))) == 1
        assert "avg_pool_3x3" not in child
        children.add(child)
    assert len(children) > 5
    assert space.mutate(EXAMPLE, seed=3) == space.mutate(EXAMPLE, seed=3)
    assert space.mutate("64-41414-1_02_333", seed=3) == space.mutate(EXAMPLE, seed=3)
    with pytest.raises(RequestError, match="seed must be an int"):
        space.mutate(EXAMPLE, seed=1.5)


# -- decisions and graphs --------------------------------------------------------------------------
def test_decisions_round_trip_over_the_whole_space(space):
    layout = space.decisions
    assert layout.num_slots == 6 and layout.options == (OPS,) * 6
    for arch in space.enumerate():
        choices = space.encode_choices(arch)
        assert space.decode_choices(choices) == arch
        assert space.decode_choices(list(np.array(choices))) == arch  # numpy ints take the checked path
    assert space.encode_choices("64-41414-1_02_333") == (1, 0, 2, 3, 3, 3)  # the code's digits
    # the template DAG is the arch's graph with the slots filled in
    g = space.to_graph(EXAMPLE)
    ops = list(layout.node_ops)
    for slot, node in enumerate(layout.slot_nodes):
        ops[node] = OPS[space.encode_choices(EXAMPLE)[slot]]
    assert ops == g.ops and sorted(layout.edges) == sorted(g.edges)
    with pytest.raises(InvalidArchError, match="choice 4 of slot 2 is out of range 0..3"):
        space.decode_choices([0, 0, 4, 0, 0, 0])
    with pytest.raises(InvalidArchError, match="has 6 choices, got 5"):
        space.decode_choices([0] * 5)


def test_graph_round_trip_over_the_whole_space(space):
    nb201 = get_space("nb201")
    for arch in space.enumerate():
        g = space.to_graph(arch)
        assert space.from_graph(g) == arch
    g = space.to_graph(EXAMPLE)
    g.validate()
    assert g.num_nodes == 8 and g.ops[0] == "input" and g.ops[-1] == "output"
    assert g.canonical_hash() == nb201.to_graph(EXAMPLE).canonical_hash()  # NB201's cell graph
    for seed in range(3):
        assert space.from_graph(permuted(g, seed)) == EXAMPLE
    assert space.from_graph(ArchGraph.from_pyg(g.to_pyg())) == EXAMPLE
    assert space.coerce(g) == EXAMPLE


def test_from_graph_rejects_graphs_outside_the_space(space):
    nb201 = get_space("nb201")
    pooled = nb201.to_graph("|avg_pool_3x3~0|+|none~0|none~1|+|none~0|none~1|none~2|")
    with pytest.raises(InvalidArchError, match=r"nodes \[\(1, 'avg_pool_3x3'\)\] have ops outside the "
                                               r"TransNAS-Bench-101 micro space \(none, skip_connect"):
        space.from_graph(pooled)
    with pytest.raises(InvalidArchError, match="not a TransNAS-Bench-101 micro cell graph.*has 8 nodes"):
        space.from_graph(ArchGraph.from_lists(["input", "skip_connect", "output"], [(0, 1), (1, 2)]))
    g = space.to_graph(EXAMPLE)
    rewired = ArchGraph.from_lists(g.ops, [e for e in g.edges if e != (0, 4)] + [(1, 4)])
    with pytest.raises(InvalidArchError, match="wiring does not match"):
        space.from_graph(rewired)


@pytest.mark.parametrize("view", ["full", "pruned"])
def test_graph_arrays_equal_the_generic_path(space, view):
    from archgen.spaces.base import SearchSpace

    for arch in space.sample(200, seed=5) + [ALL_NONE, EXAMPLE]:
        for a, b in zip(space.graph_arrays(arch, view), SearchSpace.graph_arrays(space, arch, view)):
            assert a.shape == b.shape and (a == b).all(), arch


def test_equivalence_key_is_the_pruned_graph(space):
    # whatever sits on edges 1<-0 and 2<-1 never reaches the output
    base = "|{a}~0|+|none~0|{b}~1|+|nor_conv_3x3~0|none~1|none~2|"
    assert len({space.equivalence_key(base.format(a=a, b=b)) for a in OPS for b in OPS}) == 1
    assert space.equivalence_key("64-41414-0_00_300") == space.equivalence_key(base.format(a="skip_connect",
                                                                                          b="nor_conv_1x1"))
    # a skip from the cell input is a factorized reduction in a module's first cell: not merged
    via_skip = "|skip_connect~0|+|none~0|none~1|+|none~0|nor_conv_1x1~1|none~2|"
    direct = "|none~0|+|none~0|none~1|+|nor_conv_1x1~0|none~1|none~2|"
    assert space.equivalence_key(via_skip) != space.equivalence_key(direct)
    keys = {space.equivalence_key(a) for a in space.enumerate()}
    assert 1 < len(keys) < 4096
    assert space.equivalence_key("64-41414-0_00_000") == space.equivalence_key(ALL_NONE)


# -- the network ----------------------------------------------------------------------------------
def _expected_parameters(ops, num_classes=47, channels=64, macro="41414", cells=2) -> int:
    """Parameters of TransNAS-Bench-101's MacroNet(64-41414-...) with an FFDecoder head,
    counted from the reference's layer list (net_macro.py, cell_micro.py, cell_ops.py)."""
    half = channels // 2
    total = 3 * half * 9 + 2 * half + half * channels * 9 + 2 * channels  # stem: conv, BN, ReLUConvBN
    c = channels
    for digit in macro:
        c_out = 2 * c if digit in "24" else c
        stride = 2 if digit in "34" else 1
        for k in range(cells):
            c_in, s = (c, stride) if k == 0 else (c_out, 1)
            for (_, i), op in zip(EDGES, ops):
                a, st = (c_in, s) if i == 0 else (c_out, 1)
                if op == "nor_conv_1x1":
                    total += a * c_out + 2 * c_out
                elif op == "nor_conv_3x3":
                    total += a * c_out * 9 + 2 * c_out
                elif op == "skip_connect" and (st != 1 or a != c_out):  # FactorizedReduce
                    total += 2 * a * (c_out // 2) + 2 * c_out
        c = c_out
    return total + c * num_classes + num_classes


@pytest.mark.parametrize("code", ["0_00_000", "1_02_333", "3_33_333", "1_11_111", "0_00_202", "2_13_021"])
def test_parameter_count_is_the_reference_networks(space, code):
    from archgen.hardware import count_parameters

    net = space.to_module(code)
    assert count_parameters(net) == _expected_parameters(space.parse_ops(code))
    assert count_parameters(space.to_module(code, num_classes=5)) == _expected_parameters(space.parse_ops(code), 5)


def test_network_structure_and_forward(space, one_thread):
    import torch

    from archgen.spaces.transnas_network import FactorizedReduce, MicroCell

    net = space.to_module(EXAMPLE).eval()
    cells = [m for m in net.modules() if isinstance(m, MicroCell)]
    assert len(cells) == 10  # 5 modules of 2 cells
    assert [(c.c_in, c.c_out, c.stride) for c in cells[::2]] == [(64, 128, 2), (128, 128, 1), (128, 256, 2),
                                                                  (256, 256, 1), (256, 512, 2)]
    # the skip from the cell input is a factorized reduction where the module changes shape, else identity
    reduces = [type(c.edges["1_0"]).__name__ == "FactorizedReduce" for c in cells]
    assert reduces == [True, False, False, False, True, False, False, False, True, False]  # digit 4 only
    assert isinstance(cells[0].edges["1_0"], FactorizedReduce) and "2_0" not in cells[0].edges  # none: left out
    assert net.out_channels == 512
    with torch.no_grad():
        x = torch.randn(2, 3, 64, 64)
        assert net(x).shape == (2, 47)
        assert net.features(x).shape == (2, 512, 2, 2)  # side / 32
        assert space.to_module(ALL_NONE).eval().features(torch.randn(1, 3, 224, 224)).shape == (1, 512, 7, 7)
        odd = space.to_module("64-41414-1_00_000", num_classes=3).eval()(torch.randn(1, 3, 65, 65))
        assert odd.shape == (1, 3) and torch.isfinite(odd).all()
    # an all-none cell computes zero features: only the head's bias reaches the output
    with torch.no_grad():
        none_net = space.to_module(ALL_NONE, num_classes=4).eval()
        assert torch.allclose(none_net(torch.randn(1, 3, 64, 64)), none_net.head[-1].bias.unsqueeze(0))


def test_network_options_and_training_step(space, one_thread):
    import torch

    from archgen.spaces.transnas_network import TransNASMicroNetwork

    small = space.to_module(EXAMPLE, num_classes=3, channels=8, macro="414", cells_per_module=1)
    assert small.out_channels == 32
    x, y = torch.randn(6, 3, 32, 32), torch.tensor([0, 1, 2, 0, 1, 2])
    opt = torch.optim.SGD(small.parameters(), lr=0.05, momentum=0.9)
    losses = []
    for _ in range(8):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(small(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert all(np.isfinite(losses)) and losses[-1] < 0.8 * losses[0]
    cell = dict(zip(EDGES, OPS[:3] * 2))
    for bad, message in ((dict(macro="4154"), "digits 1-4"), (dict(channels=7), "even"),
                         (dict(cells_per_module=0), "positive int")):
        kwargs = {"channels": 64, "macro": "41414", "cells_per_module": 2, **bad}
        with pytest.raises(ValueError, match=message):
            TransNASMicroNetwork(cell, 10, **kwargs)


def test_onnx_export_matches_torch(space, tmp_path, one_thread):
    import torch

    from archgen.hardware import run_onnx, to_onnx

    cases = [("64-41414-1_02_333", (1, 3, 64, 64)), ("64-41414-2_13_021", (1, 3, 64, 64)),
             ("64-41414-0_00_202", (1, 3, 224, 224)), ("64-41414-1_00_000", (1, 3, 96, 96)),
             ("64-41414-1_11_111", (1, 3, 64, 64))]  # the last: sums of skips, outputs of ~1e5
    for i, (code, shape) in enumerate(cases):
        net = space.to_module(code).eval()
        path = to_onnx(net, tmp_path / f"net{i}.onnx", shape)
        x = np.random.default_rng(i).standard_normal(shape).astype(np.float32)
        with torch.no_grad():
            expected = net(torch.from_numpy(x)).numpy()
        got = run_onnx(path, x)
        assert got.shape == expected.shape == (1, 47)
        assert np.abs(got - expected).max() <= 1e-4 * max(1.0, np.abs(expected).max()), code


def test_complexity_counts_the_built_network(space):
    c = space.complexity("64-41414-0_00_202")
    assert c.params == _expected_parameters(space.parse_ops("64-41414-0_00_202"))
    assert c.macs > 1e8  # at 224 x 224


# -- the benchmark table ---------------------------------------------------------------------------
def test_table_has_711_cells_and_6_tasks(space, data_root, rows):
    table = require_table("transnas_micro", data_root)
    assert len(table) == 711 and table.tasks == TASKS and table.devices == []
    assert table.archs == tuple(r["arch"] for r in rows)
    assert table.archs[0] == "|none~0|+|none~0|none~1|+|nor_conv_1x1~0|none~1|nor_conv_1x1~2|"
    first = {"class_scene": 24.1988468170166, "autoencoder": 0.36447107791900635, "normal": 0.40326449275016785,
             "jigsaw": 11.046975135803223, "room_layout": -0.8988975286483765, "segmentsemantic": 91.93154907226562}
    for task, value in first.items():
        assert table.accuracy(task)[0] == value
        assert np.array_equal(table.accuracy(task), np.array([float(r[task]) for r in rows]))
        assert len(table.accuracy_rows(task)) == 711
    assert all(space.parse(a) == a for a in table.archs) and len(set(table.archs)) == 711
    notes = table.task_notes
    assert set(notes) == set(TASKS)
    assert "top-1 accuracy (%)" in notes["class_scene"] and "top-1 accuracy (%)" in notes["jigsaw"]
    assert "SSIM" in notes["autoencoder"] and "SSIM" in notes["normal"]
    assert "negative L2 loss" in notes["room_layout"]
    assert table.rows([space.parse("64-41414-0_00_202")]).tolist() == [0]


def test_table_layout_reads_only_the_listed_columns(tmp_path):
    """The `code` column is not a metric; a listed column missing from the file is an error."""
    from archgen.data import load_table
    from archgen.errors import DataError

    folder = tmp_path / "transnas101_micro"
    folder.mkdir()
    header = "index,arch,code," + ",".join(["class_scene", "autoencoder", "normal", "jigsaw", "room_layout",
                                             "segmentsemantic"])
    row = f"0,{ALL_NONE},64-41414-0_00_000,10,0.3,0.4,5,-0.9,91"
    (folder / "tasks.csv").write_text(f"{header}\n{row}\n")
    table = load_table("transnas_micro", tmp_path)
    assert table.tasks == TASKS and table.accuracy("room_layout").tolist() == [-0.9]
    other = tmp_path / "other" / "transnas101_micro"
    other.mkdir(parents=True)
    (other / "tasks.csv").write_text(header.replace(",jigsaw", ",jig") + f"\n{row}\n")
    with pytest.raises(DataError, match="lacks the column.*jigsaw"):
        load_table("transnas_micro", other.parent)
