"""API-server I/O: the client, discovery, access checks, list/watch (Reflector, Store,
SharedInformer), leader election and the Event recorder. Nothing here knows of events,
routing or sinks."""

from kubewatch.kube.informer import (
    DeletedFinalStateUnknown,
    InformerCheckpoint,
    ResourceEventHandler,
    SharedInformer,
    strip_managed_fields,
)
from kubewatch.kube.reflector import ListerWatcher, Reflector, ReflectorSettings
from kubewatch.kube.store import Store, StoredObject, object_key

__all__ = [
    "DeletedFinalStateUnknown",
    "InformerCheckpoint",
    "ListerWatcher",
    "Reflector",
    "ReflectorSettings",
    "ResourceEventHandler",
    "SharedInformer",
    "Store",
    "StoredObject",
    "object_key",
    "strip_managed_fields",
]
