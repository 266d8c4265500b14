"""Routing: which objects are reported (filters) and which sinks hear of each event (routes).

Everything is compiled once from the :class:`~kubewatch.config.Config`; per call the work
is a few attribute checks, set lookups and precompiled regex calls, and a configuration
without conditions takes a fast path that returns at once.

:class:`ObjectFilter` (one per watched resource) runs on the raw object dicts the informer
hands over, before an event is built:

* namespaces: the global ``namespaces`` *and* the resource's ``namespaces`` must both
  admit the object's namespace (an empty ``include`` admits all; ``exclude`` wins);
* namespace selectors: the global ``namespaceSelector`` *and* the resource's must both
  match the labels of the object's namespace, as :class:`NamespaceLabels` knows them; an
  object in a namespace it does not know (yet) is not admitted (the pipeline holds such
  changes until the namespace is known, see :mod:`kubewatch.watch.nshold`);
* cluster-scoped objects (no ``metadata.namespace``) are subject to neither of those;
* the resource's ``labels`` and ``annotations`` selectors and ``names`` include/exclude.

The caller decides what an admitted object means for an update: kubewatch reports an
update when the old *or* the new state is admitted, so objects leaving the selection are
seen leaving.

:class:`Router` runs on events: ``drop`` first (any match discards the event), then
``routes`` in order (every matching route adds its sinks, ``stop`` ends the evaluation);
without routes every event goes to every sink. The result names each sink at most once,
in the order the configuration lists ``sinks``.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from kubewatch.config import Config, MatchConfig, NamesConfig, NamespacesConfig, ResourceConfig
from kubewatch.events import Event, EventType
from kubewatch.kube import DeletedFinalStateUnknown
from kubewatch.match.diff import PathTree, compile_paths, path_matches
from kubewatch.match.patterns import NameMatcher, compile_names, parse_selector
from kubewatch.watch.nshold import NamespaceHold

__all__ = ["NamespaceLabels", "ObjectFilter", "Router"]

log = logging.getLogger(__name__)

_NO_META: Mapping[str, Any] = MappingProxyType({})

_NS_CACHE_MAX = 4096
"""Namespace verdicts cached per filter. Namespaces are few and their names never change
meaning, so a verdict is computed once; past this many the cache restarts (a cluster
with more namespaces is still filtered correctly, just without the shortcut)."""

_PLAIN_REASON = re.compile(r"[A-Za-z0-9_]+")
"""A reason pattern made of these characters can only full-match itself: a set lookup."""


# --------------------------------------------------------------------------- namespace labels


class NamespaceLabels:
    """Namespace name → its labels, kept current by a Namespace informer.

    Implements the informer's handler protocol (``on_add`` / ``on_update`` /
    ``on_delete``). Writers take a lock; :meth:`labels` is a single dict lookup, atomic
    in CPython, and returns a read-only mapping that is never changed afterwards (a label
    change replaces it), so readers on other threads need no lock.

    Until the informer's initial list has arrived every namespace is unknown; start the
    Namespace watch and wait for it to sync before the watches whose filters use it.
    A namespace created later may still reach a resource watch first: :attr:`hold` keeps
    such changes until this informer reports the namespace (see :mod:`kubewatch.watch.nshold`).
    """

    __slots__ = ("_labels", "_lock", "hold")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._labels: dict[str, Mapping[str, str]] = {}
        """Invariant: one entry per namespace the informer reported and did not delete.
        Never replaced, only updated: :class:`ObjectFilter` holds its ``get``."""
        self.hold = NamespaceHold(self._labels)
        """Changes of objects in namespaces not reported yet; released as they are."""

    def labels(self, name: str) -> Mapping[str, str] | None:
        """The labels of namespace ``name``, or ``None`` when no such namespace is known."""
        return self._labels.get(name)

    def __len__(self) -> int:
        return len(self._labels)

    def __contains__(self, name: object) -> bool:
        return name in self._labels

    # -- informer handler protocol

    def on_add(self, obj: dict[str, Any], is_initial_list: bool) -> None:
        self._store(obj)

    def on_update(self, old: dict[str, Any], new: dict[str, Any]) -> None:
        self._store(new)

    def on_delete(self, obj: dict[str, Any] | DeletedFinalStateUnknown) -> None:
        if isinstance(obj, DeletedFinalStateUnknown):
            obj = obj.obj
        name = (obj.get("metadata") or _NO_META).get("name")
        if name:
            with self._lock:
                self._labels.pop(name, None)
            self.hold.forget(name)

    def _store(self, obj: dict[str, Any]) -> None:
        meta = obj.get("metadata") or _NO_META
        name = meta.get("name")
        if not name:
            return
        labels = MappingProxyType(dict(meta.get("labels") or {}))
        with self._lock:
            self._labels[name] = labels
        self.hold.known_again(name)  # after the labels are in: held changes see them


# --------------------------------------------------------------------------- object filter


@dataclass(frozen=True, slots=True)
class _Selector:
    """A label selector flattened for speed: every term is ``(key, values, wanted)`` and
    holds when ``(labels.get(key) in values) is wanted``.

    Label values are strings, never ``None``, so ``exists`` is "value not in {None}" and
    ``!exists`` is "value in {None}"; ``in`` / ``notin`` keep their value sets (``None``
    is in neither, which gives Kubernetes' "a missing label is notin anything"). One loop
    of dict lookups, instead of a call per term.
    """

    text: str
    terms: tuple[tuple[str, frozenset[str | None], bool], ...]

    @classmethod
    def parse(cls, texts: list[str]) -> _Selector | None:
        """Several selectors that must all hold, as one; ``None`` if it selects everything."""
        terms: list[tuple[str, frozenset[str | None], bool]] = []
        for text in texts:
            for r in parse_selector(text).requirements:
                if r.op in ("in", "notin"):
                    terms.append((r.key, frozenset(r.values), r.op == "in"))
                elif r.op in ("exists", "!exists"):
                    terms.append((r.key, _ABSENT, r.op == "!exists"))
                else:  # pragma: no cover - a new operator in patterns.py
                    raise ValueError(f"unsupported selector operator {r.op!r} in {text!r}")
        if not terms:
            return None  # "" selects everything
        return cls(", ".join(t for t in texts if t.strip()), tuple(terms))

    def __call__(self, labels: Mapping[str, str] | None) -> bool:
        if labels is None:
            labels = _NO_META
        for key, values, wanted in self.terms:  # noqa: SIM110 - a loop beats all(genexpr)
            if (labels.get(key) in values) is not wanted:
                return False
        return True


_ABSENT: frozenset[str | None] = frozenset([None])


def _selector(text: str | None) -> _Selector | None:
    return _Selector.parse([text]) if text is not None else None


class _CachedNames:
    """A :class:`NameMatcher` for namespaces, with its verdicts cached by name.

    Namespaces are few and a name's verdict never changes, so patterns run once per
    namespace; past ``_NS_CACHE_MAX`` names the cache restarts. Racing writers store
    equal values, so sharing across threads is safe.
    """

    __slots__ = ("_cache", "_matcher")

    def __init__(self, matcher: NameMatcher) -> None:
        self._matcher = matcher
        self._cache: dict[str, bool] = {}

    def __bool__(self) -> bool:
        return bool(self._matcher)

    def __call__(self, name: str) -> bool:
        verdict = self._cache.get(name)
        if verdict is None:
            verdict = self._matcher(name)
            if len(self._cache) >= _NS_CACHE_MAX:
                self._cache.clear()
            self._cache[name] = verdict
        return verdict


class ObjectFilter:
    """Decides, from a raw object dict, whether objects of one resource are reported.

    Immutable after :meth:`build` apart from a cache of namespace verdicts, so one filter
    may serve several informer threads.
    """

    __slots__ = (
        "_admit_all",
        "_annotations",
        "_labels",
        "_names_exclude",
        "_names_include",
        "_ns_cache",
        "_ns_checked",
        "_ns_exclude",
        "_ns_include",
        "_ns_labels_get",
        "_ns_selector",
    )

    def __init__(
        self,
        *,
        ns_include: tuple[NameMatcher, ...] = (),
        ns_exclude: NameMatcher | None = None,
        ns_selector: _Selector | None = None,
        namespace_labels: NamespaceLabels | None = None,
        labels: _Selector | None = None,
        annotations: _Selector | None = None,
        names_include: NameMatcher | None = None,
        names_exclude: NameMatcher | None = None,
    ) -> None:
        if ns_selector is not None and namespace_labels is None:
            raise ValueError(
                "a namespaceSelector is in effect: the filter needs NamespaceLabels "
                "(fed by a Namespace watch)"
            )
        self._ns_include = ns_include
        """Each must admit the namespace (global and per-resource ``include``)."""
        self._ns_exclude = ns_exclude
        """Global and per-resource ``exclude`` in one: any match rejects."""
        self._ns_checked = bool(ns_include) or ns_exclude is not None
        self._ns_cache: dict[str, bool] = {}
        """Namespace name → verdict of the include/exclude patterns (never the selector)."""
        self._ns_selector = ns_selector
        self._ns_labels_get = namespace_labels._labels.get if namespace_labels is not None else None
        """``NamespaceLabels.labels`` without a Python call frame (its dict is never
        replaced, only updated)."""
        self._labels = labels
        self._annotations = annotations
        self._names_include = names_include
        self._names_exclude = names_exclude
        self._admit_all = not (
            self._ns_checked
            or ns_selector is not None
            or labels is not None
            or annotations is not None
            or names_include is not None
            or names_exclude is not None
        )

    @classmethod
    def build(
        cls,
        config: Config,
        resource: ResourceConfig,
        namespace_labels: NamespaceLabels | None,
    ) -> ObjectFilter:
        """Compile the global and ``resource``'s conditions.

        Raises ValueError when a ``namespaceSelector`` applies and ``namespace_labels`` is
        ``None``: silently admitting nothing would look like a quiet cluster.
        """
        scopes: list[NamespacesConfig] = [config.namespaces]
        if resource.namespaces is not None:
            scopes.append(resource.namespaces)
        includes = tuple(m for m in (compile_names(s.include) for s in scopes) if m)
        exclude = compile_names(p for s in scopes for p in s.exclude)
        selectors = [t for t in (config.namespace_selector, resource.namespace_selector) if t]
        names = resource.names or NamesConfig()
        return cls(
            ns_include=includes,
            ns_exclude=exclude or None,
            ns_selector=_Selector.parse(selectors) if selectors else None,
            namespace_labels=namespace_labels,
            labels=_selector(resource.labels),
            annotations=_selector(resource.annotations),
            names_include=compile_names(names.include) or None,
            names_exclude=compile_names(names.exclude) or None,
        )

    @property
    def needs_namespace_labels(self) -> bool:
        """True when a namespace selector applies: the app must run a Namespace watch."""
        return self._ns_selector is not None

    @property
    def admits_everything(self) -> bool:
        """True when no condition applies (every object is admitted)."""
        return self._admit_all

    def admits(self, obj: dict[str, Any]) -> bool:
        """Is ``obj`` (a raw object dict as the informer hands it over) to be reported?"""
        if self._admit_all:
            return True
        meta = obj.get("metadata") or _NO_META
        namespace = meta.get("namespace")
        if namespace:  # cluster-scoped objects skip every namespace condition
            if self._ns_checked:
                verdict = self._ns_cache.get(namespace)
                if verdict is None:
                    verdict = self._namespace_admitted(namespace)
                if not verdict:
                    return False
            if self._ns_selector is not None:
                assert self._ns_labels_get is not None  # checked in __init__
                ns_labels = self._ns_labels_get(namespace)
                if ns_labels is None or not self._ns_selector(ns_labels):
                    return False
        if self._labels is not None and not self._labels(meta.get("labels")):
            return False
        if self._annotations is not None and not self._annotations(meta.get("annotations")):
            return False
        if self._names_include is not None or self._names_exclude is not None:
            name = meta.get("name") or ""
            if self._names_include is not None and not self._names_include(name):
                return False
            if self._names_exclude is not None and self._names_exclude(name):
                return False
        return True

    def _namespace_admitted(self, namespace: str) -> bool:
        verdict = all(m(namespace) for m in self._ns_include) and not (
            self._ns_exclude is not None and self._ns_exclude(namespace)
        )
        if len(self._ns_cache) >= _NS_CACHE_MAX:
            self._ns_cache.clear()
        self._ns_cache[namespace] = verdict
        return verdict


# --------------------------------------------------------------------------- router


def _namespaces(patterns: tuple[str, ...]) -> _CachedNames | NameMatcher:
    matcher = compile_names(patterns)
    return matcher if matcher.only_exact else _CachedNames(matcher)


@dataclass(frozen=True, slots=True)
class _Match:
    """A compiled :class:`~kubewatch.config.MatchConfig`; ``None`` means "no condition".

    Conditions are tested cheapest first (config rejects empty lists).
    """

    types: frozenset[EventType] | None
    kinds: frozenset[str] | None
    """As written and lowercased: the common exact spelling costs one set lookup."""
    namespaces: _CachedNames | NameMatcher | None
    """Cached by namespace when any pattern is a glob or regex, else a set lookup."""
    names: NameMatcher | None
    labels: _Selector | None
    reasons: tuple[frozenset[str], tuple[re.Pattern[str], ...]] | None
    """Plain reasons by set lookup, the rest as regexes that must match the whole reason."""
    changed: PathTree | None

    @classmethod
    def compile(cls, m: MatchConfig) -> _Match:
        reasons = None
        if m.reasons is not None:
            plain = frozenset(r for r in m.reasons if _PLAIN_REASON.fullmatch(r))
            regexes = tuple(re.compile(r) for r in m.reasons if r not in plain)
            reasons = (plain, regexes)
        return cls(
            types=None if m.types is None else frozenset(EventType(t) for t in m.types),
            kinds=None
            if m.kinds is None
            else frozenset(k for kind in m.kinds for k in (kind, kind.lower())),
            namespaces=None if m.namespaces is None else _namespaces(m.namespaces),
            names=None if m.names is None else compile_names(m.names),
            labels=_selector(m.labels) if m.labels is not None else None,
            reasons=reasons,
            changed=None if m.changed is None else compile_paths(m.changed),
        )

    def __call__(self, event: Event) -> bool:
        if self.types is not None and event.type not in self.types:
            return False
        if self.kinds is not None:
            kind = event.kind
            if kind not in self.kinds and kind.lower() not in self.kinds:
                return False
        if self.namespaces is not None:
            namespace = event.namespace
            if namespace is None or not self.namespaces(namespace):
                return False
        if self.names is not None:
            name = event.name
            if not name or not self.names(name):  # a digest has no name
                return False
        if self.labels is not None and not self.labels(event.labels):
            return False
        if self.reasons is not None:
            info = event.k8s_event
            if info is None:
                return False
            plain, regexes = self.reasons
            reason = info.reason
            if reason not in plain and not any(r.fullmatch(reason) for r in regexes):
                return False
        if self.changed is not None:
            if event.type is not EventType.UPDATE or event.digest is not None:
                return False
            if not _any_path_matches(event, self.changed):
                return False
        return True


_EVERYTHING = _Match(None, None, None, None, None, None, None)
"""What ``match: {}`` compiles to: no condition."""


def _any_path_matches(event: Event, tree: PathTree) -> bool:
    for change in event.changes:
        try:
            if path_matches(change.path, tree):
                return True
        except ValueError:  # a path diff() would never write; not worth losing the event
            log.debug("unparsable change path %r in %s", change.path, _describe(event))
    return False


@dataclass(frozen=True, slots=True)
class _Route:
    match: _Match | None
    """``None``: matches every event."""
    mask: int
    """Bit i set: the i-th sink of the configuration."""
    stop: bool


def _describe(event: Event) -> str:
    return f"{event.type.value} {event.kind} {event.key or '(digest)'}"


class Router:
    """Maps an event to the names of the sinks it goes to.

    Immutable after :meth:`build` except for a memo of result tuples, whose racing
    writers store equal values: safe to share across threads.
    """

    __slots__ = ("_all", "_drop", "_results", "_routes", "_sinks", "_trivial")

    def __init__(
        self, sinks: tuple[str, ...], drop: tuple[_Match, ...], routes: tuple[_Route, ...]
    ) -> None:
        self._sinks = sinks
        self._all = sinks
        self._drop = drop
        self._routes = routes
        self._trivial = not drop and not routes
        self._results: dict[int, tuple[str, ...]] = {0: ()}
        """Sink bit mask → the sink names it stands for, in configuration order."""

    @classmethod
    def build(cls, config: Config) -> Router:
        sinks = tuple(config.sinks)
        bit = {name: 1 << i for i, name in enumerate(sinks)}
        drop = tuple(_Match.compile(m) for m in config.drop)
        routes: list[_Route] = []
        for rc in config.routes:
            match = None if rc.match is None else _Match.compile(rc.match)
            if match is not None and match == _EVERYTHING:
                match = None  # `match: {}` is no condition at all
            mask = 0
            for name in rc.sinks:
                mask |= bit[name]
            routes.append(_Route(match, mask, rc.stop))
        return cls(sinks, drop, tuple(routes))

    @property
    def sinks(self) -> tuple[str, ...]:
        """Every sink an event can be routed to, in configuration order."""
        return self._sinks

    def route(self, event: Event) -> tuple[str, ...]:
        """The sinks ``event`` goes to: each at most once, in configuration order;
        ``()`` when a ``drop`` entry matches or no route does."""
        if self._trivial:
            return self._all
        for i, drop in enumerate(self._drop):
            if drop(event):
                log.debug("%s dropped by drop[%d]", _describe(event), i)
                return ()
        if not self._routes:
            return self._all
        mask = 0
        for route in self._routes:
            if route.match is None or route.match(event):
                mask |= route.mask
                if route.stop:
                    break
        if not mask:
            log.debug("%s matched no route", _describe(event))
            return ()
        result = self._results.get(mask)
        if result is None:
            result = tuple(name for i, name in enumerate(self._sinks) if mask >> i & 1)
            self._results[mask] = result
        return result
