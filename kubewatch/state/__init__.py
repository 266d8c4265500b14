"""Durable state (``state.path``): the spool of undelivered events and the checkpoint.

:func:`open_state` opens both over one SQLite database; without a state directory there is
no :class:`State` and kubewatch keeps everything in memory, as the start-up log says.
One process at a time holds a state directory (:mod:`.lock`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kubewatch.state.alerts import AlertTable
from kubewatch.state.checkpoint import Checkpoint, CollectionCheckpoint
from kubewatch.state.lock import LOCK_FILE, DirectoryLock, StateLocked
from kubewatch.state.memo import Memo
from kubewatch.state.spool import Spool

if TYPE_CHECKING:
    from kubewatch.state.db import DB_FILE, StateDB

log = logging.getLogger("kubewatch.state")

__all__ = [
    "DB_FILE",
    "LOCK_FILE",
    "AlertTable",
    "Checkpoint",
    "CollectionCheckpoint",
    "DirectoryLock",
    "Memo",
    "Spool",
    "State",
    "StateDB",
    "StateLocked",
    "open_state",
]


@dataclass(frozen=True)
class State:
    db: StateDB
    spool: Spool
    checkpoint: Checkpoint

    def memo(self, space: str) -> Memo:
        """The records of ``space`` (one per owner, e.g. ``threads/<sink>``)."""
        return Memo(self.db, space)

    def close(self, timeout: float = 10.0) -> None:
        self.checkpoint.mark_alive()
        self.db.close(timeout)


def __getattr__(name: str) -> Any:
    """``StateDB`` and ``DB_FILE`` load sqlite3: imported on first use, which only a run
    with ``state.path`` makes."""
    if name in ("StateDB", "DB_FILE"):
        from kubewatch.state import db  # noqa: PLC0415

        return getattr(db, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def open_state(directory: str | None) -> State | None:
    """The state under ``directory``; None without one, or when it cannot be opened at
    all (an ERROR says why; kubewatch then runs with state in memory, never a crash loop).

    Raises :class:`StateLocked` when another process holds ``directory``: running on
    beside it would corrupt both, so the caller stops before anything starts."""
    if directory is None:
        log.warning(
            "no state.path: queued events and changes made while kubewatch is down are lost "
            "on restart (set state.path or --state-dir to keep them)"
        )
        return None
    from kubewatch.state.db import StateDB  # noqa: PLC0415 (sqlite3: only with a state)

    try:
        db = StateDB.open(directory)
    except OSError as e:
        log.error("state: cannot open %s (%s); running with state in memory only", directory, e)
        return None
    log.info("state: %s", db.path)
    return State(db, Spool(db), Checkpoint(db))
