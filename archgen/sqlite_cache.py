"""A persistent SQLite cache of results archgen derives on this machine (latency
measurements: :mod:`archgen.measurements`; proxy trainings: :mod:`archgen.task_learning`).

What every such cache guarantees, whatever it stores:

- Opening checks the file before anything is written to it: a file that is not
  SQLite, fails ``PRAGMA quick_check``, or belongs to another application or schema
  is refused (a :class:`~archgen.errors.CacheError` naming the file and what to do),
  byte for byte untouched. Only then is it switched to WAL mode.
- Each result is committed in its own transaction as it arrives (the connection is in
  autocommit mode), so a crash or Ctrl-C loses only what was still being computed.
- Several processes may share, and create, one cache: a busy timeout, WAL mode, a
  retry where SQLite fails at once on a lock (:func:`retry_busy`), and a new cache's
  tables made in one ``BEGIN IMMEDIATE`` transaction.

A cache is a subclass of :class:`SQLiteCache` that names its application, schema,
main table and error type, and adds its own ``get``/``put``.
"""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path

from .errors import CacheError

#: how long opening a cache waits for other processes holding its lock (seconds)
BUSY_TIMEOUT_S = 30.0


def is_busy(exc: sqlite3.Error) -> bool:
    return "locked" in str(exc) or "busy" in str(exc)


