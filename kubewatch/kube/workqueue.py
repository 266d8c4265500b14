"""A rate-limited work queue of keys, with client-go ``util/workqueue`` semantics.

A controller's informer handlers :meth:`WorkQueue.add` the key of what changed and return
at once; worker threads :meth:`~WorkQueue.get` a key, reconcile it, and call
:meth:`~WorkQueue.done`. Guarantees:

* **One worker per key.** A key handed out by ``get`` is not handed out again before its
  ``done``, however many workers wait.
* **Nothing lost, nothing doubled.** Adding a key that is already queued changes nothing
  (it keeps its place); adding one that is being processed marks it, and ``done`` queues it
  once more: a change made while a worker reconciled is always seen by a later run.
* **Fair.** Keys are handed out in the order they were first added (FIFO).
* **Delays.** :meth:`~WorkQueue.add_after` adds a key once ``delay`` seconds have passed;
  a key already waiting keeps the earlier of its two due times. There is no timer thread:
  a waiting ``get`` sleeps exactly until the earliest key is due, and every other call
  moves due keys into the queue first.
* **Retries.** :meth:`~WorkQueue.add_rate_limited` adds a key after its :class:`RateLimiter`
  delay: per-key exponential backoff (5 ms doubling to 1000 s, client-go's
  ``ItemExponentialFailureRateLimiter``), and never faster than an overall token bucket
  (10 a second, bursts of 100: client-go's ``DefaultControllerRateLimiter``), whichever is
  later. :meth:`~WorkQueue.forget` on success resets the key's backoff;
  :meth:`~WorkQueue.num_requeues` says how often it failed in a row.
* **Shutdown.** :meth:`~WorkQueue.shut_down` wakes every waiting ``get``; from then on
  ``get`` returns ``None`` and adds are ignored. Unlike client-go, which still hands out
  what is queued, keys left in the queue are dropped: reconcile is level-based and the
  next start lists every object again, so a stop need not wait for a backlog.

:meth:`~WorkQueue.len` is informational only (it changes as soon as it is read): never
branch on it. The clock is a parameter (monotonic seconds), so tests step time.
"""

from __future__ import annotations

import heapq
import itertools
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

from kubewatch.backoff import ceiling
from kubewatch.ratelimit import TokenBucket

__all__ = [
    "BASE_DELAY",
    "MAX_DELAY",
    "OVERALL_BURST",
    "OVERALL_PER_SECOND",
    "RateLimiter",
    "WorkQueue",
]

K = TypeVar("K", bound=Hashable)

BASE_DELAY = 0.005
"""Seconds before the first retry of a key: a conflict on write is usually gone by then."""
MAX_DELAY = 1000.0
"""Seconds: the longest per-key backoff; a key broken for good is retried every ~17 min."""
OVERALL_PER_SECOND = 10.0
"""Retries a second across all keys: a failing API server is not hammered by every key."""
OVERALL_BURST = 100
"""Retries at once before :data:`OVERALL_PER_SECOND` applies (a short blip costs nothing)."""


