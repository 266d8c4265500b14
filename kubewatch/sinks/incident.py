"""What an incident tool hears about an event: open an alert, or resolve the ones open.

PagerDuty, Opsgenie and Alertmanager all keep *alerts* that are opened and closed by a
key of the sender's choosing. kubewatch's key is the object and the reason, so that the
repeats of one problem land on one alert and different problems stay apart:

==============================  ===========  ===========================================
event                           action       reason in the key
==============================  ===========  ===========================================
health alert, ``firing``        trigger      its ``container/reason`` (or ``reason``)
health alert, ``resolved``      resolve      the same, so it closes what ``firing`` opened
Kubernetes Event (an alert)     trigger      the Event's reason, about its involved object
delete, ``resolveOnDelete``     resolve      every key this sink triggered for the object
delete                          trigger      ``Deleted``
create / update                 trigger      ``Created`` / ``Updated``
burst digest                    trigger      ``Digest`` of the type, about the kind
==============================  ===========  ===========================================

The object is its uid when known (a recreated object with the same name is another
object), else ``Kind/namespace/name``. A key is ``<cluster>:<object>:<reason>``: stable
across restarts and replicas, so a retried or duplicated trigger lands on the same alert.

Health alerts are events of ``type == "alert"``, their ``alert.state`` ``firing`` or
``resolved``; any other event is a change or a Kubernetes Event.

**Open keys.** To resolve on delete, a sink remembers the keys it triggered per object
(:class:`OpenKeys`, bounded: the least recently triggered objects are forgotten first).
The memory is kept per sink name for the life of the process (a reload keeps it) and,
with ``state.path``, in the state database (space ``incidents/<sink>``), so an object
deleted after a restart still resolves what it triggered before. Without state, an alert
triggered before a restart is left to the tool's own timeout (PagerDuty auto-resolve,
Opsgenie auto-close, Alertmanager endsAt).
"""

from __future__ import annotations

import enum
import hashlib
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import httpx
import orjson

from kubewatch.errors import PermanentError
from kubewatch.events import AlertInfo, AlertState, Event, EventType
from kubewatch.scrub import Scrubber
from kubewatch.sinks.base import SinkBase
from kubewatch.sinks.http import HttpEndpoint, encode_json
from kubewatch.sinks.threads import ThreadMemory

__all__ = [
    "Action",
    "Call",
    "Category",
    "Incident",
    "IncidentSink",
    "OpenKeys",
    "bounded_key",
    "cut",
    "incident_of",
]

Category = Literal["alert", "warning", "normal", "delete", "change"]
"""Which severity/priority entry of the config applies (``severity.warning``, …)."""

OPEN_KEYS_LIMIT = 10_000
"""Objects whose open keys are remembered for ``resolveOnDelete``; bounds memory."""

_CHANGE_REASON = {EventType.CREATE: "Created", EventType.UPDATE: "Updated"}


class Action(str, enum.Enum):
    TRIGGER = "trigger"
    RESOLVE = "resolve"


@dataclass(frozen=True, slots=True)
class Incident:
    """The alert an event opens or closes, and what the alert is about."""

    action: Action
    category: Category
    cluster: str
    kind: str
    namespace: str | None
    name: str
    reason: str
    object_ref: str
    """uid, or ``Kind/namespace/name``: what ``resolveOnDelete`` finds keys by."""

    @property
    def key(self) -> str:
        """``<cluster>:<object>:<reason>``: the alert's identity at the tool."""
        return f"{self.cluster}:{self.object_ref}:{self.reason}"


def health_alert(event: Event) -> AlertInfo | None:
    """The event's ``alert`` when it is a health alert (``type == "alert"``), else None."""
    return event.alert if event.type is EventType.ALERT else None


def _ref(uid: str, kind: str, namespace: str | None, name: str) -> str:
    return uid or f"{kind}/{namespace or ''}/{name}"


def incident_of(event: Event, *, resolve_on_delete: bool) -> Incident:
    """The one alert ``event`` opens or closes (a delete's other keys: :class:`OpenKeys`)."""
    kind, namespace, name, uid = event.kind, event.namespace, event.name, event.uid
    alert = health_alert(event)
    action = Action.TRIGGER
    category: Category
    if alert is not None:
        reason = f"{alert.container}/{alert.reason}" if alert.container else alert.reason
        category = "alert"
        if alert.state is AlertState.RESOLVED:
            action = Action.RESOLVE
    elif event.digest is not None:
        reason, category, uid, name = f"Digest{event.type.value.title()}", "change", "", "*"
        if event.type is EventType.DELETE:
            category = "delete"
    elif event.k8s_event is not None:
        involved = event.k8s_event.involved
        kind, namespace, name, uid = involved.kind, involved.namespace, involved.name, involved.uid
        reason = event.k8s_event.reason
        category = "warning" if event.k8s_event.type == "Warning" else "normal"
    elif event.type is EventType.DELETE:
        reason, category = "Deleted", "delete"
        if resolve_on_delete:
            action = Action.RESOLVE
    else:
        reason, category = _CHANGE_REASON.get(event.type, "Changed"), "change"
    return Incident(
        action,
        category,
        event.cluster,
        kind,
        namespace,
        name,
        reason,
        _ref(uid, kind, namespace, name),
    )


