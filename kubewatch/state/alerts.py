"""Health alert records in the state database, so a restart does not send them again.

Kept in the ``meta`` table under names ``alert/<uid>/<container>/<reason>`` (the value:
the record as JSON), which needs no schema change; a Notifier's under
``alert@<namespace>/<name>/…``, outside the file's range and each other's. Written
through the database's ordered writes after the alert was handed to delivery: a firing
alert's record follows the spool rows of its event, so a crash never keeps a record whose
alert was neither delivered nor spooled (at worst the alert is sent again).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the database module loads sqlite3: only a run with state.path needs it
    from kubewatch.state.db import StateDB

__all__ = ["AlertTable"]

_PUT = "INSERT OR REPLACE INTO meta (name, value) VALUES (?, ?)"
_DELETE = "DELETE FROM meta WHERE name = ?"
_RANGE = "name >= ? AND name < ?"


class AlertTable:
    """The tracker's :class:`~kubewatch.watch.tracker.AlertStore` over one database."""

    def __init__(self, db: StateDB, scope: str | None = None) -> None:
        """``scope``: a Notifier's key (``namespace/name``), or None for the file's."""
        self._db = db
        self._prefix = "alert/" if scope is None else f"alert@{scope}/"
        # every name that starts with the prefix, and no other: "/" + 1 is "0"
        self._range = (self._prefix, self._prefix[:-1] + "0")

    def load(self) -> list[dict[str, Any]]:
        """Every stored record (start-up only); unreadable ones are skipped."""
        rows = self._db.query(f"SELECT value FROM meta WHERE {_RANGE}", self._range)
        out = []
        for (value,) in rows:
            try:
                doc = json.loads(value)
            except ValueError:
                continue
            if isinstance(doc, dict):
                out.append(doc)
        return out

    def put(self, key: str, doc: dict[str, Any]) -> None:
        self._db.write(_PUT, (self._prefix + key, json.dumps(doc, separators=(",", ":"))))

    def delete(self, key: str) -> None:
        self._db.write(_DELETE, (self._prefix + key,))

    def clear(self) -> None:
        """Every record of this scope goes (its Notifier was deleted)."""
        self._db.write(f"DELETE FROM meta WHERE {_RANGE}", self._range)
