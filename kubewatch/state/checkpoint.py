"""The checkpoint: what was last reported of every object, per watched collection.

A :class:`CollectionCheckpoint` mirrors one informer's Store on disk (the same compact JSON
bytes, uid and resourceVersion per key). The informer writes it after its handlers ran for
a change, so in the state database's op order a change's checkpoint row always follows the
spool rows of the events it produced: whatever prefix a crash keeps, the checkpoint never
claims a change whose events are not spooled (or delivered).

At the next start the informer seeds its Store from the checkpoint and treats its first
list as a relist: every object created, changed or deleted meanwhile is handed to the
handlers once (deletes as tombstones), objects unchanged since are not. A collection that
was never listed has no checkpoint (``load`` returns None): its first list stays silent.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the database module loads sqlite3: only a run with state.path needs it
    from kubewatch.state.db import StateDB

__all__ = ["Checkpoint", "CollectionCheckpoint"]

_PUT = "INSERT OR REPLACE INTO objects (collection, key, uid, rv, data) VALUES (?, ?, ?, ?, ?)"
_DELETE = "DELETE FROM objects WHERE collection = ? AND key = ?"
_SYNCED = "INSERT OR REPLACE INTO collections (name, synced) VALUES (?, ?)"

Row = tuple[str, str, str, bytes]
"""(key, uid, resourceVersion, compact JSON)."""


class CollectionCheckpoint:
    """One collection's checkpoint; the informer's single thread is its only writer."""

    def __init__(self, db: StateDB, name: str, clock: Callable[[], float]) -> None:
        self._db = db
        self.name = name
        self._clock = clock
        self._writes = 0

    def load(self) -> list[Row] | None:
        """Every object last reported, or None when this collection was never listed."""
        if not self._db.query("SELECT 1 FROM collections WHERE name = ?", (self.name,)):
            return None
        rows = self._db.query(
            "SELECT key, uid, rv, data FROM objects WHERE collection = ?", (self.name,)
        )
        return [(key, uid, rv, bytes(data)) for key, uid, rv, data in rows]

    def put(self, key: str, uid: str, resource_version: str, data: bytes) -> None:
        self._db.write(_PUT, (self.name, key, uid, resource_version, data), key=(self.name, key))

    def delete(self, key: str) -> None:
        self._db.write(_DELETE, (self.name, key), key=(self.name, key))

    def synced(self) -> None:
        """A list completed: from now on an empty collection is known to be empty."""
        self._db.write(_SYNCED, (self.name, self._clock()))


class Checkpoint:
    """The checkpoints of every collection in one state database."""

    def __init__(self, db: StateDB, *, clock: Callable[[], float] = time.time) -> None:
        self._db = db
        self._clock = clock
        self._lock = threading.Lock()
        self._last_run: float | None = None

    def collection(self, name: str) -> CollectionCheckpoint:
        return CollectionCheckpoint(self._db, name, self._clock)

    def last_written(self) -> float | None:
        """Wall-clock time of the last commit of this run (None before the first)."""
        return self._db.last_commit

    def previous_run(self) -> float | None:
        """When the previous run last wrote its state (epoch seconds), if there was one."""
        rows = self._db.query("SELECT value FROM meta WHERE name = 'last_seen'")
        return float(rows[0][0]) if rows else None

    def mark_alive(self) -> None:
        """Record now as the last moment this run was up (Event alerts after it count)."""
        self._db.write(
            "INSERT OR REPLACE INTO meta (name, value) VALUES ('last_seen', ?)",
            (repr(self._clock()),),
        )

    def prune(self, keep: Iterable[str]) -> list[str]:
        """Forget collections not in ``keep`` (no longer watched); returns their names."""
        keep = set(keep)
        names = [row[0] for row in self._db.query("SELECT name FROM collections")]
        gone = [name for name in names if name not in keep]
        for name in gone:
            self._db.write("DELETE FROM objects WHERE collection = ?", (name,))
            self._db.write("DELETE FROM collections WHERE name = ?", (name,))
        return gone
