"""Kubernetes Events (``kind: Event``) as alerts.

A watched resource whose kind is ``Event`` is not reported as creates and updates of
Event objects: each *occurrence* that passes the resource's filters becomes one alert
whose ``k8sEvent`` says what happened to which object. :class:`KubeEventAlerts` is fed the
Event objects the informer hands over (adds and updates; a delete of an Event is its TTL
expiring and never an alert) and returns the alert to deliver, or ``None``.

Both schemas are read, whichever API the resource resolved to (the fields of the two do
not overlap, so no version switch is needed):

============================  ==================================  ==============================
                              core/v1                             events.k8s.io/v1
============================  ==================================  ==============================
involved object               ``involvedObject``                  ``regarding``
message                       ``message``                         ``note``
count                         ``series.count``, ``count``         ``series.count``,
                                                                  ``deprecatedCount``
source                        ``source.component``,               ``reportingController``,
                              ``reportingComponent``              ``deprecatedSource.component``
first seen                    ``firstTimestamp``, ``eventTime``   ``deprecatedFirstTimestamp``,
                                                                  ``eventTime``
last seen                     ``series.lastObservedTime``,        ``series.lastObservedTime``,
                              ``lastTimestamp``, ``eventTime``    ``deprecatedLastTimestamp``,
                                                                  ``eventTime``
============================  ==================================  ==============================

The first field present wins; ``metadata.creationTimestamp`` is the last resort for both
times, and a count that is absent or not positive is 1.

What is reported, in order:

1. **Filters** (``types``, ``reasons`` full-matched, ``message`` searched,
   ``involvedKinds`` case-insensitive): an Event that fails one is dropped and leaves no
   trace in the repeat state.
2. **Start time**: an Event last seen before kubewatch started is history, not news
   (the initial list, and late updates of old Events). One without any timestamp is
   reported. Times are compared with kubewatch's clock, so clock skew between the API
   server's writers and kubewatch shifts this boundary by the skew.
3. **Occurrences**: a new Event object is an occurrence; an update of one is an
   occurrence only when its count went up or its last-seen time moved forward (a label
   edit is not).
4. **Repeat window**: occurrences share a *repeat key*, (involved object, reason), the
   involved object being its UID or else kind/namespace/name. The first occurrence of a key
   is reported; later ones within ``repeatWindow`` of the key's last *report* are
   suppressed; the first one after the window is reported with the count at that moment.

An alert is typed ``create`` when it is the first report of its Event object (by UID)
and ``update`` after that. Memory is bounded by ``max_tracked`` repeat keys and as many
Event objects, oldest evicted first; eviction errs towards reporting (an evicted key's
next occurrence is reported as if new), never towards silence.

Thread-safe: with ``namespaces.include: [a, b]`` one instance serves one informer per
namespace, each on its own thread; a lock makes each observation one step over the
repeat state (building the alert itself needs no lock).
"""

from __future__ import annotations

import logging
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from kubewatch.config import ResourceConfig
from kubewatch.events import Event, EventType, InvolvedObject, KubeEventInfo
from kubewatch.timefmt import parse_time, rfc3339
from kubewatch.watch.normalize import ResourceInfo

__all__ = ["MESSAGE_CHARS", "KubeEventAlerts", "summarize_event"]

log = logging.getLogger(__name__)

MESSAGE_CHARS = 200
"""Longest message shown in a summary line before it is cut with ``…``: enough for a
scheduler's "0/12 nodes are available: …", short enough for one chat line. The alert's
``k8sEvent.message`` is always complete."""

TIMES = "\N{MULTIPLICATION SIGN}"
"""Before the count in a summary: ``(×5)``."""  # noqa: RUF001

DEFAULT_MAX_TRACKED = 10_000
"""Repeat keys (and as many Event objects) remembered: about 3 MB for both when full
(tracemalloc, UID keys), and more distinct (object, reason) pairs than a cluster
produces within a usual repeat window."""

_RepeatKey = tuple[str, str]
"""(involved object identity, reason)."""


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass(frozen=True, slots=True)
class _Reading:
    """What one Event object says, from either schema."""

    identity: str
    """The Event object's UID (``namespace/name`` if it has none)."""
    info: KubeEventInfo
    first_seen: datetime | None
    last_seen: datetime | None

    @property
    def repeat_key(self) -> _RepeatKey:
        inv = self.info.involved
        who = inv.uid or f"{inv.kind}/{inv.namespace or ''}/{inv.name}"
        return who, self.info.reason


@dataclass(slots=True)
class _Seen:
    """The last occurrence of one Event object that kubewatch looked at."""

    count: int
    last_seen: datetime | None
    reported: bool = False
    """An alert was built for this Event object (the next one is an ``update``)."""


