"""The spool: every event owed to a sink, kept on disk until its outcome is final.

An event routed to sinks is written once per sink (``put``) before the dispatcher gets it;
it leaves (``settle``) when that sink accepted it, refused it for good, it expired
(``delivery.maxAge``), the queue dropped it on overflow, or it was folded into a digest
that is itself spooled. What shutdown could not send, and what a ``kill -9`` interrupted,
stays: :meth:`Spool.recover` hands it back at the next start, oldest first, with the same
event ids (receivers de-duplicate by ``id``).

Writes go through :class:`~kubewatch.state.db.StateDB` (group commits, in order); the
in-memory index here answers depth and age for ``/metrics`` without touching the disk.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

import orjson

from kubewatch.events import Event
from kubewatch.timefmt import parse_time

log = logging.getLogger("kubewatch.state")


if TYPE_CHECKING:  # the database module loads sqlite3: only a run with state.path needs it
    from kubewatch.state.db import StateDB

__all__ = ["Spool"]

_INSERT = "INSERT OR REPLACE INTO spool (seq, sink, event) VALUES (?, ?, ?)"
_DELETE = "DELETE FROM spool WHERE seq = ?"


class Spool:
    """Events owed to sinks. Thread-safe: ``put`` from watch threads, ``settle`` from
    delivery workers. Invariant (under ``_lock``): ``(sink, id)`` is in ``_seqs`` iff its
    row is written (or queued to be) and not deleted; ``_ages[sink]`` holds the same rows
    by seq, oldest first."""

    def __init__(self, db: StateDB, *, clock: Callable[[], float] = time.time) -> None:
        self._db = db
        self._clock = clock
        self._lock = threading.Lock()
        self._seq = 0
        self._seqs: dict[tuple[str, str], int] = {}
        self._ages: dict[str, OrderedDict[int, float]] = {}

    def recover(self) -> list[tuple[str, Event]]:
        """What the last run left undelivered, as ``(sink, event)`` in spool order."""
        rows = self._db.query("SELECT seq, sink, event FROM spool ORDER BY seq")
        out: list[tuple[str, Event]] = []
        with self._lock:
            for seq, sink, data in rows:
                self._seq = max(self._seq, seq)
                try:
                    event = Event.from_dict(orjson.loads(data))
                except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as e:
                    log.error(
                        "state: spooled event %d for sink %r is unreadable (%s); dropped",
                        seq,
                        sink,
                        e,
                    )
                    self._db.write(_DELETE, (seq,), key=seq)
                    continue
                observed = parse_time(event.observed_at)
                at = observed.timestamp() if observed is not None else self._clock()
                self._seqs[(sink, event.id)] = seq
                self._ages.setdefault(sink, OrderedDict())[seq] = at
                out.append((sink, event))
        return out

    def put(self, event: Event, sinks: Iterable[str]) -> None:
        """Owe ``event`` to each of ``sinks`` (an event already owed to one is not added twice)."""
        data: bytes | None = None
        now = self._clock()
        with self._lock:
            for sink in sinks:
                key = (sink, event.id)
                if key in self._seqs:
                    continue
                if data is None:
                    data = orjson.dumps(event.to_dict())
                self._seq += 1
                self._seqs[key] = self._seq
                self._ages.setdefault(sink, OrderedDict())[self._seq] = now
                self._db.write(_INSERT, (self._seq, sink, data), key=self._seq)

    def settle(self, sink: str, event_id: str) -> None:
        """``sink``'s outcome for the event ``event_id`` is final: it leaves the spool."""
        with self._lock:
            seq = self._seqs.pop((sink, event_id), None)
            if seq is None:
                return
            self._ages[sink].pop(seq, None)
            self._db.write(_DELETE, (seq,), key=seq)

    def forget_sinks(self, keep: Iterable[str]) -> int:
        """Drop what is owed to sinks no longer configured; returns how many events."""
        keep = set(keep)
        with self._lock:
            gone = [key for key in self._seqs if key[0] not in keep]
            for key in gone:
                seq = self._seqs.pop(key)
                self._ages[key[0]].pop(seq, None)
                self._db.write(_DELETE, (seq,), key=seq)
        return len(gone)

    def depth(self) -> dict[str, int]:
        """Events owed now, per sink."""
        with self._lock:
            return {sink: len(ages) for sink, ages in self._ages.items()}

    def oldest_age(self) -> float | None:
        """Seconds since the oldest owed event was seen; None when nothing is owed."""
        with self._lock:
            firsts = [next(iter(ages.values())) for ages in self._ages.values() if ages]
        return max(0.0, self._clock() - min(firsts)) if firsts else None
