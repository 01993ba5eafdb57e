"""The Accel-NASBench (MnasNet / EfficientNet-B0) space: strings, records, graphs, decisions, networks."""

import json
import random

import numpy as np
import pytest
import torch

from archgen.errors import InvalidArchError
from archgen.graph import ArchGraph
from archgen.spaces import get_space
from archgen.spaces.anb import EFFICIENTNET_B0, STAGE_LAYERS, AnbSpace, AnbStage
from test_graph import permuted

pytestmark = pytest.mark.usefixtures("one_thread")

B0 = EFFICIENTNET_B0
SMALLEST = "-".join(["e1_k3_l1"] * 7)
LARGEST = "-".join(["e6_k5_l3_se"] * 5 + ["e6_k5_l4_se", "e6_k5_l3_se"])
ARCH = "e6_k3_l1-e4_k5_l2-e6_k3_l3-e6_k5_l3-e6_k5_l2-e1_k3_l2-e1_k3_l2_se"


@pytest.fixture(scope="module")
def anb():
    return AnbSpace()


@pytest.fixture(scope="module")
def records(data_root):
    from archgen.data import find_file, open_text

    path = find_file(data_root / "accel_nasbench", "archs.jsonl")
    if path is None:
        pytest.skip(f"the benchmark folder {data_root} lacks accel_nasbench/archs.jsonl")
    with open_text(path) as f:
        return [json.loads(line) for line in f if line.strip()]


# -- identity -------------------------------------------------------------------------------
def test_registry_and_size(anb):
    for name in ("anb", "ANB", "accel_nasbench", "accel-nasbench"):
        assert isinstance(get_space(name), AnbSpace)
    # 3 expansions x 2 kernels x 3 depths x 2 (SE) per stage, 4 depths in stage 6
    assert STAGE_LAYERS == ((1, 2, 3),) * 5 + ((1, 2, 3, 4),) + ((1, 2, 3),)
    assert anb.size == 36**6 * 48 == 104_485_552_128
    assert anb.input_shape == (3, 224, 224) and anb.shaped_graphs


def test_parse_format_round_trip(anb):
    assert anb.parse(B0) == B0
    assert anb.parse(" e1_k3_l1_se - e6_k3_l2_se-e6_k5_l2_se-e6_k3_l3_se-e6_k5_l3_se-e6_k5_l4_se-\ne6_k3_l1_se ") == B0
    assert anb.parse(B0.replace("e6_k3_l2", "e06_k03_l02")) == B0  # leading zeros: the same numbers
    stages = anb.parse_arch(B0)
    assert stages[0] == AnbStage(1, 3, 1, True) and stages[5] == AnbStage(6, 5, 4, True)
    assert anb.format(stages) == B0
    assert anb.format([tuple(s) for s in stages]) == B0
    assert anb.equivalence_key(" " + B0) == B0
    assert anb.parse(ARCH) == ARCH and not anb.parse_arch(ARCH)[0].se and anb.parse_arch(ARCH)[6].se


@pytest.mark.parametrize(
    "text, message",
    [
        (B0.replace("e6_k5_l2_se", "e5_k5_l2_se"), "expansion 5 in stage 3; allowed: 1, 4, 6"),
        (B0.replace("e6_k3_l2_se", "e6_k7_l2_se"), "kernel 7 in stage 2; allowed: 3, 5"),
        (B0.replace("e1_k3_l1_se", "e1_k3_l4_se"), "layers 4 in stage 1; allowed: 1, 2, 3"),
        (B0.replace("e6_k5_l4_se", "e6_k5_l5_se"), "layers 5 in stage 6; allowed: 1, 2, 3, 4"),
        (B0.replace("e6_k3_l3_se", "e6_k3_l0_se"), "layers 0 in stage 4; allowed: 1, 2, 3"),
        (B0.replace("e6_k3_l3_se", "e6_k3_se"), r"stage 4 \('e6_k3_se'\) is not of the form e<expansion>_k<kernel>"),
        (B0.replace("e6_k3_l3_se", "e6_k3_l3_SE"), r"stage 4 .* is not of the form"),
        (B0.replace("e6_k3_l3_se", "e6_k3_l3_se_se"), r"stage 4 .* is not of the form"),
        (B0 + "-e6_k3_l1", "has 7 stages joined by '-', got 8"),
        (B0.rsplit("-", 1)[0], "has 7 stages joined by '-', got 6"),
        (B0.rsplit("-", 1)[0] + "-", r"stage 7 \(''\) is not of the form"),
        ("", "got 1"),
    ],
)
def test_malformed_strings_name_the_problem(anb, text, message):
    with pytest.raises(InvalidArchError, match=message):
        anb.parse(text)


