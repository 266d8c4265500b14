"""Replay: captured watch output → the same events a live run would have produced.

``kubectl get RESOURCE --watch --output-watch-events -o json`` prints what the API server
streams; :func:`iter_watch_events` reads that (pretty-printed or compact, several values
per line or one, bare objects, ``List`` documents, garbage in between) and
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
  Kubernetes Event in the input counts (a live run ignores those older than its start).
"""

from __future__ import annotations

import codecs
import json
import logging
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import IO, Any, BinaryIO, TextIO

from kubewatch.config import Config, ResourceConfig
from kubewatch.errors import ConfigError, ResolveError
from kubewatch.events import Event
from kubewatch.kube import SharedInformer, object_key
from kubewatch.kube.discovery import ResourceTable, ResourceType
from kubewatch.kube.reflector import WatchStreamLike
from kubewatch.match.patterns import LabelSelector, PatternError, parse_selector
from kubewatch.timefmt import parse_time
from kubewatch.watch.filters import NamespaceLabels
from kubewatch.watch.normalize import compact
from kubewatch.watch.pipeline import EntryHandler, Fanout, build_entry, needs_namespace_labels
from kubewatch.watch.plan import WatchPlan, describe_scope, plan_watch
from kubewatch.words import plural

__all__ = [
    "DEFAULT_CLUSTER",
    "WATCH_EVENT_TYPES",
    "ReplayStats",
    "Replayer",
    "build_entry",
    "iter_watch_events",
    "needs_namespace_labels",
    "resource_type",
]

log = logging.getLogger(__name__)

DEFAULT_CLUSTER = "replay"
"""The ``cluster`` of replayed events when neither the caller nor the config names one."""

WATCH_EVENT_TYPES = frozenset({"ADDED", "MODIFIED", "DELETED", "BOOKMARK", "ERROR"})

CHUNK_CHARS = 64 * 1024
"""Read size; a value longer than the buffer makes reads grow geometrically (linear time)."""

REPLAY_START = datetime.min.replace(tzinfo=timezone.utc)
"""``started_at`` of Event alerts in a replay: every Event in the input counts."""


# --------------------------------------------------------------------------- reading


def iter_watch_events(
    stream: TextIO | BinaryIO, *, chunk_size: int = CHUNK_CHARS
) -> Iterator[dict[str, Any]]:
    """The watch events in ``stream``, as ``{"type": ..., "object": {...}}`` dicts.

    Reads JSON values one after another, with or without whitespace between them, in
    chunks (a binary stream is decoded as UTF-8; prefer one, e.g. ``sys.stdin.buffer``:
    it is read as data arrives, a text stream only a chunk at a time). Each value is:

    * a watch event, ``{"type": ADDED|MODIFIED|DELETED|BOOKMARK|ERROR, "object": {...}}``;
    * a bare object (``kubectl get -w -o json`` without ``--output-watch-events``): ADDED
      the first time its key is seen, MODIFIED after (bare output cannot show deletes);
    * a list (``kind: List`` or ``ConfigMapList`` and the like): each item so, ADDED when
      its key is new; items lacking ``kind``/``apiVersion`` get them from the list.

    Anything else (invalid JSON, a value that is not an object) is logged as a WARNING
    with its line and byte offset, and reading resumes at the next line starting with
    ``{``. It never raises for what the stream contains.
    """
    seen: set[tuple[str, str, str, str]] = set()
    for value, where in _JsonValues(stream, chunk_size):
        yield from _watch_events(value, where, seen)


