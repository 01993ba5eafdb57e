"""Device profiles (archgen.profiles): timings files, partial profiles, storage,
measuring on this machine (real onnxruntime, nb201 only), mbv3's interpolation between
input sides, and MetricPredictor.calibrate(head="profile")."""

from __future__ import annotations

import json
import math
import time

import numpy as np
import pytest

from archgen.errors import RequestError
from archgen.kernels import decompose, space_kernels
from archgen.profiles import (
    OVERHEAD, KernelProfile, MissingKernelsError, ProfileError, measure_profile, read_timings)
from archgen.spaces import get_space

pytestmark = pytest.mark.usefixtures("one_thread")

ALL_CONV = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"
ALL_SKIP = "|skip_connect~0|+|skip_connect~0|skip_connect~1|+|skip_connect~0|skip_connect~1|skip_connect~2|"


def _made_up_ms(kernel) -> float:
    """A plausible latency (ms) for a kernel: grows with its input's size."""
    size = math.prod(kernel.input_shapes[0])
    return round(0.01 + 2e-6 * size * len(kernel.input_shapes), 6)


def _write(path, lines) -> str:
    path.write_text("\n".join(lines) + "\n")
    return str(path)


@pytest.fixture(scope="module")
def nb201_kernels():
    return space_kernels("nb201")


@pytest.fixture(scope="module")
def nb201_full(nb201_kernels, tmp_path_factory):
    """A timings file for every nb201 kernel, and its profile."""
    path = tmp_path_factory.mktemp("timings") / "nb201.csv"
    _write(path, ["# timed on a board", "kernel,ms", f"{OVERHEAD},0.005",
                  *(f"{k.key},{_made_up_ms(k)}" for k in nb201_kernels)])
    return path, read_timings(path, "nb201")


# -- 5. timings files ---------------------------------------------------------------------------------------
def test_full_timings_file_makes_a_complete_profile(nb201_full, nb201_kernels):
    path, profile = nb201_full
    assert profile.space == "nb201" and profile.source == path.name
    assert profile.overhead_ms == 0.005
    assert profile.kernel_ms == {k.key: _made_up_ms(k) for k in nb201_kernels}
    assert profile.missing() == []
    # a network's latency: the call overhead once, plus each kernel net of it
    arch = get_space("nb201").sample(1, seed=4)[0]
    expected = 0.005 + sum(_made_up_ms(k) - 0.005 for k in decompose("nb201", arch))
    assert profile.latency([arch])[0] == pytest.approx(expected, rel=1e-12)


def _error(tmp_path, lines, space="nb201") -> str:
    with pytest.raises(ProfileError) as info:
        read_timings(_write(tmp_path / "t.csv", lines), space)
    return str(info.value)


def test_unknown_kernel_id_names_its_line(tmp_path, nb201_kernels):
    message = _error(tmp_path, ["kernel,ms", f"{nb201_kernels[0].key},1.0", "ReLUConvBN-1x2x3-0123456789,1.0"])
    assert "line 3" in message and "ReLUConvBN-1x2x3-0123456789" in message and "nb201" in message


def test_kernel_of_another_space_names_that_space(tmp_path, nb201_kernels):
    fbnet_key = space_kernels("fbnet")[0].key
    message = _error(tmp_path, ["kernel,ms", f"{nb201_kernels[0].key},1.0", f"{fbnet_key},1.0"])
    assert "line 3" in message and fbnet_key in message and "fbnet" in message


def test_duplicate_kernel_names_both_lines(tmp_path, nb201_kernels):
    a, b = nb201_kernels[0].key, nb201_kernels[1].key
    message = _error(tmp_path, ["kernel,ms", f"{a},1.0", "# a comment", f"{b},2.0", f"{a},1.5"])
    assert "line 5" in message and "line 2" in message and a in message


@pytest.mark.parametrize("text", ["fast", "", "1,5", "0", "-1", "-0.0", "inf", "-inf", "nan", "1e999"])
def test_unusable_time_names_its_line(tmp_path, nb201_kernels, text):
    key = nb201_kernels[0].key
    message = _error(tmp_path, ["kernel,ms", f"{nb201_kernels[1].key},1.0", f"{key},{text}"])
    assert "line 3" in message and key in message  # "1,5": a third cell, the line is quoted


def test_missing_header_is_an_error(tmp_path, nb201_kernels):
    message = _error(tmp_path, [f"{nb201_kernels[0].key},1.0", f"{nb201_kernels[1].key},1.0"])
    assert "line 1" in message and "kernel,ms" in message


