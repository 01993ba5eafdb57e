"""The measurement cache refuses damaged files untouched, survives many processes
creating it at once, and never stores nor returns a latency that is not finite and > 0."""

import dataclasses
import json
import math
import multiprocessing
import os
import sqlite3
import types

import pytest

import archgen.hardware as hardware
from archgen.errors import CacheError, MeasurementError
from archgen.hardware import LatencyMeasurement
from archgen.measurements import MeasurementCache, MeasurementCacheError, RuntimeSettings, measure_archs

FAST = RuntimeSettings(warmup=0, repeats=2, rounds=1)
GOOD = LatencyMeasurement(median_ms=1.0, p10_ms=0.9, p90_ms=1.2, mean_ms=1.05, std_ms=0.1, repeats=10, warmup=1,
                          threads=1, batch_size=1, rounds=1, floor_ms=0.95)
SHAPE = (1, 3, 32, 32)


def _put(cache, k: int, measurement=GOOD) -> None:
    cache.put("nb201", f"hash{k:05d}", SHAPE, RuntimeSettings(), "machine", f"arch{k}", measurement)


def _snapshot(folder):
    """Every file of ``folder`` with its bytes and permission bits."""
    return {p.name: (p.read_bytes(), p.stat().st_mode) for p in sorted(folder.iterdir())}


def test_damage_past_the_header_is_refused_byte_for_byte(tmp_path, nb201):
    path = tmp_path / "m.sqlite"
    with MeasurementCache(path) as cache:
        for k in range(2000):
            _put(cache, k)
    data = bytearray(path.read_bytes())
    assert data[18:20] == b"\x02\x02"  # a healthy cache is in WAL mode (and its -wal is gone once closed)
    page = 4096
    middle = len(data) // page // 2 * page
    data[middle:middle + page] = bytes((7 * i + 3) % 251 for i in range(page))  # one page of garbage
    path.write_bytes(bytes(data))
    before = _snapshot(tmp_path)
    assert list(before) == ["m.sqlite"]
    with pytest.raises(MeasurementCacheError, match="integrity check failed") as refused:
        MeasurementCache(path)
    message = str(refused.value)
    assert str(path) in message and "move it away" in message and "nothing in it was changed" in message
    with pytest.raises(MeasurementCacheError, match="integrity check failed"):
        measure_archs(nb201, nb201.sample(1), FAST, cache=path, progress=False)
    # same bytes, same mode bits, still WAL in the header, and no -wal/-shm/-journal beside it
    assert _snapshot(tmp_path) == before
    assert isinstance(refused.value, CacheError) and isinstance(refused.value, ValueError)


