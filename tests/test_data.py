"""Benchmark tables: the packaged copy, user folders (plain or gzip'd files),
missing cells, and the tables beyond NAS-Bench-201 (Accel-NASBench, the
ImageNet accuracies of OFA-MobileNetV3)."""

import csv
import gzip
import json
import shutil

import numpy as np
import pytest

from archgen.data import ENV_VAR, LAYOUT, data_root, find_file, load_table, open_text, packaged_root
from archgen.errors import DataError, UnknownNameError
from conftest import require_table


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
    assert data_root() == packaged_root()  # no root=, no ARCHGEN_DATA: the packaged copy
    with pytest.raises(DataError, match="does not exist"):
        load_table("nb201", tmp_path / "nowhere")
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "nowhere"))
    with pytest.raises(DataError, match="does not exist .*from ARCHGEN_DATA"):
        data_root()
    monkeypatch.setenv(ENV_VAR, str(tmp_path))
    with pytest.raises(DataError, match="lacks accuracy.csv, latency_ms.csv; expected files: accuracy.csv, "
                                        "latency_ms.csv .*ARCHGEN_DATA or root="):
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
    assert nb201_table.latency_rows("pixel3").tolist() == list(range(15625))
    assert len(nb201_table.accuracy_rows("cifar10")) == 15625


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


# -- where the tables come from -----------------------------------------------------------------
def _tiny_nb201(root, accuracy="index,arch,cifar10\n0,|a|,90\n1,|b|,91\n", latency="index,dev\n0,1.0\n1,2.0\n"):
    folder = root / "nasbench201"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "accuracy.csv").write_text(accuracy)
    (folder / "latency_ms.csv").write_text(latency)
    return root


