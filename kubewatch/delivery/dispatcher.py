"""The dispatcher: per-sink queues and worker threads, retries, rate limits, drain.

Every sink has a *lane* built from its :class:`~kubewatch.delivery.policy.SinkPolicy`:
a bounded queue of ``queue_size`` events, ``concurrency`` worker threads, its own retry
policy, its own token bucket (``rate_limit``) and, optionally, a digester. Guarantees
(for each sink independently):

- **Order per object.** Events with the same :attr:`Event.key` reach a sink in the order
  they were submitted (minus any dropped on overflow): one key always maps to the same
  worker, which handles its events one at a time and retries in place. There is no
  order across keys, nor across sinks.
- **Parallel objects.** Different keys spread over the sink's ``concurrency`` threads; a
  key stuck in retries delays only the keys that share its worker.
- **Isolation.** Every sink has its own queue, threads and token bucket: a slow, failing
  or rate-limited sink never blocks another sink (its retries, backoff waits and pauses
  happen on its own threads), and :meth:`Dispatcher.submit` never blocks at all (unless
  asked to: ``block=True``, below).
- **Backpressure, on request.** ``submit(event, block=True)`` waits for room instead of
  dropping: a producer that must lose nothing (``kubewatch replay``) goes at its
  slowest sink's pace. See :meth:`Dispatcher.submit` for the exact contract.
- **Bounded memory.** At most ``queue_size`` events wait per sink, plus one in flight per
  worker. On overflow the oldest waiting event of the shard is dropped and counted
  (``dropped``); the WARNING about it is rate limited to one line per sink per
  :data:`DROP_LOG_INTERVAL` (the others go to DEBUG), and the next WARNING, or close,
  says how many were dropped since without a line of their own. A digester adds at most
  ``MAX_HELD`` ids and names plus one event per ``(type, kind, namespace)`` it holds
  (see :mod:`.digest`).
- **Rate limit.** A worker takes a token from its sink's bucket before *every* attempt,
  first attempts and retries alike, so a sink never makes more than
  ``burst + perSecond * t`` attempts in ``t`` seconds, however many workers it has.
- **Retry-After.** A :class:`~kubewatch.errors.RateLimited` error is always honoured:
  the failed event waits at least its ``retry_after`` (capped at
  :data:`~kubewatch.backoff.MAX_RETRY_AFTER`), beyond ``maxBackoff`` if need be,
  and the sink's bucket is paused for as long, so no worker of that sink attempts
  anything before then (the receiver's limit is per sink, not per worker). Sinks without
  ``rateLimit`` are paused the same way.
- **At-least-once, best effort.** An event is sent until the sink accepts it, fails
  permanently, or runs out of attempts. A receiver may see an event twice (an attempt
  that timed out after the receiver got it); :attr:`Event.id` is stable for
  de-duplication. Events are held in memory only: a crash loses what is queued.
- **Burst digests** (sinks given a :class:`~kubewatch.config.DigestConfig`): a
  :class:`~kubewatch.delivery.digest.Digester` in front of the sink's queue passes the
  first ``threshold`` events of a burst and folds the rest, window by window while the
  burst goes on, into one digest event per ``(type, kind, namespace)``, queued when the
  window ends (a background thread,
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
  lets the workers finish what is queued (retries and rate limits included) within a
  timeout, then interrupts backoff and token waits, abandons what is left (counted as
  ``failed``) and closes the sinks. An event still in a ``send`` that outlives the
  drain and :data:`STOP_GRACE` is counted as ``failed`` too (outcome unknown: the
  receiver may have it); if that send returns later, it is logged, not counted again.
  A rate-limited sink drains at its rate: with 1/s and a 10 s timeout, about 10 queued
  events.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import logging
import random
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from types import TracebackType

from kubewatch.config import DeliveryConfig, DigestConfig
from kubewatch.delivery.digest import Digester
from kubewatch.delivery.lane import (
    DROP_LOG_INTERVAL,
    SINK_DOWN_AFTER,
    Fence,
    Item,
    Lane,
    SinkStats,
)
from kubewatch.delivery.policy import SinkPolicy, check_policies
from kubewatch.delivery.queue import Shard
from kubewatch.delivery.supervise import (
    SEND_STUCK_AFTER,
    TimedSink,
    WorkerStats,
    WorkerWatch,
)
from kubewatch.delivery.worker import Journal, Sender
from kubewatch.events import Event
from kubewatch.ratelimit import Sleep
from kubewatch.sinks.base import Sink

log = logging.getLogger("kubewatch.delivery")

__all__ = [
    "DROP_LOG_INTERVAL",
    "SINK_DOWN_AFTER",
    "STOP_GRACE",
    "Dispatcher",
    "Journal",
    "SinkStats",
    "Sleep",
]


class _Interrupted(Exception):
    """Raised out of a backoff or token wait that shutdown interrupted: stop trying."""


STOP_GRACE = 0.5
"""Seconds ``close`` still waits for workers after interrupting them: enough for a worker
in backoff to wake up and record its event, not enough to hang on a stuck ``send``."""


class _State(enum.Enum):
    NEW = "new"
    STARTED = "started"
    CLOSED = "closed"


class Dispatcher:
    """Delivers events to sinks through per-sink bounded queues and worker threads.

    Lifecycle: ``start()`` once, ``submit()`` from any thread (also before ``start``:
    events wait in the queue), ``close()`` once (more calls return the first result).
    Used as a context manager it starts on entry and closes on exit. The dispatcher owns
    the sinks it is given and closes them.

    ``policies`` maps sink names to their :class:`SinkPolicy` (queue size, concurrency,
    retry, rate limit, digest); a sink without one gets ``SinkPolicy.defaults(config)``,
    i.e. ``delivery``'s queue size, workers and retry, no rate limit and no digest.
    ``config`` also gives ``drain_timeout``. ``digests`` is a shorthand that replaces the
    ``digest`` of the named sinks' policies (``None``: no digests). Build the policies of
    a configuration with :func:`~kubewatch.delivery.policy.sink_policies`.

    ``clock`` (monotonic seconds) measures digest windows, token buckets, Retry-After
    pauses and the drop log interval. ``sleep`` replaces every wait on that clock (backoff
    and tokens; tests pass one that advances their fake clock); it returns True when
    interrupted. The default waits real seconds on an internal stop event that ``close``
    sets when its timeout runs out, so a fake clock needs a matching ``sleep``. With a
    fake clock, drive digest flushes with :meth:`flush_digests`: the background flusher
    waits in real seconds for ``deadline - clock()``. ``rng`` draws the backoff jitter.
    """

    def __init__(
        self,
        sinks: Mapping[str, Sink],
        config: DeliveryConfig,
        *,
        policies: Mapping[str, SinkPolicy] | None = None,
        digests: Mapping[str, DigestConfig | None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Sleep | None = None,
        rng: random.Random | None = None,
        on_delivered: Callable[[str, Event], None] | None = None,
        on_failed: Callable[[str, Event, str, bool], None] | None = None,
        on_sink_state: Callable[[str, bool, str], None] | None = None,
        journal: Journal | None = None,
    ) -> None:
        self._config = config
        self._journal = journal
        policies = policies or {}
        digests = digests or {}
        check_policies(policies, sinks, "delivery policies")
        check_policies(digests, sinks, "digest settings")
        # Set only when close() gives up draining: wakes backoff and token waits, stops
        # new attempts.
        self._stop = threading.Event()
        self._clock = clock
        # Guards _state and _evicted; everything that queues does it under this lock
        # (submit, the flusher, close), so queue order is decision order and once close()
        # has flipped _state to CLOSED and closed the queues, no event can slip in. Lock
        # order: _lock, then a digester's lock, then a fence's or a shard's. Also guards
        # the sender's count of events given up because of close().
        self._lock = threading.Lock()
        self._workers: dict[str, WorkerWatch] = {}  # sink name -> its workers' supervision
        self._sender = Sender(
            config,
            stop=self._stop,
            sleep=sleep if sleep is not None else self._stop.wait,
            rng=rng if rng is not None else random.Random(),
            clock=clock,
            lock=self._lock,
            workers=self._workers,
            journal=journal,
            on_delivered=on_delivered,
            on_failed=on_failed,
            on_sink_state=on_sink_state,
        )
        self._lanes: dict[str, Lane] = {}
        for name, sink in sinks.items():
            policy = policies[name] if name in policies else SinkPolicy.defaults(config)
            if name in digests:
                policy = dataclasses.replace(policy, digest=digests[name])
            self._workers[name] = watch = WorkerWatch(name, clock)
            lane = Lane(
                name, TimedSink(sink, watch), policy, clock, self._sender.interruptible_sleep
            )
            if policy.digest is not None:
                lane.fence = Fence()
                lane.digester = Digester(
                    name, policy.digest, clock=clock, emit=functools.partial(self._enqueue, lane)
                )
            self._lanes[name] = lane
        self._state = _State.NEW  # NEW -> STARTED -> CLOSED, never backwards
        self._evicted: list[tuple[Lane, Event]] = []  # dropped on overflow, not yet logged
        # Set when a window starts digesting (a new deadline), and by close().
        self._wake = threading.Event()
        self._flusher: threading.Thread | None = None
        self._close_lock = threading.Lock()  # serializes close(); guards _close_result
        self._close_result: bool | None = None
        # The event submit() is queueing and its age (under _lock), for its expiry.
        self._adding: Event | None = None
        self._age = 0.0

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
                        target=self._sender.supervise,
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
                        self._settle_folded(lane)
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
                lane.bucket.close()  # wakes workers waiting for a token (any sleep)
                if lane.fence is not None:
                    lane.fence.interrupt()  # workers waiting at a digest barrier give up
                items = lane.queue.clear()
                for item in items:
                    lane.done(item)
                self._sender.abandon(lane, [item.event for item in items])
            grace = time.monotonic() + STOP_GRACE
            for thread in threads:
                thread.join(max(0.0, grace - time.monotonic()))
            for lane in self._lanes.values():
                lane.drops.flush(force=True)
            stuck = [t.name for t in threads if t.is_alive()]
            if stuck:
                log.error("delivery: workers still busy in send after close: %s", ", ".join(stuck))
                for lane in self._lanes.values():
                    self._sender.write_off(lane)
            for lane in self._lanes.values():
                try:
                    lane.sink.close()
                except Exception:
                    log.exception("sink %r: close failed", lane.name)
            with self._lock:
                self._close_result = not stuck and self._sender.shutdown_failures == 0
            return self._close_result

    def hand_over(self) -> dict[str, list[tuple[Event, float]]]:
        """Stop intake and give up every queued event to a successor (a config reload).

        Digest windows are flushed first; what is queued comes out per sink, in an order
        that keeps each object's events and every digest barrier in place, as
        ``(event, age)`` (``age`` for :meth:`submit`). Sends in flight go on: ``close``
        afterwards waits for them (call it before the successor starts, so that no newer
        event of an object overtakes one still in flight here). Handed-over events are
        counted by the successor, not here.
        """
        taken: dict[str, list[tuple[Event, float]]] = {}
        with self._lock:
            if self._state is _State.CLOSED:
                return taken
            self._state = _State.CLOSED
            now = self._clock()
            for lane in self._lanes.values():
                if lane.digester is not None:
                    lane.digester.flush(force=True)
                    self._settle_folded(lane)
                items = lane.queue.clear()
                lane.queue.close()
                for item in items:
                    lane.done(item)
                items.sort(key=lambda item: (item.epoch, item.barrier))  # stable: per shard
                taken[lane.name] = [
                    (item.event, max(0.0, self._config.max_age - (item.expires - now)))
                    for item in items
                ]
            evicted = self._take_evicted()
        self._wake.set()
        self._report_evicted(evicted)
        return taken

    @property
    def abandoned(self) -> int:
        """Events ``close`` gave up on (never attempted, interrupted, or still in send)."""
        with self._lock:
            return self._sender.shutdown_failures

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

    def submit(
        self,
        event: Event,
        sink_names: Iterable[str] | None = None,
        *,
        age: float = 0.0,
        block: bool = False,
    ) -> None:
        """Queue ``event`` for the named sinks (None: all), through the sink's digester if
        it has one. Never blocks: a full queue drops its oldest event instead. O(sinks).
        ``age``: seconds the event already waited (one recovered from the spool), counted
        against ``delivery.maxAge``; a digest restored from the spool skips the digester.
        Raises RuntimeError after ``close`` and KeyError for an unknown sink name (before
        queueing anything).

        With ``block=True`` it first waits, outside the dispatcher's lock, until every
        named sink has room: a free place in the shard ``event`` goes to, and in a sink
        with a digester, in every shard, one place plus one per group the digester holds
        (the digests its next flush, by the ``kubewatch-digest`` thread or by ``close``,
        will queue). Then it queues ``event`` as above, with nothing left to drop. So
        while every producer of a sink submits with ``block=True``, that sink drops
        nothing (one limit: a window with more groups than a shard holds, whose digests
        all land in that shard). The wait lasts as long as the sink's workers take to make
        room (before ``start``, until ``close``); when ``close`` begins it wakes and raises
        RuntimeError, as a submit after close does.
        """
        if sink_names is None:
            lanes = list(self._lanes.values())
        else:
            names = list(dict.fromkeys(sink_names))
            unknown = [n for n in names if n not in self._lanes]
            if unknown:
                raise KeyError(f"unknown sink(s): {', '.join(unknown)}")
            lanes = [self._lanes[n] for n in names]
        while True:
            with self._lock:
                if self._state is _State.CLOSED:
                    raise RuntimeError("dispatcher is closed")
                full = self._full_shard(lanes, event) if block else None
                if full is None:
                    wake = self._submit(lanes, event, age)
                    evicted = self._take_evicted()
                    break
            full[0].wait_for_room(full[1])  # then check everything again, under the lock
        if wake:  # a window started digesting: the flusher may be asleep with no deadline
            self._wake.set()
        self._report_evicted(evicted)

    def _full_shard(self, lanes: list[Lane], event: Event) -> tuple[Shard[Item], int] | None:
        """A shard without the room ``submit(block=True)`` waits for, and how many places
        it needs; None when every lane has room. Caller holds _lock."""
        for lane in lanes:
            if lane.digester is None:
                shards, need = [lane.queue.shard_for(Item(event))], 1
            else:
                shards, need = list(lane.queue.shards), 1 + lane.digester.groups
            for shard in shards:
                if not shard.has_room(need):
                    return shard, need
        return None

    def _submit(self, lanes: list[Lane], event: Event, age: float) -> bool:
        """Queue ``event`` in ``lanes``; True when a window started digesting (the flusher
        has a new deadline). Caller holds _lock."""
        wake = False
        self._adding, self._age = event, age
        for lane in lanes:
            if lane.digester is None or event.digest is not None:
                self._enqueue(lane, event)
                continue
            before = lane.digester.deadline()
            lane.adding = event
            lane.digester.add(event)
            self._settle_folded(lane)
            after = lane.digester.deadline()
            wake = wake or (after is not None and after != before)
        self._adding, self._age = None, 0.0
        return wake

    def _enqueue(self, lane: Lane, event: Event) -> None:
        """Put ``event`` in ``lane``'s queue (the digester's ``emit``); caller holds _lock."""
        if lane.digester is not None:
            if event is lane.adding:
                lane.passed = True
            else:  # a window's flush: a digest (owed from now on) or a lone held event
                lane.flushed = True
                if event.digest is not None and self._journal is not None:
                    self._journal.put(event, (lane.name,))
                elif event.digest is None:
                    lane.lone_ids.add(event.id)
        age = self._age if event is self._adding else 0.0
        expires = self._clock() + self._config.max_age - age
        if lane.fence is not None:
            item = dataclasses.replace(lane.fence.tag(event), expires=expires)
        else:
            item = Item(event, expires=expires)
        old = lane.queue.put(item)
        if old is not None:
            lane.done(old)
            self._evicted.append((lane, old.event))

    def _settle_folded(self, lane: Lane) -> None:
        """After a digester call: events folded into a queued digest leave the spool."""
        folded = lane.folded()
        if folded and self._journal is not None:
            for event_id in folded:
                self._journal.settle(lane.name, event_id)

    def _take_evicted(self) -> list[tuple[Lane, Event]]:
        """The evictions not yet reported; caller holds _lock."""
        evicted, self._evicted = self._evicted, []
        return evicted

    def _report_evicted(self, evicted: list[tuple[Lane, Event]]) -> None:
        for lane, old in evicted:  # logged outside the lock: handlers may be slow
            lane.add(dropped=1)
            if self._journal is not None:
                self._journal.settle(lane.name, old.id)
            lane.drops.dropped(old)

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
                self._settle_folded(lane)
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

    def policy(self, sink: str) -> SinkPolicy:
        """The effective delivery policy of ``sink``."""
        return self._lanes[sink].policy

    # -- workers ---------------------------------------------------------------------

    def worker_stats(self) -> dict[str, WorkerStats]:
        """Restarts and observer failures of every sink's workers (a snapshot)."""
        return {name: watch.stats() for name, watch in self._workers.items()}

    def workers_alive(self) -> tuple[bool, list[str]]:
        """A liveness check: every worker thread runs and none is stuck in one ``send``
        for more than :data:`SEND_STUCK_AFTER` (always healthy unless started)."""
        with self._lock:
            if self._state is not _State.STARTED:
                return True, []
        reasons: list[str] = []
        for lane in self._lanes.values():
            dead = [t.name for t in lane.threads if not t.is_alive()]
            reasons += [f"sink {lane.name}: worker {name} is not running" for name in dead]
            reasons += [
                f"sink {lane.name}: a send has been running for {age:.0f}s "
                f"(limit {SEND_STUCK_AFTER:.0f}s)"
                for age in self._workers[lane.name].stuck()
            ]
        return not reasons, reasons
