"""Object filters: which objects are reported. Compiled once from the config; per call a
few attribute checks, set lookups and precompiled regex calls.

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
seen leaving."""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from kubewatch.config import Config, NamesConfig, NamespacesConfig, ResourceConfig
from kubewatch.kube import DeletedFinalStateUnknown
from kubewatch.match.patterns import NameMatcher, compile_names
from kubewatch.match.selectors import NO_META, NS_CACHE_MAX, FlatSelector, flat_selector
from kubewatch.watch.nshold import NamespaceHold

__all__ = ["NamespaceLabels", "ObjectFilter"]

log = logging.getLogger("kubewatch.routing")
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
        name = (obj.get("metadata") or NO_META).get("name")
        if name:
            with self._lock:
                self._labels.pop(name, None)
            self.hold.forget(name)

    def _store(self, obj: dict[str, Any]) -> None:
        meta = obj.get("metadata") or NO_META
        name = meta.get("name")
        if not name:
            return
        labels = MappingProxyType(dict(meta.get("labels") or {}))
        with self._lock:
            self._labels[name] = labels
        self.hold.known_again(name)  # after the labels are in: held changes see them


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
        ns_selector: FlatSelector | None = None,
        namespace_labels: NamespaceLabels | None = None,
        labels: FlatSelector | None = None,
        annotations: FlatSelector | None = None,
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
            ns_selector=FlatSelector.parse(selectors) if selectors else None,
            namespace_labels=namespace_labels,
            labels=flat_selector(resource.labels),
            annotations=flat_selector(resource.annotations),
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
        meta = obj.get("metadata") or NO_META
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
        if len(self._ns_cache) >= NS_CACHE_MAX:
            self._ns_cache.clear()
        self._ns_cache[namespace] = verdict
        return verdict
