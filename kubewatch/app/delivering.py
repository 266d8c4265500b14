"""The per-event path and the dispatchers behind it.

Every event is counted, routed, then either spooled and submitted (this replica leads) or
kept in the handover buffer (a standby). A reload swaps router and dispatcher as one, so an
event is never routed by one configuration and delivered by another's sinks; the old
dispatcher drains in the background and its counters are added to the new one's, so
``/metrics`` counters stay cumulative. A stop drains what is queued and says what was lost.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from kubewatch.app.build import sum_stats
from kubewatch.app.handover import HandoverBuffer
from kubewatch.app.recovery import resubmit, take_over
from kubewatch.delivery import Dispatcher, SinkStats
from kubewatch.events import Event
from kubewatch.observability.metrics import StateView
from kubewatch.routing import Router
from kubewatch.state import State

__all__ = ["Delivering", "Route"]

log = logging.getLogger("kubewatch.app")


@dataclass(frozen=True, slots=True)
class Route:
    """The router and the dispatcher that go with it: swapped together by a reload."""

    router: Router
    dispatcher: Dispatcher


class Delivering:
    """Routes events to the current dispatcher, or holds them while not leading."""

    def __init__(
        self,
        route: Route,
        state: State | None,
        handover: HandoverBuffer,
        *,
        leading: bool,
        observe: Callable[[str, str], None],
    ) -> None:
        self.route = route
        self.state = state
        self.handover = handover
        self._observe = observe
        self.recovered = {"spool": 0, "while_down": 0}
        self._leading = leading
        self._unspooled: list[tuple[str, Event]] = []  # recovered, for when we lead
        self.tenant_spool: list[tuple[str, Event]] = []
        """What the spool kept for Notifiers' sinks (operator mode takes it)."""
        self.tenant_dispatcher: Callable[[str], Dispatcher | None] = lambda key: None
        """The running dispatcher of a Notifier (``ns/name``), for what a standby kept of
        its events (operator mode sets it)."""
        # Dispatchers a reload replaced: final counters of the finished ones, and the ones
        # still draining; under _lock.
        self._lock = threading.Lock()
        self._retired: dict[str, SinkStats] = {}
        self._retiring: list[Dispatcher] = []
        self._retire_threads: list[threading.Thread] = []
        # Makes deliver's look at _leading and route and its submit one step, and
        # start_leading's switch, drain and submit another, and a reload's swap and hand
        # over a third: otherwise an event added just after a drain would wait in the
        # buffer until the next takeover (lost), a new event could overtake drained or
        # handed-over ones, or reach a dispatcher that no longer takes events.
        self._leading_lock = threading.Lock()

    def deliver(self, event: Event) -> None:
        """Count, route, spool and hand one event to the dispatcher (never blocks)."""
        self._observe(event.resource, event.type.value)
        if event.while_down:
            self.recovered["while_down"] += 1  # informer threads: a GIL-atomic-enough count
        route = self.route
        sinks = route.router.route(event)
        if not sinks:
            return
        with self._leading_lock:
            if self.route is not route:  # a reload swapped them since: route again
                route = self.route
                sinks = route.router.route(event)
                if not sinks:
                    return
            if not self._leading:
                self.handover.add(event, sinks)
                return
            if self.state is not None:
                self.state.spool.put(event, sinks)
            route.dispatcher.submit(event, sinks)

    def hand(self, event: Event, sinks: tuple[str, ...], dispatcher: Dispatcher) -> None:
        """A Notifier's routed event: spooled and submitted to its ``dispatcher`` while
        this replica leads, else kept in the handover buffer like the file's (under the
        same lock: a takeover neither misses nor repeats it). Raises RuntimeError when the
        dispatcher is closed."""
        with self._leading_lock:
            if not self._leading:
                self.handover.add(event, sinks)
                return
            if self.state is not None:
                self.state.spool.put(event, sinks)
            dispatcher.submit(event, sinks)

    def recover(self, recovered: list[tuple[str, Event]], stop: threading.Event) -> None:
        """Queue what the last run left undelivered (now, or once this replica leads),
        waiting for room in the queues; ``stop`` ends the wait (the rest stays spooled)."""
        self.recovered["spool"] = len(recovered)
        # A Notifier's sinks are named ns/notifier/sink ('/' is not allowed in the file's):
        # their events wait for the Notifier (operator mode), not for the file's sinks.
        self.tenant_spool = [(sink, event) for sink, event in recovered if "/" in sink]
        recovered = [(sink, event) for sink, event in recovered if "/" not in sink]
        if not recovered:
            return
        log.info(
            "state: %d undelivered event(s) from the last run%s",
            len(recovered),
            "" if self._leading else "; delivered if this replica leads",
        )
        with self._leading_lock:
            if self._leading:
                assert self.state is not None
                resubmit(self.state, self.route.dispatcher, recovered, stop)
            else:
                self._unspooled = recovered

    # -- leadership -----------------------------------------------------------------------

    def start_leading(self, window: float, stop: threading.Event) -> None:
        """Deliver from now on, first what the handover buffer kept of the last ``window``
        seconds and what the spool recovered."""
        with self._leading_lock:
            self._leading = True
            dispatcher = self.route.dispatcher
            pending = self.handover.drain()
            if pending:
                log.info(
                    "leading: delivering %d event(s) seen in the last %.0fs as a standby "
                    "(receivers may get some twice: de-duplicate by id)",
                    len(pending),
                    window,
                )
            if self._unspooled:
                assert self.state is not None  # only a state's spool fills it
                resubmit(self.state, dispatcher, self._unspooled, stop)
                self._unspooled = []
            known: dict[int, set[str]] = {}  # a reload may have removed a sink since
            for event, sinks in pending:
                # a Notifier's sinks are ns/notifier/sink: to its dispatcher, if it runs
                key = sinks[0].rsplit("/", 1)[0] if "/" in sinks[0] else None
                target = dispatcher if key is None else self.tenant_dispatcher(key)
                if target is None:
                    continue
                have = known.setdefault(id(target), set(target.stats()))
                names = tuple(name for name in sinks if name in have)
                if names:
                    if self.state is not None:
                        self.state.spool.put(event, names)
                    with contextlib.suppress(RuntimeError):  # a Notifier closed meanwhile
                        target.submit(event, names)  # never blocks

    @property
    def leading(self) -> bool:
        """True while this replica delivers (always, without leader election)."""
        return self._leading

    def stop_leading(self) -> None:
        with self._leading_lock:
            self._leading = False

    # -- reload ---------------------------------------------------------------------------

    def swap(self, router: Router, dispatcher: Dispatcher | None, drain_timeout: float) -> None:
        """Route with ``router`` from now on, and deliver through ``dispatcher`` if given:
        it takes over what the old one queued and starts once the old one drained."""
        with self._leading_lock:
            old = self.route
            self.route = Route(router, dispatcher or old.dispatcher)
            if dispatcher is None:
                return
            with self._lock:
                self._retiring.append(old.dispatcher)
            take_over(self.state, old.dispatcher, dispatcher)
        with self._lock:
            before = self._retire_threads[-1] if self._retire_threads else None
            retire = threading.Thread(
                target=self._retire,
                args=(old.dispatcher, dispatcher, drain_timeout, before),
                name="kubewatch-retire",
                daemon=True,
            )
            self._retire_threads.append(retire)
        retire.start()

    def _retire(
        self,
        old: Dispatcher,
        new: Dispatcher,
        drain_timeout: float,
        before: threading.Thread | None,
    ) -> None:
        """Let ``old`` finish its sends in flight, then start ``new``: no newer event of
        an object overtakes one still being sent by the old configuration's sinks.

        Retirements run in reload order (``before`` is the previous one): after two quick
        reloads the second's ``old`` never started, and only waiting for the first makes
        sure the oldest dispatcher's sends are done before the newest one starts."""
        if before is not None:
            before.join()
        old.close(drain_timeout)
        log_stats(old)
        try:
            new.start()
        except RuntimeError:  # a later reload already handed its queue over: closed
            log.debug("reload: a newer configuration replaced this one before it started")
        with self._lock:
            self._retired = sum_stats([self._retired, old.stats()])
            self._retiring.remove(old)
            self._retire_threads.remove(threading.current_thread())

    # -- views and stop -------------------------------------------------------------------

    def sink_stats(self) -> dict[str, SinkStats]:
        """Counters per sink, cumulative across reloads."""
        with self._lock:
            retiring = [d.stats() for d in self._retiring]
            retired = dict(self._retired)
        return sum_stats([retired, *retiring, self.route.dispatcher.stats()])

    def state_view(self) -> StateView | None:
        state = self.state
        if state is None:
            return None
        committed = state.db.last_commit
        return StateView(
            spooled=state.spool.depth(),
            oldest_age_seconds=state.spool.oldest_age(),
            checkpoint_age_seconds=None if committed is None else max(0.0, time.time() - committed),
            recovered=dict(self.recovered),
            healthy=state.db.healthy,
        )

    def close(self, drain_timeout: float) -> tuple[bool, int]:
        """Drain (retiring dispatchers first), close the state; return whether everything
        queued was handled and how many events were lost (neither delivered nor kept)."""
        with self._lock:
            retiring = list(self._retire_threads)
        for thread in retiring:  # a reload's old dispatcher drains, then the new one starts
            thread.join(drain_timeout + 5.0)
        dispatcher = self.route.dispatcher
        drained = dispatcher.close(drain_timeout)
        log_stats(dispatcher)
        lost = 0
        if self.state is not None:
            kept = sum(self.state.spool.depth().values())
            if not self.state.db.healthy:
                lost = dispatcher.abandoned
            elif kept:
                log.info("state: %d event(s) kept in the spool for the next start", kept)
            self.state.close()
        else:
            lost = dispatcher.abandoned
        if lost:
            log.error(
                "%d event(s) were not delivered and are lost (no durable state: set "
                "state.path or --state-dir to keep them)",
                lost,
            )
        return drained, lost


def log_stats(dispatcher: Dispatcher) -> None:
    for name, stats in dispatcher.stats().items():
        log.info(
            "sink %s: delivered %d, failed %d, retried %d, dropped %d, digested %d",
            name,
            stats.delivered,
            stats.failed,
            stats.retried,
            stats.dropped,
            stats.digested,
        )
