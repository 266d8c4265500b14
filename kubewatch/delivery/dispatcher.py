"""The dispatcher: per-sink queues and worker threads, retries, drain on shutdown.

Guarantees (for each sink independently):

- **Order per object.** Events with the same :attr:`Event.key` reach a sink in the order
  they were submitted (minus any dropped on overflow): one key always maps to the same
  worker, which handles its events one at a time and retries in place. There is no
  order across keys, nor across sinks.
- **Parallel objects.** Different keys spread over ``workers`` threads; a key stuck in
  retries delays only the keys that share its worker.
- **Isolation.** Every sink has its own queue and threads: a slow or failing sink never
  blocks another sink, and :meth:`Dispatcher.submit` never blocks at all.
- **Bounded memory.** At most ``queue_size`` events wait per sink, plus one in flight per
  worker. On overflow the oldest waiting event of the shard is dropped, logged at
  WARNING and counted (``dropped``). A digester adds at most ``MAX_HELD`` ids and names
  plus one event per ``(type, kind, namespace)`` it holds (see :mod:`.digest`).
- **At-least-once, best effort.** An event is sent until the sink accepts it, fails
  permanently, or runs out of attempts. A receiver may see an event twice (an attempt
  that timed out after the receiver got it); :attr:`Event.id` is stable for
  de-duplication. Events are held in memory only: a crash loses what is queued.
- **Burst digests** (sinks given a :class:`~kubewatch.config.DigestConfig`): a
  :class:`~kubewatch.delivery.digest.Digester` in front of the sink's queue passes the
  first ``threshold`` events of each window and folds the rest into one digest event per
  ``(type, kind, namespace)``, queued when the window ends (a background thread,
  ``kubewatch-digest``, flushes at each window's end). Every submitted event ends as
  exactly one of ``delivered``, ``failed``, ``dropped`` or ``digested``; a digest is
  itself one event, counted as delivered, failed or dropped.
- **Order with digests.** A digest is a barrier in its sink's queue: it is sent only after
  every event queued before it has finished (delivered, failed or dropped), and no event
  queued after it is sent before the digest has finished. With the digester holding every
  event of a digesting window, the order of one object's events is thus kept across
  digests too, even though a digest's key (``namespace/``) maps it to a worker of its own.
  The price: while a digest is being sent (retries included), that sink sends nothing
  else. Sinks without digests have no barriers.
- **Drain.** :meth:`Dispatcher.close` stops intake, turns held events into digests at once,
  lets the workers finish what is queued (retries included) within a timeout, then
  interrupts backoff waits, abandons what is left (counted as ``failed``) and closes the
  sinks.
"""

from __future__ import annotations

import enum
import functools
import logging
import random
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import TracebackType

import tenacity

from kubewatch.config import DeliveryConfig, DigestConfig
from kubewatch.delivery.digest import Digester
from kubewatch.delivery.queue import Shard, ShardedQueue
from kubewatch.delivery.retry import RetryPolicy
from kubewatch.errors import DeliveryError, RetryableError
from kubewatch.events import Event
from kubewatch.sinks.base import Sink

log = logging.getLogger("kubewatch.delivery")

Sleep = Callable[[float], bool]
"""Waits ``delay`` seconds; returns True when interrupted (shutdown), False otherwise."""


class _Interrupted(Exception):
    """Raised out of a backoff wait that shutdown interrupted: stop retrying."""


def _attempts(retrying: tenacity.Retrying) -> int:
    return int(retrying.statistics.get("attempt_number", 1))


STOP_GRACE = 0.5
"""Seconds ``close`` still waits for workers after interrupting them: enough for a worker
in backoff to wake up and record its event, not enough to hang on a stuck ``send``."""


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


class _State(enum.Enum):
    NEW = "new"
    STARTED = "started"
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class _Item:
    """One queued event and its place relative to the digests of its sink (see _Fence)."""

    event: Event
    epoch: int = 0
    """Digests queued before this item; for a digest, its own number (0, 1, …)."""
    barrier: bool = False
    """True for a digest: it waits for everything queued before it, and the reverse."""