@pytest.mark.parametrize("lines", [[], ["# nothing timed", ""], ["kernel,ms"], ["kernel,ms", f"{OVERHEAD},0.01"]])
def test_file_without_kernel_timings_is_an_error(tmp_path, lines):
    _error(tmp_path, lines)


def test_missing_and_unreadable_files(tmp_path):
    with pytest.raises(ProfileError, match="does not exist"):
        read_timings(tmp_path / "absent.csv", "nb201")
    with pytest.raises(ProfileError, match="not a file"):
        read_timings(tmp_path, "nb201")
    (tmp_path / "binary.csv").write_bytes(b"kernel,ms\n\xff\xfe\x00bad\n")
    with pytest.raises(ProfileError, match="cannot be read"):
        read_timings(tmp_path / "binary.csv", "nb201")


def test_kernel_faster_than_the_empty_model_names_both_lines(tmp_path, nb201_kernels):
    key = nb201_kernels[0].key
    message = _error(tmp_path, ["# header next", "kernel,ms", f"{OVERHEAD},0.5", f"{key},0.2"])
    assert "less than half the empty model's 0.5 ms" in message
    assert "line 4" in message and key in message
    assert "line 3" in message  # where the empty model's time is


def test_kernel_within_noise_of_the_empty_model_costs_nothing(tmp_path, nb201_kernels):
    """Timing noise can put a tiny kernel (a ZeroNode's x * 0) just below the empty model:
    accepted, and it adds nothing to a network (never a negative cost)."""
    zero = next(k for k in nb201_kernels if k.kind == "ZeroNode")
    lines = ["kernel,ms", f"{OVERHEAD},0.01", *(f"{k.key},{0.009 if k is zero else _made_up_ms(k) + 0.01}"
                                               for k in nb201_kernels)]
    profile = read_timings(_write(tmp_path / "t.csv", lines), "nb201")
    assert profile._ms(zero) == 0.0
    arch = "|nor_conv_3x3~0|+|none~0|none~1|+|none~0|none~1|avg_pool_3x3~2|"  # a ZeroNode in each cell
    assert "ZeroNode" in {k.kind for k in decompose("nb201", arch)}
    expected = 0.01 + sum(_made_up_ms(k) for k in decompose("nb201", arch) if k is not zero and k.key != zero.key)
    assert profile.latency([arch])[0] == pytest.approx(expected)


def test_header_case_spaces_and_crlf_are_accepted(tmp_path, nb201_kernels):
    key = nb201_kernels[0].key
    (tmp_path / "t.csv").write_bytes(f" Kernel , MS \r\n{key} , 1.25 \r\n".encode())
    profile = read_timings(tmp_path / "t.csv", "nb201")
    assert profile.kernel_ms == {key: 1.25} and profile.overhead_ms == 0.0


def test_partial_file_is_a_partial_profile(tmp_path, nb201_kernels):
    """Leaving the 1x1 convs out: networks with a nor_conv_1x1 edge cannot be predicted (named),
    the others can."""
    left_out = {k.key for k in nb201_kernels if k.kind == "ReLUConvBN" and "kernel_size=(1, 1)" in k.module}
    assert len(left_out) == 3  # one per stage
    path = _write(tmp_path / "partial.csv", ["kernel,ms", *(f"{k.key},{_made_up_ms(k)}" for k in nb201_kernels
                                                            if k.key not in left_out)])
    profile = read_timings(path, "nb201")
    assert set(profile.missing()) == left_out
    archs = get_space("nb201").sample(12, seed=6)
    needs = {a: sorted({k.key for k in decompose("nb201", a)} & left_out) for a in archs}
    lacking_arch = next(a for a in archs if needs[a])
    fine_arch = next(a for a in archs if not needs[a])
    assert profile.latency([fine_arch])[0] > 0
    with pytest.raises(MissingKernelsError) as info:
        profile.latency([fine_arch, lacking_arch])
    assert lacking_arch in str(info.value) and needs[lacking_arch][0] in str(info.value)
    values, lacking = profile.latencies(archs)
    assert lacking == {a: needs[a] for a in archs if needs[a]}
    for a, v in zip(archs, values):
        assert (np.isnan(v) if needs[a] else v > 0), a
    # missing() of some kernels only: those of one network
    assert profile.missing(decompose("nb201", lacking_arch)) == [k.key for k in decompose("nb201", lacking_arch)
                                                                  if k.key in left_out]


