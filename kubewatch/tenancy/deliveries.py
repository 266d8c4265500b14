"""``lastDelivery`` / ``lastError`` of each Notifier, written at most once per interval.

The dispatcher reports every delivery, and a busy Notifier delivers many a second: one
status write per event would cost the API server more than the events themselves. So the
latest of each is kept per Notifier and one background thread (``kubewatch-notifier-status``)
writes it with one merge PATCH at most every :data:`STATUS_INTERVAL` seconds per Notifier;
a quiet Notifier's first delivery is written at once.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from kubewatch.tenancy.status import with_delivery

__all__ = ["STATUS_INTERVAL", "DeliveryReports"]

log = logging.getLogger("kubewatch.tenancy")

STATUS_INTERVAL = 10.0
"""Seconds between two delivery status writes of one Notifier."""


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


class DeliveryReports:
    """Collects deliveries and failures per Notifier key; ``write(key, status)`` PATCHes.

    Thread-safe: dispatcher workers report, one thread writes. With ``background=False``
    nothing is written until :meth:`flush` (tests with a fake clock)."""

    def __init__(
        self,
        write: Callable[[str, dict[str, Any]], None],
        *,
        interval: float = STATUS_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], datetime] = _utc_now,
        background: bool = True,
    ) -> None:
        self._write = write
        self._interval = interval
        self._clock = clock
        self._wall = wall
        self._lock = threading.Lock()
        self._pending: dict[str, dict[str, Any]] = {}  # key -> the fields to write
        self._next: dict[str, float] = {}  # key -> clock() before which it is not written
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if background:
            self._thread = threading.Thread(
                target=self._loop, name="kubewatch-notifier-status", daemon=True
            )
            self._thread.start()

    def delivered(self, key: str, sink: str) -> None:
        self._note(key, sink, None)

    def failed(self, key: str, sink: str, message: str) -> None:
        self._note(key, sink, message)

    def _note(self, key: str, sink: str, error: str | None) -> None:
        with self._lock:
            self._pending[key] = with_delivery(self._pending.get(key), sink, self._wall(), error)
        self._wake.set()

    def forget(self, key: str) -> None:
        """The Notifier is gone: nothing more is written for it."""
        with self._lock:
            self._pending.pop(key, None)
            self._next.pop(key, None)

    def flush(self) -> float | None:
        """Write what is due; the clock() of the next due write (None: nothing pending)."""
        now = self._clock()
        with self._lock:
            due = [k for k in self._pending if self._next.get(k, -math.inf) <= now]
            batch = [(k, self._pending.pop(k)) for k in due]
            for k in due:
                self._next[k] = now + self._interval
            later = [self._next[k] for k in self._pending if k in self._next]
            stale = [k for k, t in self._next.items() if t <= now and k not in self._pending]
            for k in stale:  # quiet long enough: its next delivery is written at once
                del self._next[k]
        for key, status in batch:
            try:
                self._write(key, status)
            except Exception as e:  # the next delivery brings it up to date
                log.debug("%s: delivery status not written: %s", key, e)
        return min(later) if later else None

    def _loop(self) -> None:
        due: float | None = None
        while not self._stop.is_set():
            self._wake.wait(None if due is None else max(0.0, due - self._clock()))
            self._wake.clear()
            if self._stop.is_set():
                break
            due = self.flush()

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(5.0)
