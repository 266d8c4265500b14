"""The :class:`Replayer`: a capture run through the live pipeline without a cluster.

:class:`Replayer` runs it through the live pipeline without a cluster: a
:class:`~kubewatch.kube.SharedInformer` per collection as the Reflector's target, the
entries :func:`build_entry` builds (exactly those ``kubewatch run`` builds), one
:class:`~kubewatch.watch.pipeline.Fanout` per collection, and the caller's ``deliver`` (routing
and sinks, or a dry-run preview).

What differs from a live run, and why:

* **Every ADDED is a create.** A capture has no initial LIST, so nothing tells an object
  that existed before ``kubectl`` started from one created meanwhile; all are reported,
  as ``notifyExisting: true`` would (capture with ``--watch-only`` to leave existing
  objects out). A MODIFIED of an object the input never added existed before the
  capture: it is stored like an item of the initial list (reported only with
  ``notifyExisting``) so that its next change is a proper update.
* **Matching without discovery.** An object's own ``kind`` and ``apiVersion`` stand in for
  discovery (see :func:`resource_type`); given a :class:`ResourceTable` (a cluster is
  reachable), names resolve exactly as in a live run.
* **Server-side selectors** (``labelSelector``, ``fieldSelector`` and the field selectors
  that plain ``namespaces.exclude`` names become) are evaluated here, with the server's
  semantics: an object leaving the selection is a delete.
* **Namespace selectors** need namespace labels: Namespace objects in the input feed them
  (put ``kubectl get namespaces -o json`` first). An object in a namespace the input
  never showed is not reported, as in a live run before the namespace is known; a
  warning says so once.
* **Time is the capture's.** ``observedAt`` and the Event repeat window use the latest
  timestamp on the object itself (managedFields times, its creation, an Event's last
  occurrence): when it was last written, which for a delete is before it went away. So a
  replay is reproducible and repeat windows span what they spanned in the cluster. Every
  Kubernetes Event in the input counts (a live run ignores those older than its start)."""

from __future__ import annotations

import logging
import re
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, BinaryIO, TextIO

from kubewatch.config import Config, ResourceConfig
from kubewatch.errors import ConfigError, ResolveError
from kubewatch.events import Event
from kubewatch.kube import object_key
from kubewatch.kube.discovery import ResourceTable, ResourceType
from kubewatch.match.patterns import LabelSelector, PatternError, parse_selector
from kubewatch.replay.feeds import FeedCollection, FieldSelector, offline_informer
from kubewatch.replay.offline import names_match, resource_type
from kubewatch.replay.reader import iter_watch_events, object_identity
from kubewatch.timefmt import parse_time
from kubewatch.watch.filters import NamespaceLabels
from kubewatch.watch.pipeline import EntryHandler, Fanout, build_entry, needs_namespace_labels
from kubewatch.watch.plan import WatchPlan, describe_scope, plan_watch

log = logging.getLogger("kubewatch.replay")

DEFAULT_CLUSTER = "replay"
"""The ``cluster`` of replayed events when neither the caller nor the config names one."""

REPLAY_START = datetime.min.replace(tzinfo=timezone.utc)
"""``started_at`` of Event alerts in a replay: every Event in the input counts."""


# --------------------------------------------------------------------------- replaying


@dataclass
class ReplayStats:
    """What a replay saw."""

    events: int = 0
    """Watch events fed (bookmarks and errors included)."""
    produced: int = 0
    """Events handed to ``deliver``."""
    bookmarks: int = 0
    errors: int = 0
    """ERROR watch events (logged)."""
    invalid: int = 0
    """Values that were not a usable watch event (logged)."""
    existing: int = 0
    """Objects first seen MODIFIED: they existed before the capture."""
    skipped: Counter[str] = field(default_factory=Counter)
    """``Kind (apiVersion)`` → objects that no resource entry matches."""


CollectionKey = tuple[str, str | None, str | None]
"""(collection path, label selector, field selector), as the live informers are keyed."""


