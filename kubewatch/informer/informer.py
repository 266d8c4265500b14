"""SharedInformer: one Reflector and one Store per collection, any number of handlers.

Guarantees (as client-go's ``SharedInformer`` states them):

* Per object key, handlers see changes in the order the API server made them; across
  keys there is no ordering.
* An object that exists when the informer starts is announced with
  ``on_add(obj, is_initial_list=True)``; one created later with ``is_initial_list=False``.
* ``on_update(old, new)`` is called only when the resourceVersion changed.
* After a relist (410 Gone, or a broken watch the server could not resume), every object
  created, changed or deleted meanwhile produces exactly one ``on_add``, ``on_update`` or
  ``on_delete``. A delete seen only through a relist hands over a
  :class:`DeletedFinalStateUnknown` carrying the last known state. An object deleted and
  recreated under the same name meanwhile (a new UID) is a delete followed by an add.
* Handlers run on the informer's thread and must return quickly (hand work to a queue).
  They must not mutate the dicts they receive: several handlers share them. An exception
  in a handler is logged and does not stop the informer or the other handlers.
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
from kubewatch.informer.reflector import ListerWatcher, Reflector, ReflectorSettings
from kubewatch.informer.store import Store, StoredObject, object_key

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


class ResourceEventHandler(Protocol):
    def on_add(self, obj: dict[str, Any], is_initial_list: bool) -> None: ...

    def on_update(self, old: dict[str, Any], new: dict[str, Any]) -> None: ...

    def on_delete(self, obj: dict[str, Any] | DeletedFinalStateUnknown) -> None: ...


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
    ) -> None:
        self.name = name
        self.store = Store()
        self._transform = transform
        self._handlers: list[ResourceEventHandler] = []
        self._synced = threading.Event()
        self._initial = True  # until the first LIST completes
        self._listed: set[str] = set()  # keys seen by the LIST in progress; empty otherwise
        self._thread: threading.Thread | None = None
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

    def add_handler(self, handler: ResourceEventHandler) -> None:
        """Register a handler; only before ``start`` (late handlers would miss the list)."""
        if self._thread is not None:
            raise RuntimeError(f"{self.name}: handlers must be added before start()")
        self._handlers.append(handler)

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError(f"{self.name}: already started")
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
        self._synced.set()

    # -- ReflectorTarget ------------------------------------------------------------------

    def replace_begin(self) -> None:
        self._listed = set()

    def replace_item(self, obj: dict[str, Any]) -> None:
        obj = self._transform(obj)
        key = object_key(obj)
        self._listed.add(key)
        previous, stored = self.store.put(key, obj)
        if previous is None:
            self._add(obj, self._initial)
        else:
            self._changed(key, previous, stored, obj)

    def replace_end(self) -> None:
        listed, self._listed = self._listed, set()
        for key in self.store:
            if key not in listed:
                gone = self.store.delete(key)
                if gone is not None:
                    self._delete(DeletedFinalStateUnknown(key, gone.decode()))

    def watch_event(self, event_type: str, obj: dict[str, Any]) -> None:
        obj = self._transform(obj)
        key = object_key(obj)
        if event_type == "DELETED":
            self.store.delete(key)
            self._delete(obj)
            return
        previous, stored = self.store.put(key, obj)
        if previous is None:
            self._add(obj, False)
        else:
            self._changed(key, previous, stored, obj)

    def _changed(
        self, key: str, previous: StoredObject, stored: StoredObject, obj: dict[str, Any]
    ) -> None:
        if previous.uid != stored.uid:  # deleted and recreated while we were not looking
            self._delete(DeletedFinalStateUnknown(key, previous.decode()))
            self._add(obj, False)
        elif previous.resource_version != stored.resource_version:
            self._update(previous.decode(), obj)

    # -- fan-out --------------------------------------------------------------------------

    def _add(self, obj: dict[str, Any], initial: bool) -> None:
        for handler in self._handlers:
            try:
                handler.on_add(obj, initial)
            except Exception:
                log.exception("%s: handler failed on add", self.name)

    def _update(self, old: dict[str, Any], new: dict[str, Any]) -> None:
        for handler in self._handlers:
            try:
                handler.on_update(old, new)
            except Exception:
                log.exception("%s: handler failed on update", self.name)

    def _delete(self, obj: dict[str, Any] | DeletedFinalStateUnknown) -> None:
        for handler in self._handlers:
            try:
                handler.on_delete(obj)
            except Exception:
                log.exception("%s: handler failed on delete", self.name)
