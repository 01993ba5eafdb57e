import csv

import numpy as np
import pytest
import torch

from archgen.errors import InvalidArchError
from archgen.graph import ArchGraph
from archgen.spaces.base import SearchSpace
from archgen.spaces.fbnet import BLOCKS, LAYER_SHAPES, NUM_ARCHS, FBNetSpace
from test_graph import permuted

ALL_K3_E1 = "-".join(["k3_e1"] * 22)
# every block, an identity skip (layers 0, 3), and shape-changing skips (layer 5: stride 2, 24->32;
# layer 13: 64->112 at stride 1)
MIXED_LAYERS = [
    "skip",
    "k3_e1", "k3_e1_g2", "skip", "k3_e3",
    "skip", "k3_e6", "k5_e1", "k5_e1_g2",
    "k5_e3", "k5_e6", "k3_e1", "k3_e1_g2",
    "skip", "k3_e3", "k3_e6", "k5_e1",
    "k5_e1_g2", "k5_e3", "k5_e6", "skip",
    "k5_e6",
]
MIXED = "-".join(MIXED_LAYERS)


@pytest.fixture(scope="module")
def fbnet():
    return FBNetSpace()


pytestmark = pytest.mark.usefixtures("one_thread")


def test_identity_and_size(fbnet):
    assert fbnet.name == "fbnet" and fbnet.input_shape == (3, 32, 32)
    assert fbnet.size == 9**22 == NUM_ARCHS
    assert len(BLOCKS) == 9 and len(LAYER_SHAPES) == 22


def test_parse_format_round_trip(fbnet):
    assert fbnet.parse(MIXED) == MIXED
    assert fbnet.parse("  " + MIXED.replace("-", " - ") + "\n") == MIXED
    assert fbnet.parse_layers(MIXED) == tuple(MIXED_LAYERS)
    assert fbnet.format(fbnet.parse_layers(MIXED)) == MIXED
    assert fbnet.from_record(MIXED_LAYERS) == MIXED
    assert fbnet.from_record([f" {b} " for b in MIXED_LAYERS]) == MIXED
    assert fbnet.from_record(MIXED) == MIXED
    for i in (0, 1, 8, 9, 12345, NUM_ARCHS - 1):
        assert fbnet.index_of(fbnet.arch_at(i)) == i
    assert fbnet.arch_at(0) == ALL_K3_E1
    assert fbnet.arch_at(NUM_ARCHS - 1) == "-".join(["skip"] * 22)


@pytest.mark.parametrize(
    "text, message",
    [
        (MIXED.replace("k5_e6", "k7_e6", 1), r"layer 10 has unknown block 'k7_e6'; FBNet blocks: k3_e1, k3_e1_g2, .*, skip"),
        ("k3_e1-" * 21 + "skip_connect", r"layer 21 has unknown block 'skip_connect'"),
        ("k3_e1--" + "k3_e1-" * 19 + "k3_e1", r"layer 1 has unknown block ''"),
        ("-".join(["k3_e1"] * 21), r"FBNet has 22 layers, got 21"),
        ("-".join(["k3_e1"] * 23), r"FBNet has 22 layers, got 23"),
        ("", r"FBNet has 22 layers, got 0"),
        ("k3_e1,k3_e1", r"FBNet has 22 layers, got 1"),
    ],
)
def test_malformed_strings_name_the_problem(fbnet, text, message):
    with pytest.raises(InvalidArchError, match=message):
        fbnet.parse(text)


def test_non_string_and_bad_records(fbnet):
    with pytest.raises(InvalidArchError, match="must be a string, got int"):
        fbnet.parse(42)
    with pytest.raises(InvalidArchError, match="must be a string, got list"):
        fbnet.parse(MIXED_LAYERS)
    with pytest.raises(InvalidArchError, match="FBNet has 22 layers, got 21"):
        fbnet.from_record(MIXED_LAYERS[:-1])
    with pytest.raises(InvalidArchError, match="layer 2 has unknown block 'k3_e2'"):
        fbnet.from_record(MIXED_LAYERS[:2] + ["k3_e2"] + MIXED_LAYERS[3:])
    with pytest.raises(InvalidArchError, match="layer 0 has unknown block 3"):
        fbnet.from_record([3] + MIXED_LAYERS[1:])
    with pytest.raises(InvalidArchError, match="sequence of 22 block names, got int"):
        fbnet.from_record(7)
    with pytest.raises(InvalidArchError, match="0..9\\^22-1"):
        fbnet.arch_at(NUM_ARCHS)