class SQLiteCache:
    """One SQLite file of results, opened safely (see the module docstring).

    Subclasses set :attr:`APPLICATION` (stored in the ``meta`` table: a file with
    another is foreign), :attr:`SCHEMA_VERSION`, :attr:`SCHEMA` (the ``CREATE TABLE``
    statements besides ``meta``), :attr:`TABLE` (the table of results: its absence
    is damage), :attr:`KIND` (how messages name the cache), :attr:`ERROR` (the
    exception raised) and :meth:`default_path`.
    """

    APPLICATION: str = ""
    SCHEMA_VERSION: int = 1
    SCHEMA: tuple[str, ...] = ()
    TABLE: str = ""
    KIND: str = "cache"
    ERROR: type[CacheError] = CacheError

    @classmethod
    def default_path(cls) -> Path:
        raise NotImplementedError

    def __init__(self, path: str | os.PathLike | None = None):
        self.path = Path(path) if path is not None else self.default_path()
        if self.path.is_dir():
            raise self.ERROR(f"{self.KIND} {str(self.path)!r} is a folder, not a file")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        state = self._check_existing(self.path)
        try:
            # the busy timeout is set on connecting, before the first statement
            self._db = sqlite3.connect(str(self.path), timeout=BUSY_TIMEOUT_S, isolation_level=None)
        except sqlite3.Error as exc:
            raise self._unreadable(self.path, str(exc)) from None
        try:
            if state == "new":
                self._create()
            self._retry_busy(lambda: self._db.execute("PRAGMA journal_mode = WAL").fetchone(), "switching it to WAL",
                             self.path)
        except BaseException:
            self._db.close()
            raise

    # -- messages --------------------------------------------------------------------------
    @classmethod
    def _unreadable(cls, path: Path, why: str) -> CacheError:
        return cls.ERROR(
            f"{path} is not a readable archgen {cls.KIND} ({why}); move it away (e.g. to {path.name}.damaged) "
            f"or pass another cache path, and {cls.TABLE} start afresh -- nothing in it was changed")

    @classmethod
    def _foreign(cls, path: Path) -> CacheError:
        return cls.ERROR(f"{path} is an SQLite file of another application, not an archgen {cls.KIND}; "
                         "pass another cache path -- nothing in it was changed")

    @classmethod
    def _other_schema(cls, path: Path, schema: str) -> CacheError:
        return cls.ERROR(f"{path} has cache schema {schema}, this archgen reads schema {cls.SCHEMA_VERSION}; "
                         "use another cache path -- nothing in it was changed")

    # -- opening ---------------------------------------------------------------------------
    @classmethod
    def _retry_busy(cls, step, what: str, path: Path):
        """``step()``, repeated while another process holds the lock. SQLite's busy
        timeout covers most waits, but not all (switching the journal mode, or a lock
        upgrade that would deadlock, fail at once): several processes creating one
        new cache together otherwise see a spurious "database is locked"."""
        deadline, pause = time.monotonic() + BUSY_TIMEOUT_S, 0.01
        while True:
            try:
                return step()
            except sqlite3.OperationalError as exc:
                if not is_busy(exc):
                    raise
                if time.monotonic() > deadline:
                    raise cls.ERROR(
                        f"{cls.KIND} {str(path)!r} stayed locked by another process for {BUSY_TIMEOUT_S:.0f} s "
                        f"while {what}; try again, or pass another cache path") from None
                time.sleep(pause)
                pause = min(pause * 2, 0.5)

    @classmethod
    def _examine(cls, path: Path, immutable: bool) -> tuple[str, str]:
        """What an existing file is, read without writing anything: ``("ours", "")``,
        ``("new", "")`` (an SQLite file without tables), ``("damaged" | "foreign" |
        "schema", detail)``. ``immutable`` reads the main file alone, without locks
        or side files: the only way to read a WAL-mode file whose ``-wal`` is gone
        (a cleanly closed cache) without SQLite creating ``-wal``/``-shm`` next to it."""
        uri = path.resolve().as_uri() + ("?mode=ro&immutable=1" if immutable else "?mode=ro")
        db = sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_S)
        try:
            problems = [row[0] for row in db.execute("PRAGMA quick_check(3)").fetchall()]
            if problems != ["ok"]:
                return "damaged", "; ".join(str(p) for p in problems)
            tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if not tables:
                return "new", ""
            if "meta" not in tables:
                return "foreign", ""
            meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
            if meta.get("application") != cls.APPLICATION:
                return "foreign", ""
            if meta.get("schema") != str(cls.SCHEMA_VERSION):
                return "schema", str(meta.get("schema"))
            if cls.TABLE not in tables:
                return "damaged", f"its {cls.TABLE} table is missing"
            return "ours", ""
        finally:
            db.close()

    @classmethod
    def _check_existing(cls, path: Path) -> str:
        """``"new"`` or ``"ours"`` for the file at ``path``; anything else is refused with
        :attr:`ERROR`, the file left byte for byte as it was (no journal mode switched;
        no side file created where the cache was closed cleanly -- one whose ``-wal`` is
        still there, in use or left by a crash, is read through it, which may add the
        ``-shm`` index beside it).

        A 0-byte or missing file is new (another process may be creating it this
        instant). A check that finds damage in a file read without locks is repeated
        twice: another process's checkpoint could have been writing it just then.
        The one write allowed is SQLite's own crash recovery: a process killed in
        the middle of a transaction on a cache outside WAL mode (a file system
        without WAL support) leaves a hot ``-journal``, which only a writing
        connection may roll back to the last committed state.
        """
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            return "new"
        if size == 0:
            return "new"
        wal, journal = path.with_name(path.name + "-wal"), path.with_name(path.name + "-journal")
        tries, recovered = 0, False
        while True:
            tries += 1
            with open(path, "rb") as f:
                header = f.read(100)
            if not header.startswith(b"SQLite format 3\x00"):
                raise cls._unreadable(path, "it is not an SQLite file")
            immutable = header[18:20] == b"\x02\x02" and not wal.exists()  # WAL mode, cleanly closed
            try:
                state, detail = cls._retry_busy(lambda: cls._examine(path, immutable), "checking it", path)
            except sqlite3.OperationalError as exc:
                name = getattr(exc, "sqlite_errorname", None)  # Python >= 3.11; the message before
                hot = journal.exists() and (name == "SQLITE_READONLY_ROLLBACK"
                                            or (name is None and "readonly" in str(exc)))
                if hot and not recovered:
                    cls._roll_back_hot_journal(path)
                    recovered = True
                    continue
                state, detail = "damaged", str(exc)
            except sqlite3.DatabaseError as exc:
                state, detail = "damaged", str(exc)
            if state != "damaged" or not immutable or tries >= 3:
                break
            time.sleep(0.05)
        if state == "damaged":
            raise cls._unreadable(path, f"SQLite's integrity check failed: {detail}")
        if state == "foreign":
            raise cls._foreign(path)
        if state == "schema":
            raise cls._other_schema(path, detail)
        return state

    @classmethod
    def _roll_back_hot_journal(cls, path: Path) -> None:
        """Let SQLite roll an interrupted transaction back (any read does, on a writing connection)."""
        db = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_S)
        try:
            cls._retry_busy(lambda: db.execute("SELECT COUNT(*) FROM sqlite_master").fetchone(), "recovering it",
                            path)
        except sqlite3.DatabaseError as exc:
            if isinstance(exc, sqlite3.OperationalError) and is_busy(exc):
                raise
            raise cls._unreadable(path, f"its interrupted transaction could not be rolled back: {exc}") from None
        finally:
            db.close()

    def _create(self) -> None:
        """Make the tables of a new cache, or find them made by another process."""
        db = self._db

        def create() -> None:
            db.execute("BEGIN IMMEDIATE")  # one writer at a time from here to COMMIT
            try:
                tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
                if not tables:
                    db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
                    for statement in self.SCHEMA:
                        db.execute(statement)
                    db.executemany("INSERT INTO meta VALUES (?, ?)",
                                   [("application", self.APPLICATION), ("schema", str(self.SCHEMA_VERSION))])
                else:  # another process got here first: is it complete and ours?
                    meta = dict(db.execute("SELECT key, value FROM meta").fetchall()) if "meta" in tables else {}
                    if meta.get("application") != self.APPLICATION:
                        raise self._foreign(self.path)
                    if meta.get("schema") != str(self.SCHEMA_VERSION):
                        raise self._other_schema(self.path, str(meta.get("schema")))
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise

        try:
            self._retry_busy(create, "creating it", self.path)
        except sqlite3.DatabaseError as exc:
            if isinstance(exc, sqlite3.OperationalError) and not is_busy(exc):
                raise self.ERROR(f"cannot create the {self.KIND} {str(self.path)!r}: {exc}") from None
            raise self._unreadable(self.path, str(exc)) from None

    # -- use -------------------------------------------------------------------------------
    def __len__(self) -> int:
        return self._db.execute(f"SELECT COUNT(*) FROM {self.TABLE}").fetchone()[0]

    def close(self) -> None:
        self._db.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()
