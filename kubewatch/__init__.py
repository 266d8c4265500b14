"""kubewatch: watch Kubernetes resources and deliver normalized change events."""

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

__version__ = "0.1.0"

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
    "WatchExpired",
    "__version__",
]
