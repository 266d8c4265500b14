"""The dispatcher's intake: how a submitted event gets into its sinks' queues.

Its own module because queueing is the one part of delivery that runs on the producer's
thread (a watch, ``kubewatch replay``) under the dispatcher's lock, and what it promises
is about producers, not workers (for each sink independently):

- **Never blocks.** :meth:`.Dispatcher.submit` takes O(sinks) and never waits, unless asked
  to: ``block=True``, below.
- **Backpressure, on request.** ``submit(event, block=True)`` waits for room instead of
  dropping: a producer that must lose nothing (``kubewatch replay``) goes at its
  slowest sink's pace. See :meth:`.Dispatcher.submit` for the exact contract.
- **Bounded memory.** At most ``queue_size`` events wait per sink, plus one in flight per
  worker, plus what one digest window flushes (one event per group held: a window's
  flush never drops, it goes over the bound by those few). On overflow the oldest
  waiting event of the shard is dropped and counted (``dropped``); the WARNING about
  it is rate limited to one line per sink per
  :data:`~kubewatch.delivery.lane.DROP_LOG_INTERVAL` (the others go to DEBUG), and the
  next WARNING, or close, says how many were dropped since without a line of their own.
  A digester adds at most ``MAX_HELD`` ids and names plus one event per
  ``(type, kind, namespace)`` it holds (see :mod:`.digest`).
- **Burst digests** (sinks given a :class:`~kubewatch.config.DigestConfig`): a
  :class:`~kubewatch.delivery.digest.Digester` in front of the sink's queue passes the
  first ``threshold`` events of a burst and folds the rest, window by window while the
  burst goes on, into one digest event per ``(type, kind, namespace)``, queued when the
  window ends (a background thread, ``kubewatch-digest``, runs :meth:`Intake.flush_loop`
  and flushes at each window's end). Every submitted event ends as exactly one of
  ``delivered``, ``failed``, ``dropped`` or ``digested``; a digest is itself one event,
  counted as delivered, failed or dropped.
- **Order with digests.** A digest is a barrier in its sink's queue: it is sent only after
  every event queued before it has finished (delivered, failed or dropped), and no event
  queued after it is sent before the digest has finished. With the digester holding every
  event of a digesting window, the order of one object's events is thus kept across
  digests too, even though a digest's key (``namespace/``) maps it to a worker of its own.
  The price: while a digest is being sent (retries included), that sink sends nothing
  else. Sinks without digests have no barriers.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import logging
import threading
from collections.abc import Callable, Iterable

from kubewatch.config import DeliveryConfig
from kubewatch.delivery.digest import Digester
from kubewatch.delivery.lane import Fence, Item, Lane
from kubewatch.delivery.queue import Shard
from kubewatch.delivery.worker import Journal
from kubewatch.events import Event

log = logging.getLogger("kubewatch.delivery")

__all__ = ["Intake", "State"]


class State(enum.Enum):
    """A dispatcher's lifecycle: NEW -> STARTED -> CLOSED, never backwards."""

    NEW = "new"
    STARTED = "started"
    CLOSED = "closed"


