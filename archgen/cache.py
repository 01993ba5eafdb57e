"""Where archgen keeps what it derives on this machine: latency measurements
(an SQLite file), parsed benchmark tables, and scratch files, all rebuilt from
scratch if lost.

Scratch files (ONNX exports being timed, torch_geometric's generated modules)
live under ``<cache folder>/tmp/<host>-<pid>-<random>/``, one folder per
process, rather than in the system temp folder: a process killed with
``kill -9`` cannot clean up after itself, so the next process that needs a
scratch folder removes the folders of this host's processes that are gone.
The host is part of the name because a home folder may be shared by several
machines (a cluster), whose process ids say nothing about each other.
"""

from __future__ import annotations

import atexit
import os
import secrets
import shutil
import socket
import tempfile
from pathlib import Path

#: the measurement cache file; its folder holds the rest of the cache
ENV_VAR = "ARCHGEN_CACHE"


def measurement_cache_path() -> Path:
    """``$ARCHGEN_CACHE`` if set, else ``~/.cache/archgen/measurements.sqlite``."""
    return Path(os.environ.get(ENV_VAR) or Path.home() / ".cache" / "archgen" / "measurements.sqlite")


def cache_folder() -> Path:
    """The folder of the measurement cache, where other derived data lives too."""
    return measurement_cache_path().parent


_scratch: tuple[int, Path] | None = None  # (owning pid, folder): a forked child makes its own


def _host() -> str:
    return "".join(c if c.isalnum() or c in "._" else "_" for c in socket.gethostname()) or "host"


def _pid_alive(pid: int) -> bool:
    if os.name == "nt":  # os.kill(pid, 0) would send CTRL_C_EVENT there
        try:
            import psutil
        except ImportError:
            return True  # cannot tell: keep the folder
        return psutil.pid_exists(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # e.g. PermissionError: another user's live process
        return True
    return True


def scratch_root() -> Path:
    """``<cache folder>/tmp``, or ``<system temp>/archgen-tmp`` where the cache
    folder cannot be written (a read-only home): scratch files must not stop a
    measurement that does not use the cache."""
    root = cache_folder() / "tmp"
    try:
        root.mkdir(parents=True, exist_ok=True)
        probe = tempfile.mkdtemp(dir=root, prefix=".probe-")
        os.rmdir(probe)
        return root
    except OSError:
        root = Path(tempfile.gettempdir()) / "archgen-tmp"
        root.mkdir(parents=True, exist_ok=True)
        return root


def remove_stale_scratch(root: str | os.PathLike | None = None) -> list[Path]:
    """Remove the scratch folders under ``root`` (default :func:`scratch_root`) whose
    process, on this host, is no longer alive; returns what was removed."""
    root = Path(root) if root is not None else scratch_root()
    host, removed = _host(), []
    try:
        entries = list(root.iterdir())
    except OSError:
        return removed
    for entry in entries:
        owner, sep, pid_text = entry.name.rpartition("-")[0].rpartition("-")
        if not sep or owner != host or not pid_text.isdigit() or not entry.is_dir():
            continue  # another host's, or not a scratch folder
        pid = int(pid_text)
        if pid != os.getpid() and not _pid_alive(pid):
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry)
    return removed


def scratch_folder() -> Path:
    """This process's scratch folder (created on first use, removed at exit).

    The first call also removes what dead processes of this host left behind.
    """
    global _scratch
    pid = os.getpid()
    if _scratch is not None and _scratch[0] == pid and _scratch[1].is_dir():
        return _scratch[1]
    root = scratch_root()
    remove_stale_scratch(root)
    folder = root / f"{_host()}-{pid}-{secrets.token_hex(4)}"
    folder.mkdir()
    _scratch = (pid, folder)
    atexit.register(_remove_own_scratch, pid, folder)
    return folder


def _remove_own_scratch(pid: int, folder: Path) -> None:
    if os.getpid() == pid:  # not in a forked child that inherited the handler
        shutil.rmtree(folder, ignore_errors=True)