def test_every_table_row_parses(fbnet, data_root):
    from archgen.data import open_text
    from conftest import require_file

    path = require_file(data_root, "fbnet/archs.csv")  # plain or .gz
    with open_text(path) as f:
        rows = list(csv.reader(f))
    header, rows = rows[0], rows[1:]
    assert header == ["index"] + [f"layer{i}" for i in range(22)]
    archs = [fbnet.from_record(row[1:]) for row in rows]
    assert len(archs) == 5000
    assert all(a == "-".join(row[1:]) for a, row in zip(archs, rows))
    used = {b for a in archs for b in fbnet.parse_layers(a)}
    assert used == set(BLOCKS)


def test_layer_shapes_follow_the_stages():
    widths = [s.channels_out for s in LAYER_SHAPES]
    assert widths == [16] + [24] * 4 + [32] * 4 + [64] * 4 + [112] * 4 + [184] * 4 + [352]
    strided = [i for i, s in enumerate(LAYER_SHAPES) if s.stride == 2]
    assert strided == [5, 9, 17]
    assert [LAYER_SHAPES[i].resolution for i in (0, 5, 6, 9, 10, 17, 18, 21)] == [32, 32, 16, 16, 8, 8, 4, 4]
    assert [i for i, s in enumerate(LAYER_SHAPES) if not s.identity_skip] == [1, 5, 9, 13, 17, 21]


def test_graph_structure_and_attributes(fbnet):
    g = fbnet.to_graph(MIXED)
    assert g.validate() is g
    assert g.num_nodes == 28 and g.edges == [(v, v + 1) for v in range(27)]
    assert g.ops[:2] == ["input", "conv"] and g.ops[-4:] == ["conv", "global_pool", "linear", "output"]
    assert g.attrs(1) == dict(kernel=3, stride=1, channels_in=3, channels_out=16, resolution=32)
    assert g.attrs(24) == dict(kernel=1, stride=1, channels_in=352, channels_out=1504, resolution=4)
    assert g.attrs(26) == dict(channels_in=1504, channels_out=100)
    # layer i is node i + 2
    assert g.op(2) == "skip_connect" and g.attrs(2) == dict(stride=1, channels_in=16, channels_out=16, resolution=32)
    assert g.op(4) == "mbconv" and g.attrs(4) == dict(
        kernel=3, expand=1, groups=2, stride=1, channels_in=24, channels_out=24, resolution=32)
    assert g.op(7) == "skip_connect" and g.attrs(7) == dict(stride=2, channels_in=24, channels_out=32, resolution=32)
    assert g.attrs(11) == dict(kernel=5, expand=3, groups=1, stride=2, channels_in=32, channels_out=64, resolution=16)
    assert g.attrs(23) == dict(kernel=5, expand=6, groups=1, stride=1, channels_in=184, channels_out=352, resolution=4)
    for n in range(g.num_nodes):
        assert all(isinstance(v, (int, float)) and v >= 0 for v in g.attrs(n).values())
    # distinct archs give distinct graphs
    archs = fbnet.sample(200, seed=3)
    assert len({fbnet.to_graph(a).canonical_hash() for a in archs}) == 200


def test_from_graph_round_trip(fbnet):
    for arch in [MIXED, ALL_K3_E1, *fbnet.sample(20, seed=11)]:
        g = fbnet.to_graph(arch)
        assert fbnet.from_graph(g) == arch
        assert fbnet.coerce(g) == arch
    g = fbnet.to_graph(MIXED)
    for seed in range(3):
        assert fbnet.from_graph(permuted(g, seed)) == MIXED
    assert fbnet.from_graph(ArchGraph.from_pyg(g.to_pyg())) == MIXED
    assert fbnet.from_graph(ArchGraph.from_dict(g.to_dict())) == MIXED


def _with_node(g: ArchGraph, node: int, op: str, attrs: dict) -> ArchGraph:
    nodes = [(op, attrs) if n == node else (g.op(n), g.attrs(n)) for n in range(g.num_nodes)]
    return ArchGraph.from_lists(nodes, g.edges)


