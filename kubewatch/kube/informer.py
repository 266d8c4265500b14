"""SharedInformer: one Reflector and one Store per collection, any number of handlers.

Guarantees (as client-go's ``SharedInformer`` states them):

* Per object key, handlers see changes in the order the API server made them; across
  keys there is no ordering.
* An object that exists when the informer starts is announced with
  ``on_add(obj, is_initial_list=True)``; one created later with ``is_initial_list=False``.
* ``on_update(old, new)`` is called only when the resourceVersion changed. Given a
  ``significant`` split (what the handlers call significant, and the rest), an update
  whose significant part is byte for byte the previous state's goes to a handler's
  ``on_quiet_update(old, new)`` if it has one, with ``old`` a function that decodes the
  previous state on first call: a status-only update then costs no decode of the old
  object (handlers without that method get ``on_update`` as always).
* After a relist (410 Gone, or a broken watch the server could not resume), every object
  created, changed or deleted meanwhile produces exactly one ``on_add``, ``on_update`` or
  ``on_delete``. A delete seen only through a relist hands over a
  :class:`DeletedFinalStateUnknown` carrying the last known state. An object deleted and
  recreated under the same name meanwhile (a new UID) is a delete followed by an add.
* Handlers run on the informer's thread and must return quickly (hand work to a queue).
  They must not mutate the dicts they receive: several handlers share them. An exception
  in a handler does not stop the informer or the other handlers: it is counted
  (:attr:`SharedInformer.handler_errors`) and logged, one line per interval at most.
* A handler may join a running informer (client-go's ``AddEventHandler`` after start): it
  first hears every object in the Store as ``on_add(obj, is_initial_list=True)``, then
  every later change, with no change missed or heard twice in between: the Store is
  written and a change fanned out under one lock, which the join holds while it replays.
  A removed handler is not called again once :meth:`SharedInformer.remove_handler`
  returned. A handler must not add or remove handlers itself.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from kubewatch.errors import ApiError
from kubewatch.kube.reflector import ListerWatcher, Reflector, ReflectorSettings
from kubewatch.kube.store import Split, Store, StoredObject, object_key
from kubewatch.observability.ratelog import RateLimitedLog

log = logging.getLogger(__name__)

Transform = Callable[[dict[str, Any]], dict[str, Any]]
"""Applied to every object before it is stored or handed out (client-go's TransformFunc):
trims what nobody reads so the cache stays small. It may modify its argument in place."""


@dataclass(frozen=True, slots=True)
class DeletedFinalStateUnknown:
    """A delete seen through a relist: ``obj`` is the last state kubewatch knew, not the
    state at deletion (client-go's tombstone of the same name)."""

    key: str
    obj: dict[str, Any]


class InformerCheckpoint(Protocol):
    """Where an informer keeps what its handlers were last told (durable state).

    The informer writes after its handlers ran for a change (so whatever they queued comes
    first); at start it seeds its Store from ``load`` and reconciles its first list against
    it as a relist. ``load`` returns None for a collection that was never listed."""

    def load(self) -> list[tuple[str, str, str, bytes]] | None: ...

    def put(self, key: str, uid: str, resource_version: str, data: bytes) -> None: ...

    def delete(self, key: str) -> None: ...

    def synced(self) -> None: ...


class ResourceEventHandler(Protocol):
    def on_add(self, obj: dict[str, Any], is_initial_list: bool) -> None: ...

    def on_update(self, old: dict[str, Any], new: dict[str, Any]) -> None: ...

    def on_delete(self, obj: dict[str, Any] | DeletedFinalStateUnknown) -> None: ...


class QuietUpdateHandler(Protocol):
    """What a handler may add: an update whose significant part equals the previous
    state's (``old()`` decodes that state, once, for a handler that still needs it)."""

    def on_quiet_update(self, old: Callable[[], dict[str, Any]], new: dict[str, Any]) -> None: ...


def strip_managed_fields(obj: dict[str, Any]) -> dict[str, Any]:
    """The default transform: managedFields are often half an object and never reported."""
    meta = obj.get("metadata")
    if meta is not None:
        meta.pop("managedFields", None)
    return obj


class SharedInformer:
    """Wires a Reflector to a Store and fans each change out to the handlers."""

    def __init__(
        self,
        name: str,
        lister_watcher: ListerWatcher,
        *,
        kind: str,
        api_version: str,
        settings: ReflectorSettings | None = None,
        transform: Transform = strip_managed_fields,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.monotonic,
        on_api_error: Callable[[ApiError], None] | None = None,
        checkpoint: InformerCheckpoint | None = None,
        significant: Split | None = None,
    ) -> None:
        self.name = name
        self.store = Store()
        self._split = significant
        self._checkpoint = checkpoint
        self._recovering = False  # the first list is reconciled against a checkpoint
        self._transform = transform
        # Held while the Store is written and the change fanned out, and while a joining
        # handler replays the Store: every handler's view is the Store's, change by change.
        self._dispatch = threading.RLock()
        self._handlers: tuple[ResourceEventHandler, ...] = ()  # replaced, never mutated
        self._synced = threading.Event()
        self._initial = True  # until the first LIST completes
        self._listed: set[str] = set()  # keys seen by the LIST in progress; empty otherwise
        self._thread: threading.Thread | None = None
        self.handler_errors = 0
        """Exceptions raised by handlers, caught; written under the dispatch lock only."""
        self._handler_log = RateLimitedLog(log, logging.ERROR)
        self.reflector = Reflector(
            name,
            lister_watcher,
            self,
            kind=kind,
            api_version=api_version,
            settings=settings,
            rng=rng,
            clock=clock,
            on_synced=self._on_listed,
            on_api_error=on_api_error,
        )

    # -- lifecycle ----------------------------------------------------------------------

    def add_handler(self, handler: ResourceEventHandler, *, namespace: str | None = None) -> None:
        """Register ``handler``. After ``start`` it first hears the Store's objects as
        initial adds (only those in ``namespace`` when given: later changes of all objects
        still reach it), on the caller's thread, while the informer waits."""
        with self._dispatch:
            if self._thread is not None:
                for key in self.store.keys(namespace):
                    stored = self.store.get(key)
                    if stored is not None:
                        obj = stored.decode()
                        try:
                            handler.on_add(obj, True)
                        except Exception:
                            self._handler_failed("add", obj)
            self._handlers = (*self._handlers, handler)

    def remove_handler(self, handler: ResourceEventHandler) -> None:
        """Unregister ``handler`` (by identity); once this returns it is not called again."""
        with self._dispatch:
            self._handlers = tuple(h for h in self._handlers if h is not handler)

    @property
    def handler_count(self) -> int:
        return len(self._handlers)

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError(f"{self.name}: already started")
        self._seed()
        self._thread = threading.Thread(
            target=self.reflector.run, name=f"kubewatch-watch-{self.name}", daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float | None = 5.0) -> None:
        """Stop watching and wait up to ``timeout`` seconds for the thread to end.

        A thread blocked in a LIST or in opening a WATCH (a frozen API server) is not
        waited for: that request cannot be interrupted, and nothing it returns reaches
        the handlers any more, so a shutdown does not wait for its read timeout.
        """
        self.reflector.stop()
        if self._thread is not None and not self.reflector.in_request:
            self._thread.join(timeout)

    def _seed(self) -> None:
        """Fill the Store from the checkpoint: the first list is then a relist."""
        if self._checkpoint is None:
            return
        rows = self._checkpoint.load()
        if rows is None:
            return
        self.store.load((key, StoredObject(uid, rv, data)) for key, uid, rv, data in rows)
        self._initial = False
        self._recovering = True
        log.info(
            "%s: %d object(s) from the checkpoint; reporting changes made meanwhile",
            self.name,
            len(rows),
        )

    @property
    def recovering(self) -> bool:
        """True while the first list is compared with the checkpoint: what the handlers
        hear meanwhile happened while kubewatch was down."""
        return self._recovering

    @property
    def has_synced(self) -> bool:
        """True once the first LIST has been delivered to the handlers."""
        return self._synced.is_set()

    def wait_for_sync(self, timeout: float | None = None) -> bool:
        return self._synced.wait(timeout)

    def _on_listed(self, count: int) -> None:
        if not self._synced.is_set():
            log.info("%s: synced, %d objects", self.name, count)
        self._initial = False
        self._recovering = False
        if self._checkpoint is not None:
            self._checkpoint.synced()
        self._synced.set()

    # -- ReflectorTarget ------------------------------------------------------------------

    def replace_begin(self) -> None:
        self._listed = set()

    def replace_item(self, obj: dict[str, Any]) -> None:
        obj = self._transform(obj)
        key = object_key(obj)
        self._listed.add(key)
        with self._dispatch:
            previous, stored = self.store.put(key, obj, self._split)
            if previous is None:
                self._add(obj, self._initial)
            else:
                self._changed(key, previous, stored, obj)
        self._record(key, previous, stored)

    def replace_end(self) -> None:
        listed, self._listed = self._listed, set()
        for key in self.store:
            if key not in listed:
                with self._dispatch:
                    gone = self.store.delete(key)
                    if gone is not None:
                        self._delete(DeletedFinalStateUnknown(key, gone.decode()))
                if gone is not None and self._checkpoint is not None:
                    self._checkpoint.delete(key)

    def watch_event(self, event_type: str, obj: dict[str, Any]) -> None:
        obj = self._transform(obj)
        key = object_key(obj)
        if event_type == "DELETED":
            with self._dispatch:
                self.store.delete(key)
                self._delete(obj)
            if self._checkpoint is not None:
                self._checkpoint.delete(key)
            return
        with self._dispatch:
            previous, stored = self.store.put(key, obj, self._split)
            if previous is None:
                self._add(obj, False)
            else:
                self._changed(key, previous, stored, obj)
        self._record(key, previous, stored)

    def _record(self, key: str, previous: StoredObject | None, stored: StoredObject) -> None:
        """Checkpoint ``stored`` once the handlers have had it (unless nothing changed)."""
        if self._checkpoint is None:
            return
        if (
            previous is not None
            and previous.uid == stored.uid
            and previous.resource_version == stored.resource_version
        ):
            return
        self._checkpoint.put(key, stored.uid, stored.resource_version, stored.blob)

    def _changed(
        self, key: str, previous: StoredObject, stored: StoredObject, obj: dict[str, Any]
    ) -> None:
        if previous.uid != stored.uid:  # deleted and recreated while we were not looking
            self._delete(DeletedFinalStateUnknown(key, previous.decode()))
            self._add(obj, False)
        elif previous.resource_version != stored.resource_version:
            if stored.same_significant(previous):
                self._quiet_update(previous, obj)
            else:
                self._update(previous.decode(), obj)

    # -- fan-out --------------------------------------------------------------------------

    def _add(self, obj: dict[str, Any], initial: bool) -> None:
        for handler in self._handlers:
            try:
                handler.on_add(obj, initial)
            except Exception:
                self._handler_failed("add", obj)

    def _update(self, old: dict[str, Any], new: dict[str, Any]) -> None:
        for handler in self._handlers:
            try:
                handler.on_update(old, new)
            except Exception:
                self._handler_failed("update", new)

    def _quiet_update(self, previous: StoredObject, new: dict[str, Any]) -> None:
        decoded: list[dict[str, Any]] = []  # the previous state, once decoded

        def old() -> dict[str, Any]:
            if not decoded:
                decoded.append(previous.decode())
            return decoded[0]

        for handler in self._handlers:
            try:
                quiet = getattr(handler, "on_quiet_update", None)
                if quiet is not None:
                    quiet(old, new)
                else:
                    handler.on_update(old(), new)
            except Exception:
                self._handler_failed("update", new)

    def _delete(self, obj: dict[str, Any] | DeletedFinalStateUnknown) -> None:
        for handler in self._handlers:
            try:
                handler.on_delete(obj)
            except Exception:
                self._handler_failed(
                    "delete", obj.obj if isinstance(obj, DeletedFinalStateUnknown) else obj
                )

    def _handler_failed(self, change: str, obj: dict[str, Any]) -> None:
        """Count and log (rate limited) a handler's exception; call from ``except``."""
        self.handler_errors += 1
        self._handler_log(
            "%s: handler failed on %s of %s; that change is not reported",
            self.name,
            change,
            object_key(obj),
            exc_info=True,
        )
