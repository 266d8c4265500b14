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

The involved object is kubewatch's Pod (:meth:`EventRecorder.from_environment` reads
``POD_NAME``, ``POD_NAMESPACE`` and, when set, ``POD_UID``). ``kubectl describe pod``
finds Events by the Pod's UID: without ``POD_UID`` the recorder reads the Pod once to
learn it (needs ``get`` on pods; if that fails the Events are still created, and
``kubectl get events --field-selector involvedObject.name=POD`` shows them).
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Literal, Protocol

from kubewatch.errors import ApiError
from kubewatch.kube.failures import ApiUnreachable
from kubewatch.ratelimit import TokenBucket
from kubewatch.timefmt import k8s_time

__all__ = ["MAX_ATTEMPTS", "EventRecorder", "JsonApi"]

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 12
"""Calls tried for one pending update before it is given up (client-go's
``maxTriesPerEvent``): with the 10 s interval, two minutes of an unreachable API server."""
MESSAGE_CHARS = 1024
"""Messages are cut to this length: the limit events.k8s.io puts on a note, and more
than anyone reads in ``kubectl describe``."""
REASON_CHARS = 128
"""Reasons are short UpperCamelCase words; anything longer is a mistake, cut here."""

EventKind = Literal["Normal", "Warning"]


class JsonApi(Protocol):
    """What the recorder and the leader elector need of
    :class:`~kubewatch.kube.client.ClusterClient` (tests pass a fake)."""

    def get_json(
        self, path: str, params: list[tuple[str, str]] | None = None
    ) -> dict[str, Any]: ...

    def request_json(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        *,
        params: list[tuple[str, str]] | None = None,
        content_type: str = "application/json",
    ) -> dict[str, Any]: ...


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass(frozen=True, slots=True)
class _Occurrence:
    type: EventKind
    reason: str
    message: str
    at: float
    """clock() when recorded."""
    wall: datetime


