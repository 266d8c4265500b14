"""Exponential backoff: one formula (:func:`ceiling`) for every retry loop in kubewatch.

:class:`Backoff` — a watch's relists: jitter that forgets past failures after a healthy
period. :class:`RetryBackoff` — a sink's deliveries: a frozen policy, full jitter, and
the receiver's ``Retry-After`` honoured.

The shape of client-go's ``wait.NewExponentialBackoffManager`` as its Reflector uses it:
the ceiling starts at ``initial`` and doubles with every failure up to ``maximum``; the
wait is jittered within ``[ceiling / 2, ceiling]``, so that many watches failing together
(an API server restart) spread their retries without any of them ever retrying at once;
a failure after ``reset_after`` seconds without one starts from ``initial`` again.

The object holds the failure count and never sleeps: :meth:`next_delay` returns the wait
and the caller waits on something a stop can interrupt. The clock is a parameter, so
tests step time instead of sleeping. One instance belongs to one loop (not shared by
threads).
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

from kubewatch.errors import RateLimited, RetryableError

__all__ = ["INITIAL_BACKOFF", "MAX_RETRY_AFTER", "Backoff", "RetryBackoff", "ceiling"]

MAX_EXPONENT = 64
"""Doublings beyond this change nothing (the cap has long been reached) and would only
overflow the float."""


def ceiling(initial: float, maximum: float, failures: int) -> float:
    """The largest wait after ``failures`` consecutive failures (1 = the first)."""
    exponent = min(max(failures - 1, 0), MAX_EXPONENT)
    return min(maximum, initial * 2.0**exponent)


class Backoff:
    """The waits of one retry loop: :meth:`next_delay` after each failure."""

    def __init__(
        self,
        initial: float,
        maximum: float,
        reset_after: float,
        *,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not 0 < initial <= maximum:
            raise ValueError(f"need 0 < initial <= maximum, got {initial} and {maximum}")
        self.initial = initial
        self.maximum = maximum
        self.reset_after = reset_after
        """Seconds without a failure after which the next wait starts from ``initial``."""
        self._rng = rng or random.Random()
        self._clock = clock
        self._failures = 0  # consecutive failures, each within reset_after of the previous
        self._last_failure = -float("inf")  # clock time of the latest failure

    @property
    def failures(self) -> int:
        """Failures counted towards the current ceiling (0 after a reset)."""
        return self._failures

    def next_delay(self) -> float:
        """Record a failure now; the seconds to wait before the next attempt."""
        now = self._clock()
        if now - self._last_failure > self.reset_after:
            self._failures = 0
        self._failures = min(self._failures + 1, MAX_EXPONENT + 1)
        self._last_failure = now
        cap = ceiling(self.initial, self.maximum, self._failures)
        return cap / 2 + self._rng.uniform(0, cap / 2)

    def reset(self) -> None:
        """Forget every failure: the next wait is ``initial`` at most."""
        self._failures = 0
        self._last_failure = -float("inf")


INITIAL_BACKOFF = 0.5
"""Seconds: ceiling of the first wait; a blip is usually over by then."""

MAX_RETRY_AFTER = 300.0
"""Seconds: the longest ``Retry-After`` honoured, so a bogus header cannot park a worker
(and its shard) for hours."""


@dataclass(frozen=True, slots=True)
class RetryBackoff:
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
        return ceiling(self.initial, self.max_backoff, retry)

    def retry_after(self, error: RetryableError) -> float:
        """Seconds the receiver asked for (``RateLimited``), capped; 0.0 when it did not."""
        if isinstance(error, RateLimited) and math.isfinite(error.retry_after):
            return min(max(error.retry_after, 0.0), self.max_retry_after)
        return 0.0

    def delay(self, retry: int, error: RetryableError, rng: random.Random) -> float:
        """Seconds to wait before retry ``retry`` after ``error``."""
        return max(rng.uniform(0.0, self.ceiling(retry)), self.retry_after(error))
