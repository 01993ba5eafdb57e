"""FBNet and MobileNetV3 end to end: tables, the accuracy proxy, shipped bundles,
generation under a budget, and the atomic view that lets one predictor read
every family."""

import numpy as np
import pytest
from scipy.stats import kendalltau, spearmanr

from archgen import ArchGen
from archgen.api import bundled_path
from archgen.complexity import PROXY_TASK, proxy_scores
from archgen.errors import BudgetError, InvalidArchError
from archgen.spaces import get_space
from archgen.spaces.atomic import AtomicSpace
from conftest import BEST_C10, require_table

SPACES = ("fbnet", "mbv3")


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("name, devices, tasks", [("fbnet", 24, []), ("mbv3", 11, ["imagenet"])])
def test_tables_load_as_canonical_archs(data_root, name, devices, tasks):
    table = require_table(name, data_root)
    space = get_space(name)
    assert len(table) >= 5000 and len(table.devices) == devices
    assert table.tasks == tasks  # FBNet: no accuracy labels, the proxy stands in
    assert all(space.parse(a) == a for a in table.archs[:200])
    # the 5,000 latency rows come first, measured on every device
    assert table.latency(table.devices[0]).shape == (len(table),)
    assert all(table.latency_rows(d).tolist() == list(range(5000)) for d in table.devices)


def test_proxy_ranks_nb201_accuracy(nb201, nb201_table):
    rows = np.random.default_rng(0).choice(len(nb201_table), 60, replace=False)
    score = proxy_scores(nb201, [nb201_table.archs[i] for i in rows])
    assert kendalltau(score, nb201_table.accuracy("cifar10")[rows])[0] > 0.4


@pytest.mark.parametrize("name", SPACES)
def test_shipped_bundle(name, data_root):
    path = bundled_path(name)
    assert path.is_file() and path.stat().st_size < 5e6
    assert f"archgen pretrain --space {name}" in path.with_suffix(".md").read_text()
    ag = ArchGen.pretrained(name, data=data_root)
    table = require_table(name, data_root)
    assert PROXY_TASK in ag.tasks() and set(ag.devices()) == set(table.devices)
    assert set(ag.tasks()) == {PROXY_TASK, *table.tasks}  # mbv3: imagenet too
    device = table.devices[-1]
    rows = table.latency_rows(device)[:500]  # measured rows only
    archs = [table.archs[i] for i in rows]
    assert spearmanr(ag.predict_latency(archs, device).mean, table.latency(device)[rows])[0] > 0.8
    assert spearmanr(ag.predict_accuracy(archs, PROXY_TASK).mean, proxy_scores(ag.space, archs))[0] > 0.9


@pytest.mark.parametrize("name", SPACES)
def test_generate_for_a_calibrated_device(name, data_root, tmp_path):
    ag = ArchGen.pretrained(name, data=data_root)
    table = require_table(name, data_root)
    device = table.devices[0]
    archs = ag.space.sample(10, seed=1)
    ag.calibrate_device("new_board", archs, 1.5 * ag.predict_latency(archs, device).mean)
    budget = float(np.median(ag.predict_latency(ag.space.sample(200, seed=2), "new_board").mean))
    cands = ag.generate(PROXY_TASK, "new_board", budget, n=3, generator="diffusion", seed=0, samples=100)
    assert 1 <= len(cands) <= 3
    for c in cands:
        assert ag.space.parse(c.arch) == c.arch
        assert c.predicted_latency_ms + 1.5 * c.latency_std_ms <= budget + 1e-9
    path = cands[0].to_onnx(tmp_path / "c.onnx")  # at the candidate's own input resolution
    assert path.stat().st_size > 1e5
    with pytest.raises(BudgetError):
        ag.generate(PROXY_TASK, "new_board", 1e-4, n=1, samples=50)


def test_pretraining_without_accuracy_uses_the_proxy(data_root):
    from dataclasses import replace

    from predictors.fit import LATENCY_FIT
    from predictors.pretrain import pretrain_predictors

    quick = replace(LATENCY_FIT, members=1, epochs=1, tune_prior=False)
    predictors, meta = pretrain_predictors("fbnet", data_root, devices=["pixel3", "gold_6240"],
                                           latency_config=quick, accuracy_config=quick, progress=False)
    assert meta["tasks"] == [PROXY_TASK] and predictors["accuracy"].targets == [PROXY_TASK]
    assert predictors["latency"].targets == ["pixel3", "gold_6240"]


def test_atomic_view_reads_every_family():
    atomic = AtomicSpace()
    archs = [f"nb201:{BEST_C10}", *atomic.wrap("fbnet", get_space("fbnet").sample(1, seed=0))]
    graphs = [atomic.graph_arrays(a) for a in archs]
    for ops, attrs, edges in graphs:
        assert len(ops) > 50 and edges.shape[0] == 2 and attrs.shape[0] == len(ops)
    assert atomic.parse(archs[0]) == archs[0]
    assert atomic.input_shape_of(archs[1]) == (3, 32, 32)
    with pytest.raises(InvalidArchError, match="must start with one of nb201:, fbnet:, mbv3:"):
        atomic.parse("resnet:50")
    with pytest.raises(InvalidArchError):
        atomic.parse("fbnet:k3_e1")  # the member space's own error: 1 of 22 layers


def test_atomic_graphs_persist(tmp_path):
    atomic = AtomicSpace(members=("nb201",))
    arch = f"nb201:{BEST_C10}"
    first = atomic.graph_arrays(arch)
    atomic.save_graphs(tmp_path / "g.npz")
    again = AtomicSpace(members=("nb201",))
    assert again.load_graphs(tmp_path / "g.npz") == 1
    for a, b in zip(first, again.graph_arrays(arch)):
        np.testing.assert_array_equal(a, b)
