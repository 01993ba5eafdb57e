"""Atomic computation graphs: torch modules (fx, ONNX fallback) and ONNX models as ArchGraphs."""

from __future__ import annotations

import json
from collections import Counter

import onnx
import pytest
import torch
import torch.nn.functional as F
from onnx import TensorProto, helper
from torch import nn

from archgen.atomic import (
    AtomicFallbackWarning,
    AtomicGraphError,
    UnsupportedOpError,
    from_module,
    from_onnx,
    op_counts,
    summary_table,
)
from archgen.cli import main
from archgen.errors import ArchGenError
from archgen.graph import ArchGraph
from archgen.hardware import to_onnx
from conftest import BEST_C10

pytestmark = pytest.mark.usefixtures("one_thread")


class SmallCNN(nn.Module):
    """Residual add, depthwise conv, squeeze-excite mul, concat, pooling, a linear head."""

    def __init__(self, c: int = 8, classes: int = 10):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU())
        self.res = nn.Conv2d(c, c, 3, padding=1)
        self.dw = nn.Conv2d(c, c, 3, stride=2, padding=1, groups=c)
        self.pw = nn.Conv2d(c, 2 * c, 1)
        self.act = nn.Hardswish()
        self.se_reduce = nn.Conv2d(2 * c, 4, 1)
        self.se_expand = nn.Conv2d(4, 2 * c, 1)
        self.branch = nn.Conv2d(2 * c, c, 1)
        self.pool = nn.MaxPool2d(2)
        self.drop = nn.Dropout(0.1)
        self.fc = nn.Linear(3 * c, classes)

    def forward(self, x):
        x = self.stem(x)
        x = x + self.res(x)
        y = self.act(self.pw(self.dw(x)))
        y = y * torch.sigmoid(self.se_expand(F.relu(self.se_reduce(y.mean((2, 3), keepdim=True)))))
        z = self.pool(torch.cat([y, self.branch(y)], dim=1))
        z = F.adaptive_avg_pool2d(z, 1).flatten(1)
        return self.fc(self.drop(z))


class ShapeArithmetic(nn.Module):
    """Shape computations, constants and pass-through ops that must leave no trace."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, stride=2, padding=1)
        self.keep = nn.Identity()
        self.fc = nn.Linear(4 * 16 * 16, 5)

    def forward(self, x):
        y = self.keep(self.conv(x)).contiguous()
        y = y + torch.zeros_like(y)  # adds a constant: one add with one data input
        y = y.view(y.size(0), -1)  # Shape -> Gather -> Concat -> Reshape in ONNX
        return F.dropout(self.fc(y), 0.5, self.training)


class Tokens(nn.Module):
    """GELU / SiLU / LayerNorm / Linear on (N, L, C) tokens: ONNX writes GELU as an Erf
    chain, SiLU as x * Sigmoid(x) and a 3-D Linear as MatMul + Add."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 4, stride=4)
        self.norm = nn.LayerNorm(8)
        self.fc1 = nn.Linear(8, 16)
        self.fc2 = nn.Linear(16, 8)
        self.act1, self.act2 = nn.GELU(), nn.SiLU()
        self.head = nn.Linear(8, 3)

    def forward(self, x):
        t = self.conv(x).flatten(2).transpose(1, 2)
        t = t + self.fc2(self.act2(self.act1(self.fc1(self.norm(t)))))
        return self.head(t.mean(1))


