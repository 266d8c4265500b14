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
  asked to: ``block=True``).
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
- **Drain.** :meth:`Dispatcher.close` stops intake, turns held events into digests at once,
  lets the workers finish what is queued (retries and rate limits included) within a
  timeout, then interrupts backoff and token waits, abandons what is left (counted as
  ``failed``) and closes the sinks. An event still in a ``send`` that outlives the
  drain and :data:`STOP_GRACE` is counted as ``failed`` too (outcome unknown: the
  receiver may have it); if that send returns later, it is logged, not counted again.
  A rate-limited sink drains at its rate: with 1/s and a 10 s timeout, about 10 queued
  events.

How events get in (backpressure on request, bounded memory and the overflow policy,
burst digests and the order they keep) is stated in :mod:`.intake`.
"""

from __future__ import annotations

import dataclasses
import logging
import random
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from types import TracebackType

from kubewatch.config import DeliveryConfig, DigestConfig
from kubewatch.delivery.intake import Intake, State
from kubewatch.delivery.lane import DROP_LOG_INTERVAL, SINK_DOWN_AFTER, Lane, SinkStats
from kubewatch.delivery.policy import SinkPolicy, check_policies
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


STOP_GRACE = 0.5
"""Seconds ``close`` still waits for workers after interrupting them: enough for a worker
in backoff to wake up and record its event, not enough to hang on a stuck ``send``."""


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

    ``inline=True`` starts no worker threads: each :meth:`submit` delivers what it queued
    before it returns, on the caller's thread (so from one thread only), with the same
    retries, waits and counts. For a producer that waits for its sinks anyway and sinks
    that only write locally (``kubewatch replay`` to stdout), where the hand-off between
    threads sharing the GIL costs ten times the write. Not with digests (no flusher).
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
        inline: bool = False,
    ) -> None:
        self._config = config
        self._inline = inline
        self._journal = journal
        policies = policies or {}
        digests = digests or {}
        check_policies(policies, sinks, "delivery policies")
        check_policies(digests, sinks, "digest settings")
        # Set only when close() gives up draining: wakes backoff and token waits, stops
        # new attempts.
        self._stop = threading.Event()
        self._clock = clock
        # Guards the intake's state and queueing (see Intake for the lock order), and
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
        self._intake = Intake(config, clock=clock, lock=self._lock, journal=journal)
        self._lanes: dict[str, Lane] = self._intake.lanes
        for name, sink in sinks.items():
            policy = policies[name] if name in policies else SinkPolicy.defaults(config)
            if name in digests:
                policy = dataclasses.replace(policy, digest=digests[name])
            self._workers[name] = watch = WorkerWatch(name, clock)
            self._intake.add(
                Lane(name, TimedSink(sink, watch), policy, clock, self._sender.interruptible_sleep)
            )
        if inline and self._intake.digests:
            raise ValueError("inline delivery cannot digest: no thread flushes the windows")
        self._flusher: threading.Thread | None = None
        self._close_lock = threading.Lock()  # serializes close(); guards _close_result
        self._close_result: bool | None = None

    def start(self) -> None:
        """Start the workers: one thread per shard, named ``kubewatch-sink-<name>-<i>``;
        with any digests, also the flusher ``kubewatch-digest``."""
        with self._lock:
            if self._intake.state is not State.NEW:
                raise RuntimeError(f"dispatcher cannot start: it is {self._intake.state.value}")
            self._intake.state = State.STARTED
            for lane in () if self._inline else self._lanes.values():
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
            if self._intake.digests:
                self._flusher = threading.Thread(
                    target=self._intake.flush_loop, name="kubewatch-digest", daemon=True
                )
                self._flusher.start()
        self._deliver_inline(self._lanes)

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
            self._intake.stop()  # workers exit once their shard is empty
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
            if stuck or self._inline:  # inline: a send an exception interrupted
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
        return self._intake.hand_over()

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
        self._intake.submit(event, sink_names, age, block)
        self._deliver_inline(self._lanes if sink_names is None else sink_names)

    def _deliver_inline(self, names: Iterable[str]) -> None:
        """With ``inline``, once started: deliver what the named sinks hold, here."""
        if self._inline and self._intake.state is State.STARTED:
            for name in names:
                lane = self._lanes[name]
                for shard in lane.queue.shards:
                    self._sender.drain(lane, shard)

    def flush_digests(self) -> None:
        """Queue the digests of every window that has ended by ``clock()``.

        The ``kubewatch-digest`` thread does this at each window's end; tests with a fake
        clock call it instead. Does nothing after ``close`` (which flushed everything).
        """
        self._intake.flush_digests()

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
            if self._intake.state is not State.STARTED:
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
