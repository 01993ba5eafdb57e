"""Benchmark tables (measured accuracy and latency), read in place from a data folder.

The folder is the ``root=`` argument, else the ``ARCHGEN_DATA`` environment
variable, else the copy packaged with archgen (``archgen/benchmarks/``, every
file gzip'd byte for byte). It holds one sub-folder per table (``nasbench201/``,
``fbnet/``, ``ofa_mbv3/``, ``accel_nasbench/``, ...) as described in its README;
each file may be plain (``latency_ms.csv``) or gzip'd (``latency_ms.csv.gz``).
Nothing is downloaded and nothing is copied. An empty CSV cell (a ``null`` or
absent key in a JSONL record) is NaN: not measured, never zero.

Parsing a table's files takes about a second, so the parsed arrays are kept in
a processed cache on this machine (as torch_geometric keeps ``processed/``
files): one ``.npz`` per table under ``tables/`` beside the measurement cache
(``$ARCHGEN_CACHE``, default ``~/.cache/archgen/``), keyed by the files' paths,
sizes and modification times and by the table's layout. A stale, unreadable or
unwritable cache is never an error: the files are the truth and are parsed again.
"""

from __future__ import annotations

import csv
import functools
import gzip
import hashlib
import json
import math
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import DataError, UnknownNameError

ENV_VAR = "ARCHGEN_DATA"

#: how a metric file's values become the table's: as written, or images per second
#: turned into milliseconds per image (1000 / throughput)
CONVERSIONS = ("none", "throughput")

#: the meaning of a column converted from throughput (``{column}``: its name in the file)
THROUGHPUT_NOTE = ("milliseconds per image = 1000 / throughput (images/s) measured on {column} at the "
                   "benchmark's batch size; not the latency of one image at batch 1")


@dataclass(frozen=True)
class MetricFile:
    """One file of metric columns in a table's folder.

    ``kind``: ``"accuracy"`` (its columns are tasks) or ``"latency"`` (devices, ms).
    ``rows``: ``"index"``, a CSV whose ``index`` column lists the architecture
    file's indices in the same order, every other column but ``arch`` a metric;
    or ``"records"``, a JSONL whose records each carry an architecture (read by
    the space's ``from_record`` without the metric keys) and the metrics named in
    ``rename``: architectures not in the table yet are appended to it (their other
    metrics NaN), and the records of one architecture are averaged.
    ``columns``: the metric columns of an ``"index"`` file (default: every column but
    ``index`` and ``arch``); other columns, e.g. another notation of the architecture, are
    not read, and one file may be listed once per group of columns with one ``note``.
    ``rename``: file column -> table name (columns not listed keep their name);
    ``suffix`` is appended to every name. ``convert``: one of :data:`CONVERSIONS`.
    ``note``: a one-line meaning of each column of this file, formatted with
    ``{column}`` (its name in the file), ``{name}`` (in the table), ``{measured}``
    (rows with a value), ``{records}`` and ``{merged}`` (records averaged into
    another of the same architecture); a throughput column defaults to
    :data:`THROUGHPUT_NOTE`.
    """

    file: str
    kind: str
    rows: str = "index"
    rename: Mapping[str, str] = field(default_factory=dict)
    suffix: str = ""
    convert: str = "none"
    note: str = ""
    columns: tuple[str, ...] = ()

    def __post_init__(self):
        if self.kind not in ("accuracy", "latency") or self.rows not in ("index", "records") \
                or self.convert not in CONVERSIONS or (self.rows == "records" and not self.rename) \
                or not isinstance(self.columns, tuple) or (self.columns and self.rows != "index"):
            raise ValueError(f"malformed metric file layout {self!r}")

    def name_of(self, column: str) -> str:
        return self.rename.get(column, column) + self.suffix

    def note_for(self, **keys) -> str:
        template = self.note or (THROUGHPUT_NOTE if self.convert == "throughput" else "")
        return template.format(**keys) if template else ""


@dataclass(frozen=True)
class TableLayout:
    """Where a table's files are: ``folder`` under the data folder, the
    architecture file (``index,arch,...`` or ``index,layer0,...`` CSV, or a JSONL of
    records with an ``index``) and the metric files."""

    folder: str
    archs: str
    metrics: tuple[MetricFile, ...]

    @property
    def files(self) -> list[str]:
        """Every file the table needs (sorted; each may also be there as ``name.gz``)."""
        return sorted({self.archs, *(m.file for m in self.metrics)})


