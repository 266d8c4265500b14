"""The health tracker: failures seen over time → firing, reminder and resolved notices.

Fed the :class:`~kubewatch.watch.health.Assessment` of every add and update of a watched
object (status-only updates included: they are what health is made of) and every delete,
it keeps one record per *alert key* ``(object uid, container, reason family)`` and says,
through ``emit``, what to send:

- **Fire once.** The first ongoing failure of a key fires one ``firing`` notice. While the
  key keeps failing, repeats only update the record (its ``restartCount``); nothing is sent.
  A past termination (a container's ``lastState`` while it runs again) fires when it is
  new — not when it is the one a resolved alert already covered.
- **Remind.** A firing key that is still failing ``remindAfter`` after its last notice is
  sent again (``reminder`` 1, 2, …; off with 0).
- **Resolve.** A firing key whose subject is healthy (a container running and ready; an
  object without the failure) for ``resolveAfter`` sends one ``resolved`` notice. Time is
  checked by :meth:`HealthTracker.tick` (called every second by the runtime), so recovery is
  reported without waiting for another change of the object. A deleted object (or one that
  left the entry's selection) resolves its firing keys at once.
- **Existing failures.** A failure seen in the initial list is recorded silently unless
  ``notifyExisting``: it is never sent, and neither is its recovery.
- **Restarts.** With a ``store`` (the durable state), firing and silent records are kept
  there; the next run loads them, so a failure it sees again is a repeat, not news. A
  loaded record sends no reminder and no recovery until the object is seen again (with a
  checkpoint, an object unchanged since is not); a delete while down still resolves it.

Ordering: ``emit`` is called with the tracker's lock held, so notices come out in decision
order (a key's ``resolved`` never precedes its ``firing``); it must be quick and must not
call back. Thread-safe: informers of several resources and namespaces call in from their
own threads, the runtime's ticker from another.

Memory: one record per failing key, and a memo (last termination seen) per recovered key
until its object is deleted, both capped at ``max_tracked``; beyond, the oldest is
forgotten (a forgotten firing key sends no recovery; a WARNING says so).
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from typing import Any, Protocol

from kubewatch.events import AlertState
from kubewatch.timefmt import parse_time, rfc3339
from kubewatch.watch.health import Assessment, Finding

__all__ = ["AlertStore", "HealthSettings", "HealthTracker", "Notice", "Subject"]

log = logging.getLogger(__name__)

DEFAULT_MAX_TRACKED = 50_000
"""Failing keys (and as many recovered ones) remembered: a few hundred bytes each, and
more failing containers than a cluster has even in a bad rollout."""

Key = tuple[str, str, str]
"""(object uid, subject: container name or "", reason family)."""


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


class AlertStore(Protocol):
    """Where records outlive the process (``state.path``); writes must not block."""

    def load(self) -> list[dict[str, Any]]: ...

    def put(self, key: str, doc: dict[str, Any]) -> None: ...

    def delete(self, key: str) -> None: ...


@dataclass(frozen=True, slots=True)
class Subject:
    """The object an alert is about, as its events name it."""

    cluster: str
    kind: str
    api_version: str
    resource: str
    namespace: str | None
    name: str
    uid: str
    resource_version: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class HealthSettings:
    """One resource entry's ``health`` (seconds)."""

    resolve_after: float = 300.0
    remind_after: float = 3600.0
    notify_existing: bool = False
    log_lines: int = 0


@dataclass(frozen=True, slots=True)
class Notice:
    """One alert to send."""

    state: AlertState
    subject: Subject
    finding: Finding
    """The latest finding of the key; its ``reason`` is the one the alert first fired with."""
    since: str
    reminder: int = 0
    log_lines: int = 0
    """Attach this many log lines (0: none; only first notices of a container)."""
    while_down: bool = False
    save: tuple[str, dict[str, Any] | None] | None = None
    """For the store, once the alert is delivered or spooled: (key, record to put, or
    ``None`` to delete). Applied after delivery, so the stored record never claims an
    alert that a crash lost before it was spooled."""


