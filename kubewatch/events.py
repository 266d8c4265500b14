"""Normalized change events: the one shape every sink receives.

An :class:`Event` is built from the plain dicts the informer hands over. Its JSON form
(:meth:`Event.to_dict`) is a public, versioned contract documented in the README:
stdout ``format: json`` prints it and the webhook sink posts it unchanged.
"""

from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass, field
from typing import Any

SCHEMA_VERSION = 1
"""Bumped only when a field of :meth:`Event.to_dict` changes meaning or goes away."""

REDACTED = "<redacted>"
"""What a Secret value becomes wherever it would otherwise appear."""


class EventType(str, enum.Enum):
    """What happened to the object."""

    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"
    ALERT = "alert"
    """A health alert (a crash loop, a failed Job, a NotReady Node): see :class:`AlertInfo`."""


@dataclass(frozen=True, slots=True)
class Change:
    """One changed leaf: ``path`` like ``spec.replicas`` or ``spec.containers[web].image``.

    ``old`` is ``None`` when the path was added, ``new`` is ``None`` when it was removed;
    ``op`` says which, so that a real ``null`` value is not mistaken for absence.
    """

    path: str
    old: Any
    new: Any
    op: str = "changed"  # "added" | "removed" | "changed"

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "op": self.op, "old": self.old, "new": self.new}


@dataclass(frozen=True, slots=True)
class InvolvedObject:
    """The object a Kubernetes Event is about."""

    kind: str
    namespace: str | None
    name: str
    uid: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "namespace": self.namespace, "name": self.name, "uid": self.uid}


@dataclass(frozen=True, slots=True)
class KubeEventInfo:
    """What a Kubernetes Event (``kind: Event``) says, for events that report one."""

    type: str
    """``Normal`` or ``Warning``."""
    reason: str
    message: str
    count: int
    """Occurrences so far, as the Event counts them (1 for a new Event)."""
    involved: InvolvedObject
    source: str = ""
    """The component that reported it (``kubelet``, ``default-scheduler``)."""
    first_seen: str | None = None
    last_seen: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "reason": self.reason,
            "message": self.message,
            "count": self.count,
            "involvedObject": self.involved.to_dict(),
            "source": self.source,
            "firstSeen": self.first_seen,
            "lastSeen": self.last_seen,
        }


@dataclass(frozen=True, slots=True)
class DigestInfo:
    """A burst summarized: the events this one digest stands for."""

    count: int
    ids: tuple[str, ...]
    names: tuple[str, ...]
    """``namespace/name`` (or ``name``) of each object, in arrival order."""

    def to_dict(self) -> dict[str, Any]:
        return {"count": self.count, "ids": list(self.ids), "names": list(self.names)}


class AlertState(str, enum.Enum):
    """Where a health alert stands."""

    FIRING = "firing"
    RESOLVED = "resolved"


