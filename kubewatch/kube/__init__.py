"""API-server I/O: the client, discovery, access checks, list/watch (Reflector, Store,
SharedInformer, the InformerPool that shares them), the WorkQueue a controller reconciles
from, leader election and the Event recorder. Nothing here knows of events,
routing or sinks."""

from kubewatch.kube.informer import (
    DeletedFinalStateUnknown,
    InformerCheckpoint,
    ResourceEventHandler,
    SharedInformer,
    strip_managed_fields,
)
from kubewatch.kube.pool import InformerKey, InformerPool
from kubewatch.kube.reflector import ListerWatcher, Reflector, ReflectorSettings
from kubewatch.kube.store import Store, StoredObject, object_key
from kubewatch.kube.workqueue import RateLimiter, WorkQueue

__all__ = [
    "DeletedFinalStateUnknown",
    "InformerCheckpoint",
    "InformerKey",
    "InformerPool",
    "ListerWatcher",
    "RateLimiter",
    "Reflector",
    "ReflectorSettings",
    "ResourceEventHandler",
    "SharedInformer",
    "Store",
    "StoredObject",
    "WorkQueue",
    "object_key",
    "strip_managed_fields",
]
