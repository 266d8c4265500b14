"""Retry policy: how many attempts and how long to wait; it never sleeps itself.

Returning a delay instead of sleeping keeps the policy a pure function (tests call it
with a seeded ``random.Random``) and leaves the waiting to the worker (tenacity, with a
sleep that shutdown interrupts and tests replace).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from kubewatch.backoff import MAX_RETRY_AFTER, RetryBackoff
from kubewatch.config import RetryConfig

__all__ = ["MAX_RETRY_AFTER", "RetryPolicy"]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """At most ``attempts`` attempts per (event, sink), the first included; waits from
    ``backoff``. Only ``RetryableError`` is retried: ``PermanentError``, a bare
    ``DeliveryError`` and unexpected exceptions are not."""

    attempts: int | None = None
    """``None``: no limit (the dispatcher's ``maxAge`` ends the attempts)."""
    backoff: RetryBackoff = field(default_factory=RetryBackoff)

    @classmethod
    def from_config(cls, config: RetryConfig) -> RetryPolicy:
        return cls(attempts=config.attempts, backoff=RetryBackoff(max_backoff=config.max_backoff))