@dataclass(slots=True)
class _Record:
    """One failing key. Invariant: in ``_active`` iff ``state`` is firing or silent."""

    subject: Subject
    finding: Finding
    since: str
    firing: bool
    """False: silent (an existing failure at start, not reported)."""
    sent_at: datetime | None = None
    reminder: int = 0
    healthy_since: datetime | None = None
    confirmed: bool = True
    """Seen in this run (a record loaded from the store is not, until seen again)."""
    settings: HealthSettings | None = None


class HealthTracker:
    """Alert records of every watched object; see the module docstring."""

    def __init__(
        self,
        emit: Callable[[Notice], None],
        *,
        clock: Callable[[], datetime] = _utc_now,
        store: AlertStore | None = None,
        max_tracked: int = DEFAULT_MAX_TRACKED,
    ) -> None:
        self._emit = emit
        self._clock = clock
        self._store = store
        self._max = max_tracked
        self._lock = threading.Lock()
        # Under _lock. Invariants: a key is in at most one of _active and _memo; _by_uid[u]
        # is exactly the keys of uid u in either (no empty sets).
        self._active: OrderedDict[Key, _Record] = OrderedDict()
        """Firing and silent keys, oldest first."""
        self._memo: OrderedDict[Key, str | None] = OrderedDict()
        """Recovered keys → the ``since`` of the finding they recovered from."""
        self._by_uid: dict[str, set[Key]] = {}
        if store is not None:
            self._load(store)

    @property
    def firing(self) -> int:
        """Keys firing now (informational)."""
        with self._lock:
            return sum(1 for r in self._active.values() if r.firing)

    # -- intake ---------------------------------------------------------------------------

    def observe(
        self,
        subject: Subject,
        assessment: Assessment,
        settings: HealthSettings,
        *,
        initial: bool = False,
        while_down: bool = False,
    ) -> None:
        """One add or update of ``subject``'s object, assessed."""
        uid = subject.uid
        with self._lock:
            now = self._clock()
            found = {(uid, f.subject, f.family): f for f in assessment.findings}
            for key, finding in found.items():
                record = self._active.get(key)
                if record is not None:
                    record.subject, record.settings = subject, settings
                    record.finding = _with_reason(finding, record.finding.reason)
                    record.confirmed = True
                    continue
                if not finding.ongoing and key in self._memo and self._memo[key] == finding.since:
                    continue  # the termination a resolved alert already covered
                self._memo.pop(key, None)
                firing = settings.notify_existing or not initial
                record = _Record(
                    subject, finding, finding.since or rfc3339(now), firing, settings=settings
                )
                self._add(key, record)
                if firing:
                    self._send(key, record, now, while_down, first=True)
                else:
                    self._save(key, record)
            for key in list(self._by_uid.get(uid, ())):
                record = self._active.get(key)
                if record is None:
                    continue
                record.confirmed = True
                now_found = found.get(key)
                if (now_found is not None and now_found.ongoing) or key[
                    1
                ] not in assessment.healthy:
                    record.healthy_since = None
                elif record.healthy_since is None:
                    record.healthy_since = now
                self._due(key, record, now, while_down)

    def gone(self, uid: str, *, while_down: bool = False) -> None:
        """The object was deleted, or left the selection: its firing keys resolve now."""
        with self._lock:
            for key in self._by_uid.pop(uid, set()):
                self._memo.pop(key, None)
                record = self._active.pop(key, None)
                if record is not None:
                    self._end(key, record, while_down)

    def tick(self) -> None:
        """Send what time alone decides: recoveries and reminders that are due."""
        with self._lock:
            now = self._clock()
            for key, record in list(self._active.items()):
                self._due(key, record, now, False)

    # -- decisions (under _lock) ----------------------------------------------------------

    def _due(self, key: Key, record: _Record, now: datetime, while_down: bool) -> None:
        settings = record.settings
        if settings is None or not record.confirmed:
            return
        if record.healthy_since is not None:
            if now - record.healthy_since >= timedelta(seconds=settings.resolve_after):
                self._resolve(key, record, while_down)
            return
        if not record.firing or settings.remind_after <= 0 or record.sent_at is None:
            return
        if now - record.sent_at >= timedelta(seconds=settings.remind_after):
            record.reminder += 1
            self._send(key, record, now, while_down, first=False)

    def _send(
        self, key: Key, record: _Record, now: datetime, while_down: bool, *, first: bool
    ) -> None:
        record.sent_at = now
        settings = record.settings or HealthSettings()
        self._emit(
            Notice(
                AlertState.FIRING,
                record.subject,
                record.finding,
                record.since,
                reminder=record.reminder,
                log_lines=settings.log_lines if first and record.finding.subject else 0,
                while_down=while_down,
                save=None if self._store is None else (_store_key(key), _to_doc(key, record)),
            )
        )

    def _resolve(self, key: Key, record: _Record, while_down: bool) -> None:
        del self._active[key]
        self._memo[key] = record.finding.since
        self._bound(self._memo)
        self._end(key, record, while_down)

    def _end(self, key: Key, record: _Record, while_down: bool) -> None:
        """``key`` left ``_active``: its recovery is sent (if it fired), its record deleted."""
        if not record.firing:
            if self._store is not None:
                self._store.delete(_store_key(key))
            return
        save = None if self._store is None else (_store_key(key), None)
        notice = Notice(
            AlertState.RESOLVED,
            record.subject,
            record.finding,
            record.since,
            while_down=while_down,
            save=save,
        )
        self._emit(notice)

    def _add(self, key: Key, record: _Record) -> None:
        self._active[key] = record
        self._by_uid.setdefault(key[0], set()).add(key)
        self._bound(self._active)

    def _bound(self, entries: OrderedDict[Key, Any]) -> None:
        while len(entries) > self._max:
            key, value = entries.popitem(last=False)
            self._forget(key)
            if isinstance(value, _Record) and value.firing:
                log.warning(
                    "health: more than %d failing keys; forgot %s %s (no recovery will be sent)",
                    self._max,
                    value.subject.kind,
                    value.subject.name,
                )

    def _forget(self, key: Key) -> None:
        """Drop an evicted ``key`` from the index and the store."""
        keys = self._by_uid.get(key[0])
        if keys is not None and key not in self._active and key not in self._memo:
            keys.discard(key)
            if not keys:
                del self._by_uid[key[0]]
        if self._store is not None:
            self._store.delete(_store_key(key))

    # -- durable records ------------------------------------------------------------------

    def _save(self, key: Key, record: _Record) -> None:
        if self._store is not None:
            self._store.put(_store_key(key), _to_doc(key, record))

    def _load(self, store: AlertStore) -> None:
        for doc in store.load():
            try:
                key, record = _from_doc(doc)
            except (KeyError, TypeError, ValueError):
                log.warning("health: ignoring an unreadable stored alert: %r", doc)
                continue
            self._add(key, record)
        if self._active:
            log.info("health: %d alert(s) from the last run (not sent again)", len(self._active))


