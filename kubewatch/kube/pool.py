"""The informer pool: one shared informer per collection and selectors, whoever asks.

Several owners want to watch the cluster: the configuration file is one (``"file"``), and
each Notifier resource is another (``"notifier/team-a/web"``). Two owners that watch the
same collection (path, label selector, field selector: an :class:`InformerKey`) share one
:class:`~kubewatch.kube.SharedInformer` — one LIST and one WATCH for both, one cached copy
of every object. Guarantees:

* **Lifecycle follows the handlers.** An informer starts when the first handler is
  attached to its key and stops when the last one is detached; ``replace`` leaves an
  informer whose handlers did not change running (no relist, nothing announced again).
* **Joining is seamless.** A handler attached to a running informer first hears every
  object in its Store as ``on_add(obj, is_initial_list=True)`` (so it stays as silent as at
  a start unless it reports existing objects), then every later change, nothing missed or
  heard twice (see :mod:`kubewatch.kube.informer`). An owner limited to one namespace
  passes ``namespace``: only that namespace's objects are replayed, from the Store's index.
* **Detaching is final.** Once ``detach``/``replace`` returns, a removed handler is not
  called again.
* **Thread-safe.** Attach, detach and replace from any threads, while events flow; never
  from inside a handler (that would wait for itself).

The pool does not know what an informer is for: a factory builds one for a key (settings,
checkpoint, naming are the caller's), and handlers are plain
:class:`~kubewatch.kube.ResourceEventHandler`.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from kubewatch.kube.discovery import ResourceType
from kubewatch.kube.informer import ResourceEventHandler, SharedInformer

__all__ = ["InformerFactory", "InformerKey", "InformerPool"]

log = logging.getLogger(__name__)

STOP_TIMEOUT = 5.0
"""Seconds to wait for a stopped informer's thread (one blocked in a request is not
waited for at all: see :meth:`SharedInformer.stop`)."""


@dataclass(frozen=True, slots=True)
class InformerKey:
    """One shared informer: a collection path and its selectors (the identity), plus the
    resource and namespace it was derived from (carried along, not compared)."""

    path: str
    label_selector: str | None
    field_selector: str | None
    resource: ResourceType = field(compare=False)
    namespace: str | None = field(compare=False)

    @classmethod
    def of(
        cls,
        resource: ResourceType,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> InformerKey:
        """The key of ``resource`` in ``namespace`` (None: cluster-wide) with selectors."""
        return cls(resource.path(namespace), label_selector, field_selector, resource, namespace)

    @property
    def collection(self) -> str:
        """The collection's name in the durable checkpoint (stable across releases)."""
        return (
            f"{self.path}?labelSelector={self.label_selector or ''}"
            f"&fieldSelector={self.field_selector or ''}"
        )

    @property
    def name(self) -> str:
        """How logs and metrics name the watch: ``deployments.apps in shop labels app=web``."""
        where = f"in {self.namespace}" if self.namespace else "cluster-wide"
        parts = [self.resource.group_resource, where]
        if self.label_selector:
            parts.append(f"labels {self.label_selector}")
        if self.field_selector:
            parts.append(f"fields {self.field_selector}")
        return " ".join(parts)


InformerFactory = Callable[[InformerKey], SharedInformer]
"""Builds the (not yet started) informer of a key."""

Handlers = Mapping[InformerKey, Sequence[ResourceEventHandler]]