def test_packaged_copy_loads_without_archgen_data(monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    table = load_table("nb201")
    assert table.root == packaged_root().resolve() and len(table) == 15625
    assert find_file(packaged_root() / "nasbench201", "latency_ms.csv").name == "latency_ms.csv.gz"
    for layout in LAYOUT.values():  # every table is packaged
        assert all(find_file(packaged_root() / layout.folder, f) for f in layout.files), layout.folder
    assert "Sources and licences" in (packaged_root() / "README.md").read_text()


def test_archgen_data_overrides_the_packaged_copy(monkeypatch, tmp_path):
    monkeypatch.setenv(ENV_VAR, str(_tiny_nb201(tmp_path)))
    table = load_table("nb201")
    assert table.archs == ("|a|", "|b|") and table.root == tmp_path.resolve()
    assert load_table("nb201", packaged_root()).archs != table.archs  # root= wins over the variable


def test_packaged_files_are_the_originals(data_root):
    """Decompressed, every packaged file is the data folder's file byte for byte
    (checked where $ARCHGEN_DATA holds other copies of them)."""
    packaged = sorted(packaged_root().rglob("*.gz"))
    assert len(packaged) >= 12
    if data_root.resolve() == packaged_root().resolve():
        pytest.skip("no other copy of the tables to compare with ($ARCHGEN_DATA unset)")
    compared = 0
    for gz in packaged:
        relative = gz.relative_to(packaged_root()).with_suffix("")
        original = find_file(data_root / relative.parent, relative.name)
        if original is not None:
            with open_text(original) as a, gzip.open(gz, "rt", encoding="utf-8", newline="") as b:
                assert a.read() == b.read(), relative
            compared += 1
    assert compared, f"{data_root} holds none of the packaged files"


def test_plain_and_gzip_folders_give_identical_tables(tmp_path):
    """A user folder of plain files and the packaged .gz files are read alike."""
    plain = tmp_path / "plain" / "ofa_mbv3"
    plain.mkdir(parents=True)
    for gz in (packaged_root() / "ofa_mbv3").glob("*.gz"):
        with gzip.open(gz, "rb") as src, open(plain / gz.stem, "wb") as dst:
            shutil.copyfileobj(src, dst)
    a, b = load_table("mbv3", plain.parent), load_table("mbv3", packaged_root())
    assert a.root != b.root and a.archs == b.archs and a.tasks == b.tasks and a.devices == b.devices
    for t in a.tasks:
        np.testing.assert_array_equal(a.accuracy(t), b.accuracy(t))
    np.testing.assert_array_equal(a.latency_matrix(), b.latency_matrix())


def test_require_table_skips_where_the_folder_lacks_it(tmp_path):
    _tiny_nb201(tmp_path)
    assert len(require_table("nb201", tmp_path)) == 2
    with pytest.raises(pytest.skip.Exception, match="lacks archs.csv, latency_ms.csv"):
        require_table("fbnet", tmp_path)


# -- missing cells -------------------------------------------------------------------------------
def test_an_empty_cell_is_not_measured(tmp_path):
    root = _tiny_nb201(tmp_path, "index,arch,cifar10,cifar100\n0,|a|,90,\n1,|b|,,70\n2,|c|,92,71\n",
                       "index,dev,other\n0,1.0,3\n1,,4\n2,2.5,5\n")
    t = load_table("nb201", root)
    assert np.isnan(t.accuracy("cifar10")[1]) and np.isnan(t.accuracy("cifar100")[0])
    assert t.latency("dev")[0] == 1.0 and np.isnan(t.latency("dev")[1])  # never 0
    assert t.accuracy_rows("cifar10").tolist() == [0, 2] and t.accuracy_rows("cifar100").tolist() == [1, 2]
    assert t.latency_rows("dev").tolist() == [0, 2] and t.latency_rows("other").tolist() == [0, 1, 2]
    assert np.isnan(t.latency_matrix()).sum() == 1


@pytest.mark.parametrize("text", ["nan", "NaN", "inf", "-inf"])
def test_non_finite_text_is_an_error(tmp_path, text):
    root = _tiny_nb201(tmp_path, latency=f"index,dev\n0,1.0\n1,{text}\n")
    with pytest.raises(DataError, match=f"latency_ms.csv: column 'dev' has a non-finite value '{text}' in row 3"):
        load_table("nb201", root)


def test_non_numeric_cell_and_empty_column_are_errors(tmp_path):
    root = _tiny_nb201(tmp_path / "a", latency="index,dev\n0,1.0\n1,fast\n")
    with pytest.raises(DataError, match="latency_ms.csv: column 'dev' has a non-numeric value 'fast' in row 3"):
        load_table("nb201", root)
    root = _tiny_nb201(tmp_path / "b", latency="index,dev,broken\n0,1.0,\n1,2.0,\n")
    with pytest.raises(DataError, match="latency_ms.csv: column 'broken' is entirely empty"):
        load_table("nb201", root)


def test_gzip_user_folder_with_missing_cells(tmp_path):
    root = _tiny_nb201(tmp_path, latency="index,dev\n0,1.5\n1,\n")
    latency = root / "nasbench201" / "latency_ms.csv"
    with gzip.open(f"{latency}.gz", "wb") as f:
        f.write(latency.read_bytes())
    latency.unlink()
    t = load_table("nb201", root)
    assert t.latency("dev")[0] == 1.5 and np.isnan(t.latency("dev")[1])


# -- records files: MobileNetV3 ImageNet accuracies -------------------------------------------
def _record(ks2=3, top1=None, r=160):
    ks = [3] * 20
    ks[2] = ks2  # stage 1, slot 3: unused at depth 2
    rec = {"ks": ks, "e": [4] * 20, "d": [2] * 5, "r": r}
    return rec if top1 is None else {**rec, "top1": top1, "macs": 1, "params": 2}


def _tiny_mbv3(root, imagenet):
    folder = root / "ofa_mbv3"
    folder.mkdir(parents=True)
    archs = [{"index": 0, **_record()}, {"index": 1, **_record(r=192)}]
    (folder / "archs.jsonl").write_text("".join(json.dumps(a) + "\n" for a in archs))
    (folder / "latency_ms.csv").write_text("index,gpu\n0,1.0\n1,2.0\n")
    (folder / "imagenet_accuracy.jsonl").write_text("".join(json.dumps(r) + "\n" for r in imagenet))
    return root


def test_records_extend_the_table_and_duplicates_are_averaged(tmp_path):
    imagenet = [_record(3, 70.0, r=224), _record(7, 72.0, r=224),  # one network: unused slots differ
                _record(3, 60.0, r=160),  # the first latency row's network
                {**_record(r=176), "top1": None}]  # not measured
    t = load_table("mbv3", _tiny_mbv3(tmp_path, imagenet))
    assert len(t) == 4 and t.archs[2].startswith("r224:") and t.archs[3].startswith("r176:")
    np.testing.assert_array_equal(t.accuracy("imagenet"), [60.0, np.nan, 71.0, np.nan])
    assert t.latency_rows("gpu").tolist() == [0, 1] and t.accuracy_rows("imagenet").tolist() == [0, 2]
    assert "1 duplicate records averaged" in t.task_notes["imagenet"]


def test_bad_records_are_errors(tmp_path):
    with pytest.raises(DataError, match="line 1: 'top1' is 'high', not a finite number"):
        load_table("mbv3", _tiny_mbv3(tmp_path / "a", [{**_record(), "top1": "high"}]))
    with pytest.raises(DataError, match="no record has a value for 'top1'"):
        load_table("mbv3", _tiny_mbv3(tmp_path / "b", [_record()]))
    with pytest.raises(DataError, match="imagenet_accuracy.jsonl: line 1 is not a mbv3 architecture"):
        load_table("mbv3", _tiny_mbv3(tmp_path / "c", [{**_record(), "d": [9] * 5, "top1": 1.0}]))


def test_mbv3_table_is_the_union_with_imagenet_accuracies(data_root):
    t = require_table("mbv3", data_root)
    acc = t.accuracy("imagenet")
    measured = t.accuracy_rows("imagenet")
    assert t.tasks == ["imagenet"] and len(t.devices) == 11
    assert 1700 <= len(measured) <= 1730 and len(t) == 5000 + len(measured)  # no overlap with the 5,000
    assert measured.tolist() == list(range(5000, len(t)))
    assert all(t.archs[i].startswith("r224:") for i in measured)
    assert 71.0 <= acc[measured].min() and acc[measured].max() <= 77.5
    for d in t.devices:  # the latency rows are the 5,000 of archs.jsonl, in order
        assert t.latency_rows(d).tolist() == list(range(5000))
    assert len(set(t.archs)) == len(t)
    assert "inherited weights" in t.task_notes["imagenet"]


# -- Accel-NASBench: several latency files, throughput converted -------------------------------
@pytest.fixture(scope="module")
def anb_table(data_root):
    from archgen.spaces import get_space

    try:
        get_space("anb")
    except KeyError:
        pytest.skip("the anb search space is not available")
    return require_table("anb", data_root)


def test_anb_table(anb_table, data_root):
    t = anb_table
    assert len(t) == 4626 and t.tasks == ["imagenet", "imagenet_top5"]
    assert t.devices == ["3090_per_image", "a100_per_image", "tpuv2_per_image", "tpuv3_per_image",
                         "zcu102", "zcu102_per_image"]
    assert 42 < np.nanmin(t.accuracy("imagenet")) and np.nanmax(t.accuracy("imagenet")) < 68  # README: 43-67
    with open_text(find_file(data_root / "accel_nasbench", "throughput.csv")) as f:
        rows = list(csv.reader(f))
    header = rows[0]
    for device in ("a100", "3090", "tpuv2", "tpuv3", "zcu102"):
        column = [row[header.index(device)] for row in rows[1:]]
        row = next(i for i, v in enumerate(column) if v)
        assert t.latency(f"{device}_per_image")[row] == pytest.approx(1000.0 / float(column[row]), rel=1e-12)
        assert np.isnan(t.latency(f"{device}_per_image")[[i for i, v in enumerate(column) if not v]]).all()
        assert len(t.latency_rows(f"{device}_per_image")) == sum(1 for v in column if v)
        assert "1000 / throughput" in t.device_notes[f"{device}_per_image"]
    assert "batch 1" in t.device_notes["zcu102"] and len(t.latency_rows("zcu102")) < 4626
    with pytest.raises(UnknownNameError, match="unknown device .* 'tpuv3'; valid: 3090_per_image.*tpuv3_per_image"):
        t.latency("tpuv3")


def test_anb_processed_cache_keeps_notes(anb_table, data_root, monkeypatch, tmp_path):
    import archgen.data as data

    monkeypatch.setenv("ARCHGEN_CACHE", str(tmp_path / "m.sqlite"))
    data._load_table.cache_clear()
    first = load_table("anb", data_root)
    data._load_table.cache_clear()
    again = load_table("anb", data_root)  # from tables/anb-*.npz
    assert len(list((tmp_path / "tables").glob("anb-*.npz"))) == 1
    assert again.device_notes == first.device_notes and again.task_notes == first.task_notes
    np.testing.assert_array_equal(again.latency_matrix(), first.latency_matrix())
    data._load_table.cache_clear()
