"""Measuring many architectures on this machine, with a persistent SQLite cache.

A measurement is keyed by the space, the architecture's canonical graph hash,
the input shape, the runtime settings and a fingerprint of the machine (CPU
model, cores, onnxruntime version), so a cached number is only reused where it
would be measured again the same way. Architectures are timed a few at a
time in interleaved rounds (:data:`MEASURE_CHUNK`), and each measurement is
committed on its own as soon as its group is done: a crash or Ctrl-C loses at
most the group in progress and never a finished measurement, SQLite's
journal keeps the file consistent, and WAL mode with a busy timeout lets
several processes write to one cache at once.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import sqlite3
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from .cache import measurement_cache_path
from .errors import ArchGenError
from .hardware import LatencyMeasurement, measure_latencies, to_onnx

APPLICATION = "archgen-measurements"
SCHEMA_VERSION = 1


class MeasurementCacheError(ArchGenError, ValueError):
    """A cache file that is not (or no longer) an archgen measurement cache."""


@dataclass(frozen=True)
class RuntimeSettings:
    """How a latency is measured: onnxruntime CPU threads, discarded warm-up runs,
    ``rounds`` interleaved rounds of ``repeats`` timed runs each (the lowest
    round's 10th percentile is reported; see :func:`~archgen.hardware.measure_latencies`),
    the batch size and classifier width."""

    threads: int = 1
    warmup: int = 10
    repeats: int = 10
    rounds: int = 5
    batch_size: int = 1
    num_classes: int = 10

    def checked(self) -> RuntimeSettings:
        for name, low in (("threads", 1), ("warmup", 0), ("repeats", 1), ("rounds", 1), ("batch_size", 1),
                          ("num_classes", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
        return self

    def key(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_fingerprint() -> dict:
    """What makes latencies of this machine comparable: CPU, cores, runtime version."""
    import onnxruntime

    return {"cpu": _cpu_model(), "cores": os.cpu_count(), "machine": platform.machine(),
            "system": platform.system(), "onnxruntime": onnxruntime.__version__}


def machine_id(fingerprint: dict | None = None) -> str:
    text = json.dumps(fingerprint or machine_fingerprint(), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS measurements (
    space TEXT NOT NULL, arch_hash TEXT NOT NULL, input_shape TEXT NOT NULL, settings TEXT NOT NULL,
    machine TEXT NOT NULL, arch TEXT NOT NULL, measurement TEXT NOT NULL, measured_at REAL NOT NULL,
    PRIMARY KEY (space, arch_hash, input_shape, settings, machine)
);
"""


class MeasurementCache:
    """A persistent store of latency measurements (one SQLite file)."""

    def __init__(self, path: str | os.PathLike | None = None):
        self.path = Path(path) if path is not None else measurement_cache_path()
        if self.path.is_dir():
            raise MeasurementCacheError(f"measurement cache {str(self.path)!r} is a folder, not a file")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fresh = not self.path.exists() or self.path.stat().st_size == 0
        try:
            self._db = sqlite3.connect(str(self.path), timeout=30.0)
            self._db.execute("PRAGMA busy_timeout = 30000")
            if fresh:
                with self._db:
                    self._db.executescript(_SCHEMA)
                    self._db.executemany("INSERT OR IGNORE INTO meta VALUES (?, ?)",
                                         [("application", APPLICATION), ("schema", str(SCHEMA_VERSION))])
            meta = dict(self._db.execute("SELECT key, value FROM meta").fetchall())
        except sqlite3.DatabaseError as exc:
            raise MeasurementCacheError(
                f"{self.path} is not a readable archgen measurement cache ({exc}); move it away or pass another "
                "cache path -- nothing in it was changed"
            ) from None
        if meta.get("application") != APPLICATION:
            self._db.close()
            raise MeasurementCacheError(f"{self.path} is an SQLite file of another application, not an archgen "
                                        "measurement cache; nothing in it was changed")
        if meta.get("schema") != str(SCHEMA_VERSION):
            self._db.close()
            raise MeasurementCacheError(f"{self.path} has cache schema {meta.get('schema')}, this archgen reads "
                                        f"schema {SCHEMA_VERSION}; use another cache path")
        self._db.execute("PRAGMA journal_mode = WAL")  # only once the file is known to be ours

    @staticmethod
    def _key(space: str, arch_hash: str, input_shape, settings: RuntimeSettings, machine: str) -> tuple:
        return space, arch_hash, json.dumps(list(input_shape)), settings.key(), machine

    def get(self, space: str, arch_hash: str, input_shape, settings: RuntimeSettings,
            machine: str) -> LatencyMeasurement | None:
        row = self._db.execute(
            "SELECT measurement FROM measurements WHERE space=? AND arch_hash=? AND input_shape=? AND settings=? "
            "AND machine=?", self._key(space, arch_hash, input_shape, settings, machine)).fetchone()
        return LatencyMeasurement(**json.loads(row[0])) if row else None

    def put(self, space: str, arch_hash: str, input_shape, settings: RuntimeSettings, machine: str, arch: str,
            measurement: LatencyMeasurement) -> None:
        """Store one measurement in its own transaction (durable once this returns)."""
        with self._db:
            self._db.execute("INSERT OR REPLACE INTO measurements VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                             (*self._key(space, arch_hash, input_shape, settings, machine), arch,
                              json.dumps(measurement.to_dict()), time.time()))

    def __len__(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM measurements").fetchone()[0]

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> MeasurementCache:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@dataclass(frozen=True)
class ArchMeasurement:
    """One architecture's measured latency; ``cached`` when it came from the cache."""

    arch: str
    measurement: LatencyMeasurement
    cached: bool

    @property
    def latency_ms(self) -> float:
        """The reported latency: the lowest round's 10th percentile."""
        m = self.measurement
        return m.floor_ms if m.floor_ms is not None else m.median_ms


#: architectures timed together in interleaved rounds (their ONNX sessions are open at once)
MEASURE_CHUNK = 16


def _measure_chunk(job: tuple) -> list[tuple[LatencyMeasurement, str]]:
    """Build, export and time a few architectures here, in interleaved rounds
    (also the body of a Ray task, with one architecture)."""
    from .spaces import get_space

    space_name, archs, settings = job
    space = get_space(space_name)
    shapes = [(settings.batch_size, *space.input_shape_of(a)) for a in archs]
    with tempfile.TemporaryDirectory() as tmp:
        paths = [to_onnx(space.to_module(a, num_classes=settings.num_classes), Path(tmp) / f"model{k}.onnx", shape)
                 for k, (a, shape) in enumerate(zip(archs, shapes))]
        ms = measure_latencies(paths, shapes, warmup=settings.warmup, repeats=settings.repeats,
                               rounds=settings.rounds, threads=settings.threads)
    where = machine_id()
    return [(m, where) for m in ms]


def _measure_one(job: tuple) -> tuple[LatencyMeasurement, str]:
    """One architecture (the body of a Ray task)."""
    space_name, arch, settings = job
    return _measure_chunk((space_name, [arch], settings))[0]


def measure_archs(
    space,
    archs: Sequence,
    settings: RuntimeSettings = RuntimeSettings(),
    *,
    cache: MeasurementCache | str | os.PathLike | None | bool = None,
    progress: bool = True,
    ray: bool = False,
    ray_address: str | None = None,
    workers: int = 2,
) -> list[ArchMeasurement]:
    """Measure the onnxruntime latency of each architecture on this machine.

    ``cache``: a :class:`MeasurementCache`, a path, None for the default cache, or
    False for none. Cached measurements of the same architecture, input shape,
    settings and machine are reused. With ``ray=True`` the missing ones are
    measured as Ray tasks (on ``ray_address``, or a local cluster of ``workers``
    CPUs; see :mod:`archgen.distributed`), each stored under the fingerprint of
    the machine that measured it. Results are in the order of ``archs``.
    """
    from tqdm.auto import tqdm

    from .spaces import get_space

    space = get_space(space)
    settings = settings.checked()
    names = [space.coerce(a) for a in archs]
    store = None if cache is False else cache if isinstance(cache, MeasurementCache) else MeasurementCache(cache)
    machine = machine_id()
    shapes = [(settings.batch_size, *space.input_shape_of(a)) for a in names]
    found: dict[int, ArchMeasurement] = {}
    try:
        hashes = [space.to_graph(a).canonical_hash() for a in names]
        todo = []
        for i, (arch, arch_hash) in enumerate(zip(names, hashes)):
            hit = store.get(space.name, arch_hash, shapes[i], settings, machine) if store is not None else None
            if hit is not None:
                found[i] = ArchMeasurement(arch, hit, True)
            else:
                todo.append(i)

        def keep(i: int, result: tuple[LatencyMeasurement, str]) -> None:
            m, where = result
            if store is not None:  # committed at once: an interruption loses nothing finished
                store.put(space.name, hashes[i], shapes[i], settings, where, names[i], m)
            found[i] = ArchMeasurement(names[i], m, False)

        if ray and todo:
            from .distributed import run_on_ray

            results = run_on_ray(_measure_one, [(space.name, names[i], settings) for i in todo], address=ray_address,
                                 workers=workers, progress=progress, description="measuring")
            for i, result in zip(todo, results):
                keep(i, result)
        else:
            with tqdm(total=len(todo), desc=f"measuring on {platform.node() or 'this machine'}", unit="arch",
                      disable=not progress) as bar:
                for start in range(0, len(todo), MEASURE_CHUNK):
                    chunk = todo[start:start + MEASURE_CHUNK]
                    for i, result in zip(chunk, _measure_chunk((space.name, [names[i] for i in chunk], settings))):
                        keep(i, result)
                    bar.update(len(chunk))
    finally:
        if store is not None and not isinstance(cache, MeasurementCache):
            store.close()
    return [found[i] for i in range(len(names))]