def is_object_delete(event: Event, incident: Incident) -> bool:
    """A delete of the object itself (not a Kubernetes Event or a digest): with
    ``resolveOnDelete`` it closes every key triggered for the object."""
    return (
        incident.action is Action.RESOLVE
        and event.type is EventType.DELETE
        and event.k8s_event is None
        and health_alert(event) is None
    )


class OpenKeys:
    """Keys triggered per object, for ``resolveOnDelete``; thread-safe, bounded LRU.

    Invariant: ``_keys`` holds at most ``limit`` objects, each with at least one key,
    ordered from least to most recently triggered; with ``memory`` (the state's
    :class:`~kubewatch.state.Memo`) each object's record there is what ``_keys`` holds.
    """

    def __init__(
        self,
        limit: int = OPEN_KEYS_LIMIT,
        memory: ThreadMemory | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._limit = limit
        self._memory = memory
        self._clock = clock
        self._lock = threading.Lock()
        self._keys: OrderedDict[str, dict[str, Incident]] = OrderedDict()
        self._at: dict[str, float] = {}  # object → when it last triggered (for the order)
        if memory is not None:
            self._load(memory)

    def _load(self, memory: ThreadMemory) -> None:
        stored = memory.load()
        records = [(ref, _read(ref, raw)) for ref, raw in stored.items()]
        good = sorted((r for _, r in records if r is not None), key=lambda r: r[0])
        for at, incidents in good[-self._limit :]:  # the most recently triggered
            ref = incidents[0].object_ref
            self._keys[ref] = {i.key: i for i in incidents}
            self._at[ref] = at
        for ref in stored.keys() - self._keys.keys():  # unreadable, empty or over the limit
            memory.delete(ref)

    def triggered(self, incident: Incident) -> None:
        with self._lock:
            ref = incident.object_ref
            keys = self._keys.setdefault(ref, {})
            keys[incident.key] = incident
            self._keys.move_to_end(ref)
            self._at[ref] = self._clock()
            self._save(ref)
            while len(self._keys) > self._limit:
                evicted, _ = self._keys.popitem(last=False)
                self._at.pop(evicted, None)
                self._save(evicted)

    def resolved(self, incident: Incident) -> None:
        with self._lock:
            keys = self._keys.get(incident.object_ref)
            if keys is not None and keys.pop(incident.key, None) is not None:
                if not keys:
                    del self._keys[incident.object_ref]
                    self._at.pop(incident.object_ref, None)
                self._save(incident.object_ref)

    def _save(self, ref: str) -> None:
        """Write ``ref``'s record as ``_keys`` has it (gone: deleted); under the lock."""
        if self._memory is None:
            return
        keys = self._keys.get(ref)
        if not keys:
            self._memory.delete(ref)
            return
        rows = [
            [i.category, i.cluster, i.kind, i.namespace, i.name, i.reason] for i in keys.values()
        ]
        self._memory.put(ref, orjson.dumps({"at": self._at.get(ref, 0.0), "open": rows}))

    def of_object(self, incident: Incident) -> list[Incident]:
        """The open incidents of ``incident``'s object, each turned into a resolve."""
        with self._lock:
            opened = list(self._keys.get(incident.object_ref, {}).values())
        return [_resolve(i) for i in opened]

    def __len__(self) -> int:
        with self._lock:
            return len(self._keys)


def _read(ref: str, raw: bytes) -> tuple[float, list[Incident]] | None:
    """A stored record of object ``ref``; None when this version cannot read it."""
    try:
        doc = orjson.loads(raw)
        rows = doc["open"]
        incidents = [
            Incident(Action.TRIGGER, category, cluster, kind, namespace, name, reason, ref)
            for category, cluster, kind, namespace, name, reason in rows
        ]
        if not incidents:
            return None
        return float(doc["at"]), incidents
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return None


def _resolve(incident: Incident) -> Incident:
    return Incident(
        Action.RESOLVE,
        incident.category,
        incident.cluster,
        incident.kind,
        incident.namespace,
        incident.name,
        incident.reason,
        incident.object_ref,
    )


def incidents_for(event: Event, open_keys: OpenKeys, *, resolve_on_delete: bool) -> list[Incident]:
    """What to send for ``event``, in order: one incident, or for an object's delete with
    ``resolveOnDelete`` a resolve of each key triggered for it (none known: nothing)."""
    incident = incident_of(event, resolve_on_delete=resolve_on_delete)
    if is_object_delete(event, incident):
        return open_keys.of_object(incident)
    return [incident]


def record(open_keys: OpenKeys, incident: Incident) -> None:
    """After the tool accepted ``incident``: remember or forget its key."""
    if incident.action is Action.TRIGGER:
        open_keys.triggered(incident)
    else:
        open_keys.resolved(incident)


def bounded_key(key: str, limit: int) -> str:
    """``key`` when it fits in ``limit`` characters; else its start and a hash of it all
    (still stable, still unique), as tools cap their keys (PagerDuty 255, Opsgenie 512)."""
    if len(key) <= limit:
        return key
    digest = hashlib.blake2b(key.encode(), digest_size=16).hexdigest()
    return f"{key[: limit - len(digest) - 1]}~{digest}"


def cut(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, ending in ``…`` when cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


class _RoutedEndpoint(HttpEndpoint):
    """An :class:`HttpEndpoint` whose request URL may differ per call (Opsgenie's
    ``/v2/alerts/{alias}/close``): same origin, client, outcome map and secrets."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._target = threading.local()
        super().__init__(*args, **kwargs)

    @property
    def url(self) -> httpx.URL:
        return getattr(self._target, "url", None) or self._base_url

    @url.setter
    def url(self, value: httpx.URL) -> None:
        self._base_url = value

    def send_to(self, path: str, body: bytes) -> None:
        """POST ``body`` to ``path`` (with its query) below the configured URL."""
        self._target.url = self._base_url.join(path) if path else None
        try:
            self.send(body)
        finally:
            self._target.url = None


@dataclass(frozen=True, slots=True)
class Call:
    """One request an incident sink makes for one incident."""

    incident: Incident
    path: str
    """Below the configured URL; ``""`` for the URL itself."""
    document: dict[str, Any]


class IncidentSink(SinkBase):
    """A sink that opens and closes alerts at one HTTP API, one request per incident.

    Subclasses set ``kind`` and implement :meth:`call`. For an object's delete with
    ``resolveOnDelete``, one request per key triggered for it (``open_keys``, kept by the
    process across reloads, else this sink's own :class:`OpenKeys`); the
    event is delivered when each was accepted (a retry repeats them all: closing a closed
    alert is accepted by every tool). Thread-safe: :class:`OpenKeys` is.
    """

    kind: str

    def __init__(
        self,
        name: str,
        config: Any,
        transport: httpx.BaseTransport | None = None,
        *,
        clock: Callable[[], float] = time.time,
        open_keys: OpenKeys | None = None,
    ) -> None:
        self.name = name
        self._resolve_on_delete: bool = config.resolve_on_delete
        self._open = OpenKeys() if open_keys is None else open_keys
        settings, self._secrets = self.configure(config)
        self.endpoint = _RoutedEndpoint(
            self.kind, name, settings, transport, clock=clock, secrets=self._secrets
        )

    def configure(self, config: Any) -> tuple[Any, tuple[str, ...]]:
        """Keep what :meth:`call` needs of ``config``; return the endpoint's settings (the
        config, or a copy with headers added) and the secrets never to show."""
        raise NotImplementedError

    def call(self, event: Event, incident: Incident) -> Call:
        raise NotImplementedError

    def calls(self, event: Event) -> list[Call]:
        incidents = incidents_for(event, self._open, resolve_on_delete=self._resolve_on_delete)
        return [self.call(event, incident) for incident in incidents]

    def preview(self, event: Event) -> str:
        """Each request: method, URL (origin and path) and body, secrets ``<redacted>``."""
        out = []
        hide = Scrubber(self._secrets)
        for c in self.calls(event):
            url = self.endpoint.url.join(c.path) if c.path else self.endpoint.url
            target = f"{self.endpoint.origin}{url.raw_path.decode()}"
            body = orjson.dumps(c.document, option=orjson.OPT_INDENT_2).decode()
            out.append(f"POST {target}\n{hide(body)}")
        return "\n".join(out) if out else "(nothing to send: no alert open for this object)"

    def send(self, event: Event) -> None:
        if self.endpoint.closed:
            raise PermanentError(f"{self.endpoint.label} is closed")
        for c in self.calls(event):
            self.endpoint.send_to(c.path, encode_json(c.document, f"event {event.id}"))
            record(self._open, c.incident)

    def close(self) -> None:
        self.endpoint.close()