def test_huge_numbers_and_long_inputs_give_short_clean_errors(anb):
    huge = "9" * 5000
    message = r"expansion 9{20}\.\.\. \(5000 digits\) in stage 3; allowed: 1, 4, 6"
    with pytest.raises(InvalidArchError, match=message) as err:
        anb.parse(B0.replace("e6_k5_l2_se", f"e{huge}_k5_l2_se"))
    assert len(str(err.value)) < 300
    with pytest.raises(InvalidArchError, match="layers .* in stage 1; allowed") as err:
        anb.parse(B0.replace("e1_k3_l1_se", f"e1_k3_l{'0' * 400}1_se"))
    long = "x" * 100_000
    for text in (long, B0.replace("e1_k3_l1", long), B0 + "-" + long):
        with pytest.raises(InvalidArchError) as err:
            anb.parse(text)
        assert len(str(err.value)) < 500
    with pytest.raises(InvalidArchError, match="must be a string"):
        anb.parse(42)
    with pytest.raises(InvalidArchError, match="expansion in stage 2 must be an integer"):
        anb.format([(1, 3, 1, True), (float("inf"), 3, 1, True), *[(1, 3, 1, False)] * 5])
    with pytest.raises(InvalidArchError, match=r"kernel 1{20}\.\.\. \(500 digits\) in stage 1") as err:
        anb.from_record({"e": [1] * 7, "k": [10**500 // 9] + [3] * 6, "l": [1] * 7, "se": [0] * 7})
    assert len(str(err.value)) < 200


# -- benchmark records -------------------------------------------------------------------------
def test_every_table_row_converts(anb, records):
    assert len(records) == 4626
    for rec in records:
        arch = rec["arch"]
        assert anb.parse(arch) == arch  # the table's strings are canonical
        lists = {k: rec[k] for k in ("e", "k", "l", "se")}
        assert anb.from_record(lists) == arch  # lists alone
        assert anb.from_record({"arch": arch}) == arch  # the string alone
        assert anb.from_record(rec) == arch  # both (they agree), index ignored
        assert anb.to_record(arch) == lists
    # the table repeats a few architectures under different indices
    assert len({rec["arch"] for rec in records}) == 4616


def test_record_round_trip(anb):
    for arch in [B0, SMALLEST, LARGEST, *anb.sample(20, seed=3)]:
        rec = anb.to_record(arch)
        assert all(len(v) == 7 for v in rec.values()) and all(type(x) is bool for x in rec["se"])
        assert anb.from_record({**rec, "index": 5}) == arch
    assert anb.to_record(B0) == {"e": [1, 6, 6, 6, 6, 6, 6], "k": [3, 3, 5, 3, 5, 5, 3],
                                 "l": [1, 2, 2, 3, 3, 4, 1], "se": [True] * 7}
    # numpy values and 0/1 squeeze-excite flags are accepted
    rec = {k: np.array(v) for k, v in anb.to_record(B0).items()}
    assert anb.from_record(rec) == B0
    assert anb.from_record({**anb.to_record(B0), "se": [1] * 7}) == B0


def _b0_record(**change):
    return {**AnbSpace().to_record(B0), **change}


@pytest.mark.parametrize(
    "record, message",
    [
        (_b0_record(e=[1, 6, 5, 6, 6, 6, 6]), r"expansion 5 in stage 3 \(record entry 2\); allowed: 1, 4, 6"),
        (_b0_record(k=[3, 3, 5, 3, 5, 5, 7]), r"kernel 7 in stage 7 \(record entry 6\); allowed: 3, 5"),
        (_b0_record(l=[4, 2, 2, 3, 3, 4, 1]), r"layers 4 in stage 1 .*allowed: 1, 2, 3"),
        (_b0_record(l=[1, 2, 2, 3, 3, 4.5, 1]), "layers in stage 6 .*must be an integer, got 4.5"),
        (_b0_record(e=[1, 6, 6, True, 6, 6, 6]), "expansion in stage 4 .*must be an integer"),
        (_b0_record(se=[True] * 6 + ["False"]), "squeeze-excite in stage 7 .*must be true or false"),
        (_b0_record(se=[True] * 6 + [2]), "squeeze-excite in stage 7 .*must be true or false"),
        (_b0_record(e=[6] * 6), "'e' must have 7 entries, got 6"),
        (_b0_record(k="3355553"), "'k' must be a list of 7 values"),
        ({"e": [6] * 7, "k": [3] * 7}, "lacks 'arch' and l, se"),
        ({**_b0_record(), "arch": SMALLEST}, "disagrees with its lists"),
        ({"arch": B0.replace("e1_k3_l1", "e2_k3_l1")}, "expansion 2 in stage 1"),
        ([1, 2, 3], "must be a dict"),
    ],
)
def test_from_record_errors(anb, record, message):
    with pytest.raises(InvalidArchError, match=message):
        anb.from_record(record)


# -- graphs -------------------------------------------------------------------------------------
def test_graph_of_efficientnet_b0(anb):
    g = anb.to_graph(B0).validate()
    assert g.num_nodes == 34 and g.edges == [(i, i + 1) for i in range(33)]
    assert g.ops[:2] == ["input", "conv"] and g.ops[30:] == ["conv", "global_pool", "linear", "output"]
    assert g.attrs(1) == {"kernel": 3, "stride": 2, "channels_in": 3, "channels_out": 32, "resolution": 224}
    layers = [2 + 4 * s + i for s, n in enumerate((1, 2, 2, 3, 3, 4, 1)) for i in range(n)]
    assert [v for v in range(2, 30) if g.op(v) == "mbconv"] == layers
    # (kernel, expand, stride, channels_in, channels_out, input resolution) of the 16 blocks
    want = [
        (3, 1, 1, 32, 16, 112),
        (3, 6, 2, 16, 24, 112), (3, 6, 1, 24, 24, 56),
        (5, 6, 2, 24, 40, 56), (5, 6, 1, 40, 40, 28),
        (3, 6, 2, 40, 80, 28), (3, 6, 1, 80, 80, 14), (3, 6, 1, 80, 80, 14),
        (5, 6, 1, 80, 112, 14), (5, 6, 1, 112, 112, 14), (5, 6, 1, 112, 112, 14),
        (5, 6, 2, 112, 192, 14), (5, 6, 1, 192, 192, 7), (5, 6, 1, 192, 192, 7), (5, 6, 1, 192, 192, 7),
        (3, 6, 1, 192, 320, 7),
    ]
    keys = ("kernel", "expand", "stride", "channels_in", "channels_out", "resolution")
    assert [tuple(g.attrs(v)[k] for k in keys) for v in layers] == want
    assert all(g.attrs(v)["se"] == 1 for v in layers)
    # unused slots: shape-keeping skips at the stage's width and output size
    assert g.op(3) == "skip_connect" and g.attrs(3) == {"stride": 1, "channels_in": 16, "channels_out": 16,
                                                         "resolution": 112}
    assert g.attrs(29) == {"stride": 1, "channels_in": 320, "channels_out": 320, "resolution": 7}
    assert g.attrs(30) == {"kernel": 1, "stride": 1, "channels_in": 320, "channels_out": 1280, "resolution": 7}
    assert g.attrs(31) == {"channels_in": 1280, "channels_out": 1280, "resolution": 7}
    assert g.attrs(32) == {"channels_in": 1280, "channels_out": 1000}
    assert anb.to_graph(ARCH).attrs(2)["se"] == 0


def test_graph_round_trip_any_numbering(anb):
    for arch in [B0, ARCH, SMALLEST, LARGEST, *anb.sample(10, seed=2)]:
        g = anb.to_graph(arch)
        assert anb.from_graph(g) == arch
        assert anb.from_graph(permuted(g, 5)) == arch
        assert anb.from_graph(ArchGraph.from_pyg(g.to_pyg())) == arch  # through log-scaled features (se=0 dropped)
        assert anb.coerce(g) == arch
        ops, attrs, edges = anb.graph_arrays(arch)  # the fast path equals the generic one
        for fast, slow in zip((ops, attrs, edges), g.to_arrays()):
            assert fast.dtype == slow.dtype and np.array_equal(fast, slow)
        assert all(np.array_equal(x, y) for x, y in zip(anb.graph_arrays(arch, "pruned"), g.pruned().to_arrays()))
    hashes = {anb.to_graph(a).canonical_hash() for a in anb.sample(50, seed=4)}
    assert len(hashes) == 50


def _edit(g, node, op=None, **attrs):
    ops = [(op if n == node and op else g.op(n), {**g.attrs(n), **attrs} if n == node else g.attrs(n))
           for n in range(g.num_nodes)]
    return ArchGraph.from_lists(ops, g.edges)


def test_from_graph_rejects_non_members(anb):
    g = anb.to_graph(B0)  # stage 2 on slots 6..9: layers at 6, 7
    with pytest.raises(InvalidArchError, match="has 34 nodes"):
        anb.from_graph(ArchGraph.from_lists(["input", "conv", "output"], [(0, 1), (1, 2)]))
    with pytest.raises(InvalidArchError, match="is a single chain, but node 2 .* has 2 successors"):
        anb.from_graph(ArchGraph.from_lists(g.ops, g.edges + [(2, 4)]))
    with pytest.raises(InvalidArchError, match="stage 2 slot 2 .* is 'conv'"):
        anb.from_graph(_edit(g, 7, "conv"))
    with pytest.raises(InvalidArchError, match="stage 2 slot 4 .* after a skipped slot"):
        anb.from_graph(_edit(g, 9, "mbconv", kernel=3, expand=6, se=1))
    with pytest.raises(InvalidArchError, match="stage 2 slot 2 .* has \\(kernel, expand, se\\) \\(5, 6, 1\\)"):
        anb.from_graph(_edit(g, 7, kernel=5))
    with pytest.raises(InvalidArchError, match="stage 1 has no layer"):
        anb.from_graph(_edit(g, 2, "skip_connect"))
    with pytest.raises(InvalidArchError, match="expansion 3 in stage 1; allowed: 1, 4, 6"):
        anb.from_graph(_edit(g, 2, expand=3))
    with pytest.raises(InvalidArchError, match="squeeze-excite in stage 1 must be 0 or 1"):
        anb.from_graph(_edit(g, 2, se=0.5))
    with pytest.raises(InvalidArchError, match="node 6 .* has attributes .*'channels_out': 100"):
        anb.from_graph(_edit(g, 6, channels_out=100))
    with pytest.raises(InvalidArchError, match="node 1 .* has attributes .*'resolution': 192"):
        anb.from_graph(_edit(g, 1, resolution=192))
    with pytest.raises(InvalidArchError, match="position 31 of the chain\\) is 'avg_pool', expected 'global_pool'"):
        anb.from_graph(_edit(g, 31, "avg_pool"))


# -- decisions -----------------------------------------------------------------------------------
def test_decision_layout(anb):
    layout = anb.decisions
    assert layout.num_slots == 28 and layout.num_nodes == 30
    for s in range(7):
        assert layout.options[4 * s: 4 * s + 4] == (
            ("e1", "e4", "e6"), ("k3", "k5"), tuple(f"l{n}" for n in STAGE_LAYERS[s]), ("se_off", "se_on"))
    assert layout.options[22] == ("l1", "l2", "l3", "l4")
    assert layout.node_ops == ("input", *([None] * 28), "output")
    assert layout.slot_nodes == tuple(range(1, 29))
    assert layout.edges == tuple((i, i + 1) for i in range(29))
    from generators.layout import LayoutTensors  # generators accept it

    tensors = LayoutTensors(layout)
    assert tensors.num_slots == 28 and tensors.max_options == 4


def test_choices_round_trip_and_every_vector_is_valid(anb):
    assert anb.encode_choices(B0) == (0, 0, 0, 1, 2, 0, 1, 1, 2, 1, 1, 1, 2, 0, 2, 1,
                                      2, 1, 2, 1, 2, 1, 3, 1, 2, 0, 0, 1)
    assert anb.encode_choices(SMALLEST) == (0,) * 28
    for arch in [B0, ARCH, SMALLEST, LARGEST, *anb.sample(50, seed=6)]:
        choices = anb.encode_choices(arch)
        assert anb.decode_choices(choices) == arch
        assert anb.decode_choices(list(choices)) == arch
        assert anb.decode_choices(np.array(choices)) == arch
    rng = random.Random(0)
    vectors = {tuple(rng.randrange(len(opts)) for opts in anb.decisions.options) for _ in range(2000)}
    archs = [anb.decode_choices(list(v)) for v in vectors]
    assert len(set(archs)) == len(vectors)  # distinct vectors, distinct architectures
    for v, arch in zip(vectors, archs):
        assert anb.parse(arch) == arch and anb.encode_choices(arch) == v


def test_choice_errors(anb):
    with pytest.raises(InvalidArchError, match="choice 3 of slot 0 is out of range 0..2"):
        anb.decode_choices([3] + [0] * 27)
    with pytest.raises(InvalidArchError, match="choice 3 of slot 2 is out of range 0..2"):
        anb.decode_choices([0, 0, 3] + [0] * 25)
    assert anb.decode_choices([0] * 22 + [3] + [0] * 5).split("-")[5] == "e1_k3_l4"  # stage 6 has 4 depths
    with pytest.raises(InvalidArchError, match="choice -1 of slot 5"):
        anb.decode_choices([0] * 5 + [-1] + [0] * 22)
    with pytest.raises(InvalidArchError, match="has 28 choices, got 3"):
        anb.decode_choices([0, 0, 0])


# -- exploration -----------------------------------------------------------------------------------
def test_sample_is_reproducible_distinct_and_uniform(anb):
    a, b = anb.sample(1500, seed=7), anb.sample(1500, seed=7)
    assert a == b and len(set(a)) == 1500
    assert anb.sample(20, seed=8) != a[:20]
    assert all(anb.parse(x) == x for x in a[:50])
    stages = [s for x in a for s in anb.parse_arch(x)]
    for field, values in (("expand", (1, 4, 6)), ("kernel", (3, 5)), ("se", (False, True))):
        counts = np.array([sum(getattr(s, field) == v for s in stages) for v in values])
        assert np.allclose(counts / counts.sum(), 1 / len(values), atol=0.02)
    depths6 = np.bincount([anb.parse_arch(x)[5].layers for x in a], minlength=5)[1:] / 1500
    assert np.allclose(depths6, 0.25, atol=0.04)
    assert anb.sample(0) == []
    with pytest.raises(ValueError, match="n must be from 0 to 1,000,000, got -1"):
        anb.sample(-1)
    with pytest.raises(ValueError, match=r"seed must be an int from 0 to 2\*\*63-1, got 'x'"):
        anb.sample(2, seed="x")


def test_mutate_changes_one_choice(anb):
    kinds = set()
    for seed in range(80):
        parent = anb.sample(1, seed=seed)[0]
        child = anb.mutate(parent, seed=seed)
        assert child != parent and anb.parse(child) == child
        diffs = [(s, f) for s, (p, c) in enumerate(zip(anb.parse_arch(parent), anb.parse_arch(child)))
                 for f in AnbStage._fields if getattr(p, f) != getattr(c, f)]
        assert len(diffs) == 1
        kinds.add(diffs[0][1])
    assert kinds == set(AnbStage._fields)
    assert anb.mutate(B0, seed=3) == anb.mutate(B0, seed=3)
    with pytest.raises(ValueError, match=r"seed must be an int from 0 to 2\*\*63-1, got 1.5"):
        anb.mutate(B0, seed=1.5)


# -- networks ----------------------------------------------------------------------------------------
def test_efficientnet_b0_network(anb):
    from archgen.spaces.anb_network import AnbBlock

    net = anb.to_module(B0, activation="swish")
    # torchvision's efficientnet_b0 has 5,288,548 parameters; the reference builds the same network
    assert sum(p.numel() for p in net.parameters()) == 5_288_548
    assert net.input_shape == (3, 224, 224) and net.classifier.out_features == 1000
    assert net.dropout.p == 0.2
    blocks = [m for m in net.modules() if isinstance(m, AnbBlock)]
    assert len(blocks) == 16
    assert blocks[0].expand is None and blocks[1].expand is not None  # e1 has no 1x1 expansion
    assert [b.residual for b in blocks[:4]] == [False, False, True, False]
    # SE of stage 2 layer 1: 16 in, 96 expanded, squeezed to 16 // 4 = 4; swish inside, sigmoid gate
    se = blocks[1].se
    assert se.reduce.in_channels == 96 and se.reduce.out_channels == 4
    assert isinstance(se.act, torch.nn.SiLU) and isinstance(se.gate, torch.nn.Sigmoid)
    assert isinstance(net.stem[2], torch.nn.SiLU)
    relu = anb.to_module(B0)  # the default: what the benchmark trained and measured
    assert isinstance(relu.stem[2], torch.nn.ReLU) and isinstance(relu.blocks[1].se.gate, torch.nn.Hardsigmoid)
    assert sum(p.numel() for p in relu.parameters()) == 5_288_548
    assert anb.complexity(B0).macs == pytest.approx(385_814_752)


def test_module_forward_any_size_and_options(anb):
    net = anb.to_module(ARCH, num_classes=7).eval()
    assert len(net.blocks) == sum(s.layers for s in anb.parse_arch(ARCH))
    with torch.no_grad():
        for side in (64, 97):
            out = net(torch.randn(2, 3, side, side))
            assert out.shape == (2, 7) and torch.isfinite(out).all()
    # stochastic depth: random in training, identity in eval
    torch.manual_seed(0)
    sd = anb.to_module(LARGEST, num_classes=3, stochastic_depth=0.5, dropout=0.0)
    assert sd.blocks[0].drop == 0.0 and sd.blocks[-1].drop == pytest.approx(0.5 * 21 / 22)
    x = torch.randn(4, 3, 32, 32)
    sd.train()
    assert not torch.equal(sd(x), sd(x))
    sd.eval()
    assert torch.equal(sd(x), sd(x))
    for options, message in (({"num_classes": 0}, "num_classes must be a positive int"),
                             ({"dropout": 1.0}, "dropout must be a number in"),
                             ({"stochastic_depth": -0.1}, "stochastic_depth must be a number in"),
                             ({"activation": "gelu"}, "activation must be one of swish, relu")):
        with pytest.raises(ValueError, match=message):
            anb.to_module(ARCH, **options)


def test_graph_complexity_matches_counted_flops(anb):
    from archgen.hardware import count_flops

    for arch in (SMALLEST, ARCH):
        net = anb.to_module(arch)
        counted = count_flops(net, (1, 3, 224, 224)) / 2
        c = anb.complexity(arch)
        assert c.macs == pytest.approx(counted, rel=1e-6)  # expansion-free e1 blocks and SE counted
        assert c.params == pytest.approx(sum(p.numel() for p in net.parameters()), rel=0.02)  # BN not counted


def test_a_few_sgd_steps_reduce_the_loss(anb):
    torch.manual_seed(0)
    net = anb.to_module(SMALLEST.replace("e1_k3_l1", "e4_k3_l1_se", 2), num_classes=3, dropout=0.0)
    x = torch.randn(6, 3, 32, 32)
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
    losses = []
    for _ in range(8):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(net(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert all(np.isfinite(losses))
    assert losses[-1] < 0.8 * losses[0]


def test_onnx_export_matches_torch(anb, tmp_path):
    from archgen.hardware import run_onnx, to_onnx

    for i, (arch, shape, activation) in enumerate([(ARCH, (1, 3, 96, 96), "swish"),
                                                    (SMALLEST, (1, 3, 224, 224), "relu")]):
        net = anb.to_module(arch, num_classes=10, activation=activation).eval()
        path = to_onnx(net, tmp_path / f"net{i}.onnx", shape)
        x = np.random.default_rng(i).standard_normal(shape).astype(np.float32)
        with torch.no_grad():
            expected = net(torch.from_numpy(x)).numpy()
        got = run_onnx(path, x)
        assert got.shape == expected.shape == (1, 10)
        assert np.abs(got - expected).max() <= 1e-4 * max(1.0, np.abs(expected).max())
