"""The watch engine: Reflector (list/watch), Store (compact cache), SharedInformer (fan-out)."""

from kubewatch.informer.informer import (
    DeletedFinalStateUnknown,
    InformerCheckpoint,
    ResourceEventHandler,
    SharedInformer,
    strip_managed_fields,
)
from kubewatch.informer.reflector import ListerWatcher, Reflector, ReflectorSettings
from kubewatch.informer.store import Store, StoredObject, object_key

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