def test_from_graph_rejects_foreign_graphs(fbnet):
    g = fbnet.to_graph(MIXED)
    with pytest.raises(InvalidArchError, match="has 28 nodes"):
        fbnet.from_graph(ArchGraph.from_lists(["input", "conv", "output"], [(0, 1), (1, 2)]))
    with pytest.raises(InvalidArchError, match="single chain"):
        fbnet.from_graph(ArchGraph.from_lists([(g.op(n), g.attrs(n)) for n in range(28)], g.edges + [(1, 3)]))
    with pytest.raises(InvalidArchError, match="single chain"):
        fbnet.from_graph(ArchGraph.from_lists(
            [(g.op(n), g.attrs(n)) for n in range(28)], [e for e in g.edges if e != (10, 11)] + [(10, 12)]))
    with pytest.raises(InvalidArchError, match=r"layer 3\) has op 'conv'"):
        fbnet.from_graph(_with_node(g, 5, "conv", g.attrs(5)))
    with pytest.raises(InvalidArchError, match=r"layer 4\) is an mbconv with kernel=7.*no FBNet block"):
        fbnet.from_graph(_with_node(g, 6, "mbconv", {**g.attrs(6), "kernel": 7}))
    with pytest.raises(InvalidArchError, match=r"layer 4\) is an mbconv .*expand=3, groups=2"):
        fbnet.from_graph(_with_node(g, 6, "mbconv", {**g.attrs(6), "groups": 2}))
    with pytest.raises(InvalidArchError, match=r"node 6 \(position 6 of the chain\) is mbconv\(.*stride=2\)"):
        fbnet.from_graph(_with_node(g, 6, "mbconv", {**g.attrs(6), "stride": 2}))
    with pytest.raises(InvalidArchError, match=r"position 24 .*channels_out=1280.*has conv\(.*channels_out=1504"):
        fbnet.from_graph(_with_node(g, 24, "conv", {**g.attrs(24), "channels_out": 1280}))
    with pytest.raises(InvalidArchError, match=r"position 1 .* is conv\(\)"):
        fbnet.from_graph(_with_node(g, 1, "conv", {}))


@pytest.mark.parametrize("view", ["full", "pruned"])
def test_fast_graph_arrays_equal_the_generic_path(fbnet, view):
    for arch in [MIXED, ALL_K3_E1, *fbnet.sample(100, seed=5)]:
        fast = fbnet.graph_arrays(arch, view)
        slow = SearchSpace.graph_arrays(fbnet, arch, view)
        for a, b in zip(fast, slow):
            assert a.dtype == b.dtype and a.shape == b.shape and (a == b).all(), arch
    with pytest.raises(ValueError, match="unknown graph view"):
        fbnet.graph_arrays(MIXED, "sideways")


def test_decision_layout_matches_the_graph(fbnet):
    layout = fbnet.decisions
    assert layout.num_slots == 22 and all(opts == BLOCKS for opts in layout.options)
    assert layout.num_nodes == 28 and layout.slot_nodes == tuple(range(2, 24))
    assert all(src < dst for src, dst in layout.edges)
    g = fbnet.to_graph(MIXED)
    assert layout.edges == tuple(g.edges)
    for n, op in enumerate(layout.node_ops):
        if op is None:
            assert n in layout.slot_nodes and g.op(n) in ("mbconv", "skip_connect")
        else:
            assert g.op(n) == op
    from generators.layout import LayoutTensors

    assert LayoutTensors(layout).num_slots == 22


def test_encode_decode_round_trip(fbnet):
    rng = np.random.default_rng(0)
    for _ in range(200):
        choices = tuple(int(c) for c in rng.integers(0, 9, size=22))
        arch = fbnet.decode_choices(choices)
        assert fbnet.parse(arch) == arch and fbnet.encode_choices(arch) == choices
    assert fbnet.encode_choices(MIXED) == tuple(BLOCKS.index(b) for b in MIXED_LAYERS)
    assert fbnet.decode_choices(np.zeros(22, dtype=np.int64)) == ALL_K3_E1  # numpy ints take the checked path
    with pytest.raises(InvalidArchError, match="has 22 choices, got 21"):
        fbnet.decode_choices([0] * 21)
    with pytest.raises(InvalidArchError, match="choice 9 of slot 3 is out of range 0..8"):
        fbnet.decode_choices([0, 0, 0, 9] + [0] * 18)


def test_sample_is_reproducible_distinct_and_valid(fbnet):
    a, b = fbnet.sample(100, seed=7), fbnet.sample(100, seed=7)
    assert a == b and len(set(a)) == 100
    assert fbnet.sample(100, seed=8) != a
    assert all(fbnet.parse(x) == x for x in a)
    # roughly uniform over the nine blocks at every layer
    counts = np.zeros((22, 9))
    for x in fbnet.sample(900, seed=1):
        for i, block in enumerate(fbnet.parse_layers(x)):
            counts[i, BLOCKS.index(block)] += 1
    assert counts.min() > 50 and counts.max() < 160
    assert fbnet.sample(0) == []
    with pytest.raises(ValueError, match="n must be from 0 to 1,000,000, got -1"):
        fbnet.sample(-1)
    with pytest.raises(ValueError, match=r"seed must be an int from 0 to 2\*\*63-1, got 'x'"):
        fbnet.sample(3, seed="x")


