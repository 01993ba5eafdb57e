"""Calibrations that outlive the call that made them.

:meth:`ArchGen.calibrate_device <archgen.api.ArchGen.calibrate_device>`,
``calibrate_task`` and ``calibrate_local`` store what they calibrated from, one JSON
file per (space, kind, name) under :func:`store_folder`::

    <cache folder>/calibrations/<space>/<kind>/<name>.json      kind: device or task

and a later :class:`~archgen.api.ArchGen` (or ``archgen`` command) calibrates them again
from it. A file holds the calibration's *inputs* (architecture strings and measured
values, their units), not its posterior: calibrating is deterministic and takes
milliseconds, and inputs stay meaningful to a reader. It also holds when it was made, by
which archgen, and the identity of the bundle it was made with
(:meth:`Bundle.fingerprint <archgen.bundle.Bundle.fingerprint>`); a device measured on this
machine (``calibrate_local``) holds the machine's id too
(:func:`~archgen.measurements.machine_id`). A stored calibration made with another bundle,
for another space or on another machine is not loaded: it is listed as refused, with the
reason, and naming it says why it is unknown.

Files are written atomically (a temporary file, then a rename); a damaged one is reported
with its path and never used. ``$ARCHGEN_CALIBRATIONS`` moves the store (the tests give
each test its own); by default it lives beside the measurement cache (``$ARCHGEN_CACHE``).
"""

from __future__ import annotations

import json
import math
import os
import re
import secrets
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from .errors import ArchGenError
from .validation import quote

#: moves the store; default ``<cache folder>/calibrations`` (see :func:`archgen.cache.cache_folder`)
ENV_VAR = "ARCHGEN_CALIBRATIONS"
#: the layout of a stored calibration file
FORMAT_VERSION = 1
#: what a calibration adds: a device (latency) or a task (accuracy)
KINDS = ("device", "task")
#: the units a stored calibration's values are in, by kind
UNITS = {"device": "ms", "task": "percent"}
#: longest name a stored calibration may have
MAX_NAME = 100
#: what a stored calibration's name may hold: letters, digits and ``_ . - + @ =``, starting
#: with a letter, digit or ``_`` (not ``.``, a hidden file, nor ``-``, a flag) and not
#: ending with ``.`` (Windows drops it)
_NAME = re.compile(r"\w(?:[\w.+@=-]*[\w+@=-])?")
#: the status of a stored calibration in use
LOADED = "loaded"


class CalibrationStoreError(ArchGenError, ValueError):
    """A name that cannot be stored, or a stored calibration file that cannot be used
    (damaged, or from a newer archgen); the message names the file."""


class CalibrationStoreWarning(UserWarning):
    """A calibration that could not be stored, or a stored one that could not be read:
    it works in this object, or is skipped, and the message says which and why."""


def store_folder() -> Path:
    """``$ARCHGEN_CALIBRATIONS`` if set, else ``<cache folder>/calibrations``."""
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR])
    from .cache import cache_folder

    return cache_folder() / "calibrations"


def check_name(name: object) -> str:
    """``name`` where it can name a stored calibration file, else a
    :class:`CalibrationStoreError` saying what is allowed."""
    if isinstance(name, str) and 0 < len(name) <= MAX_NAME and _NAME.fullmatch(name) and name.isprintable():
        return name
    why = ("it is not a string" if not isinstance(name, str) else "it is empty" if not name else
           f"it is longer than {MAX_NAME} characters" if len(name) > MAX_NAME else
           "it holds a path separator" if "/" in name or "\\" in name else
           "it holds characters other than letters, digits and _.-+@=" if re.search(r"[^\w.+@=-]", name) else
           "it starts with neither a letter, a digit nor _" if not re.match(r"\w", name) else "it ends with '.'")
    raise CalibrationStoreError(f"calibration name {quote(name, 80)} cannot be stored: {why}; use letters, digits "
                                f"and _.-+@= (at most {MAX_NAME}, starting with a letter, digit or _), or pass "
                                "persist=False to keep it in memory only")


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("archgen")
    except PackageNotFoundError:
        from . import __version__

        return __version__


