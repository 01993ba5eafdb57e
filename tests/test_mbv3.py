"""The Once-for-All MobileNetV3 space: strings, records, graphs, decisions, networks."""

import json
import random

import numpy as np
import pytest
import torch

from archgen.errors import InvalidArchError
from archgen.graph import ArchGraph
from archgen.spaces.mbv3 import LAYER_OPTIONS, RESOLUTIONS, MBv3Space
from test_graph import permuted

pytestmark = pytest.mark.usefixtures("one_thread")

ARCH = "r160:k3e4-k5e6|k7e3-k3e3-k5e4|k3e6-k3e3|k5e4-k5e4-k7e6-k3e3|k3e3-k3e6"
SMALLEST = "r128:" + "|".join(["k3e3-k3e3"] * 5)
LARGEST = "r224:" + "|".join(["k7e6-k7e6-k7e6-k7e6"] * 5)


@pytest.fixture(scope="module")
def mbv3():
    return MBv3Space()


@pytest.fixture(scope="module")
def records(data_root):
    from archgen.data import open_text
    from conftest import require_file

    path = require_file(data_root, "ofa_mbv3/archs.jsonl")  # plain or .gz
    with open_text(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def record_of(ks=None, e=None, d=(2, 3, 4, 2, 3), r=160):
    return {"ks": list(ks or [3] * 20), "e": list(e or [4] * 20), "d": list(d), "r": r}


# -- identity -------------------------------------------------------------------------------
def test_size_is_exact(mbv3):
    per_stage = 9**2 + 9**3 + 9**4
    assert per_stage == 7371
    assert mbv3.size == 25 * per_stage**5 == 543_966_387_314_312_146_275
    assert len(RESOLUTIONS) == 25 and RESOLUTIONS[0] == 128 and RESOLUTIONS[-1] == 224


def test_parse_format_round_trip(mbv3):
    assert mbv3.parse(ARCH) == ARCH
    assert mbv3.parse(" r160 : k3e4-k5e6 | k7e3-k3e3-k5e4|k3e6-k3e3|k5e4-k5e4-k7e6-k3e3|k3e3-k3e6\n") == ARCH
    a = mbv3.parse_arch(ARCH)
    assert a.resolution == 160 and a.depths == (2, 3, 2, 4, 2)
    assert a.stages[1] == ((7, 3), (3, 3), (5, 4))
    assert mbv3.format(a) == ARCH
    assert mbv3.input_shape_of(ARCH) == (3, 160, 160)
    assert mbv3.input_shape_of(SMALLEST) == (3, 128, 128)
    assert mbv3.equivalence_key(" " + ARCH) == ARCH


@pytest.mark.parametrize(
    "text, message",
    [
        (ARCH.replace("k7e3-k3e3", "k4e3-k3e3"), r"stage 2 layer 1 \('k4e3'\) has kernel 4; valid kernels: 3, 5, 7"),
        (ARCH.replace("k3e6-k3e3", "k3e6-k3e5"), r"stage 3 layer 2 \('k3e5'\) has expand ratio 5; valid expand ratios: 3, 4, 6"),
        (ARCH.replace("k3e3-k3e6", "k3e3-k3x6"), r"stage 5 layer 2 \('k3x6'\) is not of the form k<kernel>e<expand>"),
        ("r160:k3e4-k5e6|k7e3-k3e3-k5e4|k3e6-k3e3|k5e4-k5e4-k7e6-k3e3", "has 5 stages separated by '|', got 4"),
        (ARCH + "|k3e3-k3e3", "has 5 stages separated by '|', got 6"),
        (ARCH.replace("k3e6-k3e3|", "k3e6|"), "stage 3 has depth 1; a stage has 2..4 layers"),
        (ARCH.replace("k5e4-k5e4-k7e6-k3e3", "k5e4-k5e4-k7e6-k3e3-k3e3"), "stage 4 has depth 5; a stage has 2..4 layers"),
        (ARCH.replace("|k3e3-k3e6", "|"), "stage 5 has depth 0"),
        (ARCH.replace("r160", "r124"), "resolution 124 is out of range 128..224"),
        (ARCH.replace("r160", "r228"), "resolution 228 is out of range 128..224"),
        (ARCH.replace("r160", "r130"), "resolution 130 is not a multiple of 4"),
        (ARCH.replace("r160", "rx"), "resolution 'x' .* is not an integer"),
        (ARCH.replace("r160:", ""), "expected 'r<resolution>:' followed by 5 stages"),
    ],
)
def test_malformed_strings_name_the_problem(mbv3, text, message):
    with pytest.raises(InvalidArchError, match=message):
        mbv3.parse(text)


def test_non_string_arch(mbv3):
    with pytest.raises(InvalidArchError, match="must be a string"):
        mbv3.parse(42)


# -- benchmark records -----------------------------------------------------------------------
def test_from_record_canonicalises_unused_slots(mbv3):
    ks, e = [3] * 20, [4] * 20
    base = mbv3.from_record(record_of(ks, e))
    assert base == "r160:k3e4-k3e4|k3e4-k3e4-k3e4|k3e4-k3e4-k3e4-k3e4|k3e4-k3e4|k3e4-k3e4-k3e4"
    # stage 1 uses slots 0, 1; stage 4 uses slots 12, 13: slots 2, 3, 14, 15 are unused
    ks2, e2 = list(ks), list(e)
    ks2[2], e2[3], ks2[14], e2[15] = 7, 6, 5, 3
    assert mbv3.from_record(record_of(ks2, e2)) == base
    # a used slot does count
    ks3 = list(ks)
    ks3[13] = 7
    assert mbv3.from_record(record_of(ks3, e)) == base.replace("|k3e4-k3e4|k3e4-k3e4-k3e4", "|k3e4-k7e4|k3e4-k3e4-k3e4")
    assert mbv3.from_record({**record_of(ks, e), "index": 17}) == base  # extra keys are ignored


def test_to_record_round_trip(mbv3):
    for arch in [ARCH, SMALLEST, LARGEST, *mbv3.sample(20, seed=3)]:
        rec = mbv3.to_record(arch)
        assert len(rec["ks"]) == len(rec["e"]) == 20 and len(rec["d"]) == 5
        assert rec["r"] == mbv3.parse_arch(arch).resolution
        assert mbv3.from_record(rec) == arch
    assert mbv3.to_record(ARCH)["d"] == [2, 3, 2, 4, 2]


@pytest.mark.parametrize(
    "change, message",
    [
        ({"ks": [3] * 19}, "'ks' must have 20 entries, got 19"),
        ({"e": [4] * 21}, "'e' must have 20 entries, got 21"),
        ({"d": [2, 3, 4, 2]}, "'d' must have 5 entries, got 4"),
        ({"d": [2, 3, 5, 2, 2]}, "stage 3 has depth 5; a stage has 2..4 layers"),
        ({"d": [2, 1, 4, 2, 2]}, "stage 2 has depth 1"),
        ({"ks": [3] * 9 + [4] + [3] * 10}, r"ks\[9\]/e\[9\] \(stage 3 slot 2\) has kernel 4; valid kernels: 3, 5, 7"),
        ({"e": [4] * 19 + [5]}, r"ks\[19\]/e\[19\] \(stage 5 slot 4\) has expand ratio 5; valid expand ratios: 3, 4, 6"),
        ({"r": 100}, "record resolution r 100 is out of range 128..224"),
        ({"r": 162}, "record resolution r 162 is not a multiple of 4"),
        ({"r": "160"}, "record resolution r must be an integer"),
        ({"ks": "3" * 20}, "'ks' must be a list of 20 ints"),
        ({"d": [2, 3, True, 2, 2]}, r"record depth d\[2\] must be an integer"),
    ],
)
def test_from_record_errors(mbv3, change, message):
    with pytest.raises(InvalidArchError, match=message):
        mbv3.from_record({**record_of(), **change})


def test_from_record_missing_keys_and_non_dict(mbv3):
    with pytest.raises(InvalidArchError, match="record lacks d, r"):
        mbv3.from_record({"ks": [3] * 20, "e": [3] * 20})
    with pytest.raises(InvalidArchError, match="must be a dict"):
        mbv3.from_record([3] * 20)


def test_every_table_row_converts(mbv3, records):
    assert len(records) == 5000
    archs = [mbv3.from_record(r) for r in records]
    assert len(set(archs)) == 5000
    for rec, arch in zip(records, archs):
        a = mbv3.parse_arch(arch)
        assert a.resolution == rec["r"] and list(a.depths) == rec["d"]
        for s, layers in enumerate(a.stages):
            assert list(layers) == list(zip(rec["ks"][4 * s: 4 * s + rec["d"][s]], rec["e"][4 * s: 4 * s + rec["d"][s]]))
    assert mbv3.parse(archs[0]) == archs[0]
    assert {mbv3.parse_arch(a).resolution for a in archs} == set(RESOLUTIONS)


# -- graphs -------------------------------------------------------------------------------------
def test_graph_shape(mbv3):
    for arch in [ARCH, SMALLEST, LARGEST, *mbv3.sample(10, seed=1)]:
        g = mbv3.to_graph(arch).validate()
        depths = mbv3.parse_arch(arch).depths
        assert g.num_nodes == 28 and g.edges == [(i, i + 1) for i in range(27)]
        slots = g.ops[3:23]
        assert slots.count("mbconv") == sum(depths) and slots.count("skip_connect") == 20 - sum(depths)
        assert g.ops[:3] == ["input", "conv", "mbconv"]
        assert g.ops[23:] == ["conv", "global_pool", "conv", "linear", "output"]
    g = mbv3.to_graph("r132:k3e4-k5e6|k7e3-k3e3-k5e4|k3e6-k3e3|k5e4-k5e4-k7e6-k3e3|k3e3-k3e6")
    assert g.attrs(1) == {"kernel": 3, "stride": 2, "channels_in": 3, "channels_out": 16, "resolution": 132}
    # stage 1 first layer: stride 2, 16 -> 24 at 66x66
    assert g.attrs(3) == {"kernel": 3, "expand": 4, "stride": 2, "channels_in": 16, "channels_out": 24, "resolution": 66}
    assert g.attrs(4)["stride"] == 1 and g.attrs(4)["resolution"] == 33
    assert g.op(5) == g.op(6) == "skip_connect"  # stage 1 has depth 2
    assert g.attrs(5) == {"stride": 1, "channels_in": 24, "channels_out": 24, "resolution": 33}
    # stage 2 (slots 7..10): 24 -> 40, stride 2, 33 -> 17 (odd sizes round up)
    assert g.attrs(7)["channels_in"] == 24 and g.attrs(7)["channels_out"] == 40 and g.attrs(8)["resolution"] == 17
    # stage 4 (slots 15..18) keeps the resolution: stride 1, 80 -> 112
    assert g.attrs(15) == {"kernel": 5, "expand": 4, "stride": 1, "channels_in": 80, "channels_out": 112, "resolution": 9}
    # stage 5: stride 2, 112 -> 160, then the head at 5x5
    assert g.attrs(19)["stride"] == 2 and g.attrs(19)["channels_in"] == 112 and g.attrs(20)["resolution"] == 5
    assert g.attrs(23) == {"kernel": 1, "stride": 1, "channels_in": 160, "channels_out": 960, "resolution": 5}
    assert g.attrs(25)["channels_out"] == 1280 and g.attrs(26)["channels_out"] == 1000


def test_graph_round_trip_any_numbering(mbv3):
    for arch in [ARCH, SMALLEST, LARGEST, *mbv3.sample(10, seed=2)]:
        g = mbv3.to_graph(arch)
        assert mbv3.from_graph(g) == arch
        assert mbv3.from_graph(permuted(g, 5)) == arch
        assert mbv3.from_graph(ArchGraph.from_pyg(g.to_pyg())) == arch  # through log-scaled features
        assert mbv3.coerce(g) == arch
    hashes = {mbv3.to_graph(a).canonical_hash() for a in mbv3.sample(50, seed=4)}
    assert len(hashes) == 50


def _edit(g, node, op=None, **attrs):
    ops = [(op if n == node and op else g.op(n), {**g.attrs(n), **attrs} if n == node else g.attrs(n)) for n in range(g.num_nodes)]
    return ArchGraph.from_lists(ops, g.edges)


def test_from_graph_rejects_non_members(mbv3):
    g = mbv3.to_graph(ARCH)
    with pytest.raises(InvalidArchError, match="has 28 nodes"):
        mbv3.from_graph(ArchGraph.from_lists(["input", "conv", "output"], [(0, 1), (1, 2)]))
    with pytest.raises(InvalidArchError, match="is a single chain, but node 2 .* has 2 successors"):
        mbv3.from_graph(ArchGraph.from_lists(g.ops, g.edges + [(2, 4)]))
    with pytest.raises(InvalidArchError, match="stage 1 slot 2 .* is 'conv'"):
        mbv3.from_graph(_edit(g, 4, "conv"))
    # stage 1 has depth 2: a layer in slot 4 after a skipped slot 3
    with pytest.raises(InvalidArchError, match="stage 1 slot 4 .* after a skipped slot"):
        mbv3.from_graph(_edit(g, 6, "mbconv", kernel=3, expand=3))
    with pytest.raises(InvalidArchError, match="stage 1 has depth 1"):
        mbv3.from_graph(_edit(g, 4, "skip_connect"))
    with pytest.raises(InvalidArchError, match="has kernel 9"):
        mbv3.from_graph(_edit(g, 3, kernel=9))
    with pytest.raises(InvalidArchError, match="stem resolution .* 130 is not a multiple of 4"):
        mbv3.from_graph(_edit(g, 1, resolution=130))
    with pytest.raises(InvalidArchError, match="node 15 .* has attributes .*'channels_out': 100"):
        mbv3.from_graph(_edit(g, 15, channels_out=100))
    with pytest.raises(InvalidArchError, match="position 24 of the chain\\) is 'avg_pool', expected 'global_pool'"):
        mbv3.from_graph(_edit(g, 24, "avg_pool"))


# -- decisions -----------------------------------------------------------------------------------
def test_decision_layout_matches_the_graph(mbv3):
    layout = mbv3.decisions
    assert layout.num_slots == 21 and layout.num_nodes == 28
    assert layout.options[0] == tuple(f"r{r}" for r in RESOLUTIONS)
    for s in range(5):
        assert [len(layout.options[1 + 4 * s + i]) for i in range(4)] == [9, 9, 10, 10]
    assert layout.options[3][-1] == "skip" and layout.options[1] == LAYER_OPTIONS
    assert layout.slot_nodes == (1, *range(3, 23))
    g = mbv3.to_graph(ARCH)
    assert list(layout.edges) == g.edges and all(u < v for u, v in layout.edges)
    assert all(layout.node_ops[v] is None for v in layout.slot_nodes)
    assert [op for op in layout.node_ops if op is not None] == [g.op(v) for v in range(28) if v not in layout.slot_nodes]
    from generators.layout import LayoutTensors  # generators accept it

    tensors = LayoutTensors(layout)
    assert tensors.num_slots == 21 and tensors.max_options == 25


def test_choices_round_trip(mbv3):
    for arch in [ARCH, SMALLEST, LARGEST, *mbv3.sample(50, seed=6)]:
        choices = mbv3.encode_choices(arch)
        assert len(choices) == 21
        assert mbv3.decode_choices(choices) == arch
        assert mbv3.decode_choices(np.array(choices)) == arch
    # depth 2 stages write skip into both optional slots
    assert mbv3.encode_choices(SMALLEST) == (0, *([0, 0, 9, 9] * 5))
    rng = random.Random(0)
    for _ in range(300):
        vec = [rng.randrange(len(opts)) for opts in mbv3.decisions.options]
        arch = mbv3.decode_choices(vec)
        assert mbv3.parse(arch) == arch
        assert mbv3.decode_choices(mbv3.encode_choices(arch)) == arch
        a = mbv3.parse_arch(arch)
        assert a.resolution == RESOLUTIONS[vec[0]]
        for s, depth in enumerate(a.depths):
            third, fourth = vec[1 + 4 * s + 2], vec[1 + 4 * s + 3]
            assert depth == 2 + (third != 9) + (third != 9 and fourth != 9)


def test_skip_then_layer_is_depth_two(mbv3):
    vec = list(mbv3.encode_choices(SMALLEST))
    vec[4] = 8  # stage 1 slot 4: k7_e6 after a skipped slot 3 is ignored
    assert mbv3.decode_choices(vec) == SMALLEST
    vec[3] = 4  # stage 1 slot 3: k5_e4 makes depth 4 with the k7_e6 in slot 4
    assert mbv3.decode_choices(vec).startswith("r128:k3e3-k3e3-k5e4-k7e6|")


def test_choice_errors(mbv3):
    with pytest.raises(InvalidArchError, match="choice 25 of slot 0 is out of range 0..24"):
        mbv3.decode_choices([25] + [0] * 20)
    with pytest.raises(InvalidArchError, match="choice 9 of slot 1 is out of range 0..8"):
        mbv3.decode_choices([0, 9] + [0] * 19)
    with pytest.raises(InvalidArchError, match="has 21 choices, got 3"):
        mbv3.decode_choices([0, 0, 0])


# -- exploration -----------------------------------------------------------------------------------
def test_sample_is_reproducible_distinct_and_uniform(mbv3):
    a, b = mbv3.sample(1500, seed=7), mbv3.sample(1500, seed=7)
    assert a == b and len(set(a)) == 1500
    assert mbv3.sample(20, seed=8) != a[:20]
    parsed = [mbv3.parse_arch(x) for x in a]
    assert all(mbv3.parse(x) == x for x in a[:50])
    depths = np.bincount([d for p in parsed for d in p.depths], minlength=5)[2:] / (5 * 1500)
    assert np.allclose(depths, 1 / 3, atol=0.03)
    kernels = np.bincount([k for p in parsed for s in p.stages for k, _ in s], minlength=8)[[3, 5, 7]]
    assert np.allclose(kernels / kernels.sum(), 1 / 3, atol=0.03)
    assert {p.resolution for p in parsed} == set(RESOLUTIONS)
    with pytest.raises(ValueError, match="n must be from 0 to 1,000,000, got -1"):
        mbv3.sample(-1)


def test_mutate_changes_one_choice(mbv3):
    kinds = set()
    for seed in range(60):
        parent = mbv3.sample(1, seed=seed)[0]
        child = mbv3.mutate(parent, seed=seed)
        assert child != parent and mbv3.parse(child) == child
        p, c = mbv3.parse_arch(parent), mbv3.parse_arch(child)
        if p.resolution != c.resolution:
            kinds.add("resolution")
            assert p.stages == c.stages
            continue
        changed = [s for s in range(5) if p.stages[s] != c.stages[s]]
        assert len(changed) == 1
        ps, cs = p.stages[changed[0]], c.stages[changed[0]]
        if len(ps) != len(cs):
            kinds.add("depth")
            n = min(len(ps), len(cs))
            assert ps[:n] == cs[:n]  # existing layers kept, the tail added or dropped
        else:
            diffs = [(x, y) for x, y in zip(ps, cs) if x != y]
            assert len(diffs) == 1
            (k1, e1), (k2, e2) = diffs[0]
            assert (k1 != k2) != (e1 != e2)  # kernel or expand, not both
            kinds.add("kernel" if k1 != k2 else "expand")
    assert kinds == {"resolution", "depth", "kernel", "expand"}
    assert mbv3.mutate(ARCH, seed=3) == mbv3.mutate(ARCH, seed=3)


# -- networks ----------------------------------------------------------------------------------------
def test_module_structure_and_forward(mbv3):
    from archgen.spaces.mbv3_network import MBConv

    arch = ARCH.replace("r160", "r128")
    net = mbv3.to_module(arch, num_classes=7).eval()
    assert net.input_shape == mbv3.input_shape_of(arch) == (3, 128, 128)
    blocks = [m for m in net.modules() if isinstance(m, MBConv)]
    assert len(blocks) == 1 + sum(mbv3.parse_arch(arch).depths)
    assert [b.kernel for b in blocks[1:3]] == [3, 5] and blocks[2].expand_ratio == 6
    assert [b.residual for b in blocks[:4]] == [True, False, True, False]  # first block, stage 1, stage 2 starts
    assert blocks[0].expand is None and blocks[1].se is None and blocks[3].se is not None  # SE from stage 2
    # stage 2 layer 1 (k7e3, 24 in): 72 mid channels, SE reduced to make_divisible(72 / 4 = 18, 8) = 24
    assert blocks[3].depthwise[0].out_channels == 72 and blocks[3].se.reduce.out_channels == 24
    with torch.no_grad():
        out = net(torch.randn(2, *mbv3.input_shape_of(arch)))
    assert out.shape == (2, 7) and torch.isfinite(out).all()
    # the default head is ImageNet's; the largest subnet is OFA's 7.7M-parameter supernet size
    big = mbv3.to_module(LARGEST)
    assert big.classifier.out_features == 1000
    assert 7.6e6 < sum(p.numel() for p in big.parameters()) < 7.7e6
    with pytest.raises(ValueError, match="num_classes must be a positive int"):
        mbv3.to_module(ARCH, num_classes=0)


def test_graph_complexity_matches_counted_flops(mbv3):
    from archgen.hardware import count_flops

    arch = ARCH.replace("r160", "r128")
    counted = count_flops(mbv3.to_module(arch), (1, *mbv3.input_shape_of(arch))) / 2
    assert abs(mbv3.complexity(arch).macs / counted - 1) < 0.03


def test_a_few_sgd_steps_reduce_the_loss(mbv3):
    torch.manual_seed(0)
    net = mbv3.to_module(SMALLEST, num_classes=3, dropout=0.0)
    x = torch.randn(6, *mbv3.input_shape_of(SMALLEST))
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
    losses = []
    for _ in range(6):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(net(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert all(np.isfinite(losses))
    assert losses[-1] < 0.8 * losses[0]


def test_onnx_export_matches_torch(mbv3, tmp_path):
    from archgen.hardware import run_onnx, to_onnx

    for i, (arch, r) in enumerate(zip(mbv3.sample(2, seed=11), (128, 132))):
        arch = mbv3.format((r, mbv3.parse_arch(arch).stages))
        shape = (1, *mbv3.input_shape_of(arch))
        net = mbv3.to_module(arch, num_classes=10).eval()
        path = to_onnx(net, tmp_path / f"net{i}.onnx", shape)
        x = np.random.default_rng(i).standard_normal(shape).astype(np.float32)
        with torch.no_grad():
            expected = net(torch.from_numpy(x)).numpy()
        got = run_onnx(path, x)
        assert got.shape == expected.shape == (1, 10)
        assert np.abs(got - expected).max() <= 1e-4 * np.abs(expected).max()