#: per space, the layout of its table
LAYOUT: dict[str, TableLayout] = {
    "nb201": TableLayout("nasbench201", "accuracy.csv", (
        MetricFile("accuracy.csv", "accuracy"),
        MetricFile("latency_ms.csv", "latency"),
    )),
    "fbnet": TableLayout("fbnet", "archs.csv", (MetricFile("latency_ms.csv", "latency"),)),
    "mbv3": TableLayout("ofa_mbv3", "archs.jsonl", (
        MetricFile("latency_ms.csv", "latency"),
        MetricFile("imagenet_accuracy.jsonl", "accuracy", rows="records", rename={"top1": "imagenet"},
                   note="ImageNet top-1 (%) with the once-for-all supernet's inherited weights (no retraining), "
                        "resolution 224 only, from evolutionary searches (leaning toward good subnets); "
                        "{measured} rows, {merged} duplicate records averaged"),
    )),
    "anb": TableLayout("accel_nasbench", "archs.jsonl", (
        MetricFile("accuracy.csv", "accuracy", rename={"imagenet_top1": "imagenet"},
                   note="ImageNet-2012 validation {column} (%) after Accel-NASBench's reduced training "
                        "proxy, one seed"),
        MetricFile("latency_ms.csv", "latency",
                   note="milliseconds for one image at batch 1 on {column} (Xilinx ZCU102 FPGA)"),
        MetricFile("throughput.csv", "latency", suffix="_per_image", convert="throughput"),
    )),
    # one file, its metric columns grouped by unit (its `code` column is the arch in the benchmark's notation)
    "transnas_micro": TableLayout("transnas101_micro", "tasks.csv", (
        MetricFile("tasks.csv", "accuracy", columns=("class_scene", "jigsaw"),
                   note="Taskonomy {column}: top-1 accuracy (%) of TransNAS-Bench-101's encoder 64-41414 with "
                        "this cell and the task's head"),
        MetricFile("tasks.csv", "accuracy", columns=("autoencoder", "normal"),
                   note="Taskonomy {column}: SSIM (0-1, higher is better) of TransNAS-Bench-101's encoder "
                        "64-41414 with this cell and the task's decoder; not a percentage"),
        MetricFile("tasks.csv", "accuracy", columns=("room_layout",),
                   note="Taskonomy {column}: negative L2 loss (below 0, higher is better) of TransNAS-Bench-101's "
                        "encoder 64-41414 with this cell; not a percentage"),
        MetricFile("tasks.csv", "accuracy", columns=("segmentsemantic",),
                   note="Taskonomy {column}: semantic segmentation score (0-100, higher is better) of "
                        "TransNAS-Bench-101's encoder 64-41414 with this cell, as exported by NASLib"),
    )),
}


@dataclass(frozen=True)
class BenchmarkTable:
    """One space's measured table. Row ``i`` of every array is architecture ``archs[i]``.

    ``accuracies`` maps task -> accuracy (%, unless its task note says another unit);
    ``latencies`` maps device -> ms. A NaN was not measured (:meth:`accuracy_rows`,
    :meth:`latency_rows` select the measured rows). ``device_notes`` / ``task_notes``
    hold a one-line meaning of a column that is not what its name suggests (e.g.
    converted from throughput, or a task scored in SSIM).
    """

    space: str
    root: Path
    archs: tuple[str, ...]
    accuracies: dict[str, np.ndarray] = field(repr=False)
    latencies: dict[str, np.ndarray] = field(repr=False)
    device_notes: dict[str, str] = field(default_factory=dict, repr=False)
    task_notes: dict[str, str] = field(default_factory=dict, repr=False)

    @property
    def tasks(self) -> list[str]:
        return sorted(self.accuracies)

    @property
    def devices(self) -> list[str]:
        return sorted(self.latencies)

    def __len__(self) -> int:
        return len(self.archs)

    def accuracy(self, task: str) -> np.ndarray:
        """The full column of ``task`` (NaN where not measured)."""
        if task not in self.accuracies:
            raise UnknownNameError(f"task of the {self.space} table", task, self.accuracies)
        return self.accuracies[task]

    def latency(self, device: str) -> np.ndarray:
        """The full column of ``device`` in ms (NaN where not measured)."""
        if device not in self.latencies:
            raise UnknownNameError(f"device of the {self.space} table", device, self.latencies)
        return self.latencies[device]

    def accuracy_rows(self, task: str) -> np.ndarray:
        """Indices of the rows where ``task`` was measured (finite), ascending."""
        return np.flatnonzero(np.isfinite(self.accuracy(task)))

    def latency_rows(self, device: str) -> np.ndarray:
        """Indices of the rows where ``device`` was measured (finite), ascending."""
        return np.flatnonzero(np.isfinite(self.latency(device)))

    def latency_matrix(self, devices: list[str] | None = None) -> np.ndarray:
        """``[num_archs, num_devices]`` latencies (ms) for ``devices`` (default: all, sorted); NaN = not measured."""
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


