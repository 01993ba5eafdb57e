"""Benchmark tables (measured accuracy and latency), read in place from a data folder.

The folder is given as an argument or by the ``ARCHGEN_DATA`` environment
variable; it holds one sub-folder per space (``nasbench201/``, ``fbnet/``,
``ofa_mbv3/``) as described in its README. Nothing is downloaded. Parsing a
table's CSV files takes about 0.6 s, so the parsed arrays are kept in a
processed cache on this machine (as torch_geometric keeps ``processed/``
files): one ``.npz`` per table under ``tables/`` beside the measurement cache
(``$ARCHGEN_CACHE``, default ``~/.cache/archgen/``), keyed by the files' paths,
sizes and modification times. A stale, unreadable or unwritable cache is
never an error: the CSV files are the truth and are parsed again.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import DataError, UnknownNameError

ENV_VAR = "ARCHGEN_DATA"

#: per space: sub-folder, file with the architectures, files with metrics (no
#: accuracy file: the table has latencies only)
LAYOUT: dict[str, dict[str, str | None]] = {
    "nb201": {"folder": "nasbench201", "archs": "accuracy.csv", "accuracy": "accuracy.csv", "latency": "latency_ms.csv"},
    "fbnet": {"folder": "fbnet", "archs": "archs.csv", "accuracy": None, "latency": "latency_ms.csv"},
    "mbv3": {"folder": "ofa_mbv3", "archs": "archs.jsonl", "accuracy": None, "latency": "latency_ms.csv"},
}


@dataclass(frozen=True)
class BenchmarkTable:
    """One space's measured table. Row ``i`` of every array is architecture ``archs[i]``.

    ``accuracies`` maps task -> test accuracy (%); ``latencies`` maps device -> ms.
    """

    space: str
    root: Path
    archs: tuple[str, ...]
    accuracies: dict[str, np.ndarray] = field(repr=False)
    latencies: dict[str, np.ndarray] = field(repr=False)

    @property
    def tasks(self) -> list[str]:
        return sorted(self.accuracies)

    @property
    def devices(self) -> list[str]:
        return sorted(self.latencies)

    def __len__(self) -> int:
        return len(self.archs)

    def accuracy(self, task: str) -> np.ndarray:
        if task not in self.accuracies:
            raise UnknownNameError(f"task of the {self.space} table", task, self.accuracies)
        return self.accuracies[task]

    def latency(self, device: str) -> np.ndarray:
        if device not in self.latencies:
            raise UnknownNameError(f"device of the {self.space} table", device, self.latencies)
        return self.latencies[device]

    def latency_matrix(self, devices: list[str] | None = None) -> np.ndarray:
        """``[num_archs, num_devices]`` latencies (ms) for ``devices`` (default: all, sorted)."""
        return np.stack([self.latency(d) for d in (devices or self.devices)], axis=1)

    @functools.cached_property
    def row_of(self) -> dict[str, int]:
        """Row index of each arch string."""
        return {a: i for i, a in enumerate(self.archs)}

    def rows(self, archs: list[str]) -> np.ndarray:
        """Row indices of ``archs`` (canonical strings); a clear error for unknown ones."""
        try:
            return np.array([self.row_of[a] for a in archs], dtype=np.int64)
        except KeyError as exc:
            raise DataError(f"architecture {exc.args[0]!r} is not in the {self.space} table at {self.root}") from None


def data_root(root: str | os.PathLike | None = None) -> Path:
    """The benchmark folder: ``root`` if given, else ``$ARCHGEN_DATA``."""
    if root is None:
        root = os.environ.get(ENV_VAR)
        if not root:
            raise DataError(
                f"no benchmark data folder given: pass root=... or set {ENV_VAR} to the folder "
                "holding nasbench201/, fbnet/, ofa_mbv3/ (e.g. export ARCHGEN_DATA=../shared/benchmarks)"
            )
    path = Path(root).expanduser()
    if not path.is_dir():
        raise DataError(f"benchmark data folder {str(path)!r} does not exist (from {ENV_VAR} or root=)")
    return path


def load_table(space: str = "nb201", root: str | os.PathLike | None = None) -> BenchmarkTable:
    """Load (and memoise) the measured table of ``space`` from the data folder."""
    if space not in LAYOUT:
        raise UnknownNameError("benchmark space", space, LAYOUT)
    return _load_table(space, data_root(root).resolve())


#: bumped whenever what a processed table holds changes
PROCESSED_VERSION = 1


def processed_folder() -> Path:
    """Where parsed tables are kept: ``tables/`` beside the measurement cache."""
    from .cache import cache_folder

    return cache_folder() / "tables"


def _processed_path(space: str, files: list[Path]) -> Path:
    stamp = [(str(f), f.stat().st_size, f.stat().st_mtime_ns) for f in files]
    key = hashlib.sha256(json.dumps([PROCESSED_VERSION, space, stamp]).encode()).hexdigest()[:20]
    return processed_folder() / f"{space}-{key}.npz"


def _read_processed(path: Path, space: str, root: Path) -> BenchmarkTable | None:
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        archs = tuple(arrays.pop("archs").tolist())
        acc = {k[4:]: v for k, v in arrays.items() if k.startswith("acc:")}
        lat = {k[4:]: v for k, v in arrays.items() if k.startswith("lat:")}
        if not lat or any(v.shape != (len(archs),) for v in (*acc.values(), *lat.values())):
            return None
    except Exception:  # missing, truncated or foreign: parse the CSV files again
        return None
    return BenchmarkTable(space, root, archs, acc, lat)


def _write_processed(path: Path, table: BenchmarkTable) -> None:
    """Atomically (temporary file, then rename); a folder we cannot write is no error."""
    arrays = {"archs": np.array(table.archs), **{f"acc:{k}": v for k, v in table.accuracies.items()},
              **{f"lat:{k}": v for k, v in table.latencies.items()}}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)
    except OSError:
        pass


@functools.lru_cache(maxsize=8)
def _load_table(space: str, root: Path) -> BenchmarkTable:
    layout = LAYOUT[space]
    folder = root / layout["folder"]
    expected = sorted({f for f in (layout["archs"], layout["accuracy"], layout["latency"]) if f})
    missing = [name for name in expected if not (folder / name).is_file()]
    if missing:
        raise DataError(
            f"benchmark folder {str(folder)!r} lacks {', '.join(missing)}; expected files: {', '.join(expected)}"
        )
    processed = _processed_path(space, [folder / name for name in expected])
    table = _read_processed(processed, space, root)
    if table is None:
        table = _parse_table(space, root, folder)
        _write_processed(processed, table)
    return table


def _parse_table(space: str, root: Path, folder: Path) -> BenchmarkTable:
    layout = LAYOUT[space]
    index, archs, arch_csv = _read_archs(space, folder / layout["archs"])
    accuracies = {}
    if layout["accuracy"]:
        same = layout["accuracy"] == layout["archs"] and arch_csv is not None
        header, rows = arch_csv if same else _read_csv(folder / layout["accuracy"])
        if header[:2] != ["index", "arch"] or len(header) < 3:
            raise DataError(f"{folder / layout['accuracy']}: expected header 'index,arch,<task>...', got {header}")
        if not same and _column_ints(rows, 0, folder / layout["accuracy"]) != index:
            raise DataError(f"{folder / layout['accuracy']}: its index column does not match {layout['archs']}")
        accuracies = _numeric_columns(header, rows, 2, folder / layout["accuracy"])
    lat_header, lat_rows = _read_csv(folder / layout["latency"])
    if lat_header[:1] != ["index"] or len(lat_header) < 2:
        raise DataError(f"{folder / layout['latency']}: expected header 'index,<device>...', got {lat_header}")
    if _column_ints(lat_rows, 0, folder / layout["latency"]) != index:
        raise DataError(f"{folder / layout['latency']}: its index column does not match {layout['archs']}")
    latencies = _numeric_columns(lat_header, lat_rows, 1, folder / layout["latency"])
    return BenchmarkTable(space, root, archs, accuracies, latencies)


def _read_archs(space: str, path: Path) -> tuple[list[int], tuple[str, ...], tuple | None]:
    """Row indices and canonical arch strings of a table's architecture file: an
    ``index,arch,...`` CSV (taken as written), an ``index,layer0,...`` CSV or a JSONL
    of records (turned into arch strings by the space's ``from_record``); and the
    CSV's ``(header, rows)`` (None for JSONL), for a metric file that is the same file."""
    from .errors import InvalidArchError
    from .spaces import get_space

    csv_file = None
    if path.suffix == ".jsonl":
        import json

        records = []
        with open(path) as f:
            for n, line in enumerate(f, start=1):
                if line.strip():
                    try:
                        records.append(json.loads(line))
                    except json.JSONDecodeError as exc:
                        raise DataError(f"{path}: line {n} is not JSON ({exc})") from None
        try:
            index = [int(r.pop("index")) for r in records]
        except (KeyError, TypeError, ValueError, AttributeError):
            raise DataError(f"{path}: every line needs an integer 'index'") from None
    else:
        header, rows = _read_csv(path)
        if header[:1] != ["index"] or len(header) < 2:
            raise DataError(f"{path}: expected header 'index,arch,...' or 'index,layer0,...', got {header}")
        index, csv_file = _column_ints(rows, 0, path), (header, rows)
        if header[1] == "arch":
            return index, tuple(r[1] for r in rows), csv_file
        records = [r[1:] for r in rows]
    space_ = get_space(space)
    archs = []
    for i, record in zip(index, records):
        try:
            archs.append(space_.from_record(record))
        except InvalidArchError as exc:
            raise DataError(f"{path}: row with index {i} is not a {space} architecture: {exc}") from None
    return index, tuple(archs), csv_file


def _read_csv(path: Path) -> tuple[list[str], list[list[str]]]:
    with open(path, newline="") as f:
        reader = csv.reader(f)
        try:
            header = next(reader)
        except StopIteration:
            raise DataError(f"{path} is empty") from None
        rows = [r for r in reader if r]
    if not rows:
        raise DataError(f"{path} has a header but no rows")
    bad = next((i for i, r in enumerate(rows) if len(r) != len(header)), None)
    if bad is not None:
        raise DataError(f"{path}: row {bad + 2} has {len(rows[bad])} fields, the header has {len(header)}")
    return header, rows


def _column_ints(rows: list[list[str]], col: int, path: Path) -> list[int]:
    try:
        return [int(r[col]) for r in rows]
    except ValueError as exc:
        raise DataError(f"{path}: non-integer index ({exc})") from None


def _numeric_columns(header: list[str], rows: list[list[str]], start: int, path: Path) -> dict[str, np.ndarray]:
    try:
        matrix = np.array([r[start:] for r in rows], dtype=np.float64)  # one conversion, not one per cell
    except ValueError:
        matrix = None  # find the offending column below
    out = {}
    for col in range(start, len(header)):
        try:
            values = matrix[:, col - start] if matrix is not None else np.array([float(r[col]) for r in rows])
        except ValueError as exc:
            raise DataError(f"{path}: column {header[col]!r} has a non-numeric value ({exc})") from None
        if not np.isfinite(values).all():
            raise DataError(f"{path}: column {header[col]!r} has non-finite values")
        out[header[col]] = values
    return out