class RateLimiter(Generic[K]):
    """When a failed key may run again: the later of its own exponential backoff and the
    next token of a bucket shared by all keys. Thread-safe.

    ``when(key)`` counts a failure and returns the delay; ``forget(key)`` resets the count.
    The per-key backoff has no jitter (as in client-go): the bucket spreads many keys.
    """

    def __init__(
        self,
        *,
        base_delay: float = BASE_DELAY,
        max_delay: float = MAX_DELAY,
        per_second: float = OVERALL_PER_SECOND,
        burst: int = OVERALL_BURST,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not 0 < base_delay <= max_delay:
            raise ValueError(f"need 0 < base_delay <= max_delay, got {base_delay}, {max_delay}")
        self.base_delay = base_delay
        self.max_delay = max_delay
        self._bucket = TokenBucket(per_second, burst, clock=clock)
        self._lock = threading.Lock()
        self._failures: dict[K, int] = {}  # key -> failures since its last forget; never 0

    def when(self, key: K) -> float:
        """Count one more failure of ``key``; the seconds to wait before it runs again."""
        with self._lock:
            failures = self._failures.get(key, 0) + 1
            self._failures[key] = failures
        own = ceiling(self.base_delay, self.max_delay, failures)
        return max(own, self._bucket.reserve())

    def forget(self, key: K) -> None:
        """``key`` succeeded: its next failure waits ``base_delay`` again."""
        with self._lock:
            self._failures.pop(key, None)

    def num_requeues(self, key: K) -> int:
        """Failures of ``key`` since it was last forgotten."""
        with self._lock:
            return self._failures.get(key, 0)


class WorkQueue(Generic[K]):
    """Keys to reconcile, each handed to one worker at a time (see the module docstring)."""

    def __init__(
        self,
        rate_limiter: RateLimiter[K] | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._clock = clock
        self._limiter: RateLimiter[K] = rate_limiter or RateLimiter(clock=clock)
        self._cond = threading.Condition(threading.Lock())
        # Invariants, under _cond:
        # - _queue holds each key at most once; every key in _queue is in _dirty and not
        #   in _processing.
        # - _dirty: keys that need a run: queued, or added while processing (those are
        #   queued again by done).
        # - _processing: keys handed out by get and not yet done.
        # - _due[key] is the due time of every delayed key; _waiting is a heap holding
        #   (_due[key], seq, key) for each, plus stale entries of keys whose due time
        #   moved earlier or that were already promoted (skipped when popped).
        self._queue: deque[K] = deque()
        self._dirty: set[K] = set()
        self._processing: set[K] = set()
        self._due: dict[K, float] = {}
        self._waiting: list[tuple[float, int, K]] = []
        self._seq = itertools.count()  # heap tie-break: keys need not be ordered
        self._shutting_down = False

    # -- adding ---------------------------------------------------------------------------

    def add(self, key: K) -> None:
        """Queue ``key`` unless it is queued already; if it is being processed, queue it
        again when that run is done. Ignored after :meth:`shut_down`."""
        with self._cond:
            self._promote()
            self._add(key)

    def add_after(self, key: K, delay: float) -> None:
        """:meth:`add` ``key`` once ``delay`` seconds have passed (at once if ``delay <= 0``);
        a key already waiting keeps the earlier due time."""
        with self._cond:
            self._promote()
            if self._shutting_down:
                return
            if not delay > 0:
                self._add(key)
                return
            due = self._clock() + delay
            if due >= self._due.get(key, math.inf):
                return
            self._due[key] = due
            heapq.heappush(self._waiting, (due, next(self._seq), key))
            self._cond.notify()  # a waiting get may have to wake earlier now

    def add_rate_limited(self, key: K) -> None:
        """Add ``key`` after the rate limiter's delay: a failed run, retried with backoff."""
        self.add_after(key, self._limiter.when(key))

    def forget(self, key: K) -> None:
        """``key`` succeeded: reset its backoff (it stays queued if it is)."""
        self._limiter.forget(key)

    def num_requeues(self, key: K) -> int:
        """How often ``key`` was added rate limited since it was last forgotten."""
        return self._limiter.num_requeues(key)

    def _add(self, key: K) -> None:
        """client-go's ``Add``, under ``_cond``."""
        if self._shutting_down or key in self._dirty:
            return
        self._dirty.add(key)
        if key in self._processing:
            return  # done() queues it
        self._queue.append(key)
        self._cond.notify()

    def _promote(self) -> float | None:
        """Move the delayed keys that are due into the queue, under ``_cond``; return the
        seconds until the next one is due (None: none waits)."""
        now = self._clock()
        while self._waiting:
            due, _, key = self._waiting[0]
            if self._due.get(key) != due:  # stale: moved earlier, or already promoted
                heapq.heappop(self._waiting)
                continue
            if due > now:
                return due - now
            heapq.heappop(self._waiting)
            del self._due[key]
            self._add(key)
        return None

    # -- processing -----------------------------------------------------------------------

    def get(self) -> K | None:
        """Block until a key is ready and hand it out (the caller must call :meth:`done`
        with it); ``None`` once the queue is shut down: the worker should end."""
        with self._cond:
            while True:
                if self._shutting_down:
                    return None
                until_due = self._promote()
                if self._queue:
                    key = self._queue.popleft()
                    self._processing.add(key)
                    self._dirty.discard(key)
                    return key
                self._cond.wait(until_due)

    def done(self, key: K) -> None:
        """The run of ``key`` is over: if it was added meanwhile, queue it again."""
        with self._cond:
            self._processing.discard(key)
            if key in self._dirty and not self._shutting_down:
                self._queue.append(key)
                self._cond.notify()

    def shut_down(self) -> None:
        """Wake every waiting :meth:`get` (they return None) and ignore later adds;
        idempotent. Keys being processed may still be passed to :meth:`done`."""
        with self._cond:
            self._shutting_down = True
            self._queue.clear()
            self._dirty.clear()
            self._due.clear()
            self._waiting.clear()
            self._cond.notify_all()

    @property
    def shutting_down(self) -> bool:
        with self._cond:
            return self._shutting_down

    def len(self) -> int:
        """Keys queued now, delayed and in-flight ones excluded (informational only)."""
        with self._cond:
            self._promote()
            return len(self._queue)
