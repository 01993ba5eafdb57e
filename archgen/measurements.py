"""Measuring many architectures on this machine, with a persistent SQLite cache.

A measurement is keyed by the space, the architecture's canonical graph hash,
the input shape, the runtime settings and a fingerprint of the machine (CPU
model, cores, onnxruntime version), so a cached number is only reused where it
would be measured again the same way. Architectures are timed a few at a
time in interleaved rounds (:data:`MEASURE_CHUNK`), and each measurement is
committed on its own as soon as its group is done (on Ray: as its task's
result arrives): a crash or Ctrl-C loses at most the group in progress and
never a finished measurement, SQLite's journal keeps the file consistent, and
WAL mode with a busy timeout lets several processes write to one cache at
once. A file that is damaged or foreign is refused before anything touches
it, and a latency that is not a finite number > 0 is never stored nor reused.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import tempfile
import time
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from .cache import measurement_cache_path, scratch_folder
from .errors import CacheError
from .hardware import LatencyMeasurement, measure_latencies, to_onnx
from .sqlite_cache import BUSY_TIMEOUT_S, SQLiteCache  # noqa: F401 -- BUSY_TIMEOUT_S: re-exported, as before
from .validation import quote

APPLICATION = "archgen-measurements"
SCHEMA_VERSION = 1


class MeasurementCacheError(CacheError):
    """A cache file that is not (or no longer) an archgen measurement cache, or a
    measurement that must not be stored in one."""


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


_MEASUREMENTS_TABLE = """CREATE TABLE measurements (
    space TEXT NOT NULL, arch_hash TEXT NOT NULL, input_shape TEXT NOT NULL, settings TEXT NOT NULL,
    machine TEXT NOT NULL, arch TEXT NOT NULL, measurement TEXT NOT NULL, measured_at REAL NOT NULL,
    PRIMARY KEY (space, arch_hash, input_shape, settings, machine)
)"""


class MeasurementCache(SQLiteCache):
    """A persistent store of latency measurements (one SQLite file).

    Opening checks the file before anything is written to it: a file that is
    not SQLite, fails ``PRAGMA quick_check``, or belongs to another application
    or schema is refused untouched; only then is it switched to WAL mode, so
    several processes can write at once. A new cache's tables are made in one
    ``BEGIN IMMEDIATE`` transaction, so processes creating the same cache at once
    queue up and all find it complete (see :mod:`archgen.sqlite_cache`).
    """

    APPLICATION = APPLICATION
    SCHEMA_VERSION = SCHEMA_VERSION
    SCHEMA = (_MEASUREMENTS_TABLE,)
    TABLE = "measurements"
    KIND = "measurement cache"
    ERROR = MeasurementCacheError

    @classmethod
    def default_path(cls) -> Path:
        return measurement_cache_path()

    @staticmethod
    def _key(space: str, arch_hash: str, input_shape, settings: RuntimeSettings, machine: str) -> tuple:
        return space, arch_hash, json.dumps(list(input_shape)), settings.key(), machine

    def get(self, space: str, arch_hash: str, input_shape, settings: RuntimeSettings,
            machine: str) -> LatencyMeasurement | None:
        """The stored measurement, or None.

        A stored row that does not hold a usable measurement (unreadable, or a
        latency that is not finite and > 0: an older archgen, a hand edit, a
        damaged record) counts as absent, with a warning: the architecture is
        then measured again and the row replaced, so a bad number is never
        returned as a latency, and one bad row does not block the whole cache.
        """
        row = self._db.execute(
            "SELECT arch, measurement FROM measurements WHERE space=? AND arch_hash=? AND input_shape=? "
            "AND settings=? AND machine=?", self._key(space, arch_hash, input_shape, settings, machine)).fetchone()
        if row is None:
            return None
        try:
            found = LatencyMeasurement(**json.loads(row[1]))
            problems = found.problems()
        except (ValueError, TypeError) as exc:  # not JSON, not an object, other fields
            problems = [f"unreadable: {exc}"]
        if problems:
            warnings.warn(f"{self.path}: ignoring the stored measurement of {quote(row[0])} ({', '.join(problems)}); "
                          "it is measured again", RuntimeWarning, stacklevel=2)
            return None
        return found

    def put(self, space: str, arch_hash: str, input_shape, settings: RuntimeSettings, machine: str, arch: str,
            measurement: LatencyMeasurement) -> None:
        """Store one measurement in its own transaction (durable once this returns).
        A measurement with a latency that is not finite and > 0 is refused
        (:class:`MeasurementCacheError`): it would be reused as if it were real."""
        problems = measurement.problems()
        if problems:
            raise MeasurementCacheError(f"refusing to store a measurement of {quote(arch)} in {self.path}: "
                                        f"{', '.join(problems)} (latencies must be finite numbers > 0)")
        record = json.dumps(measurement.to_dict(), allow_nan=False)
        self._db.execute("INSERT OR REPLACE INTO measurements VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                         (*self._key(space, arch_hash, input_shape, settings, machine), arch, record, time.time()))

    def __enter__(self) -> MeasurementCache:
        return self


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
    # under the cache folder, not the system temp folder: see archgen.cache (kill -9 leaves nothing behind)
    with tempfile.TemporaryDirectory(dir=scratch_folder(), prefix="onnx-") as tmp:
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

    Every measurement is committed to the cache as soon as it is known (a group
    of :data:`MEASURE_CHUNK` serially, each task's result as it arrives on Ray),
    so Ctrl-C or a crash loses only what was still being timed. On Ctrl-C the
    ``KeyboardInterrupt`` is re-raised after the pending Ray tasks are cancelled
    and a local Ray cluster started here is shut down.
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

            run_on_ray(_measure_one, [(space.name, names[i], settings) for i in todo], address=ray_address,
                       workers=workers, progress=progress, description="measuring",
                       on_result=lambda k, result: keep(todo[k], result))
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
