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
  WARNING and counted (``dropped``).
- **At-least-once, best effort.** An event is sent until the sink accepts it, fails
  permanently, or runs out of attempts. A receiver may see an event twice (an attempt
  that timed out after the receiver got it); :attr:`Event.id` is stable for
  de-duplication. Events are held in memory only: a crash loses what is queued.
- **Drain.** :meth:`Dispatcher.close` stops intake, lets the workers finish what is
  queued (retries included) within a timeout, then interrupts backoff waits, abandons
  what is left (counted as ``failed``) and closes the sinks.
"""

from __future__ import annotations

import enum
import logging
import random
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import TracebackType

import tenacity

from kubewatch.config import DeliveryConfig
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


class _State(enum.Enum):
    NEW = "new"
    STARTED = "started"
    CLOSED = "closed"


class _Lane:
    """One sink with its queue, worker threads and counters."""

    def __init__(self, name: str, sink: Sink, config: DeliveryConfig) -> None:
        self.name = name
        self.sink = sink
        # Invariant: len(queue) <= config.queue_size; one worker thread per shard.
        self.queue: ShardedQueue[Event] = ShardedQueue(
            config.queue_size, config.workers, key=_event_key
        )
        self.threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        # Counters only grow; each event ends in exactly one of delivered, failed, dropped.
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
        with self._lock:
            return SinkStats(
                delivered=self._delivered,
                failed=self._failed,
                retried=self._retried,
                dropped=self._dropped,
                queued=len(self.queue),
            )


def _event_key(event: Event) -> str:
    return event.key


class Dispatcher:
    """Delivers events to sinks through per-sink bounded queues and worker threads.

    Lifecycle: ``start()`` once, ``submit()`` from any thread (also before ``start``:
    events wait in the queue), ``close()`` once (more calls return the first result).
    Used as a context manager it starts on entry and closes on exit. The dispatcher owns
    the sinks it is given and closes them.

    ``sleep`` replaces the backoff wait (tests record delays instead of sleeping); it
    should return True when interrupted. The default waits on an internal stop event
    that ``close`` sets when its timeout runs out. ``rng`` draws the backoff jitter.
    """

    def __init__(
        self,
        sinks: Mapping[str, Sink],
        config: DeliveryConfig,
        *,
        sleep: Sleep | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self._config = config
        self._policy = RetryPolicy.from_config(config.retry)
        # Set only when close() gives up draining: wakes backoff waits, stops new attempts.
        self._stop = threading.Event()
        self._sleep: Sleep = sleep if sleep is not None else self._stop.wait
        self._rng = rng if rng is not None else random.Random()
        self._lanes = {name: _Lane(name, sink, config) for name, sink in sinks.items()}
        # Guards _state; submit enqueues under it, so once close() has flipped _state to
        # CLOSED and closed the queues, no event can slip in. Held only for O(sinks) work.
        self._lock = threading.Lock()
        self._state = _State.NEW  # NEW -> STARTED -> CLOSED, never backwards
        self._close_lock = threading.Lock()  # serializes close(); guards _close_result
        self._close_result: bool | None = None
        self._shutdown_failures = 0  # events given up because of close(); guarded by _lock

    # -- lifecycle -------------------------------------------------------------------

    def start(self) -> None:
        """Start the workers: one thread per shard, named ``kubewatch-sink-<name>-<i>``."""
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

    def close(self, timeout: float | None = None) -> bool:
        """Stop intake, drain within ``timeout`` seconds (default ``drain_timeout``), stop
        the workers and close the sinks.

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
                    lane.queue.close()  # workers exit once their shard is empty
            threads = [t for lane in self._lanes.values() for t in lane.threads]
            for thread in threads:
                thread.join(max(0.0, deadline - time.monotonic()))
            # With no workers (never started) anything queued is abandoned right away.
            self._stop.set()
            for lane in self._lanes.values():
                self._abandon(lane, lane.queue.clear())
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
        """Queue ``event`` for the named sinks (None: all). Never blocks: a full queue
        drops its oldest event instead. Raises RuntimeError after ``close`` and KeyError
        for an unknown sink name (before queueing anything)."""
        if sink_names is None:
            lanes = list(self._lanes.values())
        else:
            names = list(dict.fromkeys(sink_names))
            unknown = [n for n in names if n not in self._lanes]
            if unknown:
                raise KeyError(f"unknown sink(s): {', '.join(unknown)}")
            lanes = [self._lanes[n] for n in names]
        evicted: list[tuple[_Lane, Event]] = []
        with self._lock:
            if self._state is _State.CLOSED:
                raise RuntimeError("dispatcher is closed")
            for lane in lanes:
                old = lane.queue.put(event)
                if old is not None:
                    evicted.append((lane, old))
        for lane, old in evicted:  # logged outside the lock: handlers may be slow
            lane.add(dropped=1)
            log.warning(
                "sink %r: queue full, dropped oldest event id=%s kind=%s key=%s",
                lane.name,
                old.id,
                old.kind,
                old.key,
            )

    # -- observation -----------------------------------------------------------------

    def stats(self) -> dict[str, SinkStats]:
        """A snapshot of every sink's counters."""
        return {name: lane.stats() for name, lane in self._lanes.items()}

    def depth(self, sink: str) -> int:
        """Events waiting for ``sink`` now; informational only (never branch on it)."""
        return len(self._lanes[sink].queue)

    # -- workers ---------------------------------------------------------------------

    def _work(self, lane: _Lane, shard: Shard[Event]) -> None:
        while (event := shard.get()) is not None:
            if self._stop.is_set():  # close() gave up: no new attempts
                self._abandon(lane, [event])
                continue
            self._deliver(lane, event)

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