class _Fence:
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

    def tag(self, event: Event) -> _Item:
        """Number ``event`` as it is queued (in queue order: the caller serializes)."""
        with self._cond:
            if event.digest is not None:
                self._epoch += 1
                return _Item(event, self._epoch - 1, barrier=True)
            self._open[self._epoch] = self._open.get(self._epoch, 0) + 1
            return _Item(event, self._epoch)

    def _ready(self, item: _Item) -> bool:
        if self._passed < item.epoch:
            return False
        return not item.barrier or all(epoch > item.epoch for epoch in self._open)

    def wait(self, item: _Item, stop: threading.Event) -> None:
        """Block until ``item`` may be sent, or ``stop`` is set (then :meth:`interrupt`)."""
        with self._cond:
            self._cond.wait_for(lambda: stop.is_set() or self._ready(item))

    def done(self, item: _Item) -> None:
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


class _Lane:
    """One sink with its queue, worker threads and counters, and its digester if any."""

    def __init__(self, name: str, sink: Sink, config: DeliveryConfig) -> None:
        self.name = name
        self.sink = sink
        # Invariant: len(queue) <= config.queue_size; one worker thread per shard.
        self.queue: ShardedQueue[_Item] = ShardedQueue(
            config.queue_size, config.workers, key=_item_key
        )
        # Both set, or neither: the digester feeds the queue through the fence.
        self.digester: Digester | None = None
        self.fence: _Fence | None = None
        self.threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        # Counters only grow; each queued event (a digest included) ends in exactly one of
        # delivered, failed, dropped. Events folded into digests are the digester's count.
        self._delivered = 0
        self._failed = 0
        self._retried = 0
        self._dropped = 0

    def add(
        self, *, delivered: int = 0, failed: int = 0, retried: int = 0, dropped: int = 0
    ) -> None:
        with self._lock:
            self._delivered += delivered
            self._failed += failed
            self._retried += retried
            self._dropped += dropped

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
            )

    def done(self, item: _Item) -> None:
        if self.fence is not None:
            self.fence.done(item)


def _item_key(item: _Item) -> str:
    return item.event.key