class Intake:
    """Queues submitted events in their lanes: through each lane's digester, with an
    expiry from ``delivery.maxAge``, overflow evictions counted, settled in the journal
    and logged outside the lock; flushes digest windows as they end.

    ``lock`` is the dispatcher's: everything that queues does it under it (submit, the
    flusher, stop and hand-over), so queue order is decision order, and once
    :attr:`state` is CLOSED and the queues are closed no event can slip in. Lock order:
    ``lock``, then a digester's lock, then a fence's or a shard's. :attr:`state` is
    guarded by ``lock``; the dispatcher moves it to STARTED, :meth:`stop` and
    :meth:`hand_over` to CLOSED.
    """

    def __init__(
        self,
        config: DeliveryConfig,
        *,
        clock: Callable[[], float],
        lock: threading.Lock,
        journal: Journal | None,
    ) -> None:
        self._config = config
        self._clock = clock
        self._lock = lock
        self._journal = journal
        self.lanes: dict[str, Lane] = {}
        """Every sink's lane by sink name, as :meth:`add` took them in."""
        self.state = State.NEW
        self._evicted: list[tuple[Lane, Event]] = []  # dropped on overflow, not yet logged
        # Set when a window starts digesting (a new deadline), and by stop().
        self._wake = threading.Event()
        # The event submit() is queueing and its age (under lock), for its expiry.
        self._adding: Event | None = None
        self._age = 0.0

    def add(self, lane: Lane) -> None:
        """Take ``lane`` in; one whose policy digests gets its fence and digester."""
        if lane.policy.digest is not None:
            lane.fence = Fence()
            lane.digester = Digester(
                lane.name,
                lane.policy.digest,
                clock=self._clock,
                emit=functools.partial(self.enqueue, lane),
            )
        self.lanes[lane.name] = lane

    @property
    def digests(self) -> bool:
        """True when any lane has a digester (and so needs :meth:`flush_loop`)."""
        return any(lane.digester for lane in self.lanes.values())

    # -- submitting ------------------------------------------------------------------

    def submit(self, event: Event, names: Iterable[str] | None, age: float, block: bool) -> None:
        """Queue ``event`` for the sinks ``names`` (None: all), through a sink's digester if
        it has one; the contract is :meth:`~kubewatch.delivery.dispatcher.Dispatcher.submit`'s.
        """
        if names is None:
            lanes = list(self.lanes.values())
        else:
            unique = list(dict.fromkeys(names))
            unknown = [n for n in unique if n not in self.lanes]
            if unknown:
                raise KeyError(f"unknown sink(s): {', '.join(unknown)}")
            lanes = [self.lanes[n] for n in unique]
        while True:
            with self._lock:
                if self.state is State.CLOSED:
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
        it needs; None when every lane has room. Caller holds the lock."""
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
        has a new deadline). Caller holds the lock."""
        wake = False
        self._adding, self._age = event, age
        for lane in lanes:
            if lane.digester is None or event.digest is not None:
                self.enqueue(lane, event)
                continue
            before = lane.digester.deadline()
            lane.adding = event
            lane.digester.add(event)
            self._settle_folded(lane)
            after = lane.digester.deadline()
            wake = wake or (after is not None and after != before)
        self._adding, self._age = None, 0.0
        return wake

    def enqueue(self, lane: Lane, event: Event) -> None:
        """Put ``event`` in ``lane``'s queue (the digester's ``emit``); caller holds the
        lock."""
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
        # A window's flush goes over the queue's bound rather than drop: its few events
        # (one per group held) stand for the whole burst, and a producer that waited for
        # room (block=True) may have been promised less room than the groups now need.
        old = lane.queue.put(item, over=event is not self._adding)
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
        """The evictions not yet reported; caller holds the lock."""
        evicted, self._evicted = self._evicted, []
        return evicted

    def _report_evicted(self, evicted: list[tuple[Lane, Event]]) -> None:
        for lane, old in evicted:  # logged outside the lock: handlers may be slow
            lane.add(dropped=1)
            if self._journal is not None:
                self._journal.settle(lane.name, old.id)
            lane.drops.dropped(old)

    # -- closing ---------------------------------------------------------------------

    def stop(self) -> None:
        """Stop intake: CLOSED, every digester flushed at once (held events become
        digests), every queue closed (workers exit once their shard is empty)."""
        with self._lock:
            self.state = State.CLOSED
            for lane in self.lanes.values():
                if lane.digester is not None:
                    lane.digester.flush(force=True)
                    self._settle_folded(lane)
                lane.queue.close()
            evicted = self._take_evicted()
        self._wake.set()  # the flusher sees CLOSED and exits
        self._report_evicted(evicted)

    def hand_over(self) -> dict[str, list[tuple[Event, float]]]:
        """Stop intake and take every queued event out, per sink, for a successor; see
        :meth:`~kubewatch.delivery.dispatcher.Dispatcher.hand_over`."""
        taken: dict[str, list[tuple[Event, float]]] = {}
        with self._lock:
            if self.state is State.CLOSED:
                return taken
            self.state = State.CLOSED
            now = self._clock()
            for lane in self.lanes.values():
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

    # -- digests ---------------------------------------------------------------------

    def flush_digests(self) -> None:
        """Queue the digests of every window that has ended by ``clock()``; nothing once
        CLOSED (:meth:`stop` flushed everything)."""
        with self._lock:
            if self.state is State.CLOSED:
                return
            self._flush_due()
            evicted = self._take_evicted()
        self._report_evicted(evicted)

    def _flush_due(self) -> float | None:
        """Flush ended windows; return the earliest deadline left. Caller holds the lock."""
        now = self._clock()
        deadlines = []
        for lane in self.lanes.values():
            if lane.digester is not None:
                lane.digester.flush(now)
                self._settle_folded(lane)
                if (deadline := lane.digester.deadline()) is not None:
                    deadlines.append(deadline)
        return min(deadlines, default=None)

    def flush_loop(self) -> None:
        """The flusher: sleeps until the earliest digesting window ends, or a new one
        starts digesting, or :meth:`stop`; flushes what has ended."""
        while True:
            deadline: float | None = None
            with self._lock:
                if self.state is State.CLOSED:
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