class DataDependent(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Conv2d(3, 4, 3), nn.Conv2d(3, 4, 1)

    def forward(self, x):
        if x.mean() > -100:  # always true, but torch.fx cannot know
            return F.relu(self.a(x))
        return self.b(x)


class DataDependentAndUnexportable(DataDependent):
    def forward(self, x):
        if x.mean() > -100:
            return torch.cumprod(self.a(x), 1)  # no ONNX export for cumprod at opset 17
        return self.b(x)


class Upsampler(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 1)

    def forward(self, x):
        return F.interpolate(self.conv(x), scale_factor=2.0)


def _bridged(graph: ArchGraph, op: str) -> ArchGraph:
    """``graph`` with every ``op`` node removed and its inputs wired to its outputs."""
    g = graph.nx.copy()
    for n in [n for n in graph.topological_order() if graph.op(n) == op]:
        g.add_edges_from((u, v) for u in g.predecessors(n) for v in g.successors(n))
        g.remove_node(n)
    keep = sorted(g)
    index = {n: i for i, n in enumerate(keep)}
    return ArchGraph.from_lists([(g.nodes[n]["op"], g.nodes[n]["attrs"]) for n in keep],
                                [(index[u], index[v]) for u, v in g.edges])


def _layers(graph: ArchGraph) -> Counter:
    """Multiset of conv / depthwise_conv / linear nodes with their attributes."""
    return Counter((graph.op(n), tuple(sorted(graph.attrs(n).items())))
                   for n in range(graph.num_nodes) if graph.op(n) in ("conv", "depthwise_conv", "linear"))


def _one(graph: ArchGraph, op: str, **attrs) -> int:
    found = [n for n in range(graph.num_nodes)
             if graph.op(n) == op and all(graph.attrs(n).get(k) == v for k, v in attrs.items())]
    assert len(found) == 1, f"{op}{attrs}: {found}\n{graph.summary()}"
    return found[0]


@pytest.fixture(scope="module")
def small_cnn_onnx(tmp_path_factory):
    path = tmp_path_factory.mktemp("atomic") / "small_cnn.onnx"
    return to_onnx(SmallCNN().eval(), path)


@pytest.fixture(scope="module")
def unsupported_onnx(tmp_path_factory):
    """X -> Relu -> com.example::Frobnicate -> Add(relu, .); boxes, scores -> NonMaxSuppression."""
    nodes = [
        helper.make_node("Relu", ["X"], ["r"], name="relu"),
        helper.make_node("Frobnicate", ["r"], ["f"], name="frob", domain="com.example"),
        helper.make_node("Add", ["r", "f"], ["Y"], name="add"),
        helper.make_node("NonMaxSuppression", ["boxes", "scores"], ["selected"], name="nms"),
    ]
    graph = helper.make_graph(
        nodes, "unsupported",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [1, 3, 8, 8]),
         helper.make_tensor_value_info("boxes", TensorProto.FLOAT, [1, 10, 4]),
         helper.make_tensor_value_info("scores", TensorProto.FLOAT, [1, 1, 10])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [1, 3, 8, 8]),
         helper.make_tensor_value_info("selected", TensorProto.INT64, [None, 3])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17),
                                                    helper.make_opsetid("com.example", 1)])
    path = tmp_path_factory.mktemp("atomic") / "unsupported.onnx"
    onnx.save(model, str(path))
    return path


def test_small_cnn_ops_attrs_and_edges():
    g = from_module(SmallCNN())
    assert isinstance(g, ArchGraph) and g.validate() is g
    assert op_counts(g) == {
        "input": 1, "output": 1, "conv": 6, "depthwise_conv": 1, "linear": 1, "batch_norm": 1, "relu": 2,
        "hardswish": 1, "sigmoid": 1, "max_pool": 1, "global_pool": 2, "add": 1, "mul": 1, "concat": 1,
        "reshape": 1,
    }  # Dropout is bridged
    assert g.attrs(_one(g, "input")) == {"channels_out": 3, "resolution": 32}
    stem = _one(g, "conv", channels_in=3)
    assert g.attrs(stem) == {"kernel": 3, "stride": 1, "groups": 1, "channels_in": 3, "channels_out": 8, "resolution": 32}
    dw = _one(g, "depthwise_conv")
    assert g.attrs(dw) == {"kernel": 3, "stride": 2, "groups": 8, "channels_in": 8, "channels_out": 8,
                           "resolution": 32, }
    pw = _one(g, "conv", channels_in=8, channels_out=16)
    assert g.attrs(pw)["kernel"] == 1 and g.attrs(pw)["resolution"] == 16 and g.predecessors(pw) == [dw]
    # residual add: the stem's relu and the 3x3 conv on it
    add = _one(g, "add")
    relu_stem, res = _one(g, "relu", resolution=32), _one(g, "conv", channels_in=8, channels_out=8)
    assert g.predecessors(add) == sorted([relu_stem, res]) and g.predecessors(res) == [relu_stem]
    assert g.successors(add) == [dw]
    # squeeze-excite: mean over H, W -> global_pool; the mul reads the block and the gate
    act, gate = _one(g, "hardswish"), _one(g, "sigmoid")
    mul = _one(g, "mul")
    assert g.predecessors(mul) == sorted([act, gate]) and g.attrs(gate) == {"channels_out": 16, "resolution": 1}
    assert g.op(g.predecessors(_one(g, "conv", channels_out=4))[0]) == "global_pool"
    concat = _one(g, "concat")
    assert g.predecessors(concat) == sorted([mul, _one(g, "conv", channels_in=16, channels_out=8)])
    assert g.attrs(concat)["channels_out"] == 24
    assert g.attrs(_one(g, "max_pool")) == {"kernel": 2, "stride": 2, "channels_out": 24, "resolution": 16}
    fc = _one(g, "linear")
    assert g.attrs(fc) == {"channels_in": 24, "channels_out": 10}
    assert g.op(g.predecessors(fc)[0]) == "reshape"  # flatten; the dropout between is bridged
    assert g.predecessors(_one(g, "output")) == [fc]
    assert g.nx.number_of_edges() == 24