class KubeEventAlerts:
    """Turns added or modified Event objects of one resource into alerts.

    ``started_at`` and the times ``clock`` returns must be timezone-aware. ``clock`` is
    the time of observation: it stamps ``observedAt`` and measures the repeat window.
    """

    def __init__(
        self,
        cluster: str,
        resource: ResourceInfo,
        config: ResourceConfig,
        *,
        started_at: datetime,
        clock: Callable[[], datetime] = _utc_now,
        max_tracked: int = DEFAULT_MAX_TRACKED,
    ) -> None:
        if max_tracked < 1:
            raise ValueError(f"max_tracked must be at least 1, got {max_tracked}")
        self.cluster = cluster
        self.resource = resource
        self._types = frozenset(config.types) if config.types is not None else None
        self._reasons = (
            tuple(re.compile(r) for r in config.reasons) if config.reasons is not None else None
        )
        self._message = re.compile(config.message) if config.message is not None else None
        self._kinds = (
            frozenset(k.casefold() for k in config.involved_kinds)
            if config.involved_kinds is not None
            else None
        )
        self._window = timedelta(seconds=config.repeat_window)
        # Event timestamps have whole seconds: an Event of the second kubewatch started in
        # may be new, so the rule compares against the start of that second.
        self._started_at = _aware(started_at, "started_at").replace(microsecond=0)
        self._clock = clock
        self._max_tracked = max_tracked
        self._lock = threading.Lock()
        """Held while ``_reported_at`` and ``_objects`` are read or changed: informers of
        several namespaces call in from their own threads."""

        self._reported_at: OrderedDict[_RepeatKey, datetime] = OrderedDict()
        """Repeat key → clock time of its last report.

        Invariants: in order of report (a report moves its key to the end), so the first
        entry is the oldest report; at most ``max_tracked`` entries (the oldest is evicted);
        a key is suppressed if and only if it is here with a time less than one window ago.
        Entries whose window has passed are popped from the front on every call, so each
        key costs O(1) amortized to expire. (If the clock steps back, the order may lag
        behind the times: pruning then stops early and the size bound still holds.)
        """
        self._objects: OrderedDict[str, _Seen] = OrderedDict()
        """Event object identity → its last occurrence seen, for telling occurrences from
        other edits and ``create`` from ``update``.

        Invariants: only Event objects that passed the filters and the start time; least
        recently observed first; at most ``max_tracked`` entries (the oldest is evicted,
        and :meth:`forget` drops an Event object that was deleted). Not expired by time:
        an Event that recurs after a quiet hour must still be an ``update``.
        """

    def observe(self, obj: Mapping[str, Any]) -> Event | None:
        """The alert for an added or modified Event object, or ``None`` when it is
        filtered out, older than kubewatch, not a new occurrence, or a repeat within the
        window."""
        reading = _read(obj)
        if not self._admits(reading.info):
            return None
        if reading.last_seen is not None and reading.last_seen < self._started_at:
            return None
        with self._lock:
            now = _aware(self._clock(), "clock()")
            event_type = self._occurrence(reading, now)
        if event_type is None:
            return None
        return self._alert(event_type, obj, reading, now)

    def _occurrence(self, reading: _Reading, now: datetime) -> EventType | None:
        """Update the repeat state for ``reading``; the alert's type, or ``None`` when it
        is not reported. Under ``_lock``."""
        self._expire(now)

        seen = self._objects.get(reading.identity)
        if seen is None:
            seen = _Seen(reading.info.count, reading.last_seen)
            self._objects[reading.identity] = seen
            _bound(self._objects, self._max_tracked)
        else:
            self._objects.move_to_end(reading.identity)
            if not _recurred(seen, reading):
                return None
            seen.count, seen.last_seen = reading.info.count, reading.last_seen

        key = reading.repeat_key
        last = self._reported_at.get(key)
        if last is not None and now - last < self._window:
            log.debug(
                "repeat of %s %s within %s: suppressed (count %d)",
                key[0],
                key[1],
                self._window,
                reading.info.count,
            )
            return None
        self._reported_at[key] = now
        self._reported_at.move_to_end(key)
        _bound(self._reported_at, self._max_tracked)

        first = not seen.reported
        seen.reported = True
        return EventType.CREATE if first else EventType.UPDATE

    def forget(self, obj: Mapping[str, Any]) -> None:
        """Drop what is remembered of a deleted Event object (its repeat key stays: the
        window is about the involved object and reason, not about one Event object)."""
        identity = _identity(obj.get("metadata") or {})
        with self._lock:
            self._objects.pop(identity, None)

    def _admits(self, info: KubeEventInfo) -> bool:
        if self._types is not None and info.type not in self._types:
            return False
        if self._reasons is not None and not any(r.fullmatch(info.reason) for r in self._reasons):
            return False
        if self._message is not None and not self._message.search(info.message):
            return False
        return self._kinds is None or info.involved.kind.casefold() in self._kinds

    def _expire(self, now: datetime) -> None:
        """Pop repeat keys whose window has passed, oldest report first."""
        cutoff = now - self._window
        while self._reported_at:
            key, at = next(iter(self._reported_at.items()))
            if at > cutoff:
                return
            del self._reported_at[key]

    def _alert(
        self, event_type: EventType, obj: Mapping[str, Any], reading: _Reading, now: datetime
    ) -> Event:
        meta = obj.get("metadata") or {}
        info = self.resource
        return Event(
            type=event_type,
            cluster=self.cluster,
            kind=info.kind,
            api_version=info.api_version,
            resource=info.resource,
            namespace=meta.get("namespace") or None,
            name=str(meta.get("name", "")),
            uid=str(meta.get("uid", "")),
            resource_version=str(meta.get("resourceVersion", "")),
            observed_at=rfc3339(now),
            labels=dict(meta.get("labels") or {}),
            changes=(),
            summary=summarize_event(self.cluster, reading.info),
            k8s_event=reading.info,
        )


