"""Small named records that outlive a restart: what a sink or a detector must remember.

A :class:`Memo` is one namespace (``space``) of key → bytes in the state database, e.g. the
chat message each object's thread hangs on. Writes go through the database's op queue like
the spool's (no caller waits for the disk); ``load`` is meant for start-up. A space is small
and bounded by its owner (who deletes what it evicts), never by the database.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the database module loads sqlite3: only a run with state.path needs it
    from kubewatch.state.db import StateDB

__all__ = ["Memo"]

_PUT = "INSERT OR REPLACE INTO memo (space, key, value) VALUES (?, ?, ?)"
_DELETE = "DELETE FROM memo WHERE space = ? AND key = ?"


class Memo:
    """One space of records; thread-safe (the database serializes the writes)."""

    def __init__(self, db: StateDB, space: str) -> None:
        self._db = db
        self.space = space

    def load(self) -> dict[str, bytes]:
        """Every record of this space, as last committed."""
        rows = self._db.query("SELECT key, value FROM memo WHERE space = ?", (self.space,))
        return {key: bytes(value) for key, value in rows}

    def put(self, key: str, value: bytes) -> None:
        self._db.write(_PUT, (self.space, key, value))

    def delete(self, key: str) -> None:
        self._db.write(_DELETE, (self.space, key))