def test_small_cnn_onnx_agrees_with_fx(small_cnn_onnx):
    fx_graph, onnx_graph = from_module(SmallCNN()), from_onnx(small_cnn_onnx)
    assert _layers(fx_graph) == _layers(onnx_graph) and sum(_layers(fx_graph).values()) == 8
    # the exporter folds BatchNorm into the preceding conv; otherwise the graphs are the same
    assert "batch_norm" not in op_counts(onnx_graph)
    assert _bridged(fx_graph, "batch_norm").canonical_hash() == onnx_graph.canonical_hash()
    # a loaded ModelProto converts like the file
    assert from_onnx(onnx.load(str(small_cnn_onnx))).canonical_hash() == onnx_graph.canonical_hash()


@pytest.mark.parametrize("model", [ShapeArithmetic, Tokens])
def test_shape_chains_dropped_and_idioms_fused_alike(model, tmp_path):
    module = model().eval()
    fx_graph = from_module(module)
    onnx_graph = from_onnx(to_onnx(module, tmp_path / "m.onnx"))
    assert fx_graph.canonical_hash() == onnx_graph.canonical_hash(), (fx_graph.summary(), onnx_graph.summary())
    if model is ShapeArithmetic:
        # no node for size(), zeros_like, Identity, contiguous, dropout; one add reading only the conv
        assert fx_graph.ops == ["input", "conv", "add", "reshape", "linear", "output"]
        assert fx_graph.edges == [(0, 1), (1, 2), (2, 3), (3, 4), (4, 5)]
    else:
        # GELU from the Erf chain, SiLU from x * sigmoid(x), MatMul + bias -> one linear each
        assert op_counts(fx_graph) == {"input": 1, "output": 1, "conv": 1, "linear": 3, "layer_norm": 1, "gelu": 2,
                                       "global_pool": 1, "add": 1, "reshape": 2}
        assert _one(fx_graph, "linear", channels_in=8, channels_out=16) >= 0


def test_nb201_network_both_paths(nb201, tmp_path):
    module = nb201.to_module(BEST_C10)
    fx_graph = from_module(module)
    onnx_graph = from_onnx(to_onnx(module, tmp_path / "nb201.onnx"))
    for g in (fx_graph, onnx_graph):
        g.validate()
        counts = op_counts(g)
        # stem + 15 cells x 5 convs + 2 reductions x 3 convs; one classifier
        assert counts["conv"] == 1 + 15 * 5 + 2 * 3 and counts["linear"] == 1
        # each cell sums node 2 and node 3 (stack + sum fused into one add), each reduction adds a shortcut
        assert counts["add"] == 15 * 2 + 2 and counts["avg_pool"] == 2 and counts["global_pool"] == 1
        assert sorted(len(g.predecessors(n)) for n in range(g.num_nodes) if g.op(n) == "add") == [2] * 17 + [3] * 15
    assert _layers(fx_graph) == _layers(onnx_graph)
    # differences of the exporter: BatchNorm folded into convs, identical ReLUs on one tensor merged
    assert op_counts(fx_graph)["batch_norm"] == 81 and op_counts(onnx_graph)["batch_norm"] == 1
    assert op_counts(fx_graph)["relu"] == 80 > op_counts(onnx_graph)["relu"]


def test_conversion_leaves_module_state_alone():
    module = SmallCNN().train()
    module.drop.eval()  # mixed modes survive too
    before = module.stem[1].running_mean.clone(), int(module.stem[1].num_batches_tracked)
    from_module(module)
    assert module.training and module.stem[1].training and not module.drop.training
    assert torch.equal(module.stem[1].running_mean, before[0])
    assert int(module.stem[1].num_batches_tracked) == before[1]