# -- 6. storage ----------------------------------------------------------------------------------------------
def test_profile_json_round_trip(nb201_full):
    _, profile = nb201_full
    stored = json.loads(json.dumps(profile.to_json()))
    assert set(stored) == {"space", "kernel_ms", "overhead_ms", "source", "machine", "settings"}
    back = KernelProfile.from_json(stored, "calibrations/x.json")
    assert back == profile
    arch = get_space("nb201").sample(1, seed=7)[0]
    assert back.latency([arch])[0] == profile.latency([arch])[0]


@pytest.mark.parametrize("change,why", [
    (lambda d: [d], "not an object"),
    (lambda d: {**d, "space": 3}, "space"),
    (lambda d: {**d, "kernel_ms": {}}, "kernel_ms"),
    (lambda d: {**d, "kernel_ms": [1.0]}, "kernel_ms"),
    (lambda d: {**d, "kernel_ms": {**d["kernel_ms"], "k": -1.0}}, "'k'"),
    (lambda d: {**d, "kernel_ms": {**d["kernel_ms"], "k": 0}}, "'k'"),
    (lambda d: {**d, "kernel_ms": {**d["kernel_ms"], "k": float("nan")}}, "'k'"),
    (lambda d: {**d, "kernel_ms": {**d["kernel_ms"], "k": "1.0"}}, "'k'"),
    (lambda d: {**d, "kernel_ms": {**d["kernel_ms"], "k": True}}, "'k'"),
    (lambda d: {**d, "overhead_ms": -0.1}, "overhead_ms"),
    (lambda d: {**d, "overhead_ms": float("inf")}, "overhead_ms"),
    (lambda d: {**d, "overhead_ms": "0"}, "overhead_ms"),
])
def test_from_json_refuses_bad_fields(nb201_full, change, why):
    _, profile = nb201_full
    with pytest.raises(ProfileError) as info:
        KernelProfile.from_json(change(profile.to_json()), "calibrations/x.json")
    assert "calibrations/x.json" in str(info.value) and why in str(info.value)


# -- 7. measured on this machine -----------------------------------------------------------------------------
def test_measure_profile_times_every_kernel_and_caches_them(tmp_path, nb201_kernels):
    cache = tmp_path / "m.sqlite"
    start = time.perf_counter()
    profile = measure_profile("nb201", cache=cache, progress=False)
    first = time.perf_counter() - start
    assert set(profile.kernel_ms) == {k.key for k in nb201_kernels}
    assert all(ms > 0 and math.isfinite(ms) for ms in profile.kernel_ms.values())
    assert profile.overhead_ms > 0
    assert profile.space == "nb201" and profile.source.startswith("measured on ")
    assert profile.machine and profile.settings["threads"] == 1
    assert profile.missing() == []

    start = time.perf_counter()
    again = measure_profile("nb201", cache=cache, progress=False)
    second = time.perf_counter() - start
    assert again.kernel_ms == profile.kernel_ms and again.overhead_ms == profile.overhead_ms
    assert second < first / 3, (first, second)  # every kernel a cache hit: nothing exported or timed

    archs = [ALL_CONV, ALL_SKIP, *get_space("nb201").sample(3, seed=8)]
    values = profile.latency(archs)
    assert np.isfinite(values).all() and (values > 0).all()
    conv, skip = values[:2]
    assert conv > skip  # 90 3x3 conv edges against none
    assert KernelProfile.from_json(json.loads(json.dumps(profile.to_json())), "x") == profile


# -- 8. mbv3: sides that are not timed are interpolated ------------------------------------------------------
@pytest.fixture(scope="module")
def mbv3_timed():
    """Made-up timings (a device's answer) for every mbv3 kernel (those at the profiled sides)."""
    return {k.key: _made_up_ms(k) * (1 + 1e-7 * k.pixels) for k in space_kernels("mbv3")}  # not linear in pixels


def _r(arch: str, side: int) -> str:
    return f"r{side}:" + arch.split(":", 1)[1]


