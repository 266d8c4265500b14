"""One sink's lane in the dispatcher: its queue, bucket, counters, fence and drop log.

The pieces here hold state and keep their invariants under their own locks; the
:class:`~kubewatch.delivery.dispatcher.Dispatcher` decides what happens to each event.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass

from kubewatch.delivery.digest import Digester
from kubewatch.delivery.policy import SinkPolicy
from kubewatch.delivery.queue import ShardedQueue
from kubewatch.events import Event
from kubewatch.ratelimit import Sleep, TokenBucket
from kubewatch.sinks.base import Sink
from kubewatch.timefmt import utc_now

log = logging.getLogger("kubewatch.delivery")

__all__ = [
    "DROP_LOG_INTERVAL",
    "SINK_DOWN_AFTER",
    "DropLog",
    "Fence",
    "Item",
    "Lane",
    "SinkStats",
    "item_key",
]


DROP_LOG_INTERVAL = 1.0
"""Seconds between two WARNING lines about one sink's overflow drops: an overloaded sink
may drop thousands of events a second, and a line each would flood the log (and slow the
watch thread that logs them). The rest go to DEBUG and are counted in the next line."""


SINK_DOWN_AFTER = 3
"""Failed attempts in a row after which a sink counts as down (a WARNING, the
``SinkDown`` Event, ``kubewatch_sink_up`` 0): one blip is not an outage."""


@dataclass(frozen=True, slots=True)
class SinkStats:
    """Counters of one sink since the dispatcher was built (a snapshot)."""

    delivered: int = 0
    """Events the sink accepted."""
    failed: int = 0
    """Events given up: permanent error, attempts exhausted, sink bug, or shutdown."""
    retried: int = 0
    """Attempts after the first (one event may count several times)."""
    dropped: int = 0
    """Events evicted unsent because the queue was full (oldest first)."""
    queued: int = 0
    """Events waiting now, in-flight ones excluded; informational only."""
    digested: int = 0
    """Events folded into burst digests (not sent one by one)."""
    held: int = 0
    """Events held now for the current window's digests; informational only."""
    expired: int = 0
    """Events given up because they were older than ``delivery.maxAge`` (also in failed)."""
    up: bool = True
    """False while the sink is down (:data:`SINK_DOWN_AFTER` failed attempts in a row)."""


@dataclass(frozen=True, slots=True)
class Item:
    """One queued event and its place relative to the digests of its sink (see Fence)."""

    event: Event
    epoch: int = 0
    """Digests queued before this item; for a digest, its own number (0, 1, …)."""
    barrier: bool = False
    """True for a digest: it waits for everything queued before it, and the reverse."""
    expires: float = math.inf
    """Dispatcher-clock time after which the event fails as expired (``maxAge``)."""