@dataclass(slots=True)
class _Series:
    """The occurrences of one key that share one Event object."""

    type: EventKind
    reason: str
    message: str
    count: int
    """Occurrences so far: what the Event's ``count`` should say."""
    sent: int
    """The count the server has (0: no Event created yet). ``sent < count``: dirty."""
    first: str
    last: str
    last_seen: float
    """clock() of the latest occurrence: the window runs from it."""
    next_call: float = -math.inf
    """clock() before which no API call is made for this key."""
    name: str | None = None
    """The Event object's name once created."""
    failures: int = 0
    """Failed calls in a row for the pending update."""


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
        self._involved: dict[str, str] = {
            "apiVersion": involved.get("apiVersion", "v1"),
            "kind": involved["kind"],
            "name": involved["name"],
            "namespace": involved.get("namespace", namespace),
        }
        if involved.get("uid"):
            self._involved["uid"] = involved["uid"]
        self._resolve_uid = resolve_uid and "uid" not in self._involved
        self._client = client
        self._component = component
        self._clock = clock
        self._wall = wall
        self._window = window
        self._max_keys = max_keys
        self._min_interval = min_interval
        self._queue_size = queue_size
        self._events_path = f"/api/v1/namespaces/{namespace}/events"
        self._lock = threading.Lock()
        # Under _lock: at most queue_size occurrences waiting for the worker.
        self._queue: deque[_Occurrence] = deque()
        self._dropped = 0
        # Worker only (whoever calls process(); one at a time, _process_lock):
        # _series holds at most max_keys keys, least recently seen first; _dirty is the
        # keys of _series whose sent < count, in the order they became dirty.
        self._process_lock = threading.Lock()
        self._series: OrderedDict[tuple[str, str, str], _Series] = OrderedDict()
        self._dirty: dict[tuple[str, str, str], None] = {}
        self._budget = TokenBucket(per_second, burst, clock=clock)
        self._last_name_ns = 0
        self._refusal_logged = False
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

    def normal(self, reason: str, message: str) -> None:
        """Record a ``Normal`` occurrence."""
        self._record("Normal", reason, message)

    def warning(self, reason: str, message: str) -> None:
        """Record a ``Warning`` occurrence."""
        self._record("Warning", reason, message)

    def _record(self, kind: EventKind, reason: str, message: str) -> None:
        try:
            occurrence = _Occurrence(
                kind,
                str(reason)[:REASON_CHARS],
                str(message)[:MESSAGE_CHARS],
                self._clock(),
                self._wall(),
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
            self._observe(occurrence)
        if self._dirty and self._resolve_uid:
            self._resolve_uid = False
            self._lookup_uid()
        next_due: float | None = None
        for key in list(self._dirty):
            series = self._series.get(key)
            if series is None or series.sent >= series.count:
                self._dirty.pop(key, None)
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
            self._send(series, now)
            if series.sent >= series.count:
                self._dirty.pop(key, None)
            else:
                next_due = series.next_call if next_due is None else min(next_due, series.next_call)
        return next_due

    def _observe(self, occurrence: _Occurrence) -> None:
        key = (occurrence.type, occurrence.reason, occurrence.message)
        series = self._series.get(key)
        stamp = k8s_time(occurrence.wall)
        if series is None or occurrence.at - series.last_seen > self._window:
            previous = series
            series = _Series(
                occurrence.type,
                occurrence.reason,
                occurrence.message,
                count=1,
                sent=0,
                first=stamp,
                last=stamp,
                last_seen=occurrence.at,
            )
            if previous is not None:
                series.next_call = previous.next_call
                if previous.sent < previous.count:
                    log.debug("Kubernetes Event %s: an unsent update was superseded", key[1])
            self._series[key] = series
        else:
            series.count += 1
            series.last = stamp
            series.last_seen = occurrence.at
        self._series.move_to_end(key)
        self._dirty[key] = None
        while len(self._series) > self._max_keys:
            old_key, old = self._series.popitem(last=False)
            self._dirty.pop(old_key, None)
            if old.sent < old.count:
                log.debug("Kubernetes Event %s: forgotten before it was sent", old_key[1])

    def _send(self, series: _Series, now: float) -> None:
        """One call for ``series``: create its Event, or PATCH the count. Errors are
        logged; a retryable one leaves the series dirty for its next turn."""
        series.next_call = now + self._min_interval
        count = series.count
        try:
            if series.name is None:
                series.name = self._create(series, count)
            else:
                try:
                    self._client.request_json(
                        "PATCH",
                        f"{self._events_path}/{series.name}",
                        {"count": count, "lastTimestamp": series.last},
                        content_type="application/strategic-merge-patch+json",
                    )
                except ApiError as e:
                    if e.status != 404:
                        raise
                    # Expired (event TTL) or deleted: start a new Event with the count.
                    series.name = self._create(series, count)
        except ApiUnreachable as e:
            self._failed(series, e, retry=True)
            return
        except ApiError as e:
            retry = e.status == 429 or e.status >= 500
            self._failed(series, e, retry=retry)
            return
        except Exception as e:
            log.debug("Kubernetes Event %s: unexpected error", series.reason, exc_info=True)
            self._failed(series, e, retry=False)
            return
        series.sent = count
        series.failures = 0

    def _failed(self, series: _Series, error: Exception, *, retry: bool) -> None:
        series.failures += 1
        if retry and series.failures < MAX_ATTEMPTS:
            log.debug("Kubernetes Event %s not recorded yet: %s", series.reason, error)
            return
        series.sent = series.count  # given up: the next occurrence tries again
        series.failures = 0
        if not retry and not self._refusal_logged:
            self._refusal_logged = True
            log.warning(
                "cannot record Kubernetes Event %s on %s/%s (further failures at DEBUG): %s",
                series.reason,
                self._involved["namespace"],
                self._involved["name"],
                error,
            )
        else:
            log.debug("Kubernetes Event %s given up: %s", series.reason, error)

    def _create(self, series: _Series, count: int) -> str:
        """POST a new Event for ``series`` carrying ``count``; its name."""
        name = f"{self._involved['name']}.{self._unique_suffix()}"
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": name, "namespace": self.namespace},
            "involvedObject": dict(self._involved),
            "reason": series.reason,
            "message": series.message,
            "type": series.type,
            "source": {"component": self._component},
            "reportingComponent": self._component,
            "reportingInstance": self._involved["name"],
            "firstTimestamp": series.first,
            "lastTimestamp": series.last,
            "count": count,
        }
        created = self._client.request_json("POST", self._events_path, body)
        metadata = created.get("metadata")
        if isinstance(metadata, dict) and metadata.get("name"):
            return str(metadata["name"])
        return name

    def _unique_suffix(self) -> str:
        """Nanoseconds of the wall time in hex, as client-go names Events; strictly
        increasing within this recorder, so two Events never share a name."""
        ns = int(self._wall().timestamp() * 1e9)
        self._last_name_ns = max(ns, self._last_name_ns + 1)
        return f"{self._last_name_ns:x}"

    def _lookup_uid(self) -> None:
        """Learn the Pod's UID once, so that ``kubectl describe pod`` finds the Events."""
        if self._involved["kind"] != "Pod":
            return
        path = f"/api/v1/namespaces/{self._involved['namespace']}/pods/{self._involved['name']}"
        try:
            pod = self._client.get_json(path)
            uid = (pod.get("metadata") or {}).get("uid")
        except Exception as e:
            log.info(
                "cannot read Pod %s/%s for its UID (set POD_UID from metadata.uid): its "
                "Events are recorded but `kubectl describe pod` does not list them: %s",
                self._involved["namespace"],
                self._involved["name"],
                e,
            )
            return
        if uid:
            self._involved["uid"] = str(uid)

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