def test_data_dependent_control_flow_falls_back_to_onnx():
    with pytest.warns(AtomicFallbackWarning, match=r"torch\.fx failed at .*test_atomic\.py:\d+ .*x\.mean\(\) > -100"):
        g = from_module(DataDependent())
    assert g.ops == ["input", "conv", "relu", "output"]  # the branch the example input took
    assert g.attrs(1) == {"kernel": 3, "stride": 1, "groups": 1, "channels_in": 3, "channels_out": 4, "resolution": 32}


def test_both_paths_failing_explains_both():
    with pytest.raises(AtomicGraphError) as info:
        from_module(DataDependentAndUnexportable())
    message = str(info.value)
    assert "torch.fx failed at" in message and "test_atomic.py" in message and "TraceError" in message
    assert "ONNX fallback failed too" in message and "cumprod" in message
    assert isinstance(info.value, ArchGenError) and isinstance(info.value, ValueError)


def test_unsupported_torch_op_is_named_with_its_line():
    with pytest.raises(UnsupportedOpError) as info:
        from_module(Upsampler())
    message = str(info.value)
    assert "function interpolate" in message and "node 'interpolate'" in message
    assert "test_atomic.py" in message and "F.interpolate(self.conv(x), scale_factor=2.0)" in message
    assert [op for op, _ in info.value.unsupported] == ["function interpolate"]


def test_module_that_fails_on_the_input_shape():
    with pytest.raises(AtomicGraphError, match=r"fails on an input of shape \(1, 5, 32, 32\)"):
        from_module(SmallCNN(), input_shape=(1, 5, 32, 32))


def test_unsupported_onnx_ops_are_all_named(unsupported_onnx):
    with pytest.raises(UnsupportedOpError) as info:
        from_onnx(unsupported_onnx)
    message = str(info.value)
    assert "NonMaxSuppression (node 'nms')" in message and "com.example::Frobnicate (node 'frob')" in message
    assert "\n" not in message and isinstance(info.value, ValueError)
    assert sorted(op for op, _ in info.value.unsupported) == ["NonMaxSuppression", "com.example::Frobnicate"]


def test_onnx_file_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        from_onnx(tmp_path / "missing.onnx")
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"this is not a protobuf \xff\xfe")
    with pytest.raises(AtomicGraphError, match="is not an ONNX model"):
        from_onnx(junk)


def test_summary_table():
    text = summary_table(from_module(SmallCNN()), nodes=3)
    assert "atomic graph   22 nodes, 24 edges" in text
    assert "layers         7 conv (6 dense/grouped, 1 depthwise), 1 linear" in text
    assert "  depthwise_conv      1" in text and "first 3 of 22 nodes" in text and "... 19 more" in text
    assert "   1 conv(channels_in=3,channels_out=8,groups=1,kernel=3,resolution=32,stride=1) <- 0" in text


def test_cli_show_onnx(small_cnn_onnx, unsupported_onnx, tmp_path, capsys):
    assert main(["show", str(small_cnn_onnx), "--nodes", "4"]) == 0
    out = capsys.readouterr().out
    assert f"model          {small_cnn_onnx}" in out and "atomic graph   21 nodes, 23 edges" in out
    assert "7 conv (6 dense/grouped, 1 depthwise), 1 linear" in out and "  conv                6" in out
    assert "first 4 of 21 nodes" in out and "   0 input(channels_out=3,resolution=32)" in out
    assert main(["show", str(small_cnn_onnx), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["nodes"] == 21 and info["op_counts"]["depthwise_conv"] == 1 and len(info["graph"]["edges"]) == 23
    # errors are one line, no traceback
    assert main(["show", str(tmp_path / "missing.onnx")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("archgen show: error: ONNX file") and "does not exist" in err and err.count("\n") == 1
    assert main(["show", str(unsupported_onnx)]) == 2
    err = capsys.readouterr().err
    assert "NonMaxSuppression" in err and "com.example::Frobnicate" in err and err.count("\n") == 1
    # arch strings keep working
    assert main(["show", BEST_C10]) == 0 and "nor_conv_3x3 <- 0" in capsys.readouterr().out