def test_mbv3_side_between_profiled_sides_is_interpolated(tmp_path, mbv3_timed):
    kernels = {k.key: k for k in space_kernels("mbv3")}
    path = _write(tmp_path / "mbv3.csv",
                  ["kernel,ms", f"{OVERHEAD},0.002", *(f"{k},{ms}" for k, ms in mbv3_timed.items())])
    profile = read_timings(path, "mbv3")
    assert profile.missing() == []
    arch = get_space("mbv3").sample(1, seed=9)[0]
    at = {side: profile.latency([_r(arch, side)])[0] for side in (160, 176, 192)}
    assert at[160] < at[176] < at[192]
    # each kernel at 176 is its family's timed line between 160 and 192, in pixels
    by_family: dict[str, dict[int, float]] = {}
    for key, ms in mbv3_timed.items():
        by_family.setdefault(kernels[key].family, {})[kernels[key].pixels] = ms - 0.002
    expected = 0.002
    between = 0
    for k in decompose("mbv3", _r(arch, 176)):
        if k.key in mbv3_timed:  # the same at every side (a flat input: the classifier, feature_mix)
            expected += mbv3_timed[k.key] - 0.002
            continue
        points = sorted(by_family[k.family].items())
        (x0, y0), (x1, y1) = next((p, q) for p, q in zip(points, points[1:]) if p[0] < k.pixels < q[0])
        expected += y0 + (y1 - y0) * (k.pixels - x0) / (x1 - x0)
        between += 1
    assert between > 10
    assert at[176] == pytest.approx(expected, rel=1e-9)


def test_mbv3_one_profiled_side_scales_with_pixels(tmp_path, mbv3_timed):
    """Timed at side 160 only: a kernel at 176 is its 160 twin's time scaled by the pixels."""
    kernels = {k.key: k for k in space_kernels("mbv3")}
    at160 = {k.key for a in get_space("mbv3").kernel_cover() if a.startswith("r160:") for k in decompose("mbv3", a)}
    path = _write(tmp_path / "mbv3.csv", ["kernel,ms", *(f"{k},{mbv3_timed[k]}" for k in at160)])
    profile = read_timings(path, "mbv3")
    assert len(profile.kernel_ms) == len(at160) < len(kernels)
    assert profile.missing() == []  # every family has its point at 160: nothing is unpredictable
    arch = _r(get_space("mbv3").sample(1, seed=10)[0], 176)
    twin = {kernels[k].family: kernels[k] for k in at160}
    expected = 0.0
    for k in decompose("mbv3", arch):
        t = twin[k.family]
        expected += mbv3_timed[t.key] * k.pixels / t.pixels
    assert profile.latency([arch])[0] == pytest.approx(expected, rel=1e-9)
    assert profile.latency([arch])[0] > profile.latency([_r(arch, 160)])[0]


# -- 9. calibration from a profile ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def nb201_latency():
    import archgen

    return archgen.ArchGen.pretrained("nb201", restore=False).bundle


def test_profile_calibration_k0_predicts_the_profile_sums(nb201_latency, nb201_full):
    _, profile = nb201_full
    predictor = nb201_latency.latency
    cal = predictor.calibrate("board", [], [], head="profile", profile=profile)
    assert cal.k == 0
    assert predictor.head_of("board") == "profile" and predictor.profile_of("board") is profile
    archs = get_space("nb201").sample(6, seed=11)
    ratio = predictor.predict(archs, "board").mean / profile.latency(archs)
    np.testing.assert_allclose(ratio, 1.0, rtol=0, atol=1e-9)

    # whole-network measurements correct it, and it stays a profiled device
    measured = profile.latency(archs[:3]) * 1.3
    predictor.add_measurements("board", archs[:3], list(measured))
    assert predictor.head_of("board") == "profile" and predictor.profile_of("board") is profile
    ratio = predictor.predict(archs, "board").mean / profile.latency(archs)
    assert (ratio > 1.1).all() and (ratio < 1.35).all()


def test_profile_calibration_errors(nb201_latency, nb201_full, tmp_path, nb201_kernels):
    _, profile = nb201_full
    latency, accuracy = nb201_latency.latency, nb201_latency.accuracy
    archs = get_space("nb201").sample(2, seed=12)
    with pytest.raises(RequestError, match="needs a KernelProfile"):
        latency.calibrate("a", [], [], head="profile")
    other = KernelProfile("fbnet", {space_kernels("fbnet")[0].key: 1.0})
    with pytest.raises(RequestError, match="fbnet"):
        latency.calibrate("b", [], [], head="profile", profile=other)
    with pytest.raises(RequestError, match="latency"):
        accuracy.calibrate("c", archs, [0.5, 0.6], head="profile", profile=profile)
    with pytest.raises(RequestError, match="head='profile'"):
        latency.calibrate("d", archs, [1.0, 2.0], head="linear", profile=profile)
    # a measured network the profile cannot sum is named
    partial = KernelProfile("nb201", {k.key: 1.0 for k in nb201_kernels if k.kind != "ReLUConvBN"})
    with pytest.raises(MissingKernelsError):
        latency.calibrate("e", [ALL_CONV], [3.0], head="profile", profile=partial)
    assert not {"a", "b", "c", "d", "e"} & set(latency.targets)
