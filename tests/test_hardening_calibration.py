"""calibrate_task / calibrate_device refuse values outside the target's range, naming value and position."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from scipy.stats import spearmanr

from archgen import ArchGen
from archgen.errors import ArchGenError, RequestError
from predictors.calibration import CalibrationWarning, check_accuracies


@pytest.fixture(scope="module")
def ag():
    return ArchGen.pretrained("nb201")


@pytest.fixture(scope="module")
def archs(ag):
    return ag.space.sample(20, seed=3)


@pytest.mark.parametrize("values, message", [
    ([150 + i / 2 for i in range(20)], r"accuracies in percent must lie within \[0, 100\]; position 0 is 150 "
                                       r"\(19 more are outside it\)"),
    ([70.0 + i for i in range(19)] + [100.5], r"within \[0, 100\]; position 19 is 100.5$"),
    ([60.0, -5.0] + [70.0 + i for i in range(18)], r"position 1 is -5$"),
    ([70.0] * 7 + [math.nan] + [70.0 + i for i in range(12)], r"accuracies must be finite; position 7 is nan$"),
    ([70.0 + i for i in range(19)] + [math.inf], r"accuracies must be finite; position 19 is inf$"),
    ([70.0 + i for i in range(19)] + [-math.inf], r"position 19 is -inf$"),
    ([0.5 + i / 100 for i in range(20)], r"all 20 accuracies lie within \[0, 1\], as fractions would; .*"
                                         r"pass units='fraction'"),
    ([70.0] * 20, r"^the accuracies are all equal \(70\); calibration needs differing values$"),
    ("seventy", r"accuracies must be a list of numbers, got 'seventy'"),
    ([[70.0, 71.0]] * 20, r"must be a flat list of numbers, got an array of shape \(20, 2\)"),
])
def test_calibrate_task_refuses_out_of_range_accuracies(ag, archs, values, message):
    with pytest.raises(RequestError, match=message) as info:
        ag.calibrate_task("t", archs, values)
    assert isinstance(info.value, ArchGenError) and isinstance(info.value, ValueError)
    assert "t" not in ag.tasks()


def test_fractions_need_units_and_then_calibrate_like_percent(ag, archs):
    percent = np.linspace(60.0, 75.0, 20)
    ag.calibrate_task("as_percent", archs, percent)
    ag.calibrate_task("as_fraction", archs, percent / 100, units="fraction")
    others = ag.space.sample(200, seed=4)
    a = ag.predict_accuracy(others, task="as_percent").mean
    b = ag.predict_accuracy(others, task="as_fraction").mean
    assert np.allclose(a, b) and 50 < a.mean() < 85
    with pytest.raises(RequestError, match=r"accuracies as fractions must lie within \[0, 1\]; position 0 is 60 "
                                           r"\(19 more are outside it\); these look like percent"):
        ag.calibrate_task("t", archs, percent, units="fraction")
    with pytest.raises(RequestError, match=r"units must be one of 'percent', 'fraction', got '%'"):
        ag.calibrate_task("t", archs, percent, units="%")


def test_high_accuracies_keep_their_ranking(ag, archs, nb201_table):
    """The issue's case: values near the top of the range still rank (nothing is clipped to 100)."""
    acc = nb201_table.accuracy("cifar10")[nb201_table.rows(archs)]
    assert acc.max() <= 100
    ag.calibrate_task("c10_again", archs, acc)
    others = ag.space.sample(300, seed=5)
    pred = ag.predict_accuracy(others, task="c10_again").mean
    assert (pred < 100).all() and len(np.unique(pred)) > 100
    assert spearmanr(pred, nb201_table.accuracy("cifar10")[nb201_table.rows(others)])[0] > 0.5


def test_two_architectures_give_a_rank_agreement(ag, archs):
    cal = ag.calibrate_task("k2", archs[:2], [61.0, 64.0])
    assert cal.k == 2 and not math.isnan(cal.fit_spearman)


def test_equal_latencies_calibrate_the_level_and_warn(ag, archs):
    with pytest.warns(CalibrationWarning, match="the 10 measured latencies are all equal, so the rank agreement "
                                                r"fit_spearman is undefined \(NaN\)"):
        cal = ag.calibrate_device("flat_board", archs[:10], [3.0] * 10)
    assert math.isnan(cal.fit_spearman)
    assert 1.0 < np.median(ag.predict_latency(archs, device="flat_board").mean) < 9.0


@pytest.mark.parametrize("values, message", [
    ([1.0, -1.0] + [2.0] * 8, r"latencies must be positive milliseconds; position 1 is -1.0$"),
    ([0.0] * 10, r"latencies must be positive milliseconds; position 0 is 0.0$"),
    ([2.0] * 9 + [math.nan], r"latencies must be finite; position 9 is nan$"),
    ([math.inf] * 10, r"latencies must be finite; position 0 is inf \(9 more are not finite\)"),
    (["fast"] * 10, r"latencies must be a list of numbers"),
])
def test_calibrate_device_refuses_bad_latencies(ag, archs, values, message):
    with pytest.raises(RequestError, match=message):
        ag.calibrate_device("b", archs[:10], values)
    assert "b" not in ag.devices()


def test_check_accuracies_returns_percent():
    assert check_accuracies([0.25, 0.5], units="fraction").tolist() == [25.0, 50.0]
    assert check_accuracies((10, 90)).tolist() == [10.0, 90.0]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert check_accuracies(np.array([0.0, 100.0])).tolist() == [0.0, 100.0]  # the bounds are allowed
