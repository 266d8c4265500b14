"""The app's informers: how one is built from a key and the ``watch`` settings, and the
Namespace watch that namespace selectors read labels from."""

from __future__ import annotations

import logging
import random
import threading
import time

from kubewatch.config import WatchConfig
from kubewatch.errors import ApiError
from kubewatch.kube import InformerCheckpoint, ReflectorSettings, SharedInformer
from kubewatch.kube.client import ClusterClient, ListWatch, Query
from kubewatch.kube.discovery import ResourceType
from kubewatch.kube.informer import Transform
from kubewatch.kube.pool import InformerFactory, InformerKey
from kubewatch.kube.recorder import EventRecorder
from kubewatch.watch.filters import NamespaceLabels
from kubewatch.watch.normalize import compact, significant

__all__ = ["NAMESPACE_SYNC_TIMEOUT", "STOP_POLL_INTERVAL", "NamespaceWatch", "new_informer"]

log = logging.getLogger("kubewatch.app")

NAMESPACE_SYNC_TIMEOUT = 30.0
"""Seconds to wait for the Namespace watch before the others start: namespace selectors
need the labels, and a resource watch that starts first would misjudge early objects."""
STOP_POLL_INTERVAL = 0.1
"""Seconds between looks at a stop request while a start step waits: a SIGTERM ends the
wait within this, not after the step's timeout."""


def new_informer(
    client: ClusterClient,
    settings: WatchConfig,
    key: InformerKey,
    *,
    name: str | None = None,
    rng: random.Random,
    recorder: EventRecorder | None,
    checkpoint: InformerCheckpoint | None,
    transform: Transform = compact,
) -> SharedInformer:
    """One informer on the collection ``key`` with the ``watch`` settings, named ``name``
    (default: after the key); ``checkpoint``: kept in the durable state (a restart reports
    what changed meanwhile); ``transform``: what is kept of each object."""
    reflector = ReflectorSettings(
        page_size=settings.page_size,
        server_timeout=settings.server_timeout,
        read_timeout=settings.read_timeout,
    )
    name = name or key.name
    return SharedInformer(
        name,
        ListWatch(
            client, key.path, Query(key.label_selector, key.field_selector), reflector.read_timeout
        ),
        kind=key.resource.kind,
        api_version=key.resource.api_version,
        settings=reflector,
        transform=transform,
        rng=rng,
        on_api_error=lambda error: _api_error(recorder, name, error),
        checkpoint=checkpoint,
        significant=significant if transform is compact else None,
    )


def _api_error(recorder: EventRecorder | None, watch: str, error: ApiError) -> None:
    if recorder is None:
        return
    if error.status == 403:
        recorder.warning("WatchForbidden", f"{watch}: forbidden ({error.message})")
    elif error.status == 404:
        recorder.warning("ResourceMissing", f"{watch}: not found ({error.message})")


class NamespaceWatch:
    """The Namespace informer feeding :class:`NamespaceLabels`: started by the first watch
    with a namespace selector, which waits (up to :data:`NAMESPACE_SYNC_TIMEOUT`) until
    the namespaces are listed. Never checkpointed: the labels must be listed afresh.
    Kept out of the pool: a configured Namespace watch has a checkpoint, this one not."""

    def __init__(
        self, labels: NamespaceLabels, new: InformerFactory, stopping: threading.Event
    ) -> None:
        self._labels = labels
        self._new = new
        self._stopping = stopping
        self._lock = threading.Lock()
        self.informer: SharedInformer | None = None
        """Set once, when started."""

    def start(self, resource: ResourceType | None) -> None:
        """Start it (once) and wait for its first list, unless a stop is requested."""
        with self._lock:
            if self._stopping.is_set() or self.informer is not None or resource is None:
                return
            informer = self._new(InformerKey.of(resource))
            informer.add_handler(self._labels)
            self.informer = informer
        informer.start()
        deadline = time.monotonic() + NAMESPACE_SYNC_TIMEOUT
        while not informer.wait_for_sync(STOP_POLL_INTERVAL):
            if self._stopping.is_set():
                return
            if time.monotonic() >= deadline:
                break
        else:
            return
        log.warning(
            "namespaces not listed within %.0fs; namespace selectors admit nothing until then",
            NAMESPACE_SYNC_TIMEOUT,
        )
