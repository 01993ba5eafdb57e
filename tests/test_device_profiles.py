"""Kernel profiles end to end (issue 17): ``ArchGen.profile_local``, ``calibrate_kernels``,
``archgen kernels`` and ``archgen calibrate``, and generation on a profiled device. Real
onnxruntime timings on this machine, nb201 (22 kernels: seconds to profile)."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from archgen import ArchGen
from archgen.cli import main
from archgen.errors import RequestError
from archgen.hardware import measure_latencies
from archgen.kernels import OVERHEAD, decompose, space_kernels
from archgen.measurements import RuntimeSettings, machine_id
from archgen.profiles import KernelProfile, ProfileWarning

pytestmark = pytest.mark.usefixtures("one_thread")

FAST = RuntimeSettings(warmup=1, repeats=2, rounds=2)


@pytest.fixture(scope="module")
def kernel_cache(tmp_path_factory):
    """One kernel cache for the module: the first profile_local times, later ones read it."""
    return tmp_path_factory.mktemp("kernels") / "measurements.sqlite"


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """`archgen kernels export` of nb201, each file timed with onnxruntime standing in for
    the user's runtime, written as a timings file."""
    folder = tmp_path_factory.mktemp("export") / "nb201-kernels"
    assert main(["kernels", "export", str(folder), "--space", "nb201", "--no-progress"]) == 0
    manifest = json.loads((folder / "manifest.json").read_text())
    ids = [OVERHEAD] + [k["key"] for k in manifest["kernels"]]
    shapes = [manifest["overhead"]["input_shapes"][0]] + [k["input_shapes"][0] for k in manifest["kernels"]]
    timed = measure_latencies([folder / f"{i}.onnx" for i in ids], shapes, warmup=3, repeats=5, rounds=4)
    timings = folder.parent / "timings.csv"
    with open(timings, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["kernel", "ms"])
        writer.writerows([i, f"{m.median_ms:.6g}"] for i, m in zip(ids, timed))
    return folder, timings, dict(zip(ids, (m.median_ms for m in timed)))


def _budget(profile: KernelProfile, seed: int = 5) -> float:
    """The median profile sum of 40 random nb201 networks: a budget about half of them meet."""
    from archgen.spaces import get_space

    return float(np.median(profile.latency(get_space("nb201").sample(40, seed=seed))))


# -- ArchGen.profile_local ----------------------------------------------------------------------------
def test_profile_local_predicts_local_and_is_stored(kernel_cache, monkeypatch):
    ag = ArchGen.pretrained("nb201")
    profile = ag.profile_local(cache=kernel_cache, progress=False)
    assert profile.space == "nb201" and profile.machine == machine_id()
    assert set(profile.kernel_ms) == {k.key for k in space_kernels("nb201")} and not profile.missing()
    assert profile.overhead_ms > 0 and all(ms > 0 for ms in profile.kernel_ms.values())
    archs = ag.space.sample(8, seed=1)
    sums = profile.latency(archs)
    # no whole-network measurement: the prediction is the profile's sum
    np.testing.assert_allclose(ag.predict_latency(archs, "local").mean, sums, rtol=1e-9)
    assert "local" in ag.devices()
    (info,) = ag.calibrations()
    assert (info.name, info.head, info.k, info.loaded) == ("local", "profile", 0, True)

    # a later object restores it; profiling again reads every kernel from the cache
    import archgen.profiles

    def no_timing(*args, **kwargs):
        raise AssertionError("timed again")

    later = ArchGen.pretrained("nb201")
    np.testing.assert_allclose(later.predict_latency(archs, "local").mean, sums, rtol=1e-9)
    monkeypatch.setattr(archgen.hardware, "measure_latencies", no_timing)
    again = later.profile_local(cache=kernel_cache, progress=False)
    assert again.kernel_ms == profile.kernel_ms and again.overhead_ms == profile.overhead_ms