@dataclass(frozen=True, slots=True)
class AlertInfo:
    """What a health alert says: one failure of one object (and container, for Pods)."""

    state: AlertState
    reason: str
    """``CrashLoopBackOff``, ``OOMKilled``, ``BackoffLimitExceeded``, ``NotReady``, …"""
    container: str | None = None
    """The failing container of a Pod; ``None`` for other kinds (and for a digest)."""
    exit_code: int | None = None
    """The exit code of the container's last termination, when there is one."""
    restart_count: int | None = None
    """The container's restarts so far (repeats are counted here, not re-sent)."""
    since: str | None = None
    """RFC 3339 UTC: when the failure began (the alert's identity with the key)."""
    logs: str | None = None
    """The last lines of the failed container (``logLines``), secret-looking values
    redacted; ``None`` when not asked for or not available."""
    message: str = ""
    """What the object says about it (a condition's message, a waiting message)."""
    reminder: int = 0
    """0 for the first notice of a firing alert, n for its n-th reminder."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "state": self.state.value,
            "reason": self.reason,
            "container": self.container,
            "exitCode": self.exit_code,
            "restartCount": self.restart_count,
            "since": self.since,
            "logs": self.logs,
            "message": self.message,
            "reminder": self.reminder,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AlertInfo:
        return cls(
            state=AlertState(data["state"]),
            reason=data["reason"],
            container=data.get("container"),
            exit_code=data.get("exitCode"),
            restart_count=data.get("restartCount"),
            since=data.get("since"),
            logs=data.get("logs"),
            message=data.get("message", ""),
            reminder=int(data.get("reminder") or 0),
        )


@dataclass(frozen=True, slots=True)
class Event:
    """One create, update or delete of one Kubernetes object (or one health alert about
    it), ready for any sink."""

    type: EventType
    cluster: str
    kind: str
    api_version: str
    resource: str
    namespace: str | None
    name: str
    uid: str
    resource_version: str
    observed_at: str
    """RFC 3339 UTC time kubewatch saw the change (``2026-11-26T22:10:51.123Z``)."""
    labels: dict[str, str] = field(default_factory=dict)
    changes: tuple[Change, ...] = ()
    summary: str = ""
    final_state_unknown: bool = False
    """Only for deletes seen through a relist: the object is gone, its last known state
    is what kubewatch had cached (client-go's ``DeletedFinalStateUnknown``)."""
    k8s_event: KubeEventInfo | None = None
    """Set when the object is a Kubernetes Event reported as an alert."""
    digest: DigestInfo | None = None
    """Set on a burst digest: this one event stands for ``digest.count`` events of
    ``type`` and ``kind`` (in ``namespace`` when they share one); ``name`` is empty."""
    while_down: bool = False
    """The change happened while kubewatch was not running: found at start by comparing
    the first list with the checkpoint of what was last reported."""
    alert: AlertInfo | None = None
    """Set on health alerts (``type`` is ``alert``) and on their digests."""

    @property
    def id(self) -> str:
        """Stable across restarts and replicas: the same change always has the same id.
        A Kubernetes Event's count is part of it (each repetition is its own alert); a
        digest's id derives from the ids it stands for. A health alert's id derives from
        its object, container, reason, start, state and reminder number, never from the
        time it was seen, so every replica and every retry gives one alert one id. A delete's
        id is its uid's alone: an object is deleted once, and the live delete (the
        deletion's resourceVersion) and a restart's tombstone (the last one kubewatch had)
        are one change, so a delete reported again after a crash has the same id."""
        if self.digest is not None:
            raw = "/".join(self.digest.ids).encode()
        elif self.alert is not None:
            a = self.alert
            raw = (
                f"{self.uid}/{a.container or ''}/{a.reason}/{a.since or ''}/"
                f"{a.state.value}/{a.reminder}/alert"
            ).encode()
        elif self.k8s_event is not None:
            raw = f"{self.uid}/{self.k8s_event.count}/{self.type.value}".encode()
        elif self.type is EventType.DELETE:
            raw = f"{self.uid}/{self.type.value}".encode()
        else:
            raw = f"{self.uid}/{self.resource_version}/{self.type.value}".encode()
        return hashlib.blake2b(raw, digest_size=16).hexdigest()

    @property
    def key(self) -> str:
        """``namespace/name`` (or ``name``): events of one key are delivered in order."""
        return f"{self.namespace}/{self.name}" if self.namespace else self.name

    def to_dict(self) -> dict[str, Any]:
        """The public JSON contract (README "Event JSON")."""
        return {
            "schemaVersion": SCHEMA_VERSION,
            "id": self.id,
            "type": self.type.value,
            "cluster": self.cluster,
            "kind": self.kind,
            "apiVersion": self.api_version,
            "resource": self.resource,
            "namespace": self.namespace,
            "name": self.name,
            "uid": self.uid,
            "resourceVersion": self.resource_version,
            "observedAt": self.observed_at,
            "labels": self.labels,
            "changes": [c.to_dict() for c in self.changes],
            "finalStateUnknown": self.final_state_unknown,
            "k8sEvent": self.k8s_event.to_dict() if self.k8s_event else None,
            "digest": self.digest.to_dict() if self.digest else None,
            "whileDown": self.while_down,
            "alert": self.alert.to_dict() if self.alert else None,
            "summary": self.summary,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Event:
        """The inverse of :meth:`to_dict` (the spool keeps events in that form)."""
        k8s = data.get("k8sEvent")
        digest = data.get("digest")
        alert = data.get("alert")
        return cls(
            type=EventType(data["type"]),
            cluster=data["cluster"],
            kind=data["kind"],
            api_version=data["apiVersion"],
            resource=data["resource"],
            namespace=data["namespace"],
            name=data["name"],
            uid=data["uid"],
            resource_version=data["resourceVersion"],
            observed_at=data["observedAt"],
            labels=dict(data.get("labels") or {}),
            changes=tuple(
                Change(c["path"], c["old"], c["new"], c["op"]) for c in data.get("changes") or ()
            ),
            summary=data.get("summary", ""),
            final_state_unknown=bool(data.get("finalStateUnknown")),
            k8s_event=None
            if k8s is None
            else KubeEventInfo(
                type=k8s["type"],
                reason=k8s["reason"],
                message=k8s["message"],
                count=k8s["count"],
                involved=InvolvedObject(**k8s["involvedObject"]),
                source=k8s.get("source", ""),
                first_seen=k8s.get("firstSeen"),
                last_seen=k8s.get("lastSeen"),
            ),
            digest=None
            if digest is None
            else DigestInfo(digest["count"], tuple(digest["ids"]), tuple(digest["names"])),
            while_down=bool(data.get("whileDown")),
            alert=None if alert is None else AlertInfo.from_dict(alert),
        )
