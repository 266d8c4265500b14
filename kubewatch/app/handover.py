"""The HA handover buffer: what a standby saw recently, delivered when it takes over, so a
handover repeats some events (receivers de-duplicate by ``id``) rather than losing the
ones the old leader had not yet sent."""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable

from kubewatch.events import Event
from kubewatch.observability.ratelog import RateLimitedLog

__all__ = ["HANDOVER_EVENTS", "HandoverBuffer"]

log = logging.getLogger("kubewatch.app")

HANDOVER_EVENTS = 10_000
"""Events a standby keeps for a handover, at most: bounds its memory whatever the rate."""


class HandoverBuffer:
    """What a standby saw recently: ``(when, event, sinks)`` for at most ``window`` seconds
    and :data:`HANDOVER_EVENTS` events. Invariant: entries are in arrival order and none is
    older than ``window`` after :meth:`add` or :meth:`drain` ran. An event pushed out by
    the bound (not by age) is counted in :attr:`dropped` and logged, rate limited."""

    def __init__(self, window: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._window = window
        self._clock = clock
        self._lock = threading.Lock()
        self._items: deque[tuple[float, Event, tuple[str, ...]]] = deque(maxlen=HANDOVER_EVENTS)
        self._dropped = 0  # under _lock
        self._drop_log = RateLimitedLog(log)

    @property
    def dropped(self) -> int:
        """Events pushed out unsent because the buffer was full (a takeover misses them)."""
        with self._lock:
            return self._dropped

    def _prune(self, now: float) -> None:
        while self._items and self._items[0][0] < now - self._window:
            self._items.popleft()

    def add(self, event: Event, sinks: tuple[str, ...]) -> None:
        now = self._clock()
        with self._lock:
            self._prune(now)
            full = len(self._items) == self._items.maxlen
            if full:
                self._dropped += 1
            self._items.append((now, event, sinks))
        if full:
            self._drop_log(
                "standby: handover buffer full (%d events), oldest event dropped: a takeover "
                "will not deliver it",
                HANDOVER_EVENTS,
            )

    def drain(self) -> list[tuple[Event, tuple[str, ...]]]:
        with self._lock:
            self._prune(self._clock())
            items = [(event, sinks) for _, event, sinks in self._items]
            self._items.clear()
        return items