def test_whole_network_measurements_correct_a_profile(kernel_cache, tmp_path):
    ag = ArchGen.pretrained("nb201")
    profile = ag.profile_local(cache=kernel_cache, progress=False)
    cal = ag.calibrate_local(k=4, settings=FAST, cache=tmp_path / "m.sqlite", progress=False)
    assert cal.k == 4 and ag.bundle.latency.head_of("local") == "profile"
    archs, values = ag.bundle.latency.measurements("local")
    assert len(archs) == 4
    # the correction is near the measured ratio (measured / profile sum) of the 4
    ratio = float(np.median(np.asarray(values) / profile.latency(archs)))
    others = ag.space.sample(6, seed=9)
    predicted = ag.predict_latency(others, "local").mean / profile.latency(others)
    assert np.all(np.abs(predicted - ratio) < 0.15 * ratio)
    # stored with them: a later object predicts the same
    later = ArchGen.pretrained("nb201")
    np.testing.assert_allclose(later.predict_latency(others, "local").mean,
                               ag.predict_latency(others, "local").mean, rtol=1e-6)
    assert [i.k for i in later.calibrations()] == [4]


def test_generate_verify_and_measure_on_a_profiled_local(kernel_cache, tmp_path):
    ag = ArchGen.pretrained("nb201")
    profile = ag.profile_local(cache=kernel_cache, progress=False)
    budget = _budget(profile)
    cands = ag.generate("cifar10", "local", budget, n=3, samples=60, progress=False)
    assert len(cands) == 3
    for c in cands:
        assert c.predicted_latency_ms <= budget
        assert c.predicted_latency_ms == pytest.approx(float(profile.latency([c.arch])[0]), rel=1e-6)
    ag.verify(cands, settings=FAST, cache=tmp_path / "m.sqlite", progress=False)
    assert all(c.measured_latency_ms > 0 for c in cands)
    # hardware in the loop: measured candidates correct the profile while generating
    looped = ag.generate("cifar10", "local", budget, n=2, samples=60, measurements=2,
                         measure=ag.local_measure(settings=FAST, cache=tmp_path / "m.sqlite"), progress=False)
    assert looped.report.measurements == 2
    assert ag.bundle.latency.head_of("local") == "profile" and len(ag.bundle.latency.measurements("local")[0]) == 2


def test_a_pretrained_device_cannot_be_profiled_over(exported):
    ag = ArchGen.pretrained("nb201")
    with pytest.raises(RequestError, match="pretrained device"):
        ag.calibrate_kernels(exported[1], ag.devices()[0])