def summarize_event(cluster: str, info: KubeEventInfo) -> str:
    """One line: ``[prod] Warning BackOff Pod shop/web-1: Back-off restarting failed
    container (×5)``; the count only when above 1, the message on one line and cut at
    :data:`MESSAGE_CHARS`."""  # noqa: RUF002
    inv = info.involved
    where = f"{inv.namespace}/{inv.name}" if inv.namespace else inv.name
    line = " ".join(p for p in (f"[{cluster}]", info.type, info.reason, inv.kind, where) if p)
    message = " ".join(info.message.split())
    if message:
        if len(message) > MESSAGE_CHARS:
            message = message[: MESSAGE_CHARS - 1] + "…"
        line += f": {message}"
    if info.count > 1:
        line += f" ({TIMES}{info.count})"
    return line


# --------------------------------------------------------------------------- reading


def _read(obj: Mapping[str, Any]) -> _Reading:
    meta = _mapping(obj.get("metadata"))
    ref = _mapping(obj.get("regarding") or obj.get("involvedObject"))
    series = _mapping(obj.get("series"))
    created = meta.get("creationTimestamp")
    first_seen = _first_time(
        obj.get("firstTimestamp"),
        obj.get("deprecatedFirstTimestamp"),
        obj.get("eventTime"),
        created,
    )
    last_seen = _first_time(
        series.get("lastObservedTime"),
        obj.get("lastTimestamp"),
        obj.get("deprecatedLastTimestamp"),
        obj.get("eventTime"),
        created,
    )
    info = KubeEventInfo(
        type=_text(obj.get("type")),
        reason=_text(obj.get("reason")),
        message=_text(obj.get("note") if obj.get("note") is not None else obj.get("message")),
        count=_count(series.get("count"), obj.get("count"), obj.get("deprecatedCount")),
        involved=InvolvedObject(
            kind=_text(ref.get("kind")),
            namespace=_text(ref.get("namespace")) or None,
            name=_text(ref.get("name")),
            uid=_text(ref.get("uid")),
        ),
        source=_text(
            obj.get("reportingController")
            or _mapping(obj.get("source")).get("component")
            or obj.get("reportingComponent")
            or _mapping(obj.get("deprecatedSource")).get("component")
        ),
        first_seen=rfc3339(first_seen) if first_seen else None,
        last_seen=rfc3339(last_seen) if last_seen else None,
    )
    return _Reading(_identity(meta), info, first_seen, last_seen)


def _identity(meta: Mapping[str, Any]) -> str:
    uid = meta.get("uid")
    if uid:
        return str(uid)
    return f"{meta.get('namespace') or ''}/{meta.get('name') or ''}"


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _count(*candidates: Any) -> int:
    """The first positive integer (a count of 0 is what an unset count reads as)."""
    for value in candidates:
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return 1


def _first_time(*candidates: Any) -> datetime | None:
    """The first candidate that is an RFC 3339 time (``Time`` or ``MicroTime``)."""
    for value in candidates:
        parsed = parse_time(value)
        if parsed is not None:
            return parsed
    return None


def _aware(dt: datetime, what: str) -> datetime:
    if dt.tzinfo is None or dt.utcoffset() is None:
        raise ValueError(f"{what} must be a timezone-aware datetime, got {dt!r}")
    return dt


def _recurred(seen: _Seen, reading: _Reading) -> bool:
    """Did this Event object occur again since ``seen``? Its count went up or its last
    seen time moved forward; any other edit (labels, annotations) is not an occurrence."""
    if reading.info.count > seen.count:
        return True
    if reading.last_seen is None:
        return False
    return seen.last_seen is None or reading.last_seen > seen.last_seen


def _bound(entries: OrderedDict[Any, Any], limit: int) -> None:
    """Evict the oldest entries beyond ``limit``."""
    while len(entries) > limit:
        entries.popitem(last=False)
