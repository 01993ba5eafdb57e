"""Predictors: behaviour on a small real training run (quality is measured by
bench/predictors.py, not here)."""

from dataclasses import replace

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr

from archgen.errors import InvalidArchError, RequestError, UnknownNameError
from graph_encoders import GraphBatcher, build_encoder
from archgen.bundle import Bundle
from archgen.errors import BundleError
from predictors.fit import (ACCURACY_FIT, FULL_TABLE_ACCURACY, LATENCY_FIT, SMALL_TABLE_LATENCY_WIDTH,
                            fit_predictor, for_table)

TRAIN_DEVICES = ["1080ti_1", "gold_6240", "samsung_a50", "titanxp_32"]
HELD_OUT = "pixel3"


@pytest.fixture(scope="module")
def small(nb201, nb201_table):
    """Latency and accuracy predictors fitted quickly on 3,000 architectures."""
    rows = np.random.default_rng(0).choice(len(nb201_table), 3000, replace=False)
    archs = [nb201_table.archs[i] for i in rows]
    lat = fit_predictor(nb201, archs, {d: nb201_table.latency(d)[rows] for d in TRAIN_DEVICES},
                        kind="latency", unit="ms", normalisation="ratio",
                        config=replace(LATENCY_FIT, epochs=6, hidden=16, members=2), progress=False)
    acc = fit_predictor(nb201, archs, {"cifar10": nb201_table.accuracy("cifar10")[rows]},
                        kind="accuracy", unit="%", normalisation="standard",
                        config=replace(ACCURACY_FIT, epochs=6, hidden=16, members=2), progress=False)
    return Bundle("nb201", lat, acc, meta={"note": "test"})


@pytest.mark.parametrize("name", ["gin", "dag"])
def test_encoders_share_one_interface(nb201, name):
    batch = GraphBatcher(nb201).batch(nb201.sample(5, seed=0))
    out = build_encoder(name, hidden=16, out_dim=7)(batch)
    assert out.shape == (5, 7) and torch.isfinite(out).all()


def test_unknown_encoder():
    with pytest.raises(UnknownNameError, match="unknown graph encoder 'transformer'; valid: choices, dag, gin"):
        build_encoder("transformer")


def test_dag_encoder_respects_direction(nb201):
    # the same ops wired in reverse must not look the same to the DAG encoder
    from archgen.graph import ArchGraph

    enc = build_encoder("dag", hidden=16, out_dim=4).eval()
    fwd = ArchGraph.from_lists(["input", "conv", "relu", "output"], [(0, 1), (1, 2), (2, 3)])
    rev = ArchGraph.from_lists(["input", "relu", "conv", "output"], [(0, 1), (1, 2), (2, 3)])
    from torch_geometric.data import Batch

    with torch.no_grad():
        a, b = enc(Batch.from_data_list([fwd.to_pyg()])), enc(Batch.from_data_list([rev.to_pyg()]))
    assert not torch.allclose(a, b)


def test_known_device_predictions_rank_well(small, nb201, nb201_table):
    archs = list(nb201_table.archs[:2000])
    pred = small.latency.predict(archs, "gold_6240")
    assert pred.mean.shape == pred.std.shape == (2000,) and (pred.std > 0).all()
    assert np.asarray(pred).shape == (2000,)
    assert spearmanr(pred.mean, nb201_table.latency("gold_6240")[:2000])[0] > 0.8


def test_calibrated_device_behaves_like_a_known_one(small, nb201_table):
    lat = small.latency
    rng = np.random.default_rng(1)
    rows = rng.choice(len(nb201_table), 10, replace=False)
    archs = [nb201_table.archs[i] for i in rows]
    y = nb201_table.latency(HELD_OUT)
    cal = lat.calibrate("board", archs, y[rows])
    assert cal.k == 10 and cal.seconds < 5
    assert "board" in lat.targets and HELD_OUT not in lat.targets
    everything = list(nb201_table.archs[:3000])
    pred = lat.predict(everything, "board")
    assert spearmanr(pred.mean, y[:3000])[0] > 0.7
    # the prediction is in milliseconds, on the device's scale
    assert 0.3 < np.median(pred.mean) / np.median(y[:3000]) < 3
    lat.forget("board")
    assert "board" not in lat.targets