# -- a device that cannot run Python: export, time elsewhere, import, generate -------------------------
def test_export_time_import_generate_round_trip(exported, capsys):
    folder, timings, ms = exported
    kernels = space_kernels("nb201")
    assert len(list(folder.glob("*.onnx"))) == len(kernels) + 1  # and overhead.onnx
    capsys.readouterr()
    assert main(["calibrate", "--space", "nb201", "--kernels", str(timings), "--device", "my_phone", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out == {"space": "nb201", "device": "my_phone", "kernels": len(kernels), "missing_kernels": 0,
                   "overhead_ms": pytest.approx(ms[OVERHEAD]), "source": "timings.csv"}
    # stored: a later command generates for it with no timings file
    ag = ArchGen.pretrained("nb201")
    stored = ag.device_profile("my_phone")
    assert stored is not None and ag.device_profile(ag.devices()[0]) is None
    budget = _budget(stored)
    assert main(["generate", "--space", "nb201", "--task", "cifar10", "--device", "my_phone", "--max-latency-ms",
                 str(budget), "-n", "2", "--samples", "60", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert len(result["candidates"]) == 2
    assert all(c["predicted_latency_ms"] <= budget for c in result["candidates"])
    # what the files timed is what the profile holds, and a network is their sum less the overheads
    arch = result["candidates"][0]["arch"]
    expected = ms[OVERHEAD] + sum(ms[k.key] - ms[OVERHEAD] for k in decompose("nb201", arch))
    assert float(stored.latency([arch])[0]) == pytest.approx(expected, rel=1e-5)
    assert main(["calibrations", "--space", "nb201"]) == 0
    listing = capsys.readouterr().out
    assert "my_phone" in listing and "profile" in listing


def test_partial_timings_generate_from_the_kernels_they_have(exported, tmp_path, capsys):
    _, timings, _ = exported
    lines = timings.read_text().splitlines()
    left_out = {k.key for k in space_kernels("nb201") if k.kind == "ReLUConvBN" and "kernel_size=(1, 1)" in k.module}
    partial = tmp_path / "partial.csv"
    partial.write_text("\n".join(line for line in lines if line.split(",")[0] not in left_out) + "\n")
    capsys.readouterr()
    assert main(["calibrate", "--space", "nb201", "--kernels", str(partial), "--device", "board"]) == 0
    err = capsys.readouterr().err
    assert "3 kernels missing" in err and "cannot be predicted" in err
    ag = ArchGen.pretrained("nb201")
    profile = ag.device_profile("board")
    with pytest.warns(ProfileWarning, match="lacks"):
        pred = ag.predict_latency(ag.space.sample(20, seed=3), "board")
    assert np.isnan(pred.mean).any() and np.isfinite(pred.mean).any()
    sums, _ = profile.latencies(ag.space.sample(40, seed=5))
    with pytest.warns(ProfileWarning):
        cands = ag.generate("cifar10", "board", float(np.nanmedian(sums)), n=1, samples=80, progress=False)
    # only networks that run none of the missing kernels (a dead nor_conv_1x1 edge runs nothing)
    assert cands and all(not {k.key for k in decompose("nb201", c.arch)} & left_out for c in cands)
    assert all(np.isfinite(c.predicted_latency_ms) for c in cands)


def test_cli_calibrate_says_what_is_wrong(exported, tmp_path, capsys):
    _, timings, _ = exported
    cases = [
        (["calibrate", "--space", "nb201", "--device", "x"], "nothing to calibrate from"),
        (["calibrate", "--space", "nb201", "--kernels", str(timings), "--profile"], "choose one"),
        (["calibrate", "--space", "nb201", "--kernels", str(timings)], "--device NAME is needed"),
        (["calibrate", "--space", "fbnet", "--kernels", str(timings), "--device", "x"], "line 3"),
        (["calibrate", "--space", "nb201", "--kernels", str(tmp_path / "none.csv"), "--device", "x"],
         "does not exist"),
        (["kernels", "export", str(tmp_path / "none.csv"), "--space", "nb201", "--num-classes", "0"],
         "--num-classes must be >= 1"),
    ]
    for argv, message in cases:
        capsys.readouterr()
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, (argv, err)
    # a timings file of another space says so
    main(["calibrate", "--space", "fbnet", "--kernels", str(timings), "--device", "x"])
    assert "of the nb201 space" in capsys.readouterr().err


def test_cli_kernels_list(capsys):
    assert main(["kernels", "list", "--space", "fbnet", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed["space"] == "fbnet"
    assert [k["key"] for k in listed["kernels"]] == [k.key for k in space_kernels("fbnet")]
    assert main(["kernels", "list", "--space", "nb201"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == f"{len(space_kernels('nb201'))} distinct kernels in nb201"


def test_cli_profile_then_generate_local(kernel_cache, monkeypatch, capsys):
    """`archgen calibrate --profile` profiles this machine; `generate --device local` then uses
    the stored profile and measures nothing."""
    import archgen.measurements

    assert main(["calibrate", "--space", "nb201", "--profile", "--cache", str(kernel_cache), "--no-progress"]) == 0
    assert "profiled 'local' from 22 kernel timings (measured on" in capsys.readouterr().err

    def no_measuring(*args, **kwargs):
        raise AssertionError("measured")

    monkeypatch.setattr(archgen.measurements, "measure_archs", no_measuring)
    assert main(["generate", "--space", "nb201", "--task", "cifar10", "--device", "local", "--max-latency-ms",
                 "1000", "-n", "1", "--samples", "30"]) == 0
    assert "using the stored kernel profile of 'local'" in capsys.readouterr().err


def test_a_profile_from_another_machine_is_refused(kernel_cache):
    ag = ArchGen.pretrained("nb201")
    ag.profile_local(cache=kernel_cache, progress=False)
    (info,) = ag.calibrations()
    data = json.loads(open(info.path).read())
    data["machine"] = "another-machine"
    open(info.path, "w").write(json.dumps(data))
    later = ArchGen.pretrained("nb201")
    (info,) = later.calibrations()
    assert info.status.startswith("refused") and "machine" in info.status
    assert "local" not in later.devices()
