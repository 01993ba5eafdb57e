"""Scale-out on a local Ray cluster: same results as the serial path."""

import importlib.util
import sys

import pytest

from archgen.distributed import DistributedError, run_on_ray
from archgen.measurements import RuntimeSettings, measure_archs
from archgen.training import train_candidates

# Ray comes with the dev extra; only the missing-Ray message test runs without it
needs_ray = pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="Ray is not installed")


# a lambda travels to the workers by value (a function of this test module would not import there)
_square = lambda x: x * x  # noqa: E731


@needs_ray
def test_results_in_input_order():
    assert run_on_ray(_square, list(range(6)), workers=2, progress=False) == [0, 1, 4, 9, 16, 25]


@needs_ray
def test_training_on_ray_equals_serial(nb201, small_digits, tmp_path):
    archs = nb201.sample(2, seed=8)
    kwargs = dict(epochs=1, batch_size=32)
    serial = train_candidates(nb201, archs, small_digits, run_dir=tmp_path / "s", **kwargs)
    parallel = train_candidates(nb201, archs, small_digits, run_dir=tmp_path / "r", ray=True, workers=2, **kwargs)
    assert [r.test_accuracy for r in parallel] == [r.test_accuracy for r in serial]
    assert [r.arch for r in parallel] == archs


@needs_ray
def test_measuring_on_ray_fills_the_cache(nb201, tmp_path):
    archs = nb201.sample(3, seed=9)
    path = tmp_path / "c.sqlite"
    first = measure_archs(nb201, archs, RuntimeSettings(warmup=0, repeats=2), cache=path, progress=False, ray=True)
    assert [r.arch for r in first] == archs and not any(r.cached for r in first)
    again = measure_archs(nb201, archs, RuntimeSettings(warmup=0, repeats=2), cache=path, progress=False)
    assert all(r.cached for r in again) and [r.latency_ms for r in again] == [r.latency_ms for r in first]


@needs_ray
def test_unreachable_address_fails_fast():
    with pytest.raises(DistributedError, match="does not answer"):
        run_on_ray(_square, [1], address="127.0.0.1:1")
    with pytest.raises(DistributedError, match="not of the form host:port"):
        run_on_ray(_square, [1], address="nowhere")


def test_missing_ray_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(DistributedError, match=r'pip install "archgen\[distributed\]"'):
        run_on_ray(_square, [1])
