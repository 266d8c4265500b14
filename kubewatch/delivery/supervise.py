"""Keeping a sink's worker threads alive, and knowing when they are not.

A worker thread that dies takes its shard with it: the events of every key mapped to it
wait forever and nothing says so. Three defences, per sink:

* **Observer callbacks** (``on_delivered`` / ``on_failed``) run on worker threads;
  :meth:`WorkerWatch.callback` runs them so that an exception is counted
  (``callback_errors``) and logged, rate limited, and never reaches the worker loop.
* **Restarts.** The dispatcher runs its worker loop under a supervisor that starts it
  again after anything escapes it; :meth:`WorkerWatch.restarted` counts (``restarts``)
  and logs that, rate limited.
* **Liveness.** :class:`TimedSink` notes when each worker thread entered ``send``;
  :meth:`WorkerWatch.stuck` reports sends running longer than :data:`SEND_STUCK_AFTER`,
  which ``/healthz`` turns into a failure (a restart of the process is the only cure for
  a call that never returns).

Thread-safe: counters and the send table are kept under one lock per sink.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kubewatch.events import Event
from kubewatch.observability.ratelog import RateLimitedLog
from kubewatch.sinks.base import Sink

__all__ = ["RESTART_DELAY", "SEND_STUCK_AFTER", "TimedSink", "WorkerStats", "WorkerWatch"]

log = logging.getLogger("kubewatch.delivery")

SEND_STUCK_AFTER = 300.0
"""Seconds one ``send`` may run before liveness fails: 10 to 30 times the built-in sinks'
default ``timeout`` (10-30 s), so only a call that ignores its timeout gets there."""
RESTART_DELAY = 0.1
"""Seconds before a worker loop that failed runs again: a loop that fails at once every
time (a bug in taking work) must not spin a CPU."""


@dataclass(frozen=True, slots=True)
class WorkerStats:
    """Counters of one sink's workers since the dispatcher was built (a snapshot)."""

    restarts: int = 0
    """Worker loops started again after an unexpected exception escaped them."""
    callback_errors: int = 0
    """Exceptions raised by ``on_delivered`` / ``on_failed`` observers, caught."""


class WorkerWatch:
    """Counters, rate-limited logs and the sends in progress of one sink's workers."""

    def __init__(self, sink: str, clock: Callable[[], float]) -> None:
        self.sink = sink
        self._clock = clock
        self._lock = threading.Lock()
        self._restarts = 0
        self._callback_errors = 0
        self._sending: dict[int, float] = {}  # worker thread ident -> clock time send began
        self._callback_log = RateLimitedLog(log, logging.ERROR)
        self._restart_log = RateLimitedLog(log, logging.ERROR)

    def stats(self) -> WorkerStats:
        with self._lock:
            return WorkerStats(self._restarts, self._callback_errors)

    def callback(self, fn: Callable[..., None] | None, *args: Any) -> None:
        """Run an observer callback; an exception is counted and logged, never raised."""
        if fn is None:
            return
        try:
            fn(*args)
        except Exception:
            with self._lock:
                self._callback_errors += 1
            self._callback_log(
                "sink %r: delivery observer %s failed (the worker goes on)",
                self.sink,
                getattr(fn, "__name__", repr(fn)),
                exc_info=True,
            )

    def restarted(self) -> None:
        """The calling worker's loop failed and is started again; call from ``except``."""
        with self._lock:
            self._restarts += 1
            self._sending.pop(threading.get_ident(), None)
        self._restart_log(
            "sink %r: worker %s failed unexpectedly and was restarted",
            self.sink,
            threading.current_thread().name,
            exc_info=True,
        )

    def send_started(self) -> None:
        with self._lock:
            self._sending[threading.get_ident()] = self._clock()

    def send_ended(self) -> None:
        with self._lock:
            self._sending.pop(threading.get_ident(), None)

    def stuck(self, limit: float = SEND_STUCK_AFTER) -> list[float]:
        """Ages in seconds of the sends running longer than ``limit``, oldest first."""
        now = self._clock()
        with self._lock:
            ages = [now - since for since in self._sending.values()]
        return sorted((age for age in ages if age > limit), reverse=True)


class TimedSink:
    """A sink whose every ``send`` is noted in a :class:`WorkerWatch` while it runs."""

    def __init__(self, sink: Sink, watch: WorkerWatch) -> None:
        self.inner = sink
        self.name = sink.name
        self._watch = watch

    def send(self, event: Event) -> None:
        self._watch.send_started()
        try:
            self.inner.send(event)
        finally:
            self._watch.send_ended()

    def close(self) -> None:
        self.inner.close()

    def preview(self, event: Event) -> str:
        return self.inner.preview(event)

    def __enter__(self) -> TimedSink:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
