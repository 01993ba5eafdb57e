"""Reading an untrusted ONNX file: never executed, cycles and malformed files refused clearly."""

from __future__ import annotations

import resource
import time

import numpy as np
import onnx
import onnxruntime
import pytest
from onnx import TensorProto, helper

from archgen.atomic import AtomicGraphError, AtomicShapeWarning, ModelFileNotFoundError, from_onnx
from archgen.cli import main
from archgen.errors import ArchGenError

N = 12_000  # two N x N float32 MatMuls: ~2.3 GB and a minute of CPU if anything ran them


def _save(tmp_path, nodes, inputs, outputs, name="m.onnx") -> str:
    graph = helper.make_graph(nodes, "crafted", inputs, outputs)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    path = tmp_path / name
    onnx.save(model, str(path))
    return str(path)


@pytest.fixture
def huge_matmul(tmp_path):
    """X[N,N] @ W @ W with W = ConstantOfShape([N, N]) (the file holds two int64s, not the
    weight), then a Slice whose ends are a graph input, so inference cannot know its shape."""
    shape = helper.make_tensor("shape", TensorProto.INT64, [2], [N, N])
    nodes = [
        helper.make_node("Constant", [], ["wshape"], value=shape, name="wshape"),
        helper.make_node("ConstantOfShape", ["wshape"], ["W"], name="weight",
                         value=helper.make_tensor("one", TensorProto.FLOAT, [1], [1.0])),
        helper.make_node("MatMul", ["X", "W"], ["h"], name="mm1"),
        helper.make_node("MatMul", ["h", "W"], ["z"], name="mm2"),
        helper.make_node("Slice", ["z", "starts", "ends"], ["Y"], name="cut"),
    ]
    inputs = [helper.make_tensor_value_info("X", TensorProto.FLOAT, [N, N]),
              helper.make_tensor_value_info("starts", TensorProto.INT64, [2]),
              helper.make_tensor_value_info("ends", TensorProto.INT64, [2])]
    path = _save(tmp_path, nodes, inputs, [helper.make_tensor_value_info("Y", TensorProto.FLOAT, None)])
    return path


def _never_run(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("from_onnx must not execute the model")

    monkeypatch.setattr(onnxruntime, "InferenceSession", refuse)


def test_huge_matmul_is_read_without_running_it(huge_matmul, monkeypatch, capsys):
    _never_run(monkeypatch)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    start = time.perf_counter()
    with pytest.warns(AtomicShapeWarning, match=r"1 node\(s\) lack channels_out .*node 'cut' \(Slice\): "
                                                r"channels unknown \(shape \[\?, \?\]\)") as caught:
        graph = from_onnx(huge_matmul)
        assert main(["show", huge_matmul]) == 0
    assert len(caught) == 2  # one per conversion, from shape inference alone
    elapsed = time.perf_counter() - start
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 1024
    assert elapsed < 2.0 and grown_mib < 200, (elapsed, grown_mib)
    linear = [n for n in range(graph.num_nodes) if graph.op(n) == "linear"]
    assert len(linear) == 2 and all(graph.attrs(n) == {"channels_in": N, "channels_out": N} for n in linear)
    assert "channels_out" not in graph.attrs(next(n for n in range(graph.num_nodes) if graph.op(n) == "reshape"))
    assert "2 linear" in capsys.readouterr().out


def test_inferred_shapes_leave_no_warning(tmp_path, recwarn):
    nodes = [helper.make_node("Relu", ["X"], ["r"], name="relu"),
             helper.make_node("Flatten", ["r"], ["Y"], name="flat")]
    path = _save(tmp_path, nodes, [helper.make_tensor_value_info("X", TensorProto.FLOAT, [1, 3, 8, 8])],
                 [helper.make_tensor_value_info("Y", TensorProto.FLOAT, None)])
    graph = from_onnx(path)
    assert graph.ops == ["input", "relu", "reshape", "output"]
    assert graph.attrs(2) == {"channels_out": 192, "resolution": 8}  # Flatten's [1, 192], inferred
    assert not [w for w in recwarn if issubclass(w.category, AtomicShapeWarning)]


def test_cycle_is_an_error_naming_its_nodes(tmp_path, capsys):
    nodes = [helper.make_node("Add", ["X", "back"], ["a"], name="add"),
             helper.make_node("Relu", ["a"], ["back"], name="relu"),
             helper.make_node("Sigmoid", ["a"], ["Y"], name="out")]
    path = _save(tmp_path, nodes, [helper.make_tensor_value_info("X", TensorProto.FLOAT, [1, 4])],
                 [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [1, 4])])
    with pytest.raises(AtomicGraphError, match=r"has a cycle through nodes ('add', 'relu'|'relu', 'add')"):
        from_onnx(path)
    assert main(["show", path]) == 2
    err = capsys.readouterr().err
    assert "cycle through nodes" in err and err.count("\n") == 1