def packaged_root() -> Path:
    """The benchmark folder packaged with archgen (``archgen/benchmarks``)."""
    from importlib.resources import files

    return Path(str(files("archgen").joinpath("benchmarks")))


def data_root(root: str | os.PathLike | None = None) -> Path:
    """The benchmark folder: ``root`` if given, else ``$ARCHGEN_DATA``, else the packaged copy."""
    source = "root="
    if root is None:
        root, source = os.environ.get(ENV_VAR), ENV_VAR
    if not root:
        path = packaged_root()
        if not path.is_dir():
            raise DataError(
                f"no benchmark data folder: the packaged copy {str(path)!r} is missing (a broken install?); "
                f"pass root=... or set {ENV_VAR} to a folder holding "
                f"{', '.join(sorted(t.folder + '/' for t in LAYOUT.values()))}"
            )
        return path
    path = Path(root).expanduser()
    if not path.is_dir():
        raise DataError(f"benchmark data folder {str(path)!r} does not exist (from {source}; "
                        f"unset {ENV_VAR} and pass no root= to use the packaged copy)")
    return path


def find_file(folder: str | os.PathLike, name: str) -> Path | None:
    """``folder/name`` if it is a file, else ``folder/name.gz``, else None."""
    for candidate in (Path(folder) / name, Path(folder) / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def open_text(path: str | os.PathLike):
    """A text file object of ``path``, decompressed if it ends in ``.gz`` (newlines untranslated, for csv)."""
    path = Path(path)
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8", newline="")
    return open(path, encoding="utf-8", newline="")


def load_table(space: str = "nb201", root: str | os.PathLike | None = None) -> BenchmarkTable:
    """Load (and memoise) the measured table of ``space`` from the data folder (:func:`data_root`)."""
    if space not in LAYOUT:
        raise UnknownNameError("benchmark space", space, LAYOUT)
    return _load_table(space, data_root(root).resolve())


#: bumped whenever what a processed table holds changes
PROCESSED_VERSION = 2


def processed_folder() -> Path:
    """Where parsed tables are kept: ``tables/`` beside the measurement cache."""
    from .cache import cache_folder

    return cache_folder() / "tables"


def _processed_path(space: str, files: list[Path]) -> Path:
    stamp = [(str(f), f.stat().st_size, f.stat().st_mtime_ns) for f in files]
    key = hashlib.sha256(json.dumps([PROCESSED_VERSION, space, repr(LAYOUT[space]), stamp]).encode()).hexdigest()[:20]
    return processed_folder() / f"{space}-{key}.npz"


_PREFIXES = {"acc:": "accuracies", "lat:": "latencies", "dnote:": "device_notes", "tnote:": "task_notes"}


def _read_processed(path: Path, space: str, root: Path) -> BenchmarkTable | None:
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        archs = tuple(arrays.pop("archs").tolist())
        parts = {attr: {} for attr in _PREFIXES.values()}
        for key, value in arrays.items():
            prefix = key[:key.index(":") + 1]
            parts[_PREFIXES[prefix]][key[len(prefix):]] = value if prefix in ("acc:", "lat:") else str(value)
        columns = (*parts["accuracies"].values(), *parts["latencies"].values())
        if not columns or any(v.shape != (len(archs),) or v.dtype != np.float64 for v in columns):
            return None
    except Exception:  # missing, truncated or foreign: parse the files again
        return None
    return BenchmarkTable(space, root, archs, **parts)


def _write_processed(path: Path, table: BenchmarkTable) -> None:
    """Atomically (temporary file, then rename); a folder we cannot write is no error."""
    arrays = {"archs": np.array(table.archs)}
    for prefix, attr in _PREFIXES.items():
        arrays.update({f"{prefix}{k}": np.asarray(v) for k, v in getattr(table, attr).items()})
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
    folder = root / layout.folder
    expected = layout.files
    found = {name: find_file(folder, name) for name in expected}
    missing = [name for name, path in found.items() if path is None]
    if missing:
        raise DataError(
            f"benchmark folder {str(folder)!r} lacks {', '.join(missing)}; expected files: {', '.join(expected)} "
            f"(each plain or gzip'd as name.gz). Point {ENV_VAR} or root= at a folder holding {layout.folder}/ "
            f"with them, or unset {ENV_VAR} to use the packaged copy"
        )
    processed = _processed_path(space, [found[name] for name in expected])
    table = _read_processed(processed, space, root)
    if table is None:
        table = _parse_table(space, root, found)
        _write_processed(processed, table)
    return table


def _parse_table(space: str, root: Path, found: dict[str, Path]) -> BenchmarkTable:
    layout = LAYOUT[space]
    arch_path = found[layout.archs]
    index, archs, arch_csv = _read_archs(space, arch_path, layout.archs)
    archs = list(archs)
    columns: dict[str, dict[str, np.ndarray]] = {"accuracy": {}, "latency": {}}
    notes: dict[str, dict[str, str]] = {"accuracy": {}, "latency": {}}
    source: dict[str, str] = {}
    # index-keyed files first (their rows are the architecture file's), then records that may add rows
    for metric in sorted(layout.metrics, key=lambda m: m.rows != "index"):
        path = found[metric.file]
        if metric.rows == "index":
            header, rows = arch_csv if metric.file == layout.archs and arch_csv is not None else _read_csv(path)
            if header[:1] != ["index"] or len([h for h in header if h not in ("index", "arch")]) < 1:
                what = "task" if metric.kind == "accuracy" else "device"
                raise DataError(f"{path}: expected header 'index,<{what}>...', got {header}")
            absent = [c for c in metric.columns if c not in header]
            if absent:
                raise DataError(f"{path} lacks the column(s) {', '.join(absent)}; its header: {header}")
            if metric.file != layout.archs and _column_ints(rows, 0, path) != index:
                raise DataError(f"{path}: its index column does not match {arch_path.name}")
            cols = [c for c, h in enumerate(header)
                    if (h in metric.columns if metric.columns else h not in ("index", "arch"))]
            values = _numeric_columns(header, rows, cols, path)
            records = merged = None
        else:
            values, records, merged = _record_columns(space, path, metric, archs)
        for column, v in values.items():
            if metric.convert == "throughput":
                if (v <= 0).any():
                    row = int(np.argmax(v <= 0)) + 2
                    raise DataError(f"{path}: column {column!r} has a throughput <= 0 in row {row}")
                v = 1000.0 / v
            name = metric.name_of(column)
            if name in source:
                raise DataError(f"{metric.kind} column {name!r} comes from both {source[name]} and {path}")
            source[name] = str(path)
            columns[metric.kind][name] = v
            note = metric.note_for(column=column, name=name, measured=int(np.isfinite(v).sum()),
                                   records=records, merged=merged)
            if note:
                notes[metric.kind][name] = note
    n = len(archs)
    pad = {kind: {k: np.concatenate([v, np.full(n - len(v), np.nan)]) for k, v in cols.items()}
           for kind, cols in columns.items()}
    return BenchmarkTable(space, root, tuple(archs), pad["accuracy"], pad["latency"],
                          notes["latency"], notes["accuracy"])


def _read_jsonl(path: Path) -> list[tuple[int, dict]]:
    """``(line number, record)`` of every non-blank line."""
    records = []
    with open_text(path) as f:
        for n, line in enumerate(f, start=1):
            if line.strip():
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise DataError(f"{path}: line {n} is not JSON ({exc})") from None
                if not isinstance(record, dict):
                    raise DataError(f"{path}: line {n} is not a JSON object")
                records.append((n, record))
    if not records:
        raise DataError(f"{path} has no records")
    return records


def _arch_of(space_, space: str, record, path: Path, where: str) -> str:
    from .errors import InvalidArchError

    try:
        return space_.from_record(record)
    except InvalidArchError as exc:
        raise DataError(f"{path}: {where} is not a {space} architecture: {exc}") from None


def _read_archs(space: str, path: Path, name: str) -> tuple[list[int], tuple[str, ...], tuple | None]:
    """Row indices and canonical arch strings of a table's architecture file
    (``name`` without ``.gz``): an ``index,arch,...`` CSV (taken as written), an
    ``index,layer0,...`` CSV or a JSONL of records (turned into arch strings by the
    space's ``from_record`` without their ``index``); and the CSV's ``(header,
    rows)`` (None for JSONL), for a metric file that is the same file."""
    from .spaces import get_space

    csv_file = None
    if name.endswith(".jsonl"):
        lines = _read_jsonl(path)
        records = [r for _, r in lines]
        try:
            index = [int(r.pop("index")) for r in records]
        except (KeyError, TypeError, ValueError):
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
    archs = tuple(_arch_of(space_, space, record, path, f"row with index {i}") for i, record in zip(index, records))
    return index, archs, csv_file


def _record_columns(space: str, path: Path, metric: MetricFile, archs: list[str]):
    """The columns of a records file over ``archs``, which it extends by the
    architectures it adds; several records of one architecture are averaged.
    Returns ``(columns, number of records, number merged into an earlier one)``."""
    from .spaces import get_space

    space_ = get_space(space)
    keys = list(metric.rename)
    row_of: dict[str, int] = {}
    for i, a in enumerate(archs):
        row_of.setdefault(a, i)
    lines = _read_jsonl(path)
    sums: dict[int, np.ndarray] = {}
    counts: dict[int, np.ndarray] = {}
    seen: set[int] = set()
    merged = 0
    for n, record in lines:
        values = np.full(len(keys), np.nan)
        for j, key in enumerate(keys):
            value = record.pop(key, None)
            if value is None:
                continue  # not measured
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise DataError(f"{path}: line {n}: {key!r} is {value!r}, not a finite number "
                                "(leave it out or null for 'not measured')")
            values[j] = value
        arch = _arch_of(space_, space, record, path, f"line {n}")
        row = row_of.get(arch)
        if row is None:
            row = row_of[arch] = len(archs)
            archs.append(arch)
        if row in seen:
            merged += 1
        seen.add(row)
        known = np.isfinite(values)
        sums.setdefault(row, np.zeros(len(keys)))[known] += values[known]
        counts.setdefault(row, np.zeros(len(keys)))[known] += 1
    columns = {}
    for j, key in enumerate(keys):
        column = np.full(len(archs), np.nan)
        for row, total in sums.items():
            if counts[row][j]:
                column[row] = total[j] / counts[row][j]
        if not np.isfinite(column).any():
            raise DataError(f"{path}: no record has a value for {key!r} (the column is entirely empty)")
        columns[key] = column
    return columns, len(lines), merged


def _read_csv(path: Path) -> tuple[list[str], list[list[str]]]:
    with open_text(path) as f:
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


def _numeric_columns(header: list[str], rows: list[list[str]], cols: list[int], path: Path) -> dict[str, np.ndarray]:
    """Columns ``cols`` as floats: an empty cell is NaN (not measured); any other
    cell that is not a finite number, or a column with no value, is an error."""
    cells = np.array([[r[c] for c in cols] for r in rows], dtype=str)
    empty = cells == ""
    try:
        matrix = np.where(empty, "nan", cells).astype(np.float64)  # one conversion, not one per cell
    except ValueError:
        matrix = None  # find the offending cell below
    out = {}
    for j, col in enumerate(cols):
        name = header[col]
        if empty[:, j].all():
            raise DataError(f"{path}: column {name!r} is entirely empty (no measured value)")
        if matrix is not None:
            values = matrix[:, j]
        else:
            values = np.full(len(rows), np.nan)
            for i, text in enumerate(cells[:, j]):
                if text:
                    try:
                        values[i] = float(text)
                    except ValueError:
                        raise DataError(f"{path}: column {name!r} has a non-numeric value {str(text)!r} "
                                        f"in row {i + 2}") from None
        bad = np.flatnonzero(~np.isfinite(values) & ~empty[:, j])
        if len(bad):
            raise DataError(f"{path}: column {name!r} has a non-finite value {str(cells[bad[0], j])!r} in row "
                            f"{bad[0] + 2} (leave a cell empty for 'not measured')")
        out[name] = values
    return out