def _watch_events(
    value: dict[str, Any], where: str, seen: set[tuple[str, str, str, str]]
) -> Iterator[dict[str, Any]]:
    event_type, obj = value.get("type"), value.get("object")
    if isinstance(event_type, str) and "object" in value:
        if event_type not in WATCH_EVENT_TYPES:
            log.warning("%s: unknown watch event type %r; skipped", where, event_type)
        elif not isinstance(obj, dict):
            log.warning("%s: %s watch event without an object; skipped", where, event_type)
        else:
            if event_type in ("ADDED", "MODIFIED"):
                seen.add(_identity(obj))
            elif event_type == "DELETED":
                seen.discard(_identity(obj))
            yield {"type": event_type, "object": obj}
        return
    kind, items = value.get("kind"), value.get("items")
    if isinstance(kind, str) and kind.endswith("List") and isinstance(items, list):
        item_kind = kind.removesuffix("List")
        api_version = value.get("apiVersion")
        for i, item in enumerate(items):
            if not isinstance(item, dict):
                log.warning("%s: items[%d] of a %s is not an object; skipped", where, i, kind)
                continue
            if item_kind and "kind" not in item:  # an API list: items carry no kind
                item["kind"] = item_kind
            if isinstance(api_version, str) and "apiVersion" not in item:
                item["apiVersion"] = api_version
            yield _bare(item, seen)
        return
    if isinstance(kind, str) and isinstance(value.get("metadata"), dict):
        yield _bare(value, seen)
        return
    log.warning("%s: neither a watch event nor a Kubernetes object; skipped", where)


def _bare(obj: dict[str, Any], seen: set[tuple[str, str, str, str]]) -> dict[str, Any]:
    key = _identity(obj)
    event_type = "MODIFIED" if key in seen else "ADDED"
    seen.add(key)
    return {"type": event_type, "object": obj}


def _identity(obj: dict[str, Any]) -> tuple[str, str, str, str]:
    meta = obj.get("metadata")
    meta = meta if isinstance(meta, dict) else {}
    return (
        str(obj.get("apiVersion", "")),
        str(obj.get("kind", "")),
        str(meta.get("namespace") or ""),
        str(meta.get("name", "")),
    )


_WHITESPACE = re.compile(r"[ \t\n\r]*")
"""JSON's whitespace, the only thing allowed between two values."""
_INCOMPLETE_TAIL = 16
"""A parse error this close to the end of the buffer may be a value cut by a chunk."""


class _JsonValues:
    """The JSON objects of a stream, with where each started; skips garbage with a warning.

    Holds the unparsed rest of the stream only: consumed text is dropped before each read.
    """

    def __init__(self, stream: IO[Any], chunk_size: int) -> None:
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be positive, got {chunk_size}")
        self._stream = stream
        self._read: Callable[[int], Any] = getattr(stream, "read1", None) or stream.read
        self._chunk = chunk_size
        self._decoder: codecs.IncrementalDecoder | None = None
        self._buf = ""
        self._pos = 0
        self._base_bytes = 0  # offset of _buf[0] in the stream's (UTF-8) bytes
        self._base_lines = 0  # newlines before _buf[0]
        self._eof = False
        self._first = True

    def __iter__(self) -> Iterator[tuple[dict[str, Any], str]]:
        decoder = json.JSONDecoder()
        while True:
            self._pos = _skip_whitespace(self._buf, self._pos)
            if self._pos == len(self._buf):
                if self._eof:
                    return
                self._fill(self._chunk)
                continue
            start = self._pos
            try:
                value, end = decoder.raw_decode(self._buf, start)
            except json.JSONDecodeError as e:
                if not self._eof and _maybe_incomplete(e, len(self._buf)):
                    self._fill(max(self._chunk, len(self._buf) - start))
                    continue
                problem = "cut short at the end of the input" if self._eof else e.msg
                log.warning(
                    "%s: invalid JSON (%s, at %s); skipping to the next line starting with '{'",
                    self._where(start),
                    problem,
                    self._where(e.pos),
                )
                self._resync(start)
                continue
            if isinstance(value, dict):
                self._pos = end
                yield value, self._where(start)
                continue
            log.warning(
                "%s: a JSON %s, not an object; skipping to the next line starting with '{'",
                self._where(start),
                _json_type(value),
            )
            self._resync(end)

    def _where(self, pos: int) -> str:
        """``line L (byte B)`` of a buffer position, for messages."""
        line = self._base_lines + self._buf.count("\n", 0, pos) + 1
        return f"line {line} (byte {self._base_bytes + _utf8_len(self._buf[:pos])})"

    def _resync(self, after: int) -> None:
        """Move to the next ``{`` that starts a line after position ``after``."""
        while True:
            found = self._buf.find("\n{", after)
            if found >= 0:
                self._pos = found + 1
                return
            if self._eof:
                self._pos = len(self._buf)
                return
            self._pos = max(len(self._buf) - 1, self._pos)  # keep a trailing "\n"
            self._fill(self._chunk)
            after = self._pos

    def _fill(self, size: int) -> None:
        """Drop what was consumed, then append up to ``size`` more characters (or bytes)."""
        if self._pos:
            dropped = self._buf[: self._pos]
            self._base_bytes += _utf8_len(dropped)
            self._base_lines += dropped.count("\n")
            self._buf = self._buf[self._pos :]
            self._pos = 0
        data = self._read(size)
        if isinstance(data, bytes | bytearray):
            if self._decoder is None:
                self._decoder = codecs.getincrementaldecoder("utf-8-sig")(errors="replace")
            text = self._decoder.decode(bytes(data), final=not data)
        else:
            text = data or ""
        if self._first and text:
            self._first = False
            if text.startswith("\ufeff"):  # a BOM in a text stream
                self._base_bytes += 3
                text = text[1:]
        if not data:
            self._eof = True
        self._buf += text


