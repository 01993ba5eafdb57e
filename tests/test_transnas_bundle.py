"""The shipped ``transnas_micro`` bundle: a table without latencies pretrains its latency
side on device-independent costs (:mod:`archgen.costs`), every task generates, and a
real device enters through its kernel profile."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from archgen.api import ArchGen, bundled_path
from archgen.costs import COST_NOTES, COST_TARGETS, cost_targets
from archgen.kernels import decompose

TASKS = {"class_scene", "autoencoder", "normal", "jigsaw", "room_layout", "segmentsemantic"}
DEAD_CELL = "|nor_conv_1x1~0|+|nor_conv_1x1~0|nor_conv_3x3~1|+|none~0|none~1|none~2|"


@pytest.fixture(scope="module")
def transnas():
    return ArchGen.pretrained("transnas_micro")


def test_bundle_is_small_recorded_and_complete(transnas):
    path = bundled_path("transnas_micro")
    assert path.stat().st_size < 6_000_000
    assert "archgen pretrain --space transnas_micro" in path.with_suffix(".md").read_text()
    assert set(transnas.tasks()) == TASKS
    assert transnas.devices() == list(COST_TARGETS)  # the table has no latencies
    assert transnas.bundle.meta["devices"] == list(COST_TARGETS)
    for name in COST_TARGETS:
        assert transnas.device_note(name) == COST_NOTES[name] and "not a device" in COST_NOTES[name]
        assert transnas.device_note(name) == transnas.bundle.meta["device_notes"][name]


def test_costs_are_the_networks(transnas):
    archs = transnas.space.sample(3, seed=0)
    costs = cost_targets(transnas.space, [*archs, DEAD_CELL])
    for i, arch in enumerate([*archs, DEAD_CELL]):
        assert costs["kernels"][i] == len(decompose(transnas.space, arch))
    for i, arch in enumerate(archs):
        assert costs["macs"][i] == pytest.approx(transnas.space.complexity(arch).macs / 1e6, rel=1e-9)
    # the convs that feed no output are dead code a runtime drops: counted by complexity, run by no kernel
    assert costs["macs"][3] < transnas.space.complexity(DEAD_CELL).macs / 1e6 / 10
    # a 3x3 conv on an edge reads more weights than a 1x1 conv there, which reads more than a skip
    ops = ["skip_connect", "nor_conv_1x1", "nor_conv_3x3"]
    cells = [f"|{op}~0|+|none~0|skip_connect~1|+|none~0|none~1|skip_connect~2|" for op in ops]
    traffic = cost_targets(transnas.space, cells)["traffic"]
    assert traffic[0] < traffic[1] < traffic[2]


def test_cost_predictions_rank_held_out_cells_and_stay_positive(transnas):
    """The 4,096 - 711 cells outside the table were never trained on."""
    from scipy.stats import spearmanr

    from archgen.data import load_table

    table = set(load_table("transnas_micro").archs)
    unseen = [a for a in transnas.space.enumerate() if a not in table]
    pick = [unseen[i] for i in np.random.default_rng(0).choice(len(unseen), 200, replace=False)]
    truth = cost_targets(transnas.space, pick)
    for name in COST_TARGETS:
        predicted = transnas.predict_latency(pick, name).mean
        assert spearmanr(predicted, truth[name])[0] > 0.97, name
        assert np.median(np.abs(predicted / truth[name] - 1)) < 0.1, name
    assert transnas.predict_latency([DEAD_CELL], "macs").mean[0] >= 0.0  # never below 0 (it was -26)


@pytest.mark.parametrize("task", sorted(TASKS))
def test_generate_under_a_macs_budget_for_every_task(transnas, task):
    cands = transnas.generate(task=task, device="macs", max_latency_ms=400.0, n=3, samples=200, progress=False)
    assert len(cands) == 3
    exact = cost_targets(transnas.space, [c.arch for c in cands])["macs"]
    assert (exact <= 400.0).all(), exact
    predicted = [c.predicted_accuracy for c in cands]
    assert predicted == sorted(predicted, reverse=True)


def test_a_profiled_device_generates():
    ag = ArchGen.pretrained("transnas_micro")
    profile = ag.profile_local(progress=False)
    assert "local" in ag.devices() and not profile.missing()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the profile sums every network: no NaN, no warning
        cands = ag.generate(task="jigsaw", device="local", max_latency_ms=20.0, n=2, samples=200, progress=False)
    sums = profile.latencies([c.arch for c in cands])[0]
    assert all(0 < c.predicted_latency_ms <= 20.0 for c in cands)
    np.testing.assert_allclose([c.predicted_latency_ms for c in cands], sums, rtol=1e-6)  # no measurement yet


def test_pretraining_a_table_without_latencies_uses_the_costs(data_root):
    from dataclasses import replace

    from predictors.fit import LATENCY_FIT
    from predictors.pretrain import pretrain_predictors

    quick = replace(LATENCY_FIT, members=1, epochs=1, tune_prior=False)
    predictors, meta = pretrain_predictors("transnas_micro", data_root, tasks=["jigsaw"], exclude_devices=["traffic"],
                                           latency_config=quick, accuracy_config=quick, progress=False)
    assert meta["devices"] == ["macs", "kernels"] and predictors["latency"].targets == ["macs", "kernels"]
    from archgen.errors import UnknownNameError

    with pytest.raises(UnknownNameError, match="'watts'; valid: kernels, macs, traffic"):
        pretrain_predictors("transnas_micro", data_root, devices=["watts"], progress=False)
