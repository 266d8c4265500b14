"""Health alert records in the state database, so a restart does not send them again.

Kept in the ``meta`` table under names ``alert/<uid>/<container>/<reason>`` (the value:
the record as JSON), which needs no schema change. Written through the database's
ordered writes after the alert was handed to delivery: a firing alert's record follows the
spool rows of its event, so a crash never keeps a record whose alert was neither delivered
nor spooled (at worst the alert is sent again).
"""

from __future__ import annotations

import json
from typing import Any

from kubewatch.state.db import StateDB

__all__ = ["AlertTable"]

_PREFIX = "alert/"
_PUT = "INSERT OR REPLACE INTO meta (name, value) VALUES (?, ?)"
_DELETE = "DELETE FROM meta WHERE name = ?"


class AlertTable:
    """The tracker's :class:`~kubewatch.watch.tracker.AlertStore` over one database."""

    def __init__(self, db: StateDB) -> None:
        self._db = db

    def load(self) -> list[dict[str, Any]]:
        """Every stored record (start-up only); unreadable ones are skipped."""
        rows = self._db.query(
            "SELECT value FROM meta WHERE name >= ? AND name < ?", (_PREFIX, "alert0")
        )
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
        self._db.write(_PUT, (_PREFIX + key, json.dumps(doc, separators=(",", ":"))))

    def delete(self, key: str) -> None:
        self._db.write(_DELETE, (_PREFIX + key,))
