import numpy as np
import pytest

from archgen.data import ENV_VAR, data_root, load_table
from archgen.errors import DataError, UnknownNameError


def test_real_table_shapes_and_names(nb201_table, nb201):
    t = nb201_table
    assert len(t) == 15625
    assert t.tasks == ["cifar10", "cifar100"]
    assert len(t.devices) == 21 and "pixel3" in t.devices
    acc = t.accuracy("cifar10")
    assert acc.shape == (15625,) and 90 < acc.max() < 100
    assert t.latency("pixel3").shape == (15625,)
    assert t.latency_matrix().shape == (15625, 21)
    # every table arch is a canonical string of the space, and all 15,625 occur
    assert set(t.archs) == set(nb201.enumerate())


def test_best_known_accuracy_matches_readme(nb201_table):
    assert nb201_table.accuracy("cifar10").max() == pytest.approx(94.37, abs=0.01)
    assert nb201_table.accuracy("cifar100").max() == pytest.approx(73.51, abs=0.01)


def test_rows_lookup(nb201_table):
    archs = list(nb201_table.archs[:3])
    assert nb201_table.rows(archs).tolist() == [0, 1, 2]
    with pytest.raises(DataError, match="not in the nb201 table"):
        nb201_table.rows(["|bogus|"])


def test_unknown_device_and_task_list_valid_names(nb201_table):
    with pytest.raises(UnknownNameError, match="unknown device .* 'jetson'.*valid: 1080ti_1"):
        nb201_table.latency("jetson")
    with pytest.raises(KeyError, match="valid: cifar10, cifar100"):
        nb201_table.accuracy("imagenet")


def test_missing_folder_and_env(monkeypatch, tmp_path):
    monkeypatch.delenv(ENV_VAR, raising=False)
    with pytest.raises(DataError, match="ARCHGEN_DATA"):
        data_root()
    with pytest.raises(DataError, match="does not exist"):
        load_table("nb201", tmp_path / "nowhere")
    monkeypatch.setenv(ENV_VAR, str(tmp_path))
    with pytest.raises(DataError, match="lacks accuracy.csv, latency_ms.csv"):
        load_table("nb201")


def test_malformed_files(tmp_path):
    folder = tmp_path / "nasbench201"
    folder.mkdir()
    (folder / "accuracy.csv").write_text("index,arch,cifar10\n0,|a|,90\n1,|b|,oops\n")
    (folder / "latency_ms.csv").write_text("index,dev\n0,1.0\n1,2.0\n")
    with pytest.raises(DataError, match="column 'cifar10' has a non-numeric value"):
        load_table("nb201", tmp_path)
    (folder / "accuracy.csv").write_text("index,arch,cifar10\n0,|a|,90\n1,|b|\n")
    with pytest.raises(DataError, match="row 3 has 2 fields"):
        load_table("nb201", tmp_path)
    (folder / "accuracy.csv").write_text("index,arch,cifar10\n0,|a|,90\n2,|b|,91\n")
    with pytest.raises(DataError, match="index column does not match"):
        load_table("nb201", tmp_path)


def test_unknown_space():
    with pytest.raises(UnknownNameError, match="unknown benchmark space 'imagenet'"):
        load_table("imagenet")


def test_table_is_read_only_view_of_numbers(nb201_table):
    assert np.isfinite(nb201_table.latency_matrix()).all()


def test_processed_table_cache_is_exact_and_self_healing(data_root, monkeypatch, tmp_path):
    """Parsed tables are kept under tables/ beside the measurement cache; a
    corrupt one is parsed again and replaced, never an error."""
    import archgen.data as data

    monkeypatch.setenv("ARCHGEN_CACHE", str(tmp_path / "m.sqlite"))
    data._load_table.cache_clear()
    first = load_table("nb201", data_root)
    files = list((tmp_path / "tables").glob("nb201-*.npz"))
    assert len(files) == 1
    data._load_table.cache_clear()
    again = load_table("nb201", data_root)  # from the processed file
    assert again.archs == first.archs and again.tasks == first.tasks and again.devices == first.devices
    assert np.array_equal(again.latency_matrix(), first.latency_matrix())
    assert np.array_equal(again.accuracy("cifar100"), first.accuracy("cifar100"))
    files[0].write_bytes(b"not an npz")
    data._load_table.cache_clear()
    healed = load_table("nb201", data_root)
    assert np.array_equal(healed.latency_matrix(), first.latency_matrix())
    assert files[0].read_bytes()[:2] == b"PK"  # rewritten
    data._load_table.cache_clear()
