"""Retry policy: how many attempts and how long to wait; it never sleeps itself.

Returning a delay instead of sleeping keeps the policy a pure function (tests call it
with a seeded ``random.Random``) and leaves the waiting to the worker (tenacity, with a
sleep that shutdown interrupts and tests replace).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from kubewatch.config import RetryConfig
from kubewatch.errors import RateLimited, RetryableError

INITIAL_BACKOFF = 0.5
"""Seconds: ceiling of the first wait; a blip is usually over by then."""

MAX_RETRY_AFTER = 300.0
"""Seconds: the longest ``Retry-After`` honoured, so a bogus header cannot park a worker
(and its shard) for hours."""


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential backoff with full jitter (AWS "Exponential Backoff And Jitter").

    Before retry ``n`` (1 = after the first failed attempt) the wait is uniform in
    ``[0, min(max_backoff, initial * 2 ** (n - 1))]``: full jitter spreads the retries of
    many workers hitting one broken receiver. A ``RateLimited`` error raises the wait to
    at least its ``retry_after`` (capped at ``max_retry_after``), even beyond
    ``max_backoff``: the receiver knows better than our guess.
    """

    initial: float = INITIAL_BACKOFF
    max_backoff: float = 30.0
    max_retry_after: float = MAX_RETRY_AFTER

    def ceiling(self, retry: int) -> float:
        """Upper bound of the jittered wait before retry ``retry`` (1-based)."""
        exponent = min(retry - 1, 64)  # beyond this the cap has long been reached
        return min(self.max_backoff, self.initial * 2.0**exponent)

    def retry_after(self, error: RetryableError) -> float:
        """Seconds the receiver asked for (``RateLimited``), capped; 0.0 when it did not."""
        if isinstance(error, RateLimited) and math.isfinite(error.retry_after):
            return min(max(error.retry_after, 0.0), self.max_retry_after)
        return 0.0

    def delay(self, retry: int, error: RetryableError, rng: random.Random) -> float:
        """Seconds to wait before retry ``retry`` after ``error``."""
        return max(rng.uniform(0.0, self.ceiling(retry)), self.retry_after(error))


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """At most ``attempts`` attempts per (event, sink), the first included; waits from
    ``backoff``. Only ``RetryableError`` is retried: ``PermanentError``, a bare
    ``DeliveryError`` and unexpected exceptions are not."""

    attempts: int | None = None
    """``None``: no limit (the dispatcher's ``maxAge`` ends the attempts)."""
    backoff: Backoff = Backoff()

    @classmethod
    def from_config(cls, config: RetryConfig) -> RetryPolicy:
        return cls(attempts=config.attempts, backoff=Backoff(max_backoff=config.max_backoff))
