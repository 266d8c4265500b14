"""Token buckets: one per sink, which a receiver's ``Retry-After`` also pauses, and the
budget of kubewatch's own Kubernetes Events (:mod:`kubewatch.kube.recorder`).

Chat services limit how fast one may post (Slack: about one message per second per
channel, short bursts tolerated) and answer 429 beyond it. A :class:`TokenBucket` keeps a
sink under its configured rate instead of finding the limit by hitting it:

- **Rate and burst.** The bucket holds at most ``burst`` tokens and gains ``per_second``
  tokens a second; it starts full. Every attempt takes one token first — first attempts
  and retries alike, from every worker of the sink — so over any interval of ``t``
  seconds a sink makes at most ``burst + per_second * t`` attempts.
- **Waiting.** :meth:`TokenBucket.acquire` blocks until a token is available: it computes
  when the next token is due and sleeps exactly that long (never polls), then tries
  again (another worker may have taken it meanwhile: there is no FIFO fairness between
  the workers of one sink, only the rate is guaranteed).
- **Pauses.** :meth:`TokenBucket.pause` (the dispatcher calls it on
  :class:`~kubewatch.errors.RateLimited`, i.e. a 429 or a 503 with ``Retry-After``) hands
  out no token to anyone before the pause ends: the receiver's limit is per sink (per
  channel, per webhook), not per worker, so letting the other workers carry on would only
  prolong it. The bucket keeps at most one token through a pause and gains none during
  it: the first attempt after it goes at once, the rest at the configured rate (no burst
  right after a 429). Sinks without ``rateLimit`` get an unlimited bucket, which only
  carries pauses.
- **Shutdown.** A wait is interruptible: :meth:`TokenBucket.close` (or an injected
  ``sleep`` returning True) makes every waiting and later :meth:`~TokenBucket.acquire`
  return False without a token.

The clock and the sleep are injected: tests pass a fake clock and a sleep that advances
it, so no test waits for real seconds.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

from kubewatch.config import RateLimitConfig

Sleep = Callable[[float], bool]
"""Waits ``delay`` seconds; returns True when interrupted (shutdown), False otherwise."""

_EPSILON = 1e-9
"""Tokens of float rounding forgiven: after sleeping exactly the computed wait, a refill of
0.9999999999 tokens is one token (otherwise a fake clock would need a second, tiny sleep)."""


class TokenBucket:
    """``per_second`` attempts a second on average, at most ``burst`` at once; thread-safe.

    ``per_second=math.inf`` is an unlimited bucket (see :meth:`unlimited`): it never
    makes anyone wait, except through :meth:`pause`. ``clock`` is monotonic seconds;
    ``sleep`` waits and says whether it was interrupted (default: a wait that
    :meth:`close` interrupts).
    """

    def __init__(
        self,
        per_second: float,
        burst: int = 1,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Sleep | None = None,
    ) -> None:
        if not per_second > 0:
            raise ValueError("per_second must be positive")
        if burst < 1:
            raise ValueError("burst must be at least 1")
        self.per_second = per_second
        self.burst = burst
        self._clock = clock
        self._closed = threading.Event()
        self._sleep: Sleep = sleep if sleep is not None else self._closed.wait
        self._lock = threading.Lock()
        # Invariants, under _lock: _tokens <= burst, below 0 only by reservations
        # (:meth:`reserve`: tokens promised for later); _updated never decreases;
        # no token is handed out while clock() < _paused_until, and none accrues then.
        self._tokens = float(burst)  # starts full: the first burst goes at once
        self._updated = clock()  # clock() of the last refill
        self._paused_until = -math.inf

    @classmethod
    def unlimited(
        cls, *, clock: Callable[[], float] = time.monotonic, sleep: Sleep | None = None
    ) -> TokenBucket:
        """A bucket that only carries pauses (a sink without ``rateLimit``)."""
        return cls(math.inf, 1, clock=clock, sleep=sleep)

    @classmethod
    def from_config(
        cls,
        config: RateLimitConfig | None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Sleep | None = None,
    ) -> TokenBucket:
        """The bucket of a sink's ``rateLimit`` (``None``: unlimited)."""
        if config is None:
            return cls.unlimited(clock=clock, sleep=sleep)
        return cls(config.per_second, config.burst, clock=clock, sleep=sleep)

    @property
    def limited(self) -> bool:
        """False for an unlimited bucket (it still honours pauses)."""
        return math.isfinite(self.per_second)

    # -- taking tokens -------------------------------------------------------------------

    def _refill(self, now: float) -> None:
        """Add what accrued since the last refill, counting no time spent paused."""
        if now >= self._paused_until:
            if not self.limited:
                self._tokens = float(self.burst)
            else:
                start = max(self._updated, self._paused_until)
                if now > start:
                    gained = (now - start) * self.per_second
                    self._tokens = min(float(self.burst), self._tokens + gained)
        self._updated = max(self._updated, now)

    def try_acquire(self) -> float:
        """Take a token if one is available now and return 0.0; otherwise take nothing and
        return the seconds until one is due (the caller may sleep that long)."""
        with self._lock:
            now = self._clock()
            self._refill(now)
            paused = max(0.0, self._paused_until - now)
            if not paused and self._tokens >= 1.0 - _EPSILON:
                self._tokens = max(0.0, self._tokens - 1.0)
                return 0.0
            deficit = max(0.0, 1.0 - self._tokens)
            return paused + (deficit / self.per_second if self.limited else 0.0)

    def reserve(self) -> float:
        """Take a token now or one due later and return the seconds until it is due (0.0:
        now). Never waits and never refuses: every reservation is a token promised in
        order, so ``n`` callers at once are spread at the configured rate
        (golang.org/x/time/rate's ``Reserve().Delay()``, client-go's bucket limiter)."""
        with self._lock:
            now = self._clock()
            self._refill(now)
            paused = max(0.0, self._paused_until - now)
            if not self.limited:
                return paused
            self._tokens -= 1.0
            owed = -self._tokens if self._tokens < -_EPSILON else 0.0
            return paused + owed / self.per_second

    def acquire(self) -> bool:
        """Block until a token is taken (True), or the wait is interrupted (False, no
        token taken). Sleeps only as long as the next token is due: never busy-waits."""
        while not self._closed.is_set():
            wait = self.try_acquire()
            if wait <= 0.0:
                return True
            if self._sleep(wait) or self._closed.is_set():
                return False
        return False

    # -- pauses and shutdown -------------------------------------------------------------

    def pause(self, seconds: float) -> bool:
        """No token for anyone before ``seconds`` from now (a receiver's ``Retry-After``).

        Extends a running pause, never shortens it; returns True if the pause was
        extended. The bucket keeps at most one token for the end of the pause.
        """
        if not seconds > 0 or not math.isfinite(seconds):
            return False
        with self._lock:
            now = self._clock()
            self._refill(now)
            until = now + seconds
            if until <= self._paused_until:
                return False
            self._paused_until = until
            self._tokens = min(self._tokens, 1.0)
            return True

    def paused_for(self) -> float:
        """Seconds left of the current pause (0.0 when not paused); informational only."""
        with self._lock:
            return max(0.0, self._paused_until - self._clock())

    def close(self) -> None:
        """Interrupt every wait in :meth:`acquire`, now and later; idempotent."""
        self._closed.set()

    @property
    def closed(self) -> bool:
        return self._closed.is_set()