def _skip_whitespace(text: str, pos: int) -> int:
    m = _WHITESPACE.match(text, pos)
    return m.end() if m else pos


def _maybe_incomplete(error: json.JSONDecodeError, length: int) -> bool:
    """Could more input complete this value? Only errors at the very end (or a string
    running to the end: "Unterminated string" names where it *started*) qualify; being
    wrong costs one more read, after which the same error is judged again."""
    return error.pos >= length - _INCOMPLETE_TAIL or error.msg.startswith("Unterminated string")


def _utf8_len(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))


def _json_type(value: Any) -> str:
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    if value is None or isinstance(value, bool):
        return json.dumps(value)
    return "number"


# --------------------------------------------------------------------------- matching

_BUILTIN_SHORT_NAMES: dict[tuple[str, str], tuple[str, ...]] = {
    ("", "ComponentStatus"): ("cs",),
    ("", "ConfigMap"): ("cm",),
    ("", "Endpoints"): ("ep",),
    ("", "Event"): ("ev",),
    ("", "LimitRange"): ("limits",),
    ("", "Namespace"): ("ns",),
    ("", "Node"): ("no",),
    ("", "PersistentVolumeClaim"): ("pvc",),
    ("", "PersistentVolume"): ("pv",),
    ("", "Pod"): ("po",),
    ("", "ReplicationController"): ("rc",),
    ("", "ResourceQuota"): ("quota",),
    ("", "ServiceAccount"): ("sa",),
    ("", "Service"): ("svc",),
    ("apps", "DaemonSet"): ("ds",),
    ("apps", "Deployment"): ("deploy",),
    ("apps", "ReplicaSet"): ("rs",),
    ("apps", "StatefulSet"): ("sts",),
    ("autoscaling", "HorizontalPodAutoscaler"): ("hpa",),
    ("batch", "CronJob"): ("cj",),
    ("certificates.k8s.io", "CertificateSigningRequest"): ("csr",),
    ("events.k8s.io", "Event"): ("ev",),
    ("extensions", "Ingress"): ("ing",),
    ("networking.k8s.io", "Ingress"): ("ing",),
    ("networking.k8s.io", "NetworkPolicy"): ("netpol",),
    ("policy", "PodDisruptionBudget"): ("pdb",),
    ("policy", "PodSecurityPolicy"): ("psp",),
    ("scheduling.k8s.io", "PriorityClass"): ("pc",),
    ("storage.k8s.io", "StorageClass"): ("sc",),
    ("apiextensions.k8s.io", "CustomResourceDefinition"): ("crd", "crds"),
}
"""kubectl's short names of built-in resources (their discovery, which a replay lacks)."""

_IRREGULAR_PLURALS = {("", "Endpoints"): "endpoints"}


def resource_type(api_version: str, kind: str, namespaced: bool) -> ResourceType:
    """The resource of objects of ``kind`` in ``api_version``, guessed without discovery:
    plural from the kind, kubectl's short names for built-in kinds."""
    group, _, version = api_version.rpartition("/")
    return ResourceType(
        group=group,
        version=version,
        kind=kind,
        plural=_IRREGULAR_PLURALS.get((group, kind)) or plural(kind.lower()),
        singular=kind.lower(),
        namespaced=namespaced,
        short_names=_BUILTIN_SHORT_NAMES.get((group, kind), ()),
        verbs=frozenset({"list", "watch"}),
    )


