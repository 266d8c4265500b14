"""Health alerts at run time: detectors and tracker wired to delivery, a ticker, and logs.

One :class:`HealthAlerts` per running kubewatch (it outlives reloads, so an alert firing
before a reload is not sent again after it). Each resource entry with ``health`` gets a
:class:`HealthWatch` from :meth:`HealthAlerts.entry`, which the entry's handler feeds on the
informer's thread: assessing an object and deciding about it is quick and never blocks.

Notices leave the tracker, in decision order, into an *outbox* served by one thread
(``kubewatch-health``) that attaches logs when asked (a blocking request to the kubelet
through the API server) and hands the event to ``deliver``. Order is kept: a ``resolved``
never overtakes its ``firing``. A notice that waited longer than :data:`LOG_WAIT` seconds
goes out without logs (a burst of 300 crash-looping Pods is not held up by 300 log
requests). The outbox holds at most :data:`OUTBOX_LIMIT` notices; beyond, notices are
delivered at once without logs (``deliver`` never blocks), so nothing is dropped.

A second thread (``kubewatch-health-tick``) calls :meth:`HealthTracker.tick` every
:data:`TICK` seconds: recoveries and reminders are due by time, not by the next change.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any, Protocol

from kubewatch.config import HealthConfig
from kubewatch.events import AlertInfo, AlertState, Event, EventType
from kubewatch.timefmt import rfc3339
from kubewatch.watch.health import assess
from kubewatch.watch.normalize import ResourceInfo
from kubewatch.watch.tracker import AlertStore, HealthSettings, HealthTracker, Notice, Subject

__all__ = [
    "LOG_WAIT",
    "OUTBOX_LIMIT",
    "TICK",
    "HealthAlerts",
    "HealthScope",
    "HealthSource",
    "HealthWatch",
    "alert_event",
]

log = logging.getLogger(__name__)

TICK = 1.0
"""Seconds between two looks at recoveries and reminders due: an alert resolves at most
this late."""
LOG_WAIT = 30.0
"""Seconds a notice may wait in the outbox and still fetch logs."""
OUTBOX_LIMIT = 10_000
"""Notices waiting for the outbox thread; beyond, they are delivered without logs."""


class LogFetch(Protocol):
    def fetch(
        self, namespace: str, pod: str, container: str, lines: int, *, previous: bool
    ) -> str | None: ...


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


_Route = tuple[Callable[[Event], None], AlertStore | None]
"""Where one owner's alerts go: its ``deliver``, and its store of records."""


class HealthWatch:
    """One entry's health: assess and track its objects (informer threads)."""

    def __init__(
        self, tracker: HealthTracker, info: ResourceInfo, cluster: str, config: HealthConfig
    ):
        self._tracker = tracker
        self._info = info
        self._cluster = cluster
        self._reasons = frozenset(config.reasons)
        self._settings = HealthSettings(
            resolve_after=config.resolve_after,
            remind_after=config.remind_after,
            notify_existing=config.notify_existing,
            log_lines=config.log_lines,
        )

    def observe(self, obj: dict[str, Any], *, initial: bool, while_down: bool = False) -> None:
        assessment = assess(self._info.kind, obj, self._reasons)
        self._tracker.observe(
            self._subject(obj), assessment, self._settings, initial=initial, while_down=while_down
        )

    def gone(self, obj: dict[str, Any], *, while_down: bool = False) -> None:
        uid = str((obj.get("metadata") or {}).get("uid", ""))
        self._tracker.gone(uid, while_down=while_down)

    def _subject(self, obj: dict[str, Any]) -> Subject:
        meta = obj.get("metadata") or {}
        info = self._info
        return Subject(
            cluster=self._cluster,
            kind=info.kind,
            api_version=info.api_version,
            resource=info.resource,
            namespace=meta.get("namespace") or None,
            name=str(meta.get("name", "")),
            uid=str(meta.get("uid", "")),
            resource_version=str(meta.get("resourceVersion", "")),
            labels=dict(meta.get("labels") or {}),
        )


class HealthSource(Protocol):
    """What builds an entry's :class:`HealthWatch`: :class:`HealthAlerts` (the file's
    alerts) or a :class:`HealthScope` (a Notifier's)."""

    def entry(self, info: ResourceInfo, cluster: str, config: HealthConfig) -> HealthWatch: ...


class HealthScope:
    """One Notifier's alerts: a tracker of its own (the file and a Notifier watching the
    same Pod each hear of it once), the outbox and ticker of the :class:`HealthAlerts`."""

    def __init__(self, alerts: HealthAlerts, tracker: HealthTracker) -> None:
        self._alerts = alerts
        self.tracker = tracker

    def entry(self, info: ResourceInfo, cluster: str, config: HealthConfig) -> HealthWatch:
        self._alerts.start()
        return HealthWatch(self.tracker, info, cluster, config)


