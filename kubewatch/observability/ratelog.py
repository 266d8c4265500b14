"""A log line per interval, not per occurrence, for failures that can repeat by the thousand.

A handler that fails on every event, or a buffer that overflows under load, would write
a line (and a traceback) per event: the log floods and the thread that logs slows down.
:class:`RateLimitedLog` writes the first occurrence of an interval at its level (with its
traceback, if any) and counts the rest, which go to DEBUG; the next line at that level
says how many there were since. The exact totals belong in a metric, not in the log.

Thread-safe: the count is kept under a lock, the line is written outside it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

__all__ = ["LOG_INTERVAL", "RateLimitedLog"]

LOG_INTERVAL = 10.0
"""Seconds between two lines of one :class:`RateLimitedLog` at its level: a few lines a
minute say "still happening" without flooding."""


class RateLimitedLog:
    """One logger, one kind of occurrence, at most one line per ``interval`` at ``level``."""

    def __init__(
        self,
        logger: logging.Logger,
        level: int = logging.WARNING,
        *,
        interval: float = LOG_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._log = logger
        self._level = level
        self._interval = interval
        self._clock = clock
        self._lock = threading.Lock()
        # Under _lock: no line at _level before _next_line (clock seconds); _unlogged
        # occurrences went to DEBUG since the last line at _level.
        self._next_line = -float("inf")
        self._unlogged = 0

    def __call__(self, msg: str, *args: object, exc_info: bool = False) -> None:
        """Log one occurrence: ``msg % args``, at the level or, within the interval, DEBUG."""
        with self._lock:
            now = self._clock()
            loud = now >= self._next_line
            if loud:
                self._next_line = now + self._interval
                skipped, self._unlogged = self._unlogged, 0
            else:
                self._unlogged += 1
        if not loud:
            self._log.debug(msg, *args, exc_info=exc_info)
            return
        if skipped:
            msg += " (and %d more like it since the last such line, not logged one by one)"
            args = (*args, skipped)
        self._log.log(self._level, msg, *args, exc_info=exc_info)
