"""The measurement service: many architectures, a persistent SQLite cache, the local device."""

import csv
import multiprocessing
import sqlite3

import numpy as np
import pytest

from archgen import ArchGen
from archgen.cli import main
from archgen.measurements import (
    MeasurementCache,
    MeasurementCacheError,
    RuntimeSettings,
    machine_fingerprint,
    measure_archs,
)

FAST = RuntimeSettings(warmup=1, repeats=3)


def test_measures_in_order_and_caches(nb201, tmp_path):
    archs = nb201.sample(3, seed=2)
    path = tmp_path / "m.sqlite"
    first = measure_archs(nb201, archs, FAST, cache=path, progress=False)
    assert [r.arch for r in first] == archs and not any(r.cached for r in first)
    assert all(r.latency_ms > 0 for r in first)
    again = measure_archs(nb201, [nb201.to_graph(a) for a in archs], FAST, cache=path, progress=False)
    assert all(r.cached for r in again)
    assert [r.latency_ms for r in again] == [r.latency_ms for r in first]
    # other settings are other keys
    other = measure_archs(nb201, archs[:1], RuntimeSettings(warmup=1, repeats=4), cache=path, progress=False)
    assert not other[0].cached
    with MeasurementCache(path) as cache:
        assert len(cache) == 4


def test_fingerprint_names_the_machine():
    fp = machine_fingerprint()
    assert fp["cores"] >= 1 and fp["cpu"] and fp["onnxruntime"]


def _writer(path, archs, seed):
    from archgen.spaces import get_space

    measure_archs(get_space("nb201"), archs, RuntimeSettings(warmup=0, repeats=1), cache=path, progress=False)


def test_concurrent_writers_lose_nothing(nb201, tmp_path):
    path = tmp_path / "shared.sqlite"
    MeasurementCache(path).close()
    archs = nb201.sample(8, seed=4)
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(path, archs[i::2], i)) for i in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert all(p.exitcode == 0 for p in procs)
    with MeasurementCache(path) as cache:
        assert len(cache) == 8
    assert sqlite3.connect(path).execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_interrupted_run_keeps_finished_measurements(nb201, tmp_path, monkeypatch):
    import archgen.measurements as measurements

    path = tmp_path / "m.sqlite"
    real, calls = measurements.measure_latencies, []

    def flaky(*args, **kwargs):
        if len(calls) == 1:
            raise KeyboardInterrupt
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(measurements, "MEASURE_CHUNK", 2)  # archs are timed two at a time, interleaved
    monkeypatch.setattr(measurements, "measure_latencies", flaky)
    archs = nb201.sample(4, seed=6)
    with pytest.raises(KeyboardInterrupt):  # during the second pair
        measure_archs(nb201, archs, FAST, cache=path, progress=False)
    from archgen.cache import scratch_folder

    assert list(scratch_folder().rglob("*.onnx")) == []  # the interrupted pair's exports went with it
    monkeypatch.setattr(measurements, "measure_latencies", real)
    again = measure_archs(nb201, archs, FAST, cache=path, progress=False)
    assert [r.cached for r in again] == [True, True, False, False]


def test_corrupt_and_foreign_cache_files_are_refused_untouched(tmp_path, nb201):
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"this is not a database at all" * 50)
    with pytest.raises(MeasurementCacheError, match="not a readable archgen measurement cache"):
        MeasurementCache(junk)
    assert junk.read_bytes() == b"this is not a database at all" * 50
    foreign = tmp_path / "foreign.sqlite"
    db = sqlite3.connect(foreign)
    db.execute("CREATE TABLE meta (key TEXT, value TEXT)")
    db.execute("INSERT INTO meta VALUES ('application', 'something-else')")
    db.commit()
    db.close()
    before = foreign.read_bytes()
    with pytest.raises(MeasurementCacheError, match="another application"):
        measure_archs(nb201, nb201.sample(1), FAST, cache=foreign, progress=False)
    assert foreign.read_bytes() == before
    with pytest.raises(MeasurementCacheError, match="is a folder"):
        MeasurementCache(tmp_path)


def test_bad_settings():
    with pytest.raises(ValueError, match="threads must be an int >= 1, got 0"):
        RuntimeSettings(threads=0).checked()
    with pytest.raises(ValueError, match="repeats must be an int >= 1"):
        RuntimeSettings(repeats=0).checked()


def test_local_device_then_generate(nb201, tmp_path):
    ag = ArchGen.pretrained("nb201")
    cal = ag.calibrate_local(k=4, settings=FAST, cache=tmp_path / "c.sqlite", progress=False)
    assert cal.k == 4 and "local" in ag.devices()
    cands = ag.generate("cifar10", "local", 1000.0, n=2, samples=50)
    assert len(cands) == 2 and cands[0].true_latency_ms is None
    with pytest.raises(ValueError, match="k must be an int >= 2"):
        ag.calibrate_local(k=1)


def test_cli_measure_many_with_csv(tmp_path, capsys, nb201):
    out = tmp_path / "m.csv"
    assert main(["measure", "--sample", "2", "--seed", "3", "--repeats", "2", "--warmup", "0", "--csv", str(out),
                 "--cache", str(tmp_path / "c.sqlite"), "--no-progress"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 and all("lowest round's p10" in x and "5 x 2 runs" in x for x in lines)
    rows = list(csv.DictReader(open(out)))
    assert [r["arch"] for r in rows] == nb201.sample(2, seed=3) and all(float(r["latency_ms"]) > 0 for r in rows)
    assert main(["measure", "--sample", "2", "--seed", "3", "--repeats", "2", "--warmup", "0",
                 "--cache", str(tmp_path / "c.sqlite"), "--no-progress"]) == 0
    assert capsys.readouterr().out.count("(cached)") == 2
    assert main(["measure"]) == 2
    assert "nothing to measure" in capsys.readouterr().err


def test_cli_generate_local_with_verify(tmp_path, capsys):
    code = main(["generate", "--task", "cifar10", "--device", "local", "--local-k", "3", "--max-latency-ms", "1000",
                 "-n", "2", "--samples", "30", "--verify", "--cache", str(tmp_path / "c.sqlite")])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "calibrated 'local'" in captured.err
    assert "measured here ms" in captured.out.splitlines()[0]
    measured = [float(line.split()[-2]) for line in captured.out.splitlines()[1:3]]
    assert all(np.isfinite(measured)) and all(m > 0 for m in measured)


def test_cli_generate_local_measures_while_generating(tmp_path, capsys):
    code = main(["generate", "--task", "cifar10", "--device", "local", "--local-k", "3", "--max-latency-ms", "1000",
                 "-n", "1", "--samples", "30", "--measurements", "2", "--cache", str(tmp_path / "c.sqlite")])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "measured here ms" in captured.out.splitlines()[0]
    assert float(captured.out.splitlines()[1].split()[-2]) > 0  # the top candidate was measured here
    assert main(["generate", "--task", "cifar10", "--device", "pixel3", "--max-latency-ms", "10",
                 "--measurements", "2"]) == 2
    assert "it needs --device local" in capsys.readouterr().err
