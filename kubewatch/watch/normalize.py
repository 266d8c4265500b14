"""Normalization: informer callbacks (plain dicts) → :class:`~kubewatch.events.Event`.

Also the informer's transform (:func:`compact`), because what the cache keeps is decided
by what events need.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from kubewatch.config import UpdatesConfig
from kubewatch.events import REDACTED, Change, Event, EventType
from kubewatch.match.diff import covers, diff, split_ignored
from kubewatch.match.paths import (
    DEFAULT_IGNORE,
    DEFAULT_IGNORE_TREE,
    SECRET_REDACT_TREE,
    PathTree,
    compile_paths,
)
from kubewatch.timefmt import utc_now

LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
SUMMARY_CHANGES = 3
"""Changes spelled out in a summary line; the rest are counted (``+2 more``)."""
SUMMARY_VALUE_CHARS = 40
"""Longest value shown in a summary line before it is cut with ``…``."""

_HASH_KEY = os.urandom(16)
"""Per-process key for Secret value fingerprints: equal values compare equal within this
process (so a change is detected), and nothing outside it can test a guess against them."""


def compact(obj: dict[str, Any]) -> dict[str, Any]:
    """Trim an object to what events need, in place; the informer's transform.

    managedFields and the last-applied annotation are dropped (never reported, often half
    the object; the annotation also holds a Secret's values in clear). A Secret's
    ``data``/``stringData`` values are replaced by keyed fingerprints right here, so no
    Secret value is ever cached, diffed or sent.
    """
    meta = obj.get("metadata")
    if meta is not None:
        meta.pop("managedFields", None)
        annotations = meta.get("annotations")
        if annotations and LAST_APPLIED in annotations:
            del annotations[LAST_APPLIED]
            if not annotations:
                del meta["annotations"]
    if obj.get("kind") == "Secret" and obj.get("apiVersion") == "v1":
        for field_name in ("data", "stringData"):
            values = obj.get(field_name)
            if isinstance(values, dict):
                obj[field_name] = {k: _fingerprint(v) for k, v in values.items()}
    return obj


def significant(obj: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The informer's split of a compacted object: ``(kept, rest)`` without and with the
    default ignored paths (status, resourceVersion, generation…), which every resource's
    ``updates.ignore`` includes. Equal ``kept`` parts mean no entry's diff has anything to
    report (see :func:`~kubewatch.match.diff.split_ignored`), so the Store recognises a
    status-only update by comparing bytes, without decoding the old object or diffing."""
    return split_ignored(obj, DEFAULT_IGNORE_TREE)


def _fingerprint(value: Any) -> str:
    digest = hashlib.blake2b(str(value).encode(), key=_HASH_KEY, digest_size=8).hexdigest()
    return f"{REDACTED}{digest}"


@dataclass(frozen=True, slots=True)
class ResourceInfo:
    """What an event says about the resource type of its object."""

    kind: str
    api_version: str
    resource: str
    """``plural.group`` (``deployments.apps``), or the plural for the core group."""


def update_trees(updates: UpdatesConfig) -> tuple[PathTree, PathTree | None]:
    """(ignore, only) trees for a resource's ``updates``: its ignores join the defaults."""
    ignore = (
        compile_paths((*DEFAULT_IGNORE, *updates.ignore)) if updates.ignore else DEFAULT_IGNORE_TREE
    )
    only = compile_paths(updates.watch) if updates.watch else None
    return ignore, only


class EventBuilder:
    """Turns informer callbacks for one resource type into :class:`Event` objects.

    ``updated`` returns ``None`` when nothing outside the ignored paths changed: a
    status-only or resourceVersion-only update is not an update anyone wants to hear of.
    """

    def __init__(
        self,
        cluster: str,
        resource: ResourceInfo,
        *,
        ignore: PathTree = DEFAULT_IGNORE_TREE,
        only: PathTree | None = None,
        clock: Callable[[], str] = utc_now,
    ) -> None:
        self.cluster = cluster
        self.resource = resource
        self._ignore = ignore
        self._only = only
        self._redact = SECRET_REDACT_TREE if resource.kind == "Secret" else None
        self._clock = clock
        self.quiet_is_unchanged = covers(ignore, DEFAULT_IGNORE_TREE)
        """True when ``updated`` is None for two states of equal :func:`significant` parts."""

    def created(self, obj: dict[str, Any]) -> Event:
        return self._event(EventType.CREATE, obj)

    def updated(self, old: dict[str, Any], new: dict[str, Any]) -> Event | None:
        changes = diff(old, new, self._ignore, redact=self._redact, only=self._only)
        if not changes:
            return None
        return self._event(EventType.UPDATE, new, tuple(changes))

    def deleted(self, obj: dict[str, Any], *, final_state_unknown: bool = False) -> Event:
        return self._event(EventType.DELETE, obj, final_state_unknown=final_state_unknown)

    def _event(
        self,
        event_type: EventType,
        obj: dict[str, Any],
        changes: tuple[Change, ...] = (),
        *,
        final_state_unknown: bool = False,
    ) -> Event:
        meta = obj.get("metadata") or {}
        namespace = meta.get("namespace") or None
        name = str(meta.get("name", ""))
        info = self.resource
        return Event(
            type=event_type,
            cluster=self.cluster,
            kind=info.kind,
            api_version=info.api_version,
            resource=info.resource,
            namespace=namespace,
            name=name,
            uid=str(meta.get("uid", "")),
            resource_version=str(meta.get("resourceVersion", "")),
            observed_at=self._clock(),
            labels=dict(meta.get("labels") or {}),
            changes=changes,
            summary=summarize(
                self.cluster,
                event_type,
                info.kind,
                namespace,
                name,
                changes=changes,
                final_state_unknown=final_state_unknown,
            ),
            final_state_unknown=final_state_unknown,
        )


_VERBS = {EventType.CREATE: "created", EventType.UPDATE: "updated", EventType.DELETE: "deleted"}


def summarize(
    cluster: str,
    event_type: EventType,
    kind: str,
    namespace: str | None,
    name: str,
    *,
    changes: tuple[Change, ...] = (),
    final_state_unknown: bool = False,
) -> str:
    """One line a person understands at a glance:
    ``[prod] Deployment shop/web updated: spec.replicas 1 → 3 (+1 more)``."""
    where = f"{namespace}/{name}" if namespace else name
    line = f"[{cluster}] {kind} {where} {_VERBS[event_type]}"
    if final_state_unknown:
        line += " (seen after a watch gap; last known state)"
    if changes:
        shown = ", ".join(_describe(c) for c in changes[:SUMMARY_CHANGES])
        more = len(changes) - SUMMARY_CHANGES
        line += f": {shown}" + (f" (+{more} more)" if more > 0 else "")
    return line


def _describe(change: Change) -> str:
    if change.op == "added":
        return f"{change.path} added ({_short(change.new)})"
    if change.op == "removed":
        return f"{change.path} removed"
    return f"{change.path} {_short(change.old)} → {_short(change.new)}"


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else orjson.dumps(value).decode()
    if len(text) > SUMMARY_VALUE_CHARS:
        return text[: SUMMARY_VALUE_CHARS - 1] + "…"
    return text
