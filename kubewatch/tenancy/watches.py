"""What the Notifier controller watches with: the informer it needs, and handlers that
only queue keys (a handler never blocks an informer)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from kubewatch.kube import DeletedFinalStateUnknown, ResourceEventHandler
from kubewatch.kube.pool import InformerKey
from kubewatch.kube.store import Store

__all__ = ["Informer", "Keys", "NewInformer", "strip_secret"]


class Informer(Protocol):
    """What the controller needs of an informer (a SharedInformer; a fake in tests)."""

    store: Store

    def add_handler(self, handler: ResourceEventHandler) -> None: ...
    def start(self) -> None: ...
    def stop(self, timeout: float | None = 5.0) -> None: ...
    def wait_for_sync(self, timeout: float | None = None) -> bool: ...


NewInformer = Callable[[InformerKey, Callable[[dict[str, Any]], dict[str, Any]] | None], Informer]
"""Builds a (not started) informer for a key, with an object transform (None: default)."""


def strip_secret(obj: dict[str, Any]) -> dict[str, Any]:
    """What the Secret informer keeps of a Secret: its metadata, never its values."""
    meta = {k: v for k, v in (obj.get("metadata") or {}).items() if k != "managedFields"}
    return {"apiVersion": "v1", "kind": "Secret", "metadata": meta}


class Keys:
    """An informer handler that turns changes into queued keys (never blocks).

    ``spec_only``: an update that leaves ``metadata.generation`` as it was changed only
    status or metadata (controller-runtime's GenerationChangedPredicate), which a check
    does not read: our own status write would otherwise queue the object once more, and a
    ClusterSink's every Notifier that uses it.
    """

    def __init__(
        self, changed: Callable[[dict[str, Any], bool], None], *, spec_only: bool = False
    ) -> None:
        self._changed = changed
        self._spec_only = spec_only

    def on_add(self, obj: dict[str, Any], is_initial_list: bool) -> None:
        self._changed(obj, True)

    def on_update(self, old: dict[str, Any], new: dict[str, Any]) -> None:
        if self._spec_only:
            before = (old.get("metadata") or {}).get("generation")
            if before is not None and before == (new.get("metadata") or {}).get("generation"):
                return
        self._changed(new, False)

    def on_delete(self, obj: dict[str, Any] | DeletedFinalStateUnknown) -> None:
        self._changed(obj.obj if isinstance(obj, DeletedFinalStateUnknown) else obj, True)