class Replayer:
    """Feeds captured watch events through the live pipeline; see the module docstring.

    ``deliver`` receives every event the resource entries produce, in input order per
    object (routing is the caller's, as in ``App.deliver``). ``table`` (discovery of a
    reachable cluster) makes names resolve as in a live run; without it an object's
    ``kind`` and ``apiVersion`` are matched against the entries offline. ``cluster``
    names the cluster in events (default: the config's ``cluster``, else ``replay``).
    Not thread-safe: feed from one thread.
    """

    def __init__(
        self,
        config: Config,
        deliver: Callable[[Event], None],
        *,
        table: ResourceTable | None = None,
        cluster: str | None = None,
    ) -> None:
        self.config = config
        self.cluster = cluster or config.cluster or DEFAULT_CLUSTER
        self.stats = ReplayStats()
        self.namespace_labels = NamespaceLabels()
        self._deliver = deliver
        self._table = table
        self._now: datetime | None = None
        self._warned: set[str] = set()
        self._resolved: list[ResourceType | None] = [
            self._resolve_entry(rc) for rc in config.resources
        ]
        self._types: dict[tuple[str, str], list[FeedCollection]] = {}
        self._seen: set[tuple[str, str, str, str]] = set()
        """Objects the input has shown and not deleted: a MODIFIED of one of them is no
        sign that it existed before the capture."""
        namespaces = offline_informer(
            "namespaces (for namespace selectors)", resource_type("v1", "Namespace", False)
        )
        namespaces.add_handler(self.namespace_labels)
        self._selects_namespaces = any(
            needs_namespace_labels(config, rc) for rc in config.resources
        )
        """Namespace objects in the input serve namespace selectors (not skipped then)."""
        self._namespaces = FeedCollection(namespaces, None, None, None, False)

    # -- feeding --------------------------------------------------------------------------

    def replay(self, stream: TextIO | BinaryIO) -> ReplayStats:
        """Feed every watch event of ``stream``, then :meth:`finish`."""
        for event in iter_watch_events(stream):
            self.feed(event)
        return self.finish()

    def feed(self, event: dict[str, Any]) -> None:
        """One watch event, ``{"type": ..., "object": {...}}`` (see iter_watch_events)."""
        self.stats.events += 1
        event_type, obj = event.get("type"), event.get("object")
        if event_type == "BOOKMARK":
            self.stats.bookmarks += 1
            return
        if event_type == "ERROR":
            self.stats.errors += 1
            status = obj if isinstance(obj, dict) else {}
            log.warning(
                "the watch reported an error: %s (code %s)",
                status.get("message") or status.get("reason") or "no message",
                status.get("code", "none"),
            )
            return
        if event_type not in ("ADDED", "MODIFIED", "DELETED") or not isinstance(obj, dict):
            self.stats.invalid += 1
            log.warning("not a watch event (type %r); skipped", event_type)
            return
        api_version, kind = obj.get("apiVersion"), obj.get("kind")
        if not isinstance(api_version, str) or not isinstance(kind, str) or not kind:
            self.stats.skipped["objects without kind/apiVersion"] += 1
            return
        self._advance_clock(obj)
        identity = object_identity(obj)
        first_sight = identity not in self._seen
        if event_type == "DELETED":
            self._seen.discard(identity)
        else:
            self._seen.add(identity)
        try:
            if (api_version, kind) == ("v1", "Namespace"):
                self._apply(self._namespaces, event_type, obj, first_sight)
            collections = self._collections(api_version, kind, obj)
            if not collections:
                if kind != "Namespace" or not self._selects_namespaces:
                    self.stats.skipped[f"{kind} ({api_version})"] += 1
                return
            if first_sight and event_type == "MODIFIED":
                self.stats.existing += 1
            for collection in collections:
                self._apply(collection, event_type, obj, first_sight)
        except Exception:  # one odd object must not end a replay
            log.exception("%s %s %s failed; skipped", event_type, kind, object_key(obj) or "?")

    def finish(self) -> ReplayStats:
        """Log what was skipped and return the counts (the replay keeps no other state)."""
        skipped = self.stats.skipped
        if skipped:
            log.info(
                "%d objects matched no resource entry and were skipped: %s",
                sum(skipped.values()),
                ", ".join(f"{kind}: {n}" for kind, n in sorted(skipped.items())),
            )
        log.info("%d watch events, %d events produced", self.stats.events, self.stats.produced)
        return self.stats

    # -- per object -----------------------------------------------------------------------

    def _apply(
        self, collection: FeedCollection, event_type: str, obj: dict[str, Any], first_sight: bool
    ) -> None:
        """What the live informer of ``collection`` would do with this watch event."""
        namespace = (obj.get("metadata") or {}).get("namespace") or None
        if collection.namespace is not None and namespace != collection.namespace:
            return
        if (
            collection.needs_namespace_labels
            and namespace
            and namespace not in self.namespace_labels
        ):
            self._warn_once(
                f"ns:{namespace}",
                f"namespace {namespace} is not in the input, so namespace selectors "
                "admit none of its objects (put `kubectl get namespaces -o json` output "
                "first to provide namespace labels)",
            )
        informer = collection.informer
        known = informer.store.get(object_key(obj)) is not None
        selected = collection.selects(obj)
        if event_type == "DELETED":
            if known or selected:
                informer.watch_event("DELETED", obj)
        elif selected:
            if known or event_type == "ADDED" or not first_sight:
                informer.watch_event(event_type, obj)  # entering the selection: an add
            else:
                # Existed before the capture: stored as an item of the initial list
                # (a one-item list: replace_end is never called, it would delete the rest).
                informer.replace_begin()
                informer.replace_item(obj)
        elif known:  # left the selection: the API server reports that as a delete
            informer.watch_event("DELETED", obj)

    def _collections(
        self, api_version: str, kind: str, obj: dict[str, Any]
    ) -> list[FeedCollection]:
        """The collections objects of this type go to, built the first time it is seen."""
        cached = self._types.get((api_version, kind))
        if cached is not None:
            return cached
        t = self._resource_type(api_version, kind, obj)
        groups: dict[CollectionKey, list[EntryHandler]] = defaultdict(list)
        firsts: dict[CollectionKey, tuple[WatchPlan, str | None]] = {}
        needs: dict[CollectionKey, bool] = defaultdict(bool)
        for index, rc in enumerate(self.config.resources):
            if not self._matches(index, rc, t):
                continue
            try:
                watch = plan_watch(self.config, index, rc, t)
            except ConfigError as e:
                log.error("%s; not applied to %s objects", e, t.group_resource)
                continue
            log.info(
                "resources[%d] (%s) matches %s %s objects",
                index,
                rc.kind,
                t.api_version,
                t.kind,
            )
            entry = build_entry(
                self.config,
                watch,
                self.cluster,
                self.namespace_labels,
                REPLAY_START,
                clock=self._clock,
            )
            needs_labels = needs_namespace_labels(self.config, rc)
            for namespace in watch.namespaces:
                key = (t.path(namespace), rc.label_selector, watch.field_selector)
                groups[key].append(entry)
                firsts.setdefault(key, (watch, namespace))
                needs[key] |= needs_labels
        collections = []
        for key, entries in groups.items():
            watch, namespace = firsts[key]
            informer = offline_informer(describe_scope(watch, namespace), t)
            informer.add_handler(Fanout(entries, self._produced))
            collections.append(
                FeedCollection(
                    informer,
                    namespace,
                    self._label_selector(key[1]),
                    self._field_selector(key[2]),
                    needs[key],
                )
            )
        self._types[(api_version, kind)] = collections
        return collections

    def _produced(self, event: Event) -> None:
        self.stats.produced += 1
        self._deliver(event)

    def _resolve_entry(self, rc: ResourceConfig) -> ResourceType | None:
        if self._table is None:
            return None
        try:
            return self._table.resolve(rc.kind, rc.api_version)
        except ResolveError as e:
            log.info("%s; matched by name only", e)
            return None

    def _resource_type(self, api_version: str, kind: str, obj: dict[str, Any]) -> ResourceType:
        if self._table is not None:
            try:
                return self._table.resolve(kind, api_version)
            except ResolveError:
                pass  # not served by that cluster: guess, like without a table
        namespaced = bool((obj.get("metadata") or {}).get("namespace"))
        return resource_type(api_version, kind, namespaced)

    def _matches(self, index: int, rc: ResourceConfig, t: ResourceType) -> bool:
        resolved = self._resolved[index]
        if resolved is None:
            return names_match(rc, t)
        return (
            resolved.group == t.group
            and resolved.kind == t.kind
            and (rc.api_version is None or resolved.version == t.version)
        )

    def _label_selector(self, text: str | None) -> LabelSelector | None:
        if not text:
            return None
        try:
            return parse_selector(text)
        except PatternError as e:
            self._warn_once(f"labels:{text}", f"labelSelector not applied: {e}")
            return None

    def _field_selector(self, text: str | None) -> FieldSelector | None:
        if not text:
            return None
        try:
            return FieldSelector.parse(text)
        except PatternError as e:
            self._warn_once(f"fields:{text}", f"fieldSelector not applied: {e}")
            return None

    def _warn_once(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            log.warning("%s", message)

    # -- time -----------------------------------------------------------------------------

    def _clock(self) -> datetime:
        """The replay's now: the object's last write (the previous one's if it shows none;
        the wall clock before any)."""
        return self._now if self._now is not None else datetime.now(timezone.utc)

    def _advance_clock(self, obj: dict[str, Any]) -> None:
        self._now = _latest_time(obj) or self._now


def _latest_time(obj: dict[str, Any]) -> datetime | None:
    """The latest timestamp an object carries: when it was last written, at the earliest."""
    meta = obj.get("metadata")
    meta = meta if isinstance(meta, dict) else {}
    series = obj.get("series")
    candidates = [
        meta.get("creationTimestamp"),
        obj.get("lastTimestamp"),
        obj.get("eventTime"),
        obj.get("deprecatedLastTimestamp"),
        series.get("lastObservedTime") if isinstance(series, dict) else None,
    ]
    managed = meta.get("managedFields")
    if isinstance(managed, list):
        candidates.extend(m.get("time") for m in managed if isinstance(m, dict))
    texts = [c for c in candidates if isinstance(c, str)]
    if texts and all(_WHOLE_SECONDS(c) for c in texts):
        # All alike (what the API server writes): text order is time order, so only the
        # latest needs parsing; should it not parse (2024-02-30…), parse them all.
        latest = parse_time(max(texts))
        if latest is not None:
            return latest
    times = [t for t in map(parse_time, candidates) if t is not None]
    return max(times) if times else None


_WHOLE_SECONDS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ").fullmatch
"""``2026-11-26T10:00:05Z``: a metav1.Time as the API server writes it (fixed width, UTC)."""