class Dispatcher:
    """Delivers events to sinks through per-sink bounded queues and worker threads.

    Lifecycle: ``start()`` once, ``submit()`` from any thread (also before ``start``:
    events wait in the queue), ``close()`` once (more calls return the first result).
    Used as a context manager it starts on entry and closes on exit. The dispatcher owns
    the sinks it is given and closes them.

    ``digests`` maps sink names to their burst digest settings (``None`` or absent: no
    digests for that sink); ``clock`` (monotonic seconds) measures digest windows. With a
    fake clock, drive flushes with :meth:`flush_digests`: the background flusher waits in
    real seconds for ``deadline - clock()``.

    ``sleep`` replaces the backoff wait (tests record delays instead of sleeping); it
    should return True when interrupted. The default waits on an internal stop event
    that ``close`` sets when its timeout runs out. ``rng`` draws the backoff jitter.
    """

    def __init__(
        self,
        sinks: Mapping[str, Sink],
        config: DeliveryConfig,
        *,
        digests: Mapping[str, DigestConfig | None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Sleep | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self._config = config
        self._policy = RetryPolicy.from_config(config.retry)
        # Set only when close() gives up draining: wakes backoff waits, stops new attempts.
        self._stop = threading.Event()
        self._sleep: Sleep = sleep if sleep is not None else self._stop.wait
        self._rng = rng if rng is not None else random.Random()
        self._clock = clock
        self._lanes = {name: _Lane(name, sink, config) for name, sink in sinks.items()}
        unknown = [name for name in digests or {} if name not in self._lanes]
        if unknown:
            raise KeyError(f"digest settings for unknown sink(s): {', '.join(unknown)}")
        for name, digest in (digests or {}).items():
            if digest is not None:
                lane = self._lanes[name]
                lane.fence = _Fence()
                lane.digester = Digester(
                    name, digest, clock=clock, emit=functools.partial(self._enqueue, lane)
                )
        # Guards _state and _evicted; everything that queues does it under this lock
        # (submit, the flusher, close), so queue order is decision order and once close()
        # has flipped _state to CLOSED and closed the queues, no event can slip in. Lock
        # order: _lock, then a digester's lock, then a fence's or a shard's.
        self._lock = threading.Lock()
        self._state = _State.NEW  # NEW -> STARTED -> CLOSED, never backwards
        self._evicted: list[tuple[_Lane, Event]] = []  # dropped on overflow, not yet logged
        # Set when a window starts digesting (a new deadline), and by close().
        self._wake = threading.Event()
        self._flusher: threading.Thread | None = None
        self._close_lock = threading.Lock()  # serializes close(); guards _close_result
        self._close_result: bool | None = None
        self._shutdown_failures = 0  # events given up because of close(); guarded by _lock

    # -- lifecycle -------------------------------------------------------------------

    def start(self) -> None:
        """Start the workers: one thread per shard, named ``kubewatch-sink-<name>-<i>``;
        with any digests, also the flusher ``kubewatch-digest``."""
        with self._lock:
            if self._state is not _State.NEW:
                raise RuntimeError(f"dispatcher cannot start: it is {self._state.value}")
            self._state = _State.STARTED
            for lane in self._lanes.values():
                for i, shard in enumerate(lane.queue.shards):
                    # Daemon: a send stuck past close()'s timeout must not keep the
                    # process alive; close() has already reported it by then.
                    thread = threading.Thread(
                        target=self._work,
                        args=(lane, shard),
                        name=f"kubewatch-sink-{lane.name}-{i}",
                        daemon=True,
                    )
                    lane.threads.append(thread)
                    thread.start()
            if any(lane.digester for lane in self._lanes.values()):
                self._flusher = threading.Thread(
                    target=self._flush_loop, name="kubewatch-digest", daemon=True
                )
                self._flusher.start()

    def close(self, timeout: float | None = None) -> bool:
        """Stop intake, flush every digester (held events become digests at once), drain
        within ``timeout`` seconds (default ``drain_timeout``), stop the workers and close
        the sinks.

        Returns True if every accepted event was delivered, dropped on overflow or failed
        on its own account; False if the timeout forced events to be abandoned or a
        worker is still stuck in ``send``. Idempotent: later calls return the same value.
        """
        with self._close_lock:
            if self._close_result is not None:
                return self._close_result
            wait = self._config.drain_timeout if timeout is None else max(0.0, timeout)
            deadline = time.monotonic() + wait
            with self._lock:
                self._state = _State.CLOSED
                for lane in self._lanes.values():
                    if lane.digester is not None:
                        lane.digester.flush(force=True)
                    lane.queue.close()  # workers exit once their shard is empty
                evicted = self._take_evicted()
            self._wake.set()  # the flusher sees CLOSED and exits
            self._report_evicted(evicted)
            threads = [t for lane in self._lanes.values() for t in lane.threads]
            if self._flusher is not None:
                threads.append(self._flusher)
            for thread in threads:
                thread.join(max(0.0, deadline - time.monotonic()))
            # With no workers (never started) anything queued is abandoned right away.
            self._stop.set()
            for lane in self._lanes.values():
                if lane.fence is not None:
                    lane.fence.interrupt()  # workers waiting at a digest barrier give up
                items = lane.queue.clear()
                for item in items:
                    lane.done(item)
                self._abandon(lane, [item.event for item in items])
            grace = time.monotonic() + STOP_GRACE
            for thread in threads:
                thread.join(max(0.0, grace - time.monotonic()))
            stuck = [t.name for t in threads if t.is_alive()]
            if stuck:
                log.error("delivery: workers still busy in send after close: %s", ", ".join(stuck))
            for lane in self._lanes.values():
                try:
                    lane.sink.close()
                except Exception:
                    log.exception("sink %r: close failed", lane.name)
            with self._lock:
                self._close_result = not stuck and self._shutdown_failures == 0
            return self._close_result

    def __enter__(self) -> Dispatcher:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- intake ----------------------------------------------------------------------

    def submit(self, event: Event, sink_names: Iterable[str] | None = None) -> None:
        """Queue ``event`` for the named sinks (None: all), through the sink's digester if
        it has one. Never blocks: a full queue drops its oldest event instead. O(sinks).
        Raises RuntimeError after ``close`` and KeyError for an unknown sink name (before
        queueing anything)."""
        if sink_names is None:
            lanes = list(self._lanes.values())
        else:
            names = list(dict.fromkeys(sink_names))
            unknown = [n for n in names if n not in self._lanes]
            if unknown:
                raise KeyError(f"unknown sink(s): {', '.join(unknown)}")
            lanes = [self._lanes[n] for n in names]
        wake = False
        with self._lock:
            if self._state is _State.CLOSED:
                raise RuntimeError("dispatcher is closed")
            for lane in lanes:
                if lane.digester is None:
                    self._enqueue(lane, event)
                    continue
                before = lane.digester.deadline()
                lane.digester.add(event)
                after = lane.digester.deadline()
                wake = wake or (after is not None and after != before)
            evicted = self._take_evicted()
        if wake:  # a window started digesting: the flusher may be asleep with no deadline
            self._wake.set()
        self._report_evicted(evicted)

    def _enqueue(self, lane: _Lane, event: Event) -> None:
        """Put ``event`` in ``lane``'s queue (the digester's ``emit``); caller holds _lock."""
        item = lane.fence.tag(event) if lane.fence is not None else _Item(event)
        old = lane.queue.put(item)
        if old is not None:
            lane.done(old)
            self._evicted.append((lane, old.event))

    def _take_evicted(self) -> list[tuple[_Lane, Event]]:
        """The evictions not yet reported; caller holds _lock."""
        evicted, self._evicted = self._evicted, []
        return evicted

    def _report_evicted(self, evicted: list[tuple[_Lane, Event]]) -> None:
        for lane, old in evicted:  # logged outside the lock: handlers may be slow
            lane.add(dropped=1)
            log.warning(
                "sink %r: queue full, dropped oldest event id=%s kind=%s key=%s",
                lane.name,
                old.id,
                old.kind,
                old.key,
            )

    # -- digests ---------------------------------------------------------------------

    def flush_digests(self) -> None:
        """Queue the digests of every window that has ended by ``clock()``.

        The ``kubewatch-digest`` thread does this at each window's end; tests with a fake
        clock call it instead. Does nothing after ``close`` (which flushed everything).
        """
        with self._lock:
            if self._state is _State.CLOSED:
                return
            self._flush_due()
            evicted = self._take_evicted()
        self._report_evicted(evicted)

    def _flush_due(self) -> float | None:
        """Flush ended windows; return the earliest deadline left. Caller holds _lock."""
        now = self._clock()
        deadlines = []
        for lane in self._lanes.values():
            if lane.digester is not None:
                lane.digester.flush(now)
                if (deadline := lane.digester.deadline()) is not None:
                    deadlines.append(deadline)
        return min(deadlines, default=None)

    def _flush_loop(self) -> None:
        """The flusher: sleeps until the earliest digesting window ends, or a new one
        starts digesting, or close(); flushes what has ended."""
        while True:
            deadline: float | None = None
            with self._lock:
                if self._state is _State.CLOSED:
                    return
                # Cleared under the lock: a submit that starts a new deadline after
                # this sets it again, so the wait below cannot miss it.
                self._wake.clear()
                try:
                    deadline = self._flush_due()
                except Exception:  # a bug; keep flushing the other windows later
                    log.exception("delivery: flushing digests failed")
                evicted = self._take_evicted()
            self._report_evicted(evicted)
            self._wake.wait(None if deadline is None else max(0.0, deadline - self._clock()))

    # -- observation -----------------------------------------------------------------

    def stats(self) -> dict[str, SinkStats]:
        """A snapshot of every sink's counters."""
        return {name: lane.stats() for name, lane in self._lanes.items()}

    def depth(self, sink: str) -> int:
        """Events waiting for ``sink`` now; informational only (never branch on it)."""
        return len(self._lanes[sink].queue)

    # -- workers ---------------------------------------------------------------------

    def _work(self, lane: _Lane, shard: Shard[_Item]) -> None:
        while (item := shard.get()) is not None:
            try:
                if lane.fence is not None:
                    lane.fence.wait(item, self._stop)
                if self._stop.is_set():  # close() gave up: no new attempts
                    self._abandon(lane, [item.event])
                else:
                    self._deliver(lane, item.event)
            finally:
                lane.done(item)

    def _deliver(self, lane: _Lane, event: Event) -> None:
        """Send one event until accepted, given up, or interrupted by shutdown.

        tenacity drives the attempts: only ``RetryableError`` is retried, at most
        ``retry.attempts`` times, waiting what :class:`RetryPolicy` says; the wait goes
        through ``self._sleep``, which shutdown interrupts.
        """

        def wait(state: tenacity.RetryCallState) -> float:
            error = state.outcome.exception() if state.outcome else None
            assert isinstance(error, RetryableError)  # the retry predicate admits no other
            return self._policy.backoff.delay(state.attempt_number, error, self._rng)

        def before_sleep(state: tenacity.RetryCallState) -> None:
            error = state.outcome.exception() if state.outcome else None
            delay = state.next_action.sleep if state.next_action else 0.0
            log.info(
                "sink %r: attempt %d for event id=%s kind=%s key=%s failed, retry in %.2fs: %s",
                lane.name,
                state.attempt_number,
                event.id,
                event.kind,
                event.key,
                delay,
                error,
            )

        def sleep(delay: float) -> None:
            if self._sleep(delay) or self._stop.is_set():
                raise _Interrupted
            lane.add(retried=1)

        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception_type(RetryableError),
            stop=tenacity.stop_after_attempt(self._policy.attempts),
            wait=wait,
            sleep=sleep,
            before_sleep=before_sleep,
            reraise=True,
        )
        try:
            retrying(lane.sink.send, event)
        except _Interrupted:
            with self._lock:
                self._shutdown_failures += 1
            self._fail(lane, event, _attempts(retrying), "shutdown during backoff")
        except RetryableError as error:
            self._fail(lane, event, _attempts(retrying), f"gave up: {error}")
        except DeliveryError as error:
            self._fail(lane, event, _attempts(retrying), str(error))
        except Exception as error:
            # A bug in the sink, not a delivery outcome: keep the worker alive.
            self._fail(
                lane, event, _attempts(retrying), f"unexpected error in sink: {error!r}", trace=True
            )
        else:
            lane.add(delivered=1)

    def _fail(
        self, lane: _Lane, event: Event, attempts: int, reason: str, *, trace: bool = False
    ) -> None:
        lane.add(failed=1)
        log.error(
            "sink %r: event id=%s kind=%s key=%s not delivered after %d attempt(s): %s",
            lane.name,
            event.id,
            event.kind,
            event.key,
            attempts,
            reason,
            exc_info=trace,
        )

    def _abandon(self, lane: _Lane, events: list[Event]) -> None:
        """Count events never attempted because of shutdown: one summary line, not one each."""
        if not events:
            return
        lane.add(failed=len(events))
        with self._lock:
            self._shutdown_failures += len(events)
        for event in events:
            log.debug(
                "sink %r: shutdown: abandoned event id=%s key=%s", lane.name, event.id, event.key
            )
        log.error(
            "sink %r: shutdown: %d queued event(s) abandoned undelivered (first id=%s key=%s)",
            lane.name,
            len(events),
            events[0].id,
            events[0].key,
        )
