"""The state database: one SQLite file (WAL) and one writer thread that commits in groups.

Every write is an *op* (SQL and parameters) queued in order; the writer thread takes all
ops queued so far and commits them in one transaction, so a burst of 10,000 watch events
costs a handful of commits, and a watch thread never waits for the disk. Because ops are
committed strictly in queue order, any prefix of them is what a crash leaves behind: the
spool and the checkpoint (which queue their ops in the order the pipeline decided) stay
consistent with each other after a ``kill -9`` — what the checkpoint says was reported is
in the spool, or was delivered.

``synchronous=NORMAL`` in WAL mode: a commit survives the process dying at any moment
(``kill -9``, OOM kill); only an operating-system crash or power loss may lose the last
commits, and then the checkpoint loses them too, so the changes are reported again at the
next start rather than lost.

Bad state never stops kubewatch: a file that is not a kubewatch state database (corrupt,
or another program's) is moved aside with an ERROR line naming the new name; a write that
fails (full disk, I/O error) logs an ERROR once and the state falls back to memory for the
rest of the run (``healthy`` turns False; the spool and checkpoint keep working in memory).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Hashable, Sequence
from datetime import datetime, timezone
from typing import Any

from kubewatch.state.lock import DirectoryLock

log = logging.getLogger("kubewatch.state")

__all__ = ["APPLICATION_ID", "DB_FILE", "SCHEMA_VERSION", "StateDB"]

DB_FILE = "state.db"
APPLICATION_ID = 0x6B77_7374  # "kwst": tells our database from any other SQLite file
SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS spool (
    seq INTEGER PRIMARY KEY,
    sink TEXT NOT NULL,
    event BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS collections (name TEXT PRIMARY KEY, synced REAL NOT NULL);
CREATE TABLE IF NOT EXISTS objects (
    collection TEXT NOT NULL,
    key TEXT NOT NULL,
    uid TEXT NOT NULL,
    rv TEXT NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (collection, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS memo (
    space TEXT NOT NULL,
    key TEXT NOT NULL,
    value BLOB NOT NULL,
    PRIMARY KEY (space, key)
) WITHOUT ROWID;
"""

Op = tuple[str, Sequence[Any], Hashable | None]
"""One write: SQL, its parameters and the row it sets (None: not coalesced)."""


