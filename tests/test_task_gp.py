"""The GP task head (predictors.task_gp): a new task from k labels under a prior learned
from the pretrained tasks."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import kendalltau

from archgen import ArchGen
from archgen.data import load_table
from archgen.errors import RequestError
from predictors.predictor import TASK_HEADS
from predictors.task_gp import GPInputs, fit_task_gp


@pytest.fixture(scope="module")
def nb201():
    return ArchGen.pretrained("nb201", restore=False), load_table("nb201")


def test_posterior_interpolates_its_labels_and_is_unsure_far_from_them():
    rng = np.random.default_rng(0)
    known = rng.normal(size=(2, 3, 5))
    phi = rng.normal(size=(2, 40, 5))
    inputs = GPInputs.of(phi, known)
    z = inputs.tasks[:12] @ np.array([1.0, -0.5, 0.2])
    z = (z - z.mean()) / z.std()
    gp = fit_task_gp(inputs.take(np.arange(12)), known, z)
    mean, var = gp.predict(inputs.take(np.arange(12)))
    assert np.corrcoef(mean, z)[0, 1] > 0.95
    _, far = gp.predict(inputs.take(np.arange(12, 40)))
    assert np.median(far) > np.median(var)  # unlabelled points are less certain


def test_gp_head_ranks_a_known_task_from_few_labels(nb201):
    ag, table = nb201
    acc = ag.bundle.accuracy
    rest = ag.space.sample(2000, seed=9)
    truth = table.accuracy("cifar100")[table.rows(rest)]
    archs = ag.space.sample(20, seed=1)
    taus = {}
    for head in TASK_HEADS:
        cal = acc.calibrate("c100_again", archs, table.accuracy("cifar100")[table.rows(archs)], replace=True,
                            head=head)
        pred = acc.predict(rest, "c100_again")
        assert acc.head_of("c100_again") == head and np.isfinite(cal.fit_spearman)
        assert np.all(pred.std > 0) and np.ptp(pred.mean) > 1.0
        taus[head] = kendalltau(pred.mean, truth)[0]
    assert taus["gp"] > 0.8 and taus["gp"] >= taus["linear"] - 0.03


def test_head_is_checked_kept_and_stored(nb201):
    _, table = nb201
    ag = ArchGen.pretrained("nb201")  # made in this test, so it stores in this test's calibration store
    archs = ag.space.sample(10, seed=2)
    y = table.accuracy("cifar10")[table.rows(archs)]
    with pytest.raises(RequestError, match="head must be one of 'linear', 'gp'"):
        ag.bundle.accuracy.calibrate("t", archs, y, head="tree")
    with pytest.raises(RequestError, match="head='gp' is for standardised targets"):
        ag.bundle.latency.calibrate("d", archs, y, head="gp")
    ag.calibrate_task("gp_task", archs, y)  # the API's default head
    assert ag.bundle.accuracy.head_of("gp_task") == "gp"
    ag.bundle.accuracy.add_measurements("gp_task", ag.space.sample(1, seed=99), [60.0])
    assert ag.bundle.accuracy.head_of("gp_task") == "gp"  # more measurements keep the head
    ag.calibrate_task("gp_task", archs, y, replace=True)
    again = ArchGen.pretrained("nb201")  # restored from the store: the same head, the same predictions
    probe = ag.space.sample(50, seed=3)
    np.testing.assert_array_equal(again.predict_accuracy(probe, "gp_task").mean,
                                  ag.predict_accuracy(probe, "gp_task").mean)
    assert again.bundle.accuracy.head_of("gp_task") == "gp"