def _store_key(key: Key) -> str:
    return "/".join(key)


def _to_doc(key: Key, record: _Record) -> dict[str, Any]:
    s, f = record.subject, record.finding
    return {
        "key": list(key),
        "subject": [
            s.cluster,
            s.kind,
            s.api_version,
            s.resource,
            s.namespace,
            s.name,
            s.resource_version,
            dict(s.labels),
        ],
        "finding": [f.reason, f.exit_code, f.restart_count, f.since, f.message],
        "since": record.since,
        "firing": record.firing,
        "sentAt": None if record.sent_at is None else rfc3339(record.sent_at),
        "reminder": record.reminder,
    }


def _from_doc(doc: dict[str, Any]) -> tuple[Key, _Record]:
    uid, container, family = (str(part) for part in doc["key"])
    cluster, kind, api_version, resource, namespace, name, rv, labels = doc["subject"]
    reason, exit_code, restarts, since, message = doc["finding"]
    subject = Subject(cluster, kind, api_version, resource, namespace, name, uid, rv, labels)
    finding = Finding(container, reason, True, exit_code, restarts, since, message)
    record = _Record(
        subject,
        finding,
        str(doc["since"]),
        bool(doc["firing"]),
        sent_at=parse_time(doc.get("sentAt")),
        reminder=int(doc.get("reminder") or 0),
        confirmed=False,
    )
    return (uid, container, family), record


def _with_reason(finding: Finding, reason: str) -> Finding:
    """``finding`` under the reason its alert fired with (a family shares one alert)."""
    return finding if finding.reason == reason else replace(finding, reason=reason)