def test_calibration_bad_input(small, nb201_table):
    lat = small.latency
    archs = list(nb201_table.archs[:5])
    with pytest.raises(ValueError, match="at least 2"):
        lat.calibrate("d", archs[:1], [1.0])
    with pytest.raises(ValueError, match="position 2 is nan"):
        lat.calibrate("d", archs[:3], [1.0, 2.0, float("nan")])
    with pytest.raises(ValueError, match="positive milliseconds; position 1 is -2"):
        lat.calibrate("d", archs[:3], [1.0, -2.0, 3.0])
    with pytest.raises(ValueError, match="appears twice"):
        lat.calibrate("d", [archs[0], archs[1], archs[0]], [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="got 3 architectures but 2 values"):
        lat.calibrate("d", archs[:3], [1.0, 2.0])
    with pytest.raises(InvalidArchError):
        lat.calibrate("d", ["k3_e1-skip-k5_e6", archs[1]], [1.0, 2.0])
    with pytest.raises(ValueError, match="pretrained latency target"):
        lat.calibrate("gold_6240", archs[:3], [1.0, 2.0, 3.0])
    with pytest.raises(RequestError, match=r"the accuracies are all equal \(50\); calibration needs differing values"):
        small.accuracy.calibrate("t", archs[:3], [50.0, 50.0, 50.0])


def test_unknown_target_lists_valid_names(small, nb201_table):
    with pytest.raises(UnknownNameError, match="unknown device 'jetson'; valid: 1080ti_1, gold_6240"):
        small.latency.predict(list(nb201_table.archs[:2]), "jetson")
    with pytest.raises(UnknownNameError, match="unknown task 'imagenet'; valid: cifar10"):
        small.accuracy.predict(list(nb201_table.archs[:2]), "imagenet")


def test_accepts_graphs_and_strings_alike(small, nb201, nb201_table):
    arch = nb201_table.archs[7]
    a = small.accuracy.predict([arch], "cifar10").mean
    b = small.accuracy.predict([nb201.to_graph(arch)], "cifar10").mean
    assert np.allclose(a, b)


def test_task_calibration(small, nb201_table):
    acc = small.accuracy
    rows = np.random.default_rng(2).choice(len(nb201_table), 20, replace=False)
    cal = acc.calibrate("c100", [nb201_table.archs[i] for i in rows], nb201_table.accuracy("cifar100")[rows])
    assert cal.k == 20
    pred = acc.predict(list(nb201_table.archs[:2000]), "c100")
    assert spearmanr(pred.mean, nb201_table.accuracy("cifar100")[:2000])[0] > 0.5
    acc.forget("c100")


def test_bundle_round_trip_is_exact_and_safe(small, nb201_table, tmp_path):
    path = small.save(tmp_path / "b.pt")
    # plain tensors and builtins only: loadable with weights_only=True
    torch.load(path, weights_only=True)
    loaded = Bundle.load(path)
    archs = list(nb201_table.archs[:50])
    assert np.allclose(loaded.latency.predict(archs, "gold_6240").mean, small.latency.predict(archs, "gold_6240").mean)
    assert loaded.meta == {"note": "test"}


def test_corrupt_and_foreign_bundles(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(BundleError, match="not a readable archgen bundle"):
        Bundle.load(bad)
    torch.save({"format": 999}, tmp_path / "other.pt")
    with pytest.raises(BundleError, match="not an archgen bundle of format 2"):
        Bundle.load(tmp_path / "other.pt")
    with pytest.raises(FileNotFoundError):
        Bundle.load(tmp_path / "missing.pt")


def test_batcher_matches_torch_geometric_collation(nb201):
    from torch_geometric.data import Batch

    archs = nb201.sample(40, seed=4)
    for view in ("full", "pruned"):
        batcher = GraphBatcher(nb201, view)
        mine = batcher.batch(archs)
        ref = Batch.from_data_list([batcher.data(a) for a in archs])
        for key in ("x", "op", "edge_index", "batch", "ptr"):
            assert torch.equal(getattr(mine, key), getattr(ref, key)), (view, key)


def test_small_tables_train_longer_and_widen_only_latency():
    assert for_table(LATENCY_FIT, 15_625) == LATENCY_FIT
    small_latency, small_accuracy = for_table(LATENCY_FIT, 5_000), for_table(ACCURACY_FIT, 5_000, "accuracy")
    assert small_latency.epochs >= 100 and small_latency.batch_size <= 128
    assert (small_latency.hidden, small_latency.rank) == (SMALL_TABLE_LATENCY_WIDTH["hidden"],
                                                          SMALL_TABLE_LATENCY_WIDTH["rank"])
    assert (small_accuracy.hidden, small_accuracy.rank) == (ACCURACY_FIT.hidden, ACCURACY_FIT.rank)
    full_accuracy = for_table(ACCURACY_FIT, 15_625, "accuracy")  # every label of a large table: wider, longer
    assert full_accuracy == replace(ACCURACY_FIT, **FULL_TABLE_ACCURACY)
    with pytest.raises(ValueError, match="kind must be"):
        for_table(LATENCY_FIT, 5_000, "power")


def test_feature_table_gives_the_encoder_s_features(small, nb201):
    """NB201 is small enough to encode once: the table holds exactly what the
    encoder computes, and a predictor without it encodes on demand."""
    lat = small.latency
    assert lat.feature_table is not None and lat.feature_table.shape == (2, nb201.size, 9)
    archs = nb201.sample(30, seed=8)
    fresh = type(lat)(nb201, lat.model, lat.kind, lat.unit, lat.normalisation, lat.view, lat.norms, lat.prior)
    assert fresh.feature_table is None
    assert np.array_equal(lat.features(archs), fresh.features(archs))
    assert np.array_equal(lat.predict(archs, "gold_6240").mean, fresh.predict(archs, "gold_6240").mean)


def test_feature_table_needs_a_small_enumerable_space(small):
    from archgen.spaces import get_space

    lat = small.latency
    fbnet = type(lat)(get_space("fbnet"), lat.model, lat.kind, lat.unit, lat.normalisation, lat.view, lat.norms)
    with pytest.raises(ValueError, match="a feature table is for enumerable spaces"):
        fbnet.precompute_features()
    with pytest.raises(ValueError, match="feature table has shape"):
        type(lat)(lat.space, lat.model, lat.kind, lat.unit, lat.normalisation, lat.view, lat.norms,
                  feature_table=lat.feature_table[:, :10])


def test_inconsistent_bundle_embeddings_are_refused(small, tmp_path):
    path = small.save(tmp_path / "b.pt")
    payload = torch.load(path, weights_only=True)
    payload["latency"]["state"]["weights"] = payload["latency"]["state"]["weights"][:, :2]
    torch.save(payload, tmp_path / "cut.pt")
    with pytest.raises(BundleError, match="incomplete or inconsistent: target embeddings of shape"):
        Bundle.load(tmp_path / "cut.pt")


def test_label_memory_is_the_shrunken_class_mean():
    from predictors.memory import fit_label_memory

    # class a: two labels 1.0 and 1.2; class b: one label -0.5; arch 3 unlabelled
    classes = ["a", "a", "b", "c"]
    labels, preds = np.array([[1.0], [1.2], [-0.5], [np.nan]]), np.zeros((4, 1))
    memory = fit_label_memory(["t"], [0, 1, 2, 3], classes, labels, preds)
    sigma2 = 0.02  # within class a: 2 * 0.1**2 / (2 - 1)
    tau2 = ((1.1**2 - sigma2 / 2) + (0.5**2 - sigma2)) / 2
    known, shift, var = memory.lookup("t", [1, 2, 3, 99])
    assert known.tolist() == [True, True, False, False] and memory.ids == (0, 1, 2)
    assert shift[0] == pytest.approx(2 * tau2 * 1.1 / (2 * tau2 + sigma2))
    assert shift[1] == pytest.approx(-tau2 * 0.5 / (tau2 + sigma2))
    assert var[0] == pytest.approx(tau2 * sigma2 / (2 * tau2 + sigma2) + sigma2)
    assert shift[2:].tolist() == [0.0, 0.0]
    with pytest.raises(ValueError, match="must both be"):
        fit_label_memory(["t"], [0, 1, 2], classes[:3], labels, preds)


def test_remembered_labels_answer_labelled_architectures(small, nb201_table, tmp_path):
    import copy

    acc = copy.copy(small.accuracy)  # the fixture's predictor stays without memory
    labelled, y = list(nb201_table.archs[:2000]), nb201_table.accuracy("cifar10")[:2000]
    acc.remember_labels(labelled, {"cifar10": y})
    net, remembered = acc.predict(labelled, "cifar10", remembered=False), acc.predict(labelled, "cifar10")
    assert np.abs(remembered.mean - y).mean() < 0.5 * np.abs(net.mean - y).mean()
    assert np.mean(remembered.std < net.std) > 0.9
    # an architecture without a label keeps the network's answer
    other = list(nb201_table.archs[2000:2050])
    np.testing.assert_array_equal(acc.predict(other, "cifar10").mean,
                                  acc.predict(other, "cifar10", remembered=False).mean)
    # it travels with the bundle
    Bundle("nb201", small.latency, acc).save(tmp_path / "b.pt")
    loaded = Bundle.load(tmp_path / "b.pt").accuracy
    np.testing.assert_allclose(loaded.predict(labelled, "cifar10").mean, remembered.mean, atol=1e-4)
    with pytest.raises(ValueError, match="'cifar100' is not a pretrained accuracy target"):
        acc.remember_labels(labelled, {"cifar100": y})
    with pytest.raises(ValueError, match="got 2000 architectures but 10 values"):
        acc.remember_labels(labelled, {"cifar10": y[:10]})
