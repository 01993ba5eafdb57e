"""Calibrations persist (archgen.calibrations): stored by one call, restored by the next
(API and CLI), listed and forgotten; refused with a reason when made with another
bundle, for another space or on another machine, or when the file is damaged.

Each test has its own empty store (tests/conftest.py sets $ARCHGEN_CALIBRATIONS)."""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import numpy as np
import pytest

from archgen import ArchGen
from archgen.api import bundled_path
from archgen.calibrations import (
    ENV_VAR,
    CalibrationStore,
    CalibrationStoreError,
    CalibrationStoreWarning,
    check_name,
    store_folder,
)
from archgen.cli import main
from archgen.errors import RequestError, UnknownNameError


@pytest.fixture(scope="module")
def board(nb201, nb201_table):
    """10 architectures and a made-up board's latencies (pixel3's, 30% slower)."""
    archs = nb201.sample(10, seed=0)
    return archs, list(1.3 * nb201_table.latency("pixel3")[nb201_table.rows(archs)])


@pytest.fixture(scope="module")
def task(nb201, nb201_table):
    """20 architectures and their CIFAR-100 accuracies (percent)."""
    archs = nb201.sample(20, seed=7)
    return archs, list(nb201_table.accuracy("cifar100")[nb201_table.rows(archs)])


def store_path() -> Path:
    return Path(os.environ[ENV_VAR])


def test_store_follows_the_environment(tmp_path, monkeypatch):
    assert store_folder() == store_path()
    monkeypatch.delenv(ENV_VAR)
    monkeypatch.setenv("ARCHGEN_CACHE", str(tmp_path / "c" / "measurements.sqlite"))
    assert store_folder() == tmp_path / "c" / "calibrations"  # beside the measurement cache by default


def test_persist_then_restore_predicts_identically(board, task):
    ag = ArchGen.pretrained("nb201")
    ag.calibrate_device("my_board", *board)
    ag.calibrate_task("my_task", task[0], [a / 100 for a in task[1]], units="fraction")
    test = ag.space.sample(300, seed=3)
    lat, acc = ag.predict_latency(test, "my_board"), ag.predict_accuracy(test, "my_task")

    again = ArchGen.pretrained("nb201")
    assert "my_board" in again.devices() and "my_task" in again.tasks()
    lat2, acc2 = again.predict_latency(test, "my_board"), again.predict_accuracy(test, "my_task")
    # calibration is deterministic: the same inputs give bit-identical predictions
    assert np.array_equal(lat.mean, lat2.mean) and np.array_equal(lat.std, lat2.std)
    assert np.array_equal(acc.mean, acc2.mean) and np.array_equal(acc.std, acc2.std)

    listed = {(c.kind, c.name): c for c in again.calibrations()}
    assert set(listed) == {("device", "my_board"), ("task", "my_task")}
    info = listed["device", "my_board"]
    assert info.loaded and info.status == "loaded" and info.k == 10 and info.space == "nb201"
    assert info.bundle == ag.bundle.fingerprint()[:12] and info.created.endswith("+00:00")
    stored = json.loads(Path(listed["task", "my_task"].path).read_text())
    assert stored["units"] == "percent" and stored["values"] == pytest.approx(task[1])  # stored in percent
    assert stored["bundle"] == ag.bundle.fingerprint() and stored["bundle_source"] == "embedded nb201"
    assert stored["archs"] == task[0] and stored["archgen"] and stored["machine"] is None
    assert not list(store_path().rglob("*.tmp"))  # written atomically, nothing left behind


def test_restored_calibration_is_replaced_without_replace(board):
    """The same script run twice calibrates the same name twice: the second run replaces
    what the first stored; within one object recalibrating still needs replace=True."""
    ArchGen.pretrained("nb201").calibrate_device("my_board", *board)
    ag = ArchGen.pretrained("nb201")
    ag.calibrate_device("my_board", board[0], [2 * v for v in board[1]])
    with pytest.raises(RequestError, match="already calibrated; pass replace=True"):
        ag.calibrate_device("my_board", *board)
    stored = CalibrationStore().read(ag.calibrations()[0].path)
    assert stored.values == pytest.approx([2 * v for v in board[1]])


