import numpy as np
import onnx
import pytest
import torch

from archgen.hardware import LatencyMeasurement, measure_latency, run_onnx, to_onnx
from conftest import BEST_C10


@pytest.fixture(scope="module")
def exported(nb201, tmp_path_factory):
    module = nb201.to_module(BEST_C10, num_classes=10).eval()
    path = to_onnx(module, tmp_path_factory.mktemp("onnx") / "best.onnx", (1, 3, 32, 32))
    return module, path


def test_export_passes_checker_and_matches_torch(exported):
    module, path = exported
    onnx.checker.check_model(str(path))
    x = np.random.default_rng(0).standard_normal((1, 3, 32, 32)).astype(np.float32)
    with torch.no_grad():
        expected = module(torch.from_numpy(x)).numpy()
    assert np.abs(run_onnx(path, x) - expected).max() < 1e-4


def test_parity_relative_to_output_scale_on_random_archs(nb201, tmp_path):
    # untrained nets with many skip sums reach outputs ~1e5: compare relative to scale
    rng = np.random.default_rng(1)
    for i, arch in enumerate(nb201.sample(4, seed=3)):
        module = nb201.to_module(arch).eval()
        path = to_onnx(module, tmp_path / f"{i}.onnx", (2, 3, 32, 32))
        x = rng.standard_normal((2, 3, 32, 32)).astype(np.float32)
        with torch.no_grad():
            expected = module(torch.from_numpy(x)).numpy()
        got = run_onnx(path, x)
        assert got.shape == expected.shape == (2, 10)
        assert np.abs(got - expected).max() <= 1e-4 * max(1.0, np.abs(expected).max())


def test_all_none_cell_still_has_an_input(nb201, tmp_path):
    module = nb201.to_module(nb201.format(["none"] * 6))
    path = to_onnx(module, tmp_path / "none.onnx")
    assert measure_latency(path, repeats=3, warmup=1).median_ms > 0


def test_measure_latency_reports_median_and_spread(exported):
    _, path = exported
    m = measure_latency(path, warmup=2, repeats=7, threads=1)
    assert isinstance(m, LatencyMeasurement)
    assert m.repeats == 7 and m.threads == 1 and m.batch_size == 1
    assert 0 < m.p10_ms <= m.median_ms <= m.p90_ms
    assert m.spread_ms >= 0 and m.to_dict()["median_ms"] == m.median_ms


def test_interleaved_rounds_report_the_lowest_round(exported, nb201, tmp_path):
    from archgen.hardware import measure_latencies

    _, path = exported
    other = to_onnx(nb201.to_module(nb201.format(["skip_connect"] * 6)), tmp_path / "skip.onnx")
    ms = measure_latencies([path, other], warmup=1, repeats=4, rounds=3)
    for m in ms:
        assert m.rounds == 3 and m.repeats == 12
        assert 0 < m.floor_ms <= m.median_ms  # the lowest round's p10 is at most the pooled median
    with pytest.raises(ValueError, match="rounds must be an int >= 1, got 0"):
        measure_latencies([path], rounds=0)
    with pytest.raises(ValueError, match="got 2 ONNX files but 1 input shapes"):
        measure_latencies([path, other], [(1, 3, 32, 32)])


def test_measure_bad_arguments(exported, tmp_path):
    _, path = exported
    with pytest.raises(ValueError, match="repeats must be an int >= 1, got 0"):
        measure_latency(path, repeats=0)
    with pytest.raises(ValueError, match="threads must be a positive int"):
        measure_latency(path, threads=0)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        measure_latency(tmp_path / "missing.onnx")


def test_export_bad_shape_leaves_no_file(nb201, tmp_path):
    module = nb201.to_module(BEST_C10)
    with pytest.raises(ValueError, match="input_shape must be positive ints"):
        to_onnx(module, tmp_path / "x.onnx", (1, 3, -1, 32))
    with pytest.raises(Exception):
        to_onnx(module, tmp_path / "y.onnx", (1, 5, 32, 32))  # wrong channel count
    assert list(tmp_path.iterdir()) == []