def now() -> str:
    """The current UTC time as ISO 8601 to the second, as stored calibrations record it."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass(frozen=True)
class StoredCalibration:
    """One stored calibration: what it was calibrated from, and with what."""

    space: str
    kind: str  # "device" or "task"
    name: str
    archs: tuple[str, ...]
    values: tuple[float, ...]  # in ``units``
    units: str  # "ms" (device) or "percent" (task)
    bundle: str  # Bundle.fingerprint() of the bundle it was made with
    bundle_source: str  # where that bundle came from, for people: a path, or "embedded nb201"
    created: str  # ISO 8601, UTC
    archgen: str  # the archgen version that made it
    #: for a device measured here (calibrate_local): machine_id() and the runtime settings
    machine: str | None = None
    settings: dict | None = field(default=None, compare=False)
    #: how it predicts (``predictors.predictor.HEADS``); files made before heads existed are "linear"
    head: str = "linear"
    #: head "profile": the device's kernel profile (:meth:`archgen.profiles.KernelProfile.to_json`)
    profile: dict | None = field(default=None, compare=False)

    @property
    def k(self) -> int:
        return len(self.archs)

    def to_json(self) -> dict:
        return {"format": FORMAT_VERSION, **asdict(self), "archs": list(self.archs), "values": list(self.values)}

    @classmethod
    def from_json(cls, data: object, where: str, forget: str = "`archgen calibrations --forget NAME`"
                  ) -> StoredCalibration:
        """Checked field by field: a wrong one is a :class:`CalibrationStoreError` naming
        ``where`` and saying how to ``forget`` it."""
        def bad(why: str) -> CalibrationStoreError:
            return CalibrationStoreError(f"stored calibration {where} is damaged: {why}; forget it ({forget}) "
                                         "or delete the file")

        if not isinstance(data, dict):
            raise bad(f"it holds a JSON {type(data).__name__}, not an object")
        if data.get("format") != FORMAT_VERSION:
            if isinstance(data.get("format"), int) and data["format"] > FORMAT_VERSION:
                raise CalibrationStoreError(f"stored calibration {where} has format {data['format']}, made by a newer "
                                            f"archgen ({quote(data.get('archgen'), 40)}); this one reads format "
                                            f"{FORMAT_VERSION}: upgrade archgen, or forget it ({forget})")
            raise bad(f"format {quote(data.get('format'), 40)}, expected {FORMAT_VERSION}")
        text = ("space", "kind", "name", "units", "bundle", "bundle_source", "created", "archgen")
        for key in text:
            if not isinstance(data.get(key), str):
                raise bad(f"field {key} must be a string, got {quote(data.get(key), 60)}")
        if data["kind"] not in KINDS:
            raise bad(f"field kind must be device or task, got {quote(data['kind'], 40)}")
        archs, values = data.get("archs"), data.get("values")
        if not isinstance(archs, list) or not all(isinstance(a, str) for a in archs):
            raise bad("field archs must be a list of architecture strings")
        if (not isinstance(values, list) or not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                                   and math.isfinite(v) for v in values)):
            raise bad("field values must be a list of finite numbers")
        head = data.get("head", "linear")
        if head not in ("linear", "gp", "profile"):
            raise bad(f"field head must be linear, gp or profile, got {quote(head, 40)}")
        least = 0 if head == "profile" else 2  # a profile alone needs no whole-network measurement
        if len(archs) != len(values) or len(archs) < least:
            raise bad(f"{len(archs)} architectures and {len(values)} values (needs as many of each, at least {least})")
        if (head == "profile") != isinstance(data.get("profile"), dict):
            raise bad("field profile must be an object exactly where head is profile")
        if data.get("machine") is not None and not isinstance(data["machine"], str):
            raise bad(f"field machine must be a string or null, got {quote(data['machine'], 60)}")
        if data.get("settings") is not None and not isinstance(data["settings"], dict):
            raise bad("field settings must be an object or null")
        return cls(data["space"], data["kind"], data["name"], tuple(archs), tuple(float(v) for v in values),
                   data["units"], data["bundle"], data["bundle_source"], data["created"], data["archgen"],
                   data.get("machine"), data.get("settings"), head, data.get("profile"))


@dataclass(frozen=True)
class CalibrationInfo:
    """A stored calibration as :meth:`ArchGen.calibrations <archgen.api.ArchGen.calibrations>`
    and ``archgen calibrations`` list it. ``status`` is ``"loaded"`` (in use), or
    ``"refused: <why>"`` (made with another bundle, for another space, on another machine,
    or a damaged file); ``k``, ``created`` and ``bundle`` are None where the file cannot be read."""

    name: str
    kind: str
    space: str
    k: int | None
    created: str | None
    bundle: str | None  # the first 12 hex digits of the bundle fingerprint it was made with
    status: str
    path: str
    #: how it predicts: linear, gp or profile (a device's kernel profile); None where unreadable
    head: str | None = None

    @property
    def loaded(self) -> bool:
        return self.status == LOADED

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def of(cls, path: Path, entry: StoredCalibration | None, status: str, *, space: str = "", kind: str = "",
           name: str = "") -> CalibrationInfo:
        if entry is None:  # a file that cannot be read: what its place in the store says
            return cls(name or path.stem, kind or path.parent.name, space or path.parent.parent.name, None, None,
                       None, status, str(path))
        return cls(entry.name, entry.kind, entry.space, entry.k, entry.created, entry.bundle[:12], status, str(path),
                   entry.head)


class CalibrationStore:
    """The folder of stored calibrations (default :func:`store_folder`)."""

    def __init__(self, root: str | os.PathLike | None = None):
        self.root = Path(root) if root is not None else store_folder()

    def __repr__(self) -> str:
        return f"CalibrationStore({str(self.root)!r})"

    def path(self, space: str, kind: str, name: str) -> Path:
        """Where calibration ``name`` of ``kind`` in ``space`` is (or would be) stored;
        a name that cannot be stored is a :class:`CalibrationStoreError`."""
        if kind not in KINDS:
            raise CalibrationStoreError(f"kind must be device or task, got {quote(kind, 40)}")
        return self.root / space / kind / f"{check_name(name)}.json"

    def save(self, entry: StoredCalibration) -> Path:
        """Write ``entry`` atomically (a temporary file in the same folder, then a rename),
        replacing what was stored under its name; returns the path."""
        path = self.path(entry.space, entry.kind, entry.name)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")
        try:
            with open(tmp, "w", encoding="utf-8") as f:
                json.dump(entry.to_json(), f, indent=1)
                f.write("\n")
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        return path

    def read(self, path: str | os.PathLike) -> StoredCalibration:
        """The calibration stored at ``path``; a file that cannot be read or is damaged is a
        :class:`CalibrationStoreError` naming it. Its name and kind must be those its place says."""
        path = Path(path)
        forget = forget_command(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as exc:
            raise CalibrationStoreError(f"stored calibration {path} cannot be read ({type(exc).__name__}: "
                                        f"{exc}); forget it ({forget}) or delete the file") from None
        except json.JSONDecodeError as exc:
            raise CalibrationStoreError(f"stored calibration {path} is damaged: not JSON ({exc}); forget it "
                                        f"({forget}) or delete the file") from None
        entry = StoredCalibration.from_json(data, str(path), forget)
        if entry.name != path.stem or entry.kind != path.parent.name:
            raise CalibrationStoreError(f"stored calibration {path} is damaged: it says {entry.kind} {entry.name!r}, "
                                        f"but is stored as {path.parent.name} {path.stem!r}; forget it ({forget}) "
                                        "or delete the file")
        return entry

    def files(self, space: str, kind: str | None = None) -> list[Path]:
        """The stored calibration files of ``space`` (of ``kind``: both by default), sorted."""
        found = []
        for k in KINDS if kind is None else (kind,):
            folder = self.root / space / k
            try:
                found += sorted(p for p in folder.iterdir() if p.suffix == ".json" and not p.name.startswith("."))
            except (FileNotFoundError, NotADirectoryError):
                continue
        return found

    def scan(self, space: str) -> list[tuple[Path, StoredCalibration | CalibrationStoreError]]:
        """Each stored calibration file of ``space`` with what it holds, or why it cannot be used."""
        out = []
        for path in self.files(space):
            try:
                out.append((path, self.read(path)))
            except CalibrationStoreError as exc:
                out.append((path, exc))
        return out

    def spaces(self) -> list[str]:
        """The spaces with at least one stored calibration file, sorted."""
        try:
            folders = sorted(p.name for p in self.root.iterdir() if p.is_dir() and not p.name.startswith("."))
        except (FileNotFoundError, NotADirectoryError):
            return []
        return [s for s in folders if self.files(s)]

    def find(self, name: str, kind: str | None = None, space: str | None = None) -> list[Path]:
        """The files storing ``name`` (of ``kind``, in ``space``; any where None)."""
        try:
            check_name(name)
        except CalibrationStoreError:
            return []
        found = []
        for s in self.spaces() if space is None else [space]:
            for k in KINDS if kind is None else (kind,):
                path = self.root / s / k / f"{name}.json"
                if path.is_file():
                    found.append(path)
        return found

    def remove(self, path: str | os.PathLike) -> None:
        """Delete a stored calibration file (gone already: nothing to do)."""
        Path(path).unlink(missing_ok=True)


def forget_command(path: Path) -> str:
    """The command that forgets the calibration stored at ``path``."""
    return f"`archgen calibrations --forget {path.stem} --space {path.parent.parent.name} --kind {path.parent.name}`"


def refusal(entry: StoredCalibration, space: str, bundle: str, machine=None) -> str:
    """Why ``entry`` cannot be used in ``space`` with the bundle of fingerprint ``bundle``
    (``machine``: a function giving this machine's id, called only for a device measured
    on a machine); "" where it can."""
    if entry.space != space:
        return f"made for space {entry.space!r}, not {space!r}; recalibrate, or forget it"
    if entry.bundle != bundle:
        return (f"made with another bundle ({entry.bundle_source}, fingerprint {entry.bundle[:12]}; this one is "
                f"{bundle[:12]}); recalibrate, or forget it")
    if entry.machine is not None and machine is not None and entry.machine != machine():
        return (f"measured on another machine (id {entry.machine}; this one is {machine()}); recalibrate here, "
                "or forget it")
    return ""