class HealthAlerts:
    """The tracker, its ticker and its outbox; threads start with the first entry.

    The file's alerts go to ``deliver`` and ``store``; each Notifier's to its own
    (:meth:`scope`), through the same two threads."""

    def __init__(
        self,
        deliver: Callable[[Event], None],
        *,
        store: AlertStore | None = None,
        logs: LogFetch | None = None,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        self._logs = logs
        self._clock = clock
        route: _Route = (deliver, store)
        self.tracker = HealthTracker(
            lambda notice: self._enqueue(notice, route), clock=clock, store=store
        )
        self._cond = threading.Condition(threading.Lock())
        # Under _cond: notices in decision order with their monotonic enqueue time.
        self._outbox: deque[tuple[Notice, float, _Route]] = deque()
        self._scopes: dict[str, HealthScope] = {}  # under _cond: by Notifier
        self._stopped = threading.Event()
        self._threads: list[threading.Thread] = []

    def entry(self, info: ResourceInfo, cluster: str, config: HealthConfig) -> HealthWatch:
        self.start()
        return HealthWatch(self.tracker, info, cluster, config)

    def scope(
        self, name: str, deliver: Callable[[Event], None], store: AlertStore | None = None
    ) -> HealthScope:
        """The alerts of Notifier ``name`` (made on first use, with its records loaded
        from ``store``), until :meth:`release`."""
        with self._cond:
            found = self._scopes.get(name)
        if found is not None:
            return found
        route: _Route = (deliver, store)
        tracker = HealthTracker(  # reads the store: not under the lock the outbox needs
            lambda notice: self._enqueue(notice, route), clock=self._clock, store=store
        )
        with self._cond:
            return self._scopes.setdefault(name, HealthScope(self, tracker))

    def release(self, name: str) -> None:
        """Notifier ``name`` stopped: its tracker goes (notices already queued are sent)."""
        with self._cond:
            self._scopes.pop(name, None)

    def start(self) -> None:
        with self._cond:
            if self._threads or self._stopped.is_set():
                return
            self._threads = [
                threading.Thread(target=self._serve, name="kubewatch-health", daemon=True),
                threading.Thread(target=self._tick, name="kubewatch-health-tick", daemon=True),
            ]
        for thread in self._threads:
            thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the threads; notices still waiting are delivered without logs."""
        self._stopped.set()
        with self._cond:
            self._cond.notify_all()
            threads = list(self._threads)
        for thread in threads:
            thread.join(timeout)
        with self._cond:
            rest, self._outbox = list(self._outbox), deque()
        for notice, _, route in rest:
            self._deliver(notice, route)

    # -- the outbox -----------------------------------------------------------------------

    def _deliver(self, notice: Notice, route: _Route, logs: str | None = None) -> None:
        """Deliver (and so spool) the alert, then keep its record: never the other way."""
        deliver, store = route
        deliver(alert_event(notice, self._clock(), logs))
        if notice.save is not None and store is not None:
            key, doc = notice.save
            if doc is None:
                store.delete(key)
            else:
                store.put(key, doc)

    def _enqueue(self, notice: Notice, route: _Route) -> None:
        """Called by a tracker under its lock: never blocks."""
        with self._cond:
            if len(self._outbox) < OUTBOX_LIMIT and self._threads and not self._stopped.is_set():
                self._outbox.append((notice, time.monotonic(), route))
                self._cond.notify()
                return
        self._deliver(notice, route)

    def _serve(self) -> None:
        while True:
            with self._cond:
                while not self._outbox and not self._stopped.is_set():
                    self._cond.wait()
                if not self._outbox:
                    return
                notice, queued, route = self._outbox.popleft()
            logs = None
            fresh = time.monotonic() - queued <= LOG_WAIT
            if notice.log_lines and self._logs is not None and fresh:
                logs = self._fetch(notice)
            try:
                self._deliver(notice, route, logs)
            except Exception:
                log.exception("health: delivering an alert failed")

    def _fetch(self, notice: Notice) -> str | None:
        s, f = notice.subject, notice.finding
        assert self._logs is not None
        try:
            return self._logs.fetch(
                s.namespace or "", s.name, f.subject, notice.log_lines, previous=f.previous
            )
        except Exception:  # never lose the alert over its logs
            log.exception("health: fetching logs of %s/%s failed", s.namespace, s.name)
            return None

    def _tick(self) -> None:
        while not self._stopped.wait(TICK):
            with self._cond:
                trackers = [self.tracker, *(s.tracker for s in self._scopes.values())]
            for tracker in trackers:
                try:
                    tracker.tick()
                except Exception:
                    log.exception("health: checking recoveries failed")


def alert_event(notice: Notice, now: datetime, logs: str | None = None) -> Event:
    """The Event of one notice (``type: alert``)."""
    s, f = notice.subject, notice.finding
    info = AlertInfo(
        state=notice.state,
        reason=f.reason,
        container=f.subject or None,
        exit_code=f.exit_code,
        restart_count=f.restart_count,
        since=notice.since,
        logs=logs,
        message=f.message,
        reminder=notice.reminder,
    )
    return Event(
        type=EventType.ALERT,
        cluster=s.cluster,
        kind=s.kind,
        api_version=s.api_version,
        resource=s.resource,
        namespace=s.namespace,
        name=s.name,
        uid=s.uid,
        resource_version=s.resource_version,
        observed_at=rfc3339(now),
        labels=dict(s.labels),
        summary=summarize_alert(s.cluster, s.kind, s.namespace, s.name, info),
        while_down=notice.while_down,
        alert=info,
    )


def summarize_alert(
    cluster: str, kind: str, namespace: str | None, name: str, alert: AlertInfo
) -> str:
    """``[prod] FIRING CrashLoopBackOff Pod shop/web-1 container app: exit code 1,
    4 restarts: back-off 5m0s restarting failed container`` (``RESOLVED …`` when over)."""
    where = f"{namespace}/{name}" if namespace else name
    state = "FIRING" if alert.state is AlertState.FIRING else "RESOLVED"
    if alert.reminder:
        state += f" (reminder {alert.reminder})"
    line = f"[{cluster}] {state} {alert.reason} {kind} {where}"
    if alert.container:
        line += f" container {alert.container}"
    if alert.state is AlertState.RESOLVED:
        return line
    details = []
    if alert.exit_code is not None:
        details.append(f"exit code {alert.exit_code}")
    if alert.restart_count:
        details.append(f"{alert.restart_count} restart{'' if alert.restart_count == 1 else 's'}")
    message = " ".join(alert.message.split())
    if message:
        details.append(message[:200])
    return f"{line}: {', '.join(details)}" if details else line
