"""The worker side of delivery: one thread per shard takes events off its queue and sends
each until accepted, refused for good, expired or interrupted by shutdown.

:class:`Sender` holds what every worker of a dispatcher shares (the stop event, the
waits, the jitter, the journal and the outcome observers); the
:class:`~kubewatch.delivery.dispatcher.Dispatcher` owns intake and lifecycle and hands
each worker thread to :meth:`Sender.supervise`. The guarantees are stated in the
dispatcher's docstring.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable, Iterable
from typing import Protocol

from kubewatch.config import DeliveryConfig
from kubewatch.delivery.lane import Item, Lane
from kubewatch.delivery.queue import Shard
from kubewatch.delivery.supervise import RESTART_DELAY, WorkerWatch
from kubewatch.errors import DeliveryError, RateLimited, RetryableError
from kubewatch.events import Event
from kubewatch.ratelimit import Sleep

log = logging.getLogger("kubewatch.delivery")

__all__ = ["Journal", "Sender"]


class Journal(Protocol):
    """Where the events owed to sinks are kept durably (the spool): the dispatcher says
    when one leaves (delivered, failed for good, expired, dropped, folded into a digest)
    and adds the digests it makes. Called on dispatcher threads; must be quick."""

    def put(self, event: Event, sinks: Iterable[str]) -> None: ...

    def settle(self, sink: str, event_id: str) -> None: ...


class Sender:
    """What the workers of one dispatcher share, and what each of them does.

    ``lock`` is the dispatcher's: it guards :attr:`shutdown_failures` (events given up
    because of shutdown), which close() reads under it. ``workers`` maps each sink to
    its workers' supervision, shared with the dispatcher's health checks.
    """

    def __init__(
        self,
        config: DeliveryConfig,
        *,
        stop: threading.Event,
        sleep: Sleep,
        rng: random.Random,
        clock: Callable[[], float],
        lock: threading.Lock,
        workers: dict[str, WorkerWatch],
        journal: Journal | None,
        on_delivered: Callable[[str, Event], None] | None,
        on_failed: Callable[[str, Event, str, bool], None] | None,
        on_sink_state: Callable[[str, bool, str], None] | None,
    ) -> None:
        self._config = config
        self._stop = stop
        self._sleep = sleep
        self._rng = rng
        self._clock = clock
        self._lock = lock
        self._workers = workers
        self._journal = journal
        # Observers of outcomes (metrics, kubewatch's own Events); called on worker threads,
        # must be quick; what they raise is caught, counted and logged (see .supervise).
        self._on_delivered = on_delivered
        self._on_failed = on_failed
        self._on_sink_state = on_sink_state
        self.shutdown_failures = 0  # guarded by lock

    def interruptible_sleep(self, delay: float) -> bool:
        """Every wait of a worker (backoff, tokens): True once close() has given up."""
        return self._sleep(delay) or self._stop.is_set()

    # -- lifecycle -------------------------------------------------------------------

    def supervise(self, lane: Lane, shard: Shard[Item]) -> None:
        """A worker thread: :meth:`_work`, run again after any exception escapes it."""
        watch = self._workers[lane.name]
        while True:
            try:
                self._work(lane, shard)
                return  # the shard is closed and empty
            except Exception:
                watch.restarted()
                if threading.get_ident() in lane._sending:  # its event: count it, once
                    lane.settle(failed=1)
                self._stop.wait(RESTART_DELAY)

    def _work(self, lane: Lane, shard: Shard[Item]) -> None:
        while (item := shard.get()) is not None:
            self._handle(lane, item)

    def drain(self, lane: Lane, shard: Shard[Item]) -> None:
        """Deliver what ``shard`` holds now, in order, on the caller's thread (a dispatcher
        without worker threads); what a worker does, minus its restarts."""
        while (item := shard.get_nowait()) is not None:
            self._handle(lane, item)

    def _handle(self, lane: Lane, item: Item) -> None:
        try:
            if lane.fence is not None:
                lane.fence.wait(item, self._stop)
            if self._stop.is_set():  # close() gave up: no new attempts
                self.abandon(lane, [item.event])
            else:
                lane.sending(item.event)
                self._deliver(lane, item.event, item.expires)
        finally:
            lane.done(item)
            lane.drops.flush()  # the count of unlogged drops, once their second is over

    def _deliver(self, lane: Lane, event: Event, expires: float) -> None:
        """Send one event until accepted, refused for good, expired, or interrupted.

        A retryable failure pauses the whole sink (its bucket: no worker of it attempts
        anything meanwhile) for a backoff that grows with the sink's consecutive failures,
        up to ``maxBackoff`` (or the receiver's ``Retry-After``); the event is then tried
        again, so an outage costs probes, not each event's attempts. The event fails for
        good on a permanent error, once ``retry.attempts`` are spent (when set), or when it
        is older than ``delivery.maxAge``. Waits go through ``self._sleep``, which shutdown
        interrupts.
        """
        policy = lane.policy.retry
        attempts = 0  # attempts that reached the sink
        while True:
            if self._clock() > expires:
                lane.add(expired=1)
                self._fail(
                    lane,
                    event,
                    attempts,
                    f"expired: not delivered within delivery.maxAge "
                    f"({self._config.max_age:g}s) of being seen",
                )
                return
            if not lane.bucket.acquire() or self._stop.is_set():
                with self._lock:
                    self.shutdown_failures += 1
                self._fail(lane, event, attempts, "shutdown before delivery", final=False)
                return
            attempts += 1
            if attempts > 1:
                lane.add(retried=1)
            try:
                lane.sink.send(event)
            except RetryableError as error:
                if policy.attempts is not None and attempts >= policy.attempts:
                    self._sink_failed(lane, error)
                    self._fail(lane, event, attempts, f"gave up: {error}")
                    return
                delay = self._sink_failed(lane, error)
                log.info(
                    "sink %r: attempt %d for event id=%s kind=%s key=%s failed, retry in %.2fs: %s",
                    lane.name,
                    attempts,
                    event.id,
                    event.kind,
                    event.key,
                    delay,
                    error,
                )
            except DeliveryError as error:
                self._fail(lane, event, attempts, str(error), permanent=True)
                return
            except Exception as error:
                # A bug in the sink, not a delivery outcome: keep the worker alive.
                self._fail(
                    lane, event, attempts, f"unexpected error in sink: {error!r}", trace=True
                )
                return
            else:
                self._sink_up(lane)
                if not lane.settle(delivered=1):
                    log.warning(
                        "sink %r: event id=%s key=%s was accepted after shutdown gave up on it "
                        "(counted as failed)",
                        lane.name,
                        event.id,
                        event.key,
                    )
                    return
                if self._journal is not None:
                    self._journal.settle(lane.name, event.id)
                self._workers[lane.name].callback(self._on_delivered, lane.name, event)
                return

    def _sink_failed(self, lane: Lane, error: RetryableError) -> float:
        """Pause ``lane`` after a failed attempt; returns the pause. Says once when the
        sink is down (:data:`SINK_DOWN_AFTER` failures in a row)."""
        backoff = lane.policy.retry.backoff
        failures, went_down = lane.failed_attempt(str(error))
        ceiling = backoff.ceiling(failures)
        # Equal jitter: at least half the ceiling, so a down sink is not probed in a loop.
        delay = max(self._rng.uniform(ceiling / 2, ceiling), backoff.retry_after(error))
        self._pause(lane, delay, quiet=not isinstance(error, RateLimited))
        if went_down:
            log.warning(
                "sink %r is down (%d attempts in a row failed, last: %s); its events are kept "
                "and it is probed with backoff up to %.0fs",
                lane.name,
                failures,
                error,
                backoff.max_backoff,
            )
            if self._on_sink_state is not None:
                self._on_sink_state(lane.name, False, str(error))
        return delay

    def _sink_up(self, lane: Lane) -> None:
        down_for = lane.succeeded()
        if down_for is None:
            return
        log.warning("sink %r is up again after %.1fs down", lane.name, down_for)
        if self._on_sink_state is not None:
            self._on_sink_state(lane.name, True, "")

    def _pause(self, lane: Lane, seconds: float, *, quiet: bool = False) -> None:
        """Hold every worker of ``lane`` for ``seconds`` (a receiver's Retry-After, or
        the backoff of a failing sink: ``quiet``, logged with the attempt instead)."""
        if lane.bucket.pause(seconds) and not quiet:
            log.info(
                "sink %r: receiver asked to wait %.1fs: no attempt by any of its %d worker(s) "
                "before then",
                lane.name,
                seconds,
                len(lane.queue.shards),
            )

    def _fail(
        self,
        lane: Lane,
        event: Event,
        attempts: int,
        reason: str,
        *,
        trace: bool = False,
        permanent: bool = False,
        final: bool = True,
    ) -> None:
        """Count ``event`` as failed; ``final``: its outcome is settled (it leaves the
        spool), else shutdown interrupted it and it stays owed for the next start."""
        if not lane.settle(failed=1):  # close() counted it already, and said so
            return
        if final and self._journal is not None:
            self._journal.settle(lane.name, event.id)
        self._workers[lane.name].callback(self._on_failed, lane.name, event, reason, permanent)
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

    def write_off(self, lane: Lane) -> None:
        """Count the events ``lane``'s workers are still sending as failed: close() does
        not wait for them any longer, and the final counters must add up."""
        events = lane.write_off()
        if not events:
            return
        with self._lock:
            self.shutdown_failures += len(events)
        log.error(
            "sink %r: shutdown: %d event(s) still in send given up, outcome unknown: the "
            "receiver may have them (first id=%s key=%s)",
            lane.name,
            len(events),
            events[0].id,
            events[0].key,
        )

    def abandon(self, lane: Lane, events: list[Event]) -> None:
        """Count events never attempted because of shutdown: one summary line, not one each."""
        if not events:
            return
        lane.add(failed=len(events))
        with self._lock:
            self.shutdown_failures += len(events)
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