def test_persist_false_and_restore_false(board):
    ag = ArchGen.pretrained("nb201")
    ag.calibrate_device("kept_here", *board, persist=False)
    assert "kept_here" in ag.devices() and ag.calibrations() == []
    assert not store_path().exists() or not list(store_path().rglob("*.json"))
    ag.calibrate_device("stored", *board)
    assert [c.name for c in ag.calibrations()] == ["stored"]
    assert "stored" not in ArchGen.pretrained("nb201", restore=False).devices()
    assert ArchGen.pretrained("nb201", restore=False).calibrations() == []
    assert "stored" in ArchGen(ArchGen.pretrained("nb201", restore=False).bundle).devices()
    # recalibrated without persisting: the stored one is no longer what this object uses
    ag.calibrate_device("stored", *board, replace=True, persist=False)
    assert ag.calibrations()[0].status.startswith("refused: replaced in this object")


def test_forget(board, task):
    ag = ArchGen.pretrained("nb201")
    ag.calibrate_device("my_board", *board)
    ag.calibrate_task("my_board", *task)  # a task of the same name
    with pytest.raises(RequestError, match="both a calibrated device and a calibrated task; pass kind="):
        ag.forget("my_board")
    removed = ag.forget("my_board", kind="task")
    assert removed.kind == "task" and not Path(removed.path).exists()
    assert "my_board" not in ag.tasks() and "my_board" in ag.devices()
    assert ag.forget("my_board").kind == "device" and "my_board" not in ag.devices()
    assert ag.calibrations() == [] and ArchGen.pretrained("nb201").calibrations() == []
    ag.calibrate_device("only_here", *board, persist=False)
    assert ag.forget("only_here") is None and "only_here" not in ag.devices()
    with pytest.raises(UnknownNameError, match=r"unknown calibration 'my_bord'.*calibrations\(\)"):
        ag.forget("my_bord")
    with pytest.raises(RequestError, match="'pixel3' is a pretrained device and cannot be forgotten"):
        ag.forget("pixel3")
    with pytest.raises(RequestError, match="kind must be 'device' or 'task'"):
        ag.forget("x", kind="board")
    # a stored calibration not loaded (here: another bundle's) is forgotten too
    _write(store_path() / "nb201" / "device" / "old.json", _entry(board, bundle="0" * 64))
    ag = ArchGen.pretrained("nb201")
    assert ag.calibrations()[0].status.startswith("refused") and ag.forget("old").name == "old"
    assert not (store_path() / "nb201" / "device" / "old.json").exists()


def test_names_that_cannot_be_stored(board):
    ag = ArchGen.pretrained("nb201")
    for name in ("a/b", "..", ".hidden", "a\\b", "x" * 101, "my board", "-flag"):
        with pytest.raises(CalibrationStoreError, match="cannot be stored: .*persist=False"):
            ag.calibrate_device(name, *board)
        assert name not in ag.devices()  # refused before calibrating
    with pytest.raises(CalibrationStoreError, match="holds a path separator"):
        check_name("../escape")
    with pytest.raises(RequestError, match="target name must be a non-empty string"):  # not a name at all
        ag.calibrate_device("", *board)
    ag.calibrate_device("my board", *board, persist=False)  # in memory, any name works as before
    assert "my board" in ag.devices()
    assert check_name("a100_per_image") == "a100_per_image" and check_name("board-2.v3+x") == "board-2.v3+x"


def test_a_store_that_cannot_be_written_warns(board, tmp_path, monkeypatch):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    monkeypatch.setenv(ENV_VAR, str(blocker))
    ag = ArchGen.pretrained("nb201")
    with pytest.warns(CalibrationStoreWarning, match="could not store the calibration of device 'my_board'.*"
                                                     "works in this object only"):
        ag.calibrate_device("my_board", *board)
    assert "my_board" in ag.devices()


def _entry(board, **changes) -> dict:
    entry = {"format": 1, "space": "nb201", "kind": "device", "name": "old", "archs": board[0],
             "values": [float(v) for v in board[1]], "units": "ms", "bundle": "f" * 64,
             "bundle_source": "/somewhere/else.pt", "created": "2026-01-01T00:00:00+00:00", "archgen": "0.1.0",
             "machine": None, "settings": None}
    return {**entry, **changes}


