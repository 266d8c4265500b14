"""The errors kubewatch raises, as one documented hierarchy.

    KubewatchError
    ├── ConfigError            the configuration is wrong; carries the key path
    ├── ResolveError           a configured resource does not resolve through discovery
    ├── ApiError               the API server answered with an HTTP error status
    │   └── WatchExpired       410 Gone: the resourceVersion is too old, list again
    └── DeliveryError          a sink could not deliver an event
        ├── RetryableError     try again later (connection error, 5xx, 429)
        │   └── RateLimited    the receiver said when (``retry_after`` seconds)
        └── PermanentError     retrying cannot help (bad credentials, 4xx)

Callers branch on ``isinstance``, never on message text.
"""

from __future__ import annotations


class KubewatchError(Exception):
    """Base class of every error kubewatch raises on purpose."""


class ConfigError(KubewatchError):
    """A configuration mistake: ``path`` names the key (``resources[2].kind``)."""

    def __init__(self, path: str, message: str) -> None:
        self.path = path
        self.message = message
        super().__init__(f"{path}: {message}" if path else message)


class ConfigErrors(KubewatchError):
    """Every mistake found in one configuration, reported together."""

    def __init__(self, errors: list[ConfigError]) -> None:
        self.errors = errors
        super().__init__("\n".join(str(e) for e in errors))


class ResolveError(KubewatchError):
    """A resource reference that discovery cannot resolve; ``suggestions`` are close names."""

    def __init__(self, ref: str, message: str, suggestions: tuple[str, ...] = ()) -> None:
        self.ref = ref
        self.suggestions = suggestions
        hint = f" (did you mean {', '.join(suggestions)}?)" if suggestions else ""
        super().__init__(f"{message}{hint}")


class ApiError(KubewatchError):
    """The API server answered ``status``; ``reason`` is its Status reason when it sent one."""

    def __init__(self, status: int, reason: str = "", message: str = "") -> None:
        self.status = status
        self.reason = reason
        self.message = message
        super().__init__(f"HTTP {status} {reason}: {message}".rstrip(": "))


class WatchExpired(ApiError):
    """410 Gone / Expired: the resourceVersion left the server's window; relist."""

    def __init__(self, message: str = "resource version too old") -> None:
        super().__init__(410, "Expired", message)


class DeliveryError(KubewatchError):
    """A sink failed to deliver an event."""

    status: int | None = None
    """The HTTP status of the answer that failed it, when there was one (a chat sink tells
    "the message is gone", 404, from other refusals by it)."""


class RetryableError(DeliveryError):
    """A failure that may pass: the delivery layer retries with backoff."""


class RateLimited(RetryableError):
    """The receiver asked to wait ``retry_after`` seconds before the next attempt."""

    def __init__(self, message: str, retry_after: float) -> None:
        self.retry_after = retry_after
        super().__init__(f"{message} (retry after {retry_after:g}s)")


class PermanentError(DeliveryError):
    """A failure that retrying cannot fix: the event is dropped and logged."""