def test_an_interrupted_transaction_is_rolled_back_not_refused(tmp_path):
    """A cache outside WAL mode (a file system without WAL) killed mid-transaction
    keeps a hot journal: SQLite's recovery, not a refusal, is the right answer."""
    path = tmp_path / "m.sqlite"
    with MeasurementCache(path) as cache:
        _put(cache, 0)
    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode = DELETE")
    db.close()
    if not hasattr(os, "fork"):
        pytest.skip("needs fork to kill a writer mid-transaction")
    pid = os.fork()
    if pid == 0:  # a writer that dies with its transaction half on disk
        db = sqlite3.connect(path, isolation_level=None)
        db.execute("PRAGMA cache_size = 1")  # spill pages into the file before COMMIT
        db.execute("BEGIN IMMEDIATE")
        for k in range(1, 3000):
            db.execute("INSERT INTO measurements VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                       ("nb201", f"h{k}", "[]", "{}", "m", "x" * 50, "{}", 0.0))
        os._exit(0)
    os.waitpid(pid, 0)
    assert (tmp_path / "m.sqlite-journal").exists()
    with MeasurementCache(path) as cache:
        assert len(cache) == 1  # back to the last committed state
        assert cache.get("nb201", "hash00000", SHAPE, RuntimeSettings(), "machine") == GOOD


def _create_and_insert(k: int, paths: list, barrier, errors) -> None:
    for path in paths:
        barrier.wait()  # every process opens the same fresh path at the same moment
        try:
            with MeasurementCache(path) as cache:
                _put(cache, k)
        except Exception as exc:  # noqa: BLE001 -- reported to the test
            errors.put(f"{path.name}: {type(exc).__name__}: {exc}")


def test_many_processes_creating_one_new_cache_all_succeed(tmp_path):
    # before: 31 of 800 such openings failed ("another application", "database is locked")
    processes, rounds = 12, 40
    paths = [tmp_path / f"cache{r}.sqlite" for r in range(rounds)]
    paths[0].write_bytes(b"")  # a 0-byte file is new, not foreign
    ctx = multiprocessing.get_context("fork" if hasattr(os, "fork") else "spawn")
    barrier, errors = ctx.Barrier(processes), ctx.Queue()
    procs = [ctx.Process(target=_create_and_insert, args=(k, paths, barrier, errors)) for k in range(processes)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0] * processes
    failures = []
    while not errors.empty():
        failures.append(errors.get())
    assert failures == []
    for path in paths:
        with MeasurementCache(path) as cache:
            assert len(cache) == processes
        assert sqlite3.connect(path).execute("PRAGMA integrity_check").fetchone()[0] == "ok"


@pytest.mark.parametrize("change", [dict(median_ms=math.nan), dict(floor_ms=0.0), dict(p10_ms=-1.0),
                                    dict(mean_ms=math.inf), dict(std_ms=-0.5), dict(repeats=0)])
def test_unusable_measurements_are_not_stored(tmp_path, change):
    with MeasurementCache(tmp_path / "m.sqlite") as cache:
        with pytest.raises(MeasurementCacheError, match=f"refusing to store .*{next(iter(change))}="):
            _put(cache, 0, dataclasses.replace(GOOD, **change))
        assert len(cache) == 0


def test_unusable_stored_rows_are_measured_again(tmp_path, nb201):
    """A bad row (an older archgen, a hand edit) is never returned as a latency:
    it counts as absent, with a warning, and is replaced by a new measurement."""
    path = tmp_path / "m.sqlite"
    archs = nb201.sample(3, seed=12)
    first = measure_archs(nb201, archs, FAST, cache=path, progress=False)
    db = sqlite3.connect(path)
    rows = db.execute("SELECT rowid, arch, measurement FROM measurements ORDER BY rowid").fetchall()
    assert len(rows) == 3  # three architectures, three rows
    tampered = {}
    for (rowid, arch, text), bad in zip(rows, ['{"median_ms": 1.0', "zero", "nan"]):
        record = json.loads(text)
        if bad == "zero":
            record["floor_ms"] = 0.0
        elif bad == "nan":
            record["median_ms"] = record["floor_ms"] = math.nan
        db.execute("UPDATE measurements SET measurement = ? WHERE rowid = ?",
                   (bad if bad.startswith("{") else json.dumps(record), rowid))
        tampered[arch] = bad
    db.commit()
    db.close()
    with pytest.warns(RuntimeWarning, match="ignoring the stored measurement") as caught:
        again = measure_archs(nb201, archs, FAST, cache=path, progress=False)
    assert len(caught) == 3 and not any(r.cached for r in again)
    assert all(math.isfinite(r.latency_ms) and r.latency_ms > 0 for r in again)
    third = measure_archs(nb201, archs, FAST, cache=path, progress=False)  # the rows were replaced
    assert all(r.cached for r in third) and [r.latency_ms for r in third] == [r.latency_ms for r in again]
    assert [r.arch for r in first] == archs == list(tampered)


@pytest.mark.parametrize("clock", [lambda: 5.0, lambda: math.nan])
def test_a_broken_timer_never_reaches_the_cache(tmp_path, nb201, monkeypatch, clock):
    path = tmp_path / "m.sqlite"
    monkeypatch.setattr(hardware, "time", types.SimpleNamespace(perf_counter=clock))  # every run "takes" 0 / NaN ms
    with pytest.raises(MeasurementError, match="came out unusable .*nothing was kept") as failed:
        measure_archs(nb201, nb201.sample(1, seed=1), FAST, cache=path, progress=False)
    assert isinstance(failed.value, RuntimeError)
    with MeasurementCache(path) as cache:
        assert len(cache) == 0
