"""kubewatch's own Kubernetes Events, on its Pod: what ``kubectl describe pod`` shows.

:class:`EventRecorder` is a small version of client-go's ``tools/record`` (EventRecorder
and ``events_cache.go``), made for a process that must never flood the API server about
its own troubles:

- **Aggregation.** An occurrence is (type, reason, message). A repeat of one within
  ``window`` seconds of its previous occurrence is not a new Event: the Event already
  created for it gets ``count`` and ``lastTimestamp`` PATCHed. After ``window`` seconds of
  silence the next occurrence starts a new Event (count 1). An Event the server has
  garbage-collected meanwhile (its TTL is an hour by default) is created again.
- **Rate limits.** At most one API call per occurrence key every ``min_interval``
  seconds (10 s): repeats in between are only counted, and the next call carries the
  count — so counts stay exact while a flapping sink costs one PATCH per 10 s. On top,
  one global token bucket (``burst`` calls at once, ``per_second`` on average; 10 and
  1 per 6 s) caps the calls of all keys together; what it holds back goes out later,
  counts included.
- **Never in the way.** :meth:`EventRecorder.warning` / :meth:`~EventRecorder.normal`
  only append to a bounded queue (``queue_size``) that one background thread
  (``kubewatch-events``) empties; when it is full the occurrence is dropped with a DEBUG
  line. Nothing here raises into the caller; failures are logged (a refusal such as 403
  once at WARNING, then at DEBUG) and a failed call is retried at the key's next turn,
  up to :data:`MAX_ATTEMPTS` times.
- **Memory** is bounded by ``max_keys`` occurrence keys (least recently seen evicted
  first; an evicted key's uncounted repeats are lost, with a DEBUG line) and the queue.

The involved object is kubewatch's Pod, or the one an occurrence names (``about``: a
Notifier; its Event goes to that object's namespace, with the same aggregation and
limits). :meth:`EventRecorder.from_environment` reads
``POD_NAME``, ``POD_NAMESPACE`` and, when set, ``POD_UID``. ``kubectl describe pod``
finds Events by the Pod's UID: without ``POD_UID`` the recorder reads the Pod once to
learn it (needs ``get`` on pods; if that fails the Events are still created, and
``kubectl get events --field-selector involvedObject.name=POD`` shows them).

This module takes occurrences in and decides when to call; :mod:`.eventseries` folds
them into series, :mod:`.eventwriter` makes the calls.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from typing import Any

from kubewatch.kube.client import JsonApi
from kubewatch.kube.eventseries import EventKind, Occurrence, SeriesCache
from kubewatch.kube.eventwriter import MAX_ATTEMPTS, EventWriter
from kubewatch.ratelimit import TokenBucket

__all__ = ["MAX_ATTEMPTS", "EventRecorder", "JsonApi"]

log = logging.getLogger(__name__)

MESSAGE_CHARS = 1024
"""Messages are cut to this length: the limit events.k8s.io puts on a note, and more
than anyone reads in ``kubectl describe``."""
REASON_CHARS = 128
"""Reasons are short UpperCamelCase words; anything longer is a mistake, cut here."""


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


class EventRecorder:
    """Records core/v1 Events about ``involved`` (kubewatch's Pod) in ``namespace``.

    ``involved`` has ``kind``, ``name``, ``namespace`` and, ideally, ``uid`` (what
    ``kubectl describe`` looks Events up by); ``namespace`` must be the involved object's
    (the API server refuses an Event elsewhere). ``component`` is the Event's source.
    ``clock`` is monotonic seconds (windows, rate limits), ``wall`` the UTC time written
    into the Events. ``window``, ``max_keys``, ``min_interval``, ``burst``,
    ``per_second`` and ``queue_size``: see the module docstring.

    ``background=True`` starts the sending thread at once. With ``background=False``
    nothing is sent until :meth:`process` is called: tests with a fake clock drive it so.
    """

    def __init__(
        self,
        client: JsonApi,
        *,
        namespace: str,
        involved: Mapping[str, str],
        component: str = "kubewatch",
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], datetime] = _utc_now,
        window: float = 600.0,
        max_keys: int = 1000,
        min_interval: float = 10.0,
        burst: int = 10,
        per_second: float = 1 / 6,
        queue_size: int = 256,
        background: bool = True,
        resolve_uid: bool = False,
    ) -> None:
        if not involved.get("name") or not involved.get("kind"):
            raise ValueError("the involved object needs a kind and a name")
        if window <= 0 or min_interval < 0 or per_second <= 0 or burst < 1:
            raise ValueError("window and per_second must be positive, burst at least 1")
        if max_keys < 1 or queue_size < 1:
            raise ValueError("max_keys and queue_size must be at least 1")
        self.namespace = namespace
        about: dict[str, str] = {
            "apiVersion": involved.get("apiVersion", "v1"),
            "kind": involved["kind"],
            "name": involved["name"],
            "namespace": involved.get("namespace", namespace),
        }
        if involved.get("uid"):
            about["uid"] = involved["uid"]
        self._resolve_uid = resolve_uid and "uid" not in about
        self._writer = EventWriter(
            client, namespace=namespace, involved=about, component=component, wall=wall
        )
        self._clock = clock
        self._wall = wall
        self._min_interval = min_interval
        self._queue_size = queue_size
        self._lock = threading.Lock()
        # Under _lock: at most queue_size occurrences waiting for the worker.
        self._queue: deque[Occurrence] = deque()
        self._dropped = 0
        # Worker only (whoever calls process(); one at a time, _process_lock).
        self._process_lock = threading.Lock()
        self._series = SeriesCache(window, max_keys)
        self._budget = TokenBucket(per_second, burst, clock=clock)
        self._wake = threading.Event()
        self._closed = threading.Event()
        self._thread: threading.Thread | None = None
        if background:
            self._thread = threading.Thread(target=self._loop, name="kubewatch-events", daemon=True)
            self._thread.start()

    @classmethod
    def from_environment(cls, client: JsonApi, **kwargs: Any) -> EventRecorder | None:
        """A recorder about this Pod from ``POD_NAME`` / ``POD_NAMESPACE`` (``POD_UID``
        when set; else the Pod is read once for it); None, with one INFO line, when
        kubewatch does not run in a Pod that says who it is."""
        name = os.environ.get("POD_NAME", "").strip()
        namespace = os.environ.get("POD_NAMESPACE", "").strip()
        if not name or not namespace:
            log.info(
                "POD_NAME / POD_NAMESPACE not set: kubewatch records no Kubernetes Events "
                "about itself"
            )
            return None
        involved = {"kind": "Pod", "apiVersion": "v1", "name": name, "namespace": namespace}
        uid = os.environ.get("POD_UID", "").strip()
        if uid:
            involved["uid"] = uid
        kwargs.setdefault("resolve_uid", not uid)
        return cls(client, namespace=namespace, involved=involved, **kwargs)

    # -- recording (any thread; never blocks, never raises) -----------------------------

    def normal(self, reason: str, message: str, about: Mapping[str, str] | None = None) -> None:
        """Record a ``Normal`` occurrence (about ``about``, in its namespace, when given)."""
        self._record("Normal", reason, message, about)

    def warning(self, reason: str, message: str, about: Mapping[str, str] | None = None) -> None:
        """Record a ``Warning`` occurrence (about ``about``, in its namespace, when given)."""
        self._record("Warning", reason, message, about)

    def _record(
        self, kind: EventKind, reason: str, message: str, about: Mapping[str, str] | None
    ) -> None:
        try:
            occurrence = Occurrence(
                kind,
                str(reason)[:REASON_CHARS],
                str(message)[:MESSAGE_CHARS],
                self._clock(),
                self._wall(),
                tuple(sorted(about.items())) if about else (),
            )
            with self._lock:
                if self._closed.is_set() or len(self._queue) >= self._queue_size:
                    self._dropped += 1
                    accepted = False
                else:
                    self._queue.append(occurrence)
                    accepted = True
            if accepted:
                self._wake.set()
            else:
                log.debug("Kubernetes Event dropped (queue full or closed): %s %s", kind, reason)
        except Exception:  # recording must never break the caller
            log.debug("Kubernetes Event not recorded", exc_info=True)

    @property
    def dropped(self) -> int:
        """Occurrences dropped because the queue was full (or the recorder closed)."""
        with self._lock:
            return self._dropped

    # -- sending (the worker) ------------------------------------------------------------

    def process(self, *, force: bool = False) -> float | None:
        """Take in what is queued and make the API calls that are due now; return the
        clock() at which the next one is due (None: nothing pending).

        The background thread calls it; tests with a fake clock call it themselves.
        ``force`` ignores the per-key interval (still within the global budget): for the
        last flush on close.
        """
        with self._process_lock:
            try:
                return self._process(force)
            except Exception:  # never let the worker die
                log.exception("recording Kubernetes Events failed")
                return None

    def _process(self, force: bool) -> float | None:
        with self._lock:
            taken = list(self._queue)
            self._queue.clear()
        for occurrence in taken:
            self._series.observe(occurrence)
        dirty = self._series.dirty
        if dirty and self._resolve_uid:
            self._resolve_uid = False
            self._writer.lookup_uid()
        next_due: float | None = None
        for key in list(dirty):
            series = self._series.get(key)
            if series is None or series.sent >= series.count:
                dirty.pop(key, None)
                continue
            now = self._clock()
            if not force and now < series.next_call:
                next_due = series.next_call if next_due is None else min(next_due, series.next_call)
                continue
            wait = self._budget.try_acquire()
            if wait > 0.0:
                due = now + wait
                next_due = due if next_due is None else min(next_due, due)
                break
            series.next_call = now + self._min_interval
            self._writer.write(series)
            if series.sent >= series.count:
                dirty.pop(key, None)
            else:
                next_due = series.next_call if next_due is None else min(next_due, series.next_call)
        return next_due

    def _loop(self) -> None:
        next_due: float | None = None
        while not self._closed.is_set():
            timeout = None if next_due is None else max(0.0, next_due - self._clock())
            self._wake.wait(timeout)
            self._wake.clear()
            if self._closed.is_set():
                break
            next_due = self.process()

    # -- shutdown ------------------------------------------------------------------------

    def close(self, timeout: float = 5.0) -> None:
        """Stop taking occurrences; send what is pending once more (rate limits per key
        waived, the global budget kept), within about ``timeout`` seconds. Idempotent."""
        if self._closed.is_set():
            return
        self._closed.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
        finisher = threading.Thread(
            target=self.process, kwargs={"force": True}, name="kubewatch-events-close", daemon=True
        )
        finisher.start()
        finisher.join(timeout)