def _names_match(rc: ResourceConfig, t: ResourceType) -> bool:
    """Does entry ``rc`` name resource ``t`` (a kind, plural, singular or short name, any
    case; ``name.group``, ``name.version.group``; or a name with ``apiVersion``)?"""
    names = {t.kind.lower(), t.plural, t.singular, *(s.lower() for s in t.short_names)}
    name = rc.kind.strip().lower()
    if rc.api_version:
        return rc.api_version == t.api_version and name in names
    head, _, rest = name.partition(".")
    if not rest:
        return name in names
    return head in names and rest in (t.group, f"{t.version}.{t.group}")


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


class _OfflineSource:
    """The ListerWatcher of a replay's informers: they are fed directly, never started."""

    def list_page(self, *, limit: int, continue_token: str | None) -> dict[str, Any]:
        raise RuntimeError("a replay never lists")

    def watch(self, *, resource_version: str, timeout_seconds: int) -> WatchStreamLike:
        raise RuntimeError("a replay never watches")


def _informer(name: str, t: ResourceType) -> SharedInformer:
    return SharedInformer(
        name, _OfflineSource(), kind=t.kind, api_version=t.api_version, transform=compact
    )


@dataclass(frozen=True, slots=True)
class _FieldSelector:
    """A field selector (``a.b=c,d!=e``) evaluated on the object, as the API server does
    for the fields it supports (all of which are plain paths)."""

    text: str
    terms: tuple[tuple[tuple[str, ...], str, bool], ...]
    """(path, value, wanted): holds when ``(field == value) is wanted``."""

    @classmethod
    def parse(cls, text: str) -> _FieldSelector:
        terms = []
        for term in (t.strip() for t in text.split(",")):
            if not term:
                continue
            m = re.fullmatch(r"([^=!\s]+)\s*(==|!=|=)\s*(\S*)", term)
            if m is None:
                raise PatternError(f"cannot parse field selector term {term!r}")
            terms.append((tuple(m.group(1).split(".")), m.group(3), m.group(2) != "!="))
        return cls(text, tuple(terms))

    def __call__(self, obj: dict[str, Any]) -> bool:
        for path, value, wanted in self.terms:
            current: Any = obj
            for part in path:
                current = current.get(part) if isinstance(current, dict) else None
            if isinstance(current, bool):
                current = "true" if current else "false"
            text = "" if current is None else str(current)
            if (text == value) is not wanted:
                return False
        return True


@dataclass(slots=True)
class _Collection:
    """What one live informer would watch: a resource in one namespace (or all), with the
    server-side selectors, feeding the entries that share it."""

    informer: SharedInformer
    namespace: str | None
    labels: LabelSelector | None
    fields: _FieldSelector | None
    needs_namespace_labels: bool

    def selects(self, obj: dict[str, Any]) -> bool:
        if self.labels is not None:
            meta = obj.get("metadata") or {}
            if not self.labels(meta.get("labels")):
                return False
        return self.fields is None or self.fields(obj)


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
        self._types: dict[tuple[str, str], list[_Collection]] = {}
        self._seen: set[tuple[str, str, str, str]] = set()
        """Objects the input has shown and not deleted: a MODIFIED of one of them is no
        sign that it existed before the capture."""
        namespaces = _informer(
            "namespaces (for namespace selectors)", resource_type("v1", "Namespace", False)
        )
        namespaces.add_handler(self.namespace_labels)
        self._selects_namespaces = any(
            needs_namespace_labels(config, rc) for rc in config.resources
        )
        """Namespace objects in the input serve namespace selectors (not skipped then)."""
        self._namespaces = _Collection(namespaces, None, None, None, False)

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
        identity = _identity(obj)
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
        self, collection: _Collection, event_type: str, obj: dict[str, Any], first_sight: bool
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

    def _collections(self, api_version: str, kind: str, obj: dict[str, Any]) -> list[_Collection]:
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
            informer = _informer(describe_scope(watch, namespace), t)
            informer.add_handler(Fanout(entries, self._produced))
            collections.append(
                _Collection(
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
            return _names_match(rc, t)
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

    def _field_selector(self, text: str | None) -> _FieldSelector | None:
        if not text:
            return None
        try:
            return _FieldSelector.parse(text)
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
    times = [t for t in map(parse_time, candidates) if t is not None]
    return max(times) if times else None