def test_mutate_changes_exactly_one_layer(fbnet):
    children = set()
    for seed in range(30):
        child = fbnet.mutate(MIXED, seed=seed)
        diff = sum(x != y for x, y in zip(fbnet.parse_layers(child), MIXED_LAYERS))
        assert diff == 1
        children.add(child)
    assert len(children) > 20
    assert fbnet.mutate(MIXED, seed=3) == fbnet.mutate(MIXED, seed=3)


def test_equivalence_key_drops_identity_skips_only(fbnet):
    stage1 = ["k3_e1", "k3_e3", "skip", "k5_e6"]
    other = ["k3_e1", "skip", "k3_e3", "k5_e6"]  # the identity skip moved within stage 1
    a = "-".join(MIXED_LAYERS[:1] + stage1 + MIXED_LAYERS[5:])
    b = "-".join(MIXED_LAYERS[:1] + other + MIXED_LAYERS[5:])
    assert a != b and fbnet.equivalence_key(a) == fbnet.equivalence_key(b)
    # a shape-changing skip (first layer of stage 1) is a real layer
    c = "-".join(MIXED_LAYERS[:1] + ["skip", "k3_e1", "k3_e3", "k5_e6"] + MIXED_LAYERS[5:])
    assert fbnet.equivalence_key(c) != fbnet.equivalence_key(a)
    assert fbnet.equivalence_key(MIXED).startswith("/k3_e1-k3_e1_g2-k3_e3/skip-k3_e6")
    assert fbnet.equivalence_key(ALL_K3_E1).count("k3_e1") == 22
    archs = fbnet.sample(300, seed=2)
    assert len({fbnet.equivalence_key(x) for x in archs}) == 300  # random archs rarely coincide


def test_complexity_equals_the_built_network(fbnet):
    from archgen.hardware import count_flops

    for arch in (MIXED, ALL_K3_E1):
        module = fbnet.to_module(arch)
        weights = sum(p.numel() for p in module.parameters() if p.dim() > 1)  # conv and linear weights
        c = fbnet.complexity(arch)
        assert c.params == weights
        assert c.macs == count_flops(module, (1, 3, 32, 32)) / 2


def test_parameter_count_of_all_k3_e1(fbnet):
    from archgen.hardware import count_parameters

    def block(cin, cout):  # expand 1x1, depthwise 3x3, project 1x1, three BNs
        return cin * cin + 9 * cin + cin * cout + 2 * (cin + cin + cout)

    expected = 27 * 16 + 2 * 16  # stem
    expected += sum(block(s.channels_in, s.channels_out) for s in LAYER_SHAPES)
    expected += 352 * 1504 + 2 * 1504 + 1504 * 100 + 100  # head conv + BN, classifier
    n = count_parameters(fbnet.to_module(ALL_K3_E1))
    assert n == expected
    assert 1.0e6 < n < 1.3e6  # a mobile-sized network, most of it in the 1504-wide head
    assert count_parameters(fbnet.to_module(ALL_K3_E1, num_classes=10)) == n - 1504 * 90 - 90


def test_module_forward_shape_and_training(fbnet):
    torch.manual_seed(0)
    module = fbnet.to_module(MIXED, num_classes=10)
    assert len(module.layers) == 22
    assert isinstance(module.layers[0], torch.nn.Identity) and not isinstance(module.layers[5], torch.nn.Identity)
    assert fbnet.to_module(ALL_K3_E1)(torch.randn(2, 3, 32, 32)).shape == (2, 100)
    # trainability on a fixed random batch, at 16x16 to keep it quick (the head pools globally)
    x, y = torch.randn(8, 3, 16, 16), torch.randint(0, 10, (8,))
    assert module(x).shape == (8, 10)
    opt = torch.optim.SGD(module.parameters(), lr=0.01)
    module.train()
    losses = []
    for _ in range(5):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(module(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert np.isfinite(losses).all()
    assert losses[-1] < losses[0] - 0.1, losses
    with pytest.raises(ValueError, match="num_classes must be a positive int"):
        fbnet.to_module(MIXED, num_classes=0)
    with pytest.raises(InvalidArchError):
        fbnet.to_module("k3_e1")


def test_onnx_export_matches_torch(fbnet, tmp_path):
    from archgen.hardware import run_onnx, to_onnx

    torch.manual_seed(1)
    for i, arch in enumerate([MIXED, *fbnet.sample(2, seed=21)]):
        module = fbnet.to_module(arch).eval()
        path = to_onnx(module, tmp_path / f"fbnet{i}.onnx", (1, 3, 32, 32))
        x = torch.randn(1, 3, 32, 32)
        with torch.no_grad():
            expected = module(x).numpy()
        got = run_onnx(path, x.numpy())
        assert got.shape == expected.shape == (1, 100)
        scale = np.abs(expected).max()
        assert scale > 0 and np.abs(got - expected).max() <= 1e-4 * scale, arch