class InformerPool:
    """The shared informers, started and stopped as owners attach and detach handlers."""

    def __init__(self, new_informer: InformerFactory, *, stop_timeout: float = STOP_TIMEOUT):
        self._new_informer = new_informer
        self._stop_timeout = stop_timeout
        self._lock = threading.Lock()
        # Invariants, under _lock: a key is in _informers iff some owner has a handler in
        # _attached for it, and that informer was started and has exactly those handlers;
        # _attached[owner][key] is never empty. _informers is replaced, never mutated, so
        # informer() and recovering() read it without the lock (informer threads call
        # them while attach holds the lock and waits for their dispatch: no deadlock).
        self._informers: dict[InformerKey, SharedInformer] = {}
        self._attached: dict[str, dict[InformerKey, list[ResourceEventHandler]]] = {}
        self._closed = False

    # -- owners ---------------------------------------------------------------------------

    def attach(
        self,
        owner: str,
        key: InformerKey,
        handler: ResourceEventHandler,
        *,
        namespace: str | None = None,
    ) -> None:
        """Attach ``handler`` for ``owner`` to the informer of ``key`` (started if new).
        ``namespace`` limits the initial adds of a running informer to that namespace."""
        with self._lock:
            if self._closed:
                return
            self._attach(owner, key, handler, namespace)

    def detach(self, owner: str) -> None:
        """Remove every handler of ``owner``; stop the informers nobody else uses."""
        self.replace(owner, {})

    def replace(self, owner: str, handlers: Handlers, *, namespace: str | None = None) -> None:
        """Make ``handlers`` exactly what ``owner`` has attached (a reload, a reconcile).

        A handler ``owner`` already had on a key (the same object) stays attached as it is;
        new ones join (initial adds, of ``namespace`` only when given); missing ones are
        removed. Informers left without handlers stop; new keys start theirs.
        """
        with self._lock:
            if self._closed:
                return
            old = self._attached.get(owner, {})
            for key, attached in list(old.items()):
                wanted = handlers.get(key, ())
                for handler in [h for h in attached if not _contains(wanted, h)]:
                    self._informers[key].remove_handler(handler)
                    attached.remove(handler)
                if not attached:
                    del old[key]
            for key, wanted in handlers.items():
                attached = old.get(key, [])
                for handler in [h for h in wanted if not _contains(attached, h)]:
                    self._attach(owner, key, handler, namespace)
            if not self._attached.get(owner):
                self._attached.pop(owner, None)
            unused = self._unpublish_unused()
        self._stop(unused)

    # -- views ----------------------------------------------------------------------------

    def informer(self, key: InformerKey) -> SharedInformer | None:
        """The running informer of ``key``, if any (lock-free: callable from a handler)."""
        return self._informers.get(key)

    def recovering(self, key: InformerKey) -> bool:
        """True while the informer of ``key`` compares its first list with a checkpoint
        (what it reports happened while kubewatch was down); lock-free."""
        informer = self._informers.get(key)
        return informer is not None and informer.recovering

    def informers(self) -> list[SharedInformer]:
        """The running informers (a snapshot)."""
        return list(self._informers.values())

    def keys(self, owner: str) -> set[InformerKey]:
        """The keys ``owner`` has handlers on."""
        with self._lock:
            return set(self._attached.get(owner, {}))

    def counts(self) -> dict[str, int]:
        """Running informers per resource (``deployments.apps``): the ``kubewatch_informers``
        gauge."""
        return dict(Counter(key.resource.group_resource for key in self._informers))

    # -- lifecycle ------------------------------------------------------------------------

    def stop(self) -> None:
        """Stop every informer; later attaches and replaces do nothing. Idempotent."""
        with self._lock:
            self._closed = True
            informers = list(self._informers.values())
            self._informers = {}
            self._attached = {}
        self._stop(informers, quiet=True)

    # -- inside the lock ------------------------------------------------------------------

    def _attach(
        self,
        owner: str,
        key: InformerKey,
        handler: ResourceEventHandler,
        namespace: str | None,
    ) -> None:
        """Under ``_lock``: attach, creating and starting the informer if it is new."""
        attached = self._attached.setdefault(owner, {}).setdefault(key, [])
        if _contains(attached, handler):
            return
        informer = self._informers.get(key)
        if informer is None:
            informer = self._new_informer(key)
            informer.add_handler(handler)
            self._informers = {**self._informers, key: informer}
            attached.append(handler)
            log.info("watching %s", informer.name)
            informer.start()
            return
        informer.add_handler(handler, namespace=namespace)
        attached.append(handler)

    def _unpublish_unused(self) -> list[SharedInformer]:
        """Under ``_lock``: drop the informers no owner has a handler on; return them."""
        used = {key for keys in self._attached.values() for key in keys}
        unused = [inf for key, inf in self._informers.items() if key not in used]
        if unused:
            self._informers = {k: v for k, v in self._informers.items() if k in used}
        return unused

    def _stop(self, informers: Iterable[SharedInformer], *, quiet: bool = False) -> None:
        """Outside the lock (joining takes time): signal every one, then wait for each."""
        informers = list(informers)
        for informer in informers:
            if not quiet:
                log.info("no longer watching %s", informer.name)
            informer.reflector.stop()
        for informer in informers:
            informer.stop(timeout=self._stop_timeout)


def _contains(handlers: Sequence[ResourceEventHandler], handler: ResourceEventHandler) -> bool:
    """By identity: two equal handlers of two owners are still two handlers."""
    return any(h is handler for h in handlers)