class StateDB:
    """The open database and its writer thread. Thread-safe: ``write`` from any thread."""

    def __init__(
        self, path: str, connection: sqlite3.Connection, lock: DirectoryLock | None = None
    ) -> None:
        self.path = path
        self._db = connection
        self._dir_lock = lock  # the directory's, released by close()
        # _io serializes use of the connection (the writer's commits, start-up reads);
        # _cond guards the op queue and counters and is never held during disk I/O, so
        # writers (watch threads) never wait for the disk. Lock order: _io, then _cond.
        self._io = threading.Lock()
        self._cond = threading.Condition(threading.Lock())
        # Under _cond: ops queued and not yet taken by the writer; counts of ops queued and
        # committed so far (flush waits for committed >= queued-at-call).
        self._ops: list[Op] = []
        self._queued = 0
        self._committed = 0
        self._closed = False
        self._healthy = True
        self.last_commit: float | None = None
        """Wall-clock time (epoch seconds) of the last commit; None before the first."""
        self._thread = threading.Thread(
            target=self._write_loop, name="kubewatch-state", daemon=True
        )
        self._thread.start()

    # -- opening --------------------------------------------------------------------------

    @classmethod
    def open(cls, directory: str, *, clock: Callable[[], float] = time.time) -> StateDB:
        """Lock ``directory`` and open (or create) its ``state.db``; a bad file is moved
        aside first.

        Raises :class:`~kubewatch.state.lock.StateLocked` when another process holds the
        directory, OSError when the directory cannot be created or the file cannot be
        written at all (the caller then runs with state in memory).
        """
        lock = DirectoryLock.acquire(directory)
        try:
            path, connection = _open(directory, clock)
        except BaseException:
            lock.release()
            raise
        return cls(path, connection, lock)

    # -- reads (before the pipeline starts) -----------------------------------------------

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Rows of a read; meant for start-up, before writes flow (it waits for them)."""
        self.flush()
        with self._io:
            try:
                return list(self._db.execute(sql, params))
            except sqlite3.Error as e:
                log.error("state: reading %s failed: %s; treating it as empty", self.path, e)
                return []

    # -- writes ---------------------------------------------------------------------------

    @property
    def healthy(self) -> bool:
        """False once a write failed: the state is in memory only from then on."""
        return self._healthy

    def write(self, sql: str, params: Sequence[Any] = (), key: Hashable | None = None) -> None:
        """Queue one write; it is committed after every write queued before it.

        ``key`` names the one row the write sets (or deletes) in full: a later write of the
        same key in the same commit replaces it, so a row changed ten times between two
        commits is written once, and a spool row settled before its commit never is."""
        with self._cond:
            if self._closed or not self._healthy:
                return
            self._ops.append((sql, params, key))
            self._queued += 1
            self._cond.notify()

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every write queued so far is committed (or dropped by a failure)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            target = self._queued
            while self._committed < target and self._healthy:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._cond.wait(left)
            return True

    def close(self, timeout: float = 10.0) -> None:
        """Commit what is queued (within ``timeout``), stop the writer, close the file."""
        self.flush(timeout)
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join(timeout)
        with self._io, contextlib.suppress(sqlite3.Error):
            self._db.close()
        if self._dir_lock is not None:
            self._dir_lock.release()

    def _write_loop(self) -> None:
        while True:
            with self._cond:
                while not self._ops and not self._closed:
                    self._cond.wait()
                if not self._ops:
                    return
                ops, self._ops = self._ops, []
            error: sqlite3.Error | None = None
            with self._io:
                try:
                    _commit(self._db, ops)
                except sqlite3.Error as e:
                    error = e
            with self._cond:
                if error is None:
                    self.last_commit = time.time()
                else:
                    self._fail(error)
                self._committed += len(ops)
                self._cond.notify_all()

    def _fail(self, error: sqlite3.Error) -> None:
        """A write failed (full disk, I/O error): memory only from now on; caller holds _cond."""
        self._healthy = False
        self._committed += len(self._ops)
        self._ops = []
        log.error(
            "state: writing %s failed (%s); undelivered events and the checkpoint are kept in "
            "memory only until the next start",
            self.path,
            error,
        )


def _open(directory: str, clock: Callable[[], float]) -> tuple[str, sqlite3.Connection]:
    path = os.path.join(directory, DB_FILE)
    try:
        return path, _connect(path)
    except sqlite3.DatabaseError as e:
        aside = _move_aside(path, clock)
        log.error(
            "state: %s is not a usable kubewatch state database (%s); moved it to %s and "
            "starting with empty state",
            path,
            e,
            aside,
        )
        return path, _connect(path)


def _connect(path: str) -> sqlite3.Connection:
    """Connect and check that ``path`` is ours (or new); raises DatabaseError otherwise."""
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        (app_id,) = db.execute("PRAGMA application_id").fetchone()
        tables = db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
        if app_id != APPLICATION_ID and (app_id != 0 or tables):
            raise sqlite3.DatabaseError(f"application_id {app_id:#x}, not kubewatch's")
        (version,) = db.execute("PRAGMA user_version").fetchone()
        if tables and version != SCHEMA_VERSION:
            raise sqlite3.DatabaseError(f"schema version {version}, expected {SCHEMA_VERSION}")
        if db.execute("PRAGMA quick_check").fetchone()[0] != "ok":
            raise sqlite3.DatabaseError("integrity check failed")
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.executescript(_SCHEMA)
        db.execute(f"PRAGMA application_id={APPLICATION_ID}")
        db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
    except sqlite3.DatabaseError:
        db.close()
        raise
    return db


def _move_aside(path: str, clock: Callable[[], float]) -> str:
    stamp = datetime.fromtimestamp(clock(), timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    aside = f"{path}.bad-{stamp}"
    os.replace(path, aside)
    for suffix in ("-wal", "-shm"):
        if os.path.exists(path + suffix):
            os.replace(path + suffix, aside + suffix)
    return aside


def _coalesce(ops: list[Op]) -> list[Op]:
    """``ops`` without keyed writes that a later write of the same key replaces: the
    transaction is atomic, so nothing can see the rows they set in between."""
    last = {op[2]: i for i, op in enumerate(ops) if op[2] is not None}
    if len(last) == sum(1 for op in ops if op[2] is not None):
        return ops
    return [op for i, op in enumerate(ops) if op[2] is None or last[op[2]] == i]


def _commit(db: sqlite3.Connection, ops: list[Op]) -> None:
    """Apply ``ops`` in order in one transaction (the last write of each key only); runs of
    one statement go in one batch."""
    ops = _coalesce(ops)
    db.execute("BEGIN")
    try:
        i = 0
        while i < len(ops):
            sql = ops[i][0]
            j = i + 1
            while j < len(ops) and ops[j][0] == sql:
                j += 1
            if j - i == 1:
                db.execute(sql, ops[i][1])
            else:
                db.executemany(sql, [op[1] for op in ops[i:j]])
            i = j
        db.execute("COMMIT")
    except BaseException:
        db.rollback()
        raise