class Fence:
    """Makes every digest a barrier in one sink's queue, across its shards.

    Items are numbered by *epoch*: digest ``k`` is queued between the events of epoch
    ``k`` (before it) and those of epoch ``k + 1`` (after it). A worker may send

    - an event of epoch ``e`` once digests ``0 .. e-1`` have finished;
    - digest ``k`` once digests ``0 .. k-1`` and every event of epochs ``<= k`` finished.

    "Finished" is delivered, failed, dropped on overflow or abandoned. Waits only ever
    point at items queued earlier, which sit ahead in their own shard's FIFO, so the
    oldest unfinished item can always proceed: no deadlock.

    Invariants, under ``_cond``: ``_open`` has no zero counts; ``_passed`` digests
    (numbers ``0 .. _passed-1``) have finished and ``_passed`` itself has not; every
    number in ``_done_early`` is ``> _passed``.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._epoch = 0  # epoch of the next event queued == digests queued so far
        self._open: dict[int, int] = {}  # epoch -> its events queued and not finished
        self._passed = 0
        self._done_early: set[int] = set()  # digests finished out of order (evicted)

    def tag(self, event: Event) -> Item:
        """Number ``event`` as it is queued (in queue order: the caller serializes)."""
        with self._cond:
            if event.digest is not None:
                self._epoch += 1
                return Item(event, self._epoch - 1, barrier=True)
            self._open[self._epoch] = self._open.get(self._epoch, 0) + 1
            return Item(event, self._epoch)

    def _ready(self, item: Item) -> bool:
        if self._passed < item.epoch:
            return False
        return not item.barrier or all(epoch > item.epoch for epoch in self._open)

    def wait(self, item: Item, stop: threading.Event) -> None:
        """Block until ``item`` may be sent, or ``stop`` is set (then :meth:`interrupt`)."""
        with self._cond:
            self._cond.wait_for(lambda: stop.is_set() or self._ready(item))

    def done(self, item: Item) -> None:
        """``item`` has finished, one way or another; wakes the workers it held up."""
        with self._cond:
            if item.barrier:
                self._done_early.add(item.epoch)
                while self._passed in self._done_early:
                    self._done_early.remove(self._passed)
                    self._passed += 1
            else:
                left = self._open[item.epoch] - 1
                if left:
                    self._open[item.epoch] = left
                else:
                    del self._open[item.epoch]
            self._cond.notify_all()

    def interrupt(self) -> None:
        """Wake every waiter so it re-checks its stop event."""
        with self._cond:
            self._cond.notify_all()


class DropLog:
    """Overflow drops of one sink, logged at WARNING at most once per DROP_LOG_INTERVAL.

    The first drop of an interval gets a WARNING line naming the event; the others get a
    DEBUG line each and are counted, and the count is reported by the next WARNING (or by
    :meth:`flush`: a worker calls it after each event, ``close`` at the end), so the log
    says how many were dropped even when drops stop. ``dropped`` (:class:`SinkStats`)
    counts all of them exactly.
    """

    def __init__(self, sink: str, clock: Callable[[], float]) -> None:
        self._sink = sink
        self._clock = clock
        self._lock = threading.Lock()
        # Invariants, under _lock: _unlogged > 0 iff _since is not None; no WARNING
        # line about a drop before _next_line (clock seconds).
        self._next_line = -float("inf")
        self._unlogged = 0  # drops since the last WARNING, without a WARNING of their own
        self._since: str | None = None  # wall time (RFC 3339) of the first of those

    def _take_unlogged(self) -> str:
        """The "; dropped N more …" suffix for the next WARNING; caller holds _lock."""
        if not self._unlogged:
            return ""
        text = (
            f"; dropped {self._unlogged} more event(s) since {self._since} (not logged one by one)"
        )
        self._unlogged, self._since = 0, None
        return text

    def dropped(self, event: Event) -> None:
        more = ""
        with self._lock:
            now = self._clock()
            loud = now >= self._next_line
            if loud:
                self._next_line = now + DROP_LOG_INTERVAL
                more = self._take_unlogged()
            else:
                self._unlogged += 1
                if self._since is None:
                    self._since = utc_now()
        log.log(
            logging.WARNING if loud else logging.DEBUG,
            "sink %r: queue full, dropped oldest event id=%s kind=%s key=%s%s",
            self._sink,
            event.id,
            event.kind,
            event.key,
            more,
        )

    def flush(self, *, force: bool = False) -> None:
        """Log the count of unlogged drops once the interval is over (or now, ``force``)."""
        with self._lock:
            if not self._unlogged:
                return
            now = self._clock()
            if not force and now < self._next_line:
                return
            self._next_line = now + DROP_LOG_INTERVAL
            count, since = self._unlogged, self._since
            self._unlogged, self._since = 0, None
        log.warning(
            "sink %r: queue full, dropped %d event(s) since %s (not logged one by one)",
            self._sink,
            count,
            since,
        )


class Lane:
    """One sink with its policy, queue, worker threads, bucket, counters and digester."""

    def __init__(
        self, name: str, sink: Sink, policy: SinkPolicy, clock: Callable[[], float], sleep: Sleep
    ) -> None:
        self.name = name
        self.sink = sink
        self.policy = policy
        # Invariant: len(queue) <= policy.queue_size; one worker thread per shard.
        self.queue: ShardedQueue[Item] = ShardedQueue(
            policy.queue_size, policy.concurrency, key=item_key
        )
        # Taken before every attempt; paused by Retry-After (unlimited without rate_limit).
        self.bucket = TokenBucket.from_config(policy.rate_limit, clock=clock, sleep=sleep)
        self.drops = DropLog(name, clock)
        # Both set, or neither: the digester feeds the queue through the fence.
        self.digester: Digester | None = None
        self.fence: Fence | None = None
        self.threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        # Counters only grow; each queued event (a digest included) ends in exactly one of
        # delivered, failed, dropped. Events folded into digests are the digester's count.
        self._delivered = 0
        self._failed = 0
        self._retried = 0
        self._dropped = 0
        self._expired = 0
        # Consecutive failed attempts of the sink (any worker), reset by a success; the
        # monotonic time it went down (SINK_DOWN_AFTER of them), None while up.
        self._failures = 0
        self._down_since: float | None = None
        self._clock = clock
        # Digests and the spool: ids of the events held by the digester in the open
        # window (they leave the spool once their digest is queued, which is spooled
        # itself); the event being added now, and whether the digester passed it on.
        self.held_ids: list[str] = []
        self.lone_ids: set[str] = set()
        self.adding: Event | None = None
        self.passed = False
        self.flushed = False
        # The event each worker thread is sending (thread ident -> event), and the workers
        # whose event close() counted as failed because they were still in send when it
        # gave up: their own outcome, if it ever comes, is not counted again.
        self._sending: dict[int, Event] = {}
        self._written_off: set[int] = set()

    def add(
        self,
        *,
        delivered: int = 0,
        failed: int = 0,
        retried: int = 0,
        dropped: int = 0,
        expired: int = 0,
    ) -> None:
        with self._lock:
            self._delivered += delivered
            self._failed += failed
            self._retried += retried
            self._dropped += dropped
            self._expired += expired

    def failed_attempt(self, reason: str) -> tuple[int, bool]:
        """One more failed attempt in a row: (failures in a row, whether the sink just
        went down)."""
        with self._lock:
            self._failures += 1
            went_down = self._down_since is None and self._failures >= SINK_DOWN_AFTER
            if went_down:
                self._down_since = self._clock()
            return self._failures, went_down

    def succeeded(self) -> float | None:
        """An attempt succeeded; the seconds the sink was down, if it was."""
        with self._lock:
            self._failures = 0
            since, self._down_since = self._down_since, None
        return None if since is None else max(0.0, self._clock() - since)

    def folded(self) -> list[str]:
        """After a digester call: ids of the events a flush folded into digests (they
        leave the spool); then notes the event being added if the digester held it."""
        ids: list[str] = []
        if self.flushed:
            ids = [i for i in self.held_ids if i not in self.lone_ids]
            self.held_ids, self.lone_ids, self.flushed = [], set(), False
        if self.adding is not None and not self.passed:
            self.held_ids.append(self.adding.id)
        self.adding, self.passed = None, False
        return ids

    def sending(self, event: Event) -> None:
        """The calling worker starts delivering ``event``."""
        with self._lock:
            self._sending[threading.get_ident()] = event

    def settle(self, *, delivered: int = 0, failed: int = 0) -> bool:
        """Count the outcome of the calling worker's event; False (nothing counted) when
        close() has already counted it as failed."""
        worker = threading.get_ident()
        with self._lock:
            self._sending.pop(worker, None)
            if worker in self._written_off:
                self._written_off.discard(worker)
                return False
            self._delivered += delivered
            self._failed += failed
            return True

    def write_off(self) -> list[Event]:
        """Count every event still being sent as failed (close() stops waiting for them)."""
        with self._lock:
            events = list(self._sending.values())
            self._written_off.update(self._sending)
            self._sending.clear()
            self._failed += len(events)
            return events

    def stats(self) -> SinkStats:
        digester = self.digester
        digested, held = (digester.digested, digester.held) if digester else (0, 0)
        with self._lock:
            return SinkStats(
                delivered=self._delivered,
                failed=self._failed,
                retried=self._retried,
                dropped=self._dropped,
                queued=len(self.queue),
                digested=digested,
                held=held,
                expired=self._expired,
                up=self._down_since is None,
            )

    def done(self, item: Item) -> None:
        if self.fence is not None:
            self.fence.done(item)


def item_key(item: Item) -> str:
    return item.event.key