def _write(path: Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(data if isinstance(data, str) else json.dumps(data))


def test_another_bundle_is_refused(board, tmp_path, capsys):
    """A bundle with other weights has another fingerprint: a calibration made with the
    embedded one is listed as refused there, and naming it says why it is unknown."""
    from archgen.bundle import Bundle

    ag = ArchGen.pretrained("nb201")
    ag.calibrate_device("my_board", *board)
    other = Bundle.load(bundled_path("nb201"))
    weights = other.latency.model.state_dict()["weights"]
    weights += 1e-3  # retrained, say
    path = other.save(tmp_path / "other.pt")
    assert Bundle.load(path).fingerprint() == other.fingerprint() != ag.bundle.fingerprint()  # survives save/load

    mine = ArchGen.pretrained("nb201", path=path)
    assert "my_board" not in mine.devices()
    (info,) = mine.calibrations()
    assert not info.loaded and info.name == "my_board"
    assert info.status == (f"refused: made with another bundle (embedded nb201, fingerprint "
                           f"{ag.bundle.fingerprint()[:12]}; this one is {other.fingerprint()[:12]}); "
                           "recalibrate, or forget it")
    with pytest.raises(UnknownNameError, match=r"unknown device 'my_board'.*a stored calibration of device "
                                               r"'my_board' was not loaded: made with another bundle \(embedded "
                                               r"nb201.*--calibration FILE.csv"):
        mine.predict_latency(board[0], "my_board")
    with pytest.raises(UnknownNameError, match="was not loaded: made with another bundle"):
        mine.generate("cifar10", "my_board", 10.0, n=1, samples=10)
    assert main(["calibrations", "--bundle", str(path)]) == 0  # the CLI judges against that bundle
    row = capsys.readouterr().out.splitlines()[1]
    assert "my_board  linear  10" in row and "refused: made with another bundle (embedded nb201" in row
    assert main(["calibrations"]) == 0  # and by default against the embedded one
    assert capsys.readouterr().out.splitlines()[1].endswith("loaded")
    # recalibrating with this bundle replaces the stored one, which the embedded bundle then refuses
    mine.calibrate_device("my_board", *board)
    assert mine.calibrations()[0].loaded
    assert not ArchGen.pretrained("nb201").calibrations()[0].loaded


def test_another_space_is_refused(board):
    ArchGen.pretrained("nb201").calibrate_device("my_board", *board)
    fbnet = ArchGen.pretrained("fbnet")
    assert fbnet.calibrations() == []
    with pytest.raises(UnknownNameError, match="device 'my_board' is stored for space nb201, not fbnet"):
        fbnet.predict_latency(fbnet.space.sample(2, seed=0), "my_board")
    # a file copied into another space's folder
    source = store_path() / "nb201" / "device" / "my_board.json"
    _write(store_path() / "fbnet" / "device" / "my_board.json", source.read_text())
    (info,) = ArchGen.pretrained("fbnet").calibrations()
    assert info.status == "refused: made for space 'nb201', not 'fbnet'; recalibrate, or forget it"


def test_another_machine_is_refused(board):
    from archgen.measurements import machine_id

    _write(store_path() / "nb201" / "device" / "local.json",
           _entry(board, name="local", bundle=ArchGen.pretrained("nb201", restore=False).bundle.fingerprint(),
                  machine="0123456789abcdef"))
    ag = ArchGen.pretrained("nb201")
    assert "local" not in ag.devices()
    assert ag.calibrations()[0].status == (f"refused: measured on another machine (id 0123456789abcdef; this one "
                                           f"is {machine_id()}); recalibrate here, or forget it")


@pytest.mark.parametrize("content,why", [
    ("{not json", "is damaged: not JSON"),
    ("[1, 2]", "is damaged: it holds a JSON list, not an object"),
    (dict(values=[1.0, "x"]), "is damaged: field values must be a list of finite numbers"),
    (dict(values=[1.0]), "is damaged: 10 architectures and 1 values"),
    (dict(name="other"), "is damaged: it says device 'other', but is stored as device 'bad'"),
    (dict(bundle=None), "is damaged: field bundle must be a string"),
    (dict(format=7, archgen="9.0"), "has format 7, made by a newer archgen"),
])
def test_damaged_file_is_reported_and_never_used(board, content, why):
    path = store_path() / "nb201" / "device" / "bad.json"
    _write(path, content if isinstance(content, str) else _entry(board, **{"name": "bad", **content}))
    with pytest.warns(CalibrationStoreWarning, match=f"stored calibration {path} {why}.*skipped"):
        ag = ArchGen.pretrained("nb201")
    assert "bad" not in ag.devices()
    (info,) = ag.calibrations()
    assert info.name == "bad" and info.kind == "device" and info.k is None
    assert info.status.startswith(f"refused: stored calibration {path} {why}")
    assert "(`archgen calibrations --forget bad --space nb201 --kind device`)" in info.status
    with pytest.raises(UnknownNameError, match=f"a stored calibration of device 'bad' was not loaded: .*{path}"):
        ag.predict_latency(board[0], "bad")
    assert ag.forget("bad") is not None and not path.exists()


def test_restore_is_fast_and_calibrates_on_first_use(board, task):
    """Making an object costs milliseconds whatever is stored (files read and checked, the
    bundle's fingerprint computed once); a restored name is calibrated on first use."""
    import time

    from archgen.bundle import Bundle

    ag = ArchGen.pretrained("nb201")
    for i in range(4):
        ag.calibrate_device(f"board_{i}", board[0], [v * (1 + i / 10) for v in board[1]])
    ag.calibrate_task("my_task", *task)
    bundle = Bundle.load(bundled_path("nb201"))
    start = time.perf_counter()
    restored = ArchGen(bundle, bundle_source="embedded nb201")
    seconds = time.perf_counter() - start
    assert seconds < 0.5, seconds  # about 10 ms here; generous for a busy machine
    assert len([c for c in restored.calibrations() if c.loaded]) == 5
    assert restored.devices()[-4:] == [f"board_{i}" for i in range(4)] and restored.tasks()[-1] == "my_task"
    assert "board_1" not in bundle.latency.targets  # not calibrated yet
    restored.predict_latency(board[0][:2], "board_1")
    assert "board_1" in bundle.latency.targets and "board_2" not in bundle.latency.targets
    assert restored.task_domain("my_task") == {} and "my_task" in bundle.accuracy.targets
    restored.restore_now()
    assert all(f"board_{i}" in bundle.latency.targets for i in range(4))


def test_stored_inputs_that_no_longer_calibrate(board):
    """A file edited by hand into inputs that do not calibrate is refused on first use, with why."""
    ag = ArchGen.pretrained("nb201")
    ag.calibrate_device("edited", *board)
    path = Path(ag.calibrations()[0].path)
    _write(path, {**json.loads(path.read_text()), "archs": ["not an arch", *board[0][1:]]})
    again = ArchGen.pretrained("nb201")
    assert "edited" in again.devices()
    with pytest.raises(UnknownNameError, match="a stored calibration of device 'edited' was not loaded: cannot be "
                                               "calibrated again from its file"):
        again.predict_latency(board[0], "edited")
    assert again.calibrations()[0].status.startswith("refused: cannot be calibrated again")
    assert "edited" not in again.devices()


def test_a_restored_task_counts_where_the_task_may_be_left_out():
    """FBNet's bundle has one task (proxy), so a request may leave it out; with a stored
    task it has two, as if calibrated in this object."""
    fbnet = ArchGen.pretrained("fbnet")
    archs = fbnet.space.sample(10, seed=0)
    fbnet.calibrate_task("my_task", archs, np.linspace(60, 80, 10))
    again = ArchGen.pretrained("fbnet")
    with pytest.raises(RequestError, match=r"task=... is needed: the fbnet bundle has 2 tasks \(proxy, my_task\)"):
        again.generate(device="pixel3", max_latency_ms=100.0, n=1, samples=10)


def test_cli_lists_and_forgets(board, task, capsys):
    assert main(["calibrations"]) == 0
    assert capsys.readouterr().out.startswith("no stored calibrations in ")
    ag = ArchGen.pretrained("nb201")
    ag.calibrate_device("my_board", *board)
    ag.calibrate_task("my_task", *task)
    assert main(["calibrations"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["space", "kind", "name", "head", "k", "created", "bundle", "status"]
    assert out[1].split()[:5] == ["nb201", "device", "my_board", "linear", "10"] and out[1].endswith("loaded")
    assert out[2].split()[:5] == ["nb201", "task", "my_task", "gp", "20"]
    assert out[3].startswith("2 stored in ")
    assert main(["calibrations", "--space", "nb201", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)["calibrations"]
    assert [(c["name"], c["status"], c["k"]) for c in listed] == [("my_board", "loaded", 10), ("my_task", "loaded", 20)]
    assert main(["calibrations", "--space", "fbnet"]) == 0
    assert capsys.readouterr().out.startswith("no stored calibrations for space fbnet")

    assert main(["calibrations", "--forget", "my_task", "--kind", "device"]) == 2
    assert "no stored calibration 'my_task'" in capsys.readouterr().err
    assert main(["calibrations", "--kind", "task"]) == 2
    assert "--kind goes with --forget NAME" in capsys.readouterr().err
    assert main(["calibrations", "--forget", "a/b"]) == 2
    assert "cannot be stored: it holds a path separator" in capsys.readouterr().err
    assert main(["calibrations", "--forget", "my_task"]) == 0
    assert "forgot the stored calibration of task 'my_task' (nb201)" in capsys.readouterr().out
    assert [c.name for c in ArchGen.pretrained("nb201").calibrations()] == ["my_board"]
    assert main(["calibrations", "--forget", "my_board", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["forgot"]["name"] == "my_board"
    assert main(["calibrations", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["calibrations"] == []


def test_cli_lists_a_damaged_file_without_a_warning(capsys):
    path = store_path() / "nb201" / "task" / "broken.json"
    _write(path, "")
    assert main(["calibrations"]) == 0
    captured = capsys.readouterr()
    assert "warning" not in captured.err
    assert f"refused: stored calibration {path} is damaged: not JSON" in captured.out


def test_cli_generate_stores_a_calibrated_device(tmp_path, nb201_table, board, capsys):
    csv = tmp_path / "board.csv"
    csv.write_text("arch,latency_ms\n" + "".join(f"{a},{ms}\n" for a, ms in zip(*board)))
    request = ["generate", "--task", "cifar10", "--device", "board", "--max-latency-ms", "20", "-n", "1",
               "--samples", "30"]
    assert main([*request, "--calibration", str(csv)]) == 0
    assert "stored: later calls may use --device board without --calibration" in capsys.readouterr().err
    assert main(request) == 0  # a later call: no --calibration needed
    assert "using the stored calibration of 'board' (10 measurements" in capsys.readouterr().err
    assert main([*request, "--calibration", str(csv)]) == 0  # calibrating again replaces it
    capsys.readouterr()


def test_cli_generate_local_reuses_the_stored_calibration(tmp_path, monkeypatch, capsys):
    """`archgen generate --device local` measures this machine once; later calls restore
    the stored calibration and measure nothing (here: measuring would fail)."""
    import archgen.measurements
    from archgen.measurements import RuntimeSettings, machine_id

    cache = tmp_path / "c.sqlite"
    ag = ArchGen.pretrained("nb201")
    ag.calibrate_local(k=3, settings=RuntimeSettings(warmup=1, repeats=2, rounds=2), cache=cache, progress=False)
    (info,) = ag.calibrations()
    stored = CalibrationStore().read(info.path)
    assert stored.machine == machine_id() and stored.settings["repeats"] == 2 and stored.k == 3

    def no_measuring(*args, **kwargs):
        raise AssertionError("measured again")

    monkeypatch.setattr(archgen.measurements, "measure_archs", no_measuring)
    request = ["generate", "--task", "cifar10", "--device", "local", "--max-latency-ms", "1000", "-n", "1",
               "--samples", "30", "--cache", str(cache)]
    assert main([*request, "--local-k", "3"]) == 0
    err = capsys.readouterr().err
    assert "using the stored calibration of 'local' (3 measurements on this machine" in err
    assert "calibrated 'local'" not in err
    with pytest.raises(AssertionError, match="measured again"):  # another k: calibrated again
        main([*request, "--local-k", "4"])


def test_bundle_fingerprint_is_cached_and_ignores_generators_and_meta():
    from archgen.bundle import Bundle

    bundle = Bundle.load(bundled_path("nb201"))
    fp = bundle.fingerprint()
    assert len(fp) == 64 and bundle.fingerprint() is fp
    same = Bundle(bundle.space, bundle.latency, bundle.accuracy, {}, {"note": "other meta"})
    assert same.fingerprint() == fp  # a calibration depends on the predictors only
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a clean store restores without warnings
        ArchGen(bundle)