def test_node_writing_its_own_input_is_a_cycle(tmp_path):
    nodes = [helper.make_node("Add", ["X", "a"], ["a"], name="self_loop")]
    path = _save(tmp_path, nodes, [helper.make_tensor_value_info("X", TensorProto.FLOAT, [1, 4])],
                 [helper.make_tensor_value_info("a", TensorProto.FLOAT, [1, 4])])
    with pytest.raises(AtomicGraphError, match="cycle through nodes 'self_loop'"):
        from_onnx(path)


def test_value_written_twice_is_an_error(tmp_path):
    nodes = [helper.make_node("Relu", ["X"], ["Y"], name="first"),
             helper.make_node("Sigmoid", ["X"], ["Y"], name="second")]
    path = _save(tmp_path, nodes, [helper.make_tensor_value_info("X", TensorProto.FLOAT, [1, 4])],
                 [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [1, 4])])
    with pytest.raises(AtomicGraphError, match="value 'Y' is written by two nodes, 'first' and 'second'"):
        from_onnx(path)


def test_unsorted_acyclic_graph_keeps_every_edge(tmp_path):
    """Nodes listed consumers-first: read in topological order, no edge dropped."""
    nodes = [helper.make_node("Add", ["r", "s"], ["Y"], name="add"),
             helper.make_node("Sigmoid", ["X"], ["s"], name="sig"),
             helper.make_node("Relu", ["X"], ["r"], name="relu")]
    vi = [helper.make_tensor_value_info("X", TensorProto.FLOAT, [1, 4])]
    shuffled = from_onnx(_save(tmp_path, nodes, vi, [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [1, 4])]))
    ordered = from_onnx(_save(tmp_path, nodes[::-1], vi, [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [1, 4])],
                              name="sorted.onnx"))
    assert shuffled.canonical_hash() == ordered.canonical_hash()
    add = shuffled.ops.index("add")
    assert sorted(shuffled.op(p) for p in shuffled.predecessors(add)) == ["relu", "sigmoid"]


@pytest.mark.parametrize("case, message", [
    ("missing", "does not exist"),
    ("directory", "is a directory; give the path of an .onnx file"),
    ("empty", r"is empty \(0 bytes\)"),
    ("garbage", r"is not an ONNX model \(protobuf cannot parse it"),
    ("protobuf_not_onnx", r"is not an ONNX model \(it parses, but has no IR version, graph or opset\)"),
])
def test_file_errors_each_say_what_is_wrong(tmp_path, capsys, case, message):
    path = tmp_path / "model.onnx"
    if case == "directory":
        path.mkdir()
    elif case == "empty":
        path.write_bytes(b"")
    elif case == "garbage":
        path.write_bytes(np.random.default_rng(0).bytes(4096))
    elif case == "protobuf_not_onnx":
        path.write_bytes(b"\x08\x01")  # a valid protobuf: ir_version=1 and nothing else
    expected = ModelFileNotFoundError if case == "missing" else AtomicGraphError
    with pytest.raises(expected, match=message) as info:
        from_onnx(path)
    assert isinstance(info.value, ArchGenError)
    assert isinstance(info.value, FileNotFoundError if case == "missing" else ValueError)
    assert main(["show", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("archgen show: error: ONNX ") and err.count("\n") == 1 and len(err) < 600


def test_long_path_is_quoted_short(tmp_path):
    name = "x" * 200 + ".onnx"
    with pytest.raises(ModelFileNotFoundError) as info:
        from_onnx(tmp_path / name / name / name)
    assert len(str(info.value)) < 400 and "characters)" in str(info.value)
