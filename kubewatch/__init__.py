"""kubewatch: watch Kubernetes resources and deliver normalized change events."""

from kubewatch._version import __version__
from kubewatch.errors import (
    ApiError,
    ConfigError,
    DeliveryError,
    KubewatchError,
    PermanentError,
    RateLimited,
    RetryableError,
    WatchExpired,
)
from kubewatch.events import Change, Event, EventType
from kubewatch.sinks.base import Sink

__all__ = [
    "ApiError",
    "Change",
    "ConfigError",
    "DeliveryError",
    "Event",
    "EventType",
    "KubewatchError",
    "PermanentError",
    "RateLimited",
    "RetryableError",
    "Sink",
    "WatchExpired",
    "__version__",
]
