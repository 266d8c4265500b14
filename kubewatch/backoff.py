"""Exponential backoff with jitter that forgets past failures after a healthy period.

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

import random
import time
from collections.abc import Callable

__all__ = ["Backoff", "ceiling"]

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
