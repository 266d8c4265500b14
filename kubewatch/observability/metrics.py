"""Prometheus metrics: a few hot-path observations plus live state read at scrape time.

Two kinds of metrics, on purpose:

* **Observed** — :meth:`Metrics.observe_event` (once per normalized event) and
  :meth:`Metrics.observe_delivery` (once per delivered event) update prometheus-client
  counters and a histogram: these facts exist nowhere else.
* **Collected** — watch and sink counters already live in the Reflectors and in the
  dispatcher's :class:`~kubewatch.delivery.SinkStats`. :class:`StateCollector` reads them
  through plain callables when Prometheus scrapes, so the watch and delivery threads never
  touch a metric (and a counter can never drift from the number the log line reports).

Everything is registered in a dedicated :class:`~prometheus_client.CollectorRegistry`, never
the process-global one: two :class:`Metrics` (tests, or two apps in one process) do not clash.
Every name starts with ``kubewatch_``; every HELP text names its unit.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric

from kubewatch._version import __version__
from kubewatch.timefmt import seconds_since

log = logging.getLogger(__name__)

__all__ = [
    "DELIVERY_LATENCY_BUCKETS",
    "CountSource",
    "HoldSource",
    "HoldStatsLike",
    "InformerView",
    "LeaderSource",
    "Metrics",
    "SinkSource",
    "SinkStatsLike",
    "StateCollector",
    "StateSource",
    "StateView",
    "WatchSource",
    "WatchState",
    "WorkerSource",
    "WorkerStatsLike",
    "seconds_since",
    "watch_states",
]

DELIVERY_LATENCY_BUCKETS = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0,
)  # fmt: skip
"""Seconds. A webhook answers in milliseconds; retries with backoff, rate limits and burst
digests (which hold events for their window) push deliveries into minutes."""


@dataclass(frozen=True, slots=True)
class WatchState:
    """A snapshot of one watch (one informer) for metrics and readiness."""

    resource: str
    """Group-qualified resource: ``deployments.apps``, ``configmaps``."""
    scope: str
    """Which watch of that resource: ``cluster-wide``, ``in shop``, ``in shop labels app=web``."""
    synced: bool
    """The first LIST has been handed to the handlers."""
    last_activity_age_seconds: float
    """Seconds since the last sign of life: a list page, a watch (re)opened, an event or a
    bookmark. Never negative."""
    relists: int
    """LISTs after the first one (each follows a 410 Gone or a failed first watch)."""
    watch_restarts: int
    """WATCH requests that ended and were reopened (a healthy watch ends every
    ``serverTimeout`` to twice that)."""
    handler_errors: int = 0
    """Exceptions raised by the watch's handlers (each lost one change)."""
    failure: str | None = None
    """Why the latest LIST or WATCH attempt failed, until one succeeds; ``None`` when the
    latest one did."""

    @property
    def name(self) -> str:
        """How logs name the watch: ``deployments.apps in shop``."""
        return f"{self.resource} {self.scope}"

    @classmethod
    def of(cls, informer: InformerView, now: float) -> WatchState:
        """The state of ``informer`` at ``now`` (the clock of its Reflector: monotonic).

        The informer's name is a :func:`~kubewatch.watch.plan.describe_scope` string,
        ``<resource> <scope>``: the first word is the resource, the rest the scope.
        """
        resource, _, scope = informer.name.partition(" ")
        reflector = informer.reflector
        return cls(
            resource=resource,
            scope=scope or "cluster-wide",
            synced=informer.has_synced,
            last_activity_age_seconds=max(0.0, now - reflector.last_activity),
            relists=reflector.relists,
            watch_restarts=reflector.watch_restarts,
            handler_errors=informer.handler_errors,
            failure=reflector.failure,
        )


class ReflectorView(Protocol):
    """What :class:`WatchState` reads of a :class:`~kubewatch.kube.Reflector`."""

    @property
    def last_activity(self) -> float: ...

    @property
    def relists(self) -> int: ...

    @property
    def watch_restarts(self) -> int: ...

    @property
    def failure(self) -> str | None: ...


class InformerView(Protocol):
    """What :class:`WatchState` reads of a :class:`~kubewatch.kube.SharedInformer`."""

    @property
    def name(self) -> str: ...

    @property
    def has_synced(self) -> bool: ...

    @property
    def reflector(self) -> ReflectorView: ...

    @property
    def handler_errors(self) -> int: ...


def watch_states(
    informers: Iterable[InformerView], clock: Callable[[], float] = time.monotonic
) -> list[WatchState]:
    """Snapshots of ``informers``, all aged against one reading of ``clock`` (the clock the
    Reflectors were given)."""
    now = clock()
    return [WatchState.of(informer, now) for informer in informers]


class SinkStatsLike(Protocol):
    """The counters :class:`~kubewatch.delivery.SinkStats` carries (read-only)."""

    @property
    def delivered(self) -> int: ...

    @property
    def failed(self) -> int: ...

    @property
    def retried(self) -> int: ...

    @property
    def dropped(self) -> int: ...

    @property
    def digested(self) -> int: ...

    @property
    def queued(self) -> int: ...

    @property
    def held(self) -> int: ...

    @property
    def expired(self) -> int: ...

    @property
    def up(self) -> bool: ...


@dataclass(frozen=True, slots=True)
class StateView:
    """A snapshot of the durable state (``state.path``) for metrics."""

    spooled: Mapping[str, int]
    """Events owed now, per sink."""
    oldest_age_seconds: float | None
    checkpoint_age_seconds: float | None
    """Seconds since the last commit of the spool and checkpoint; None before the first."""
    recovered: Mapping[str, int]
    """Events recovered at start, by kind: ``spool`` (undelivered), ``while_down``."""
    healthy: bool
    """False once a write failed and the state fell back to memory."""


class HoldStatsLike(Protocol):
    """The counters of :class:`~kubewatch.watch.nshold.HoldStats` (read-only)."""

    @property
    def held_total(self) -> int: ...

    @property
    def expired_total(self) -> int: ...

    @property
    def held(self) -> int: ...


class WorkerStatsLike(Protocol):
    """The counters of :class:`~kubewatch.delivery.supervise.WorkerStats` (read-only)."""

    @property
    def restarts(self) -> int: ...

    @property
    def callback_errors(self) -> int: ...


WatchSource = Callable[[], Iterable[WatchState]]
"""Called at scrape time: the current state of every watch."""
SinkSource = Callable[[], Mapping[str, SinkStatsLike]]
"""Called at scrape time: sink name → counters (``Dispatcher.stats``)."""
StateSource = Callable[[], StateView | None]
"""Called at scrape time: the durable state, or None without ``state.path``."""
LeaderSource = Callable[[], bool | None]
"""Called at scrape time: this replica leads (True), waits (False), or no election (None)."""
CountSource = Callable[[], int]
"""Called at scrape time: a counter kept elsewhere (``HandoverBuffer.dropped``)."""
HoldSource = Callable[[], HoldStatsLike | None]
"""Called at scrape time: the namespace hold's counters (``NamespaceHold.stats``)."""
WorkerSource = Callable[[], Mapping[str, WorkerStatsLike]]
"""Called at scrape time: sink name → its workers' counters (``Dispatcher.worker_stats``)."""


def _no_watches() -> Iterable[WatchState]:
    return ()


def _no_sinks() -> Mapping[str, SinkStatsLike]:
    return {}


def _no_election() -> bool | None:
    return None


def _no_state() -> StateView | None:
    return None


def _zero() -> int:
    return 0


def _no_hold() -> HoldStatsLike | None:
    return None


def _no_workers() -> Mapping[str, WorkerStatsLike]:
    return {}


_SINK_COUNTERS = (
    # (SinkStats field, metric name without _total, HELP)
    ("delivered", "kubewatch_events_delivered", "Events a sink accepted (count)."),
    (
        "failed",
        "kubewatch_events_failed",
        "Events given up for a sink: permanent error, attempts exhausted or shutdown (count).",
    ),
    (
        "retried",
        "kubewatch_events_retried",
        "Delivery attempts after the first; one event may count several times (count).",
    ),
    (
        "dropped",
        "kubewatch_events_dropped",
        "Events evicted unsent because the sink's queue was full, oldest first (count).",
    ),
    (
        "digested",
        "kubewatch_events_digested",
        "Events folded into burst digests instead of being sent one by one (count).",
    ),
    (
        "expired",
        "kubewatch_events_expired",
        "Events given up because they were older than delivery.maxAge (count; also failed).",
    ),
)


class StateCollector:
    """A prometheus-client collector over live state, read when Prometheus scrapes.

    A source that raises is logged and left out of that scrape; the others still appear.
    """

    def __init__(
        self,
        *,
        informers: WatchSource = _no_watches,
        sinks: SinkSource = _no_sinks,
        leader: LeaderSource = _no_election,
        state: StateSource = _no_state,
        handover_dropped: CountSource = _zero,
        namespace_hold: HoldSource = _no_hold,
        workers: WorkerSource = _no_workers,
        version: str = __version__,
    ) -> None:
        self._informers = informers
        self._sinks = sinks
        self._leader = leader
        self._state = state
        self._handover_dropped = handover_dropped
        self._namespace_hold = namespace_hold
        self._workers = workers
        self._version = version

    def describe(self) -> Iterable[Metric]:
        """Nothing: the registry then never calls the sources at registration time."""
        return ()

    def collect(self) -> Iterator[Metric]:
        info = GaugeMetricFamily(
            "kubewatch_build_info",
            "Always 1; the labels say which kubewatch runs.",
            labels=["version"],
        )
        info.add_metric([self._version], 1)
        yield info
        yield from self._collect_leader()
        yield from self._collect_watches()
        yield from self._collect_sinks()
        yield from self._collect_state()
        yield from self._collect_losses()

    def _collect_losses(self) -> Iterator[Metric]:
        """Where events can be lost or delayed outside a sink's queue: the standby's
        handover buffer, the namespace hold, the delivery workers."""
        try:
            dropped = self._handover_dropped()
            hold = self._namespace_hold()
            workers = dict(self._workers())
        except Exception:
            log.exception("metrics: reading the loss counters failed; left out of this scrape")
            return
        yield CounterMetricFamily(
            "kubewatch_handover_dropped",
            "Events a standby pushed out of its full handover buffer: a takeover does not "
            "deliver them (count).",
            value=dropped,
        )
        if hold is not None:
            yield CounterMetricFamily(
                "kubewatch_namespace_held",
                "Changes held because their namespace was not known yet (count).",
                value=hold.held_total,
            )
            yield CounterMetricFamily(
                "kubewatch_namespace_hold_expired",
                "Held changes judged before their namespace was known, after the hold "
                "timeout or on overflow (count).",
                value=hold.expired_total,
            )
            yield GaugeMetricFamily(
                "kubewatch_namespace_held_events",
                "Changes waiting now for their namespace to be known (events).",
                value=hold.held,
            )
        restarts = CounterMetricFamily(
            "kubewatch_worker_restarts",
            "Delivery worker loops started again after an unexpected exception (count).",
            labels=["sink"],
        )
        callbacks = CounterMetricFamily(
            "kubewatch_delivery_callback_errors",
            "Exceptions raised by delivery observers on worker threads, caught (count).",
            labels=["sink"],
        )
        for sink, counters in workers.items():
            restarts.add_metric([sink], counters.restarts)
            callbacks.add_metric([sink], counters.callback_errors)
        yield from (restarts, callbacks)

    def _collect_leader(self) -> Iterator[Metric]:
        try:
            leading = self._leader()
        except Exception:
            log.exception("metrics: reading the leader state failed; left out of this scrape")
            return
        if leading is not None:  # no election: no gauge (every replica delivers)
            yield GaugeMetricFamily(
                "kubewatch_leader",
                "1 while this replica holds the leader Lease and delivers, else 0 (boolean); "
                "absent without leader election.",
                value=1 if leading else 0,
            )

    def _collect_watches(self) -> Iterator[Metric]:
        try:
            states = list(self._informers())
        except Exception:
            log.exception("metrics: reading the watch states failed; left out of this scrape")
            return
        labels = ["resource", "watch"]
        restarts = CounterMetricFamily(
            "kubewatch_watch_restarts",
            "WATCH requests that ended and were reopened, healthy timeouts included (count).",
            labels=labels,
        )
        relists = CounterMetricFamily(
            "kubewatch_relists",
            "LISTs after the first, each after a 410 Gone or a failed first watch (count).",
            labels=labels,
        )
        silence = GaugeMetricFamily(
            "kubewatch_watch_seconds_since_activity",
            "Seconds since the watch last showed life: list page, watch opened, event or bookmark.",
            labels=labels,
        )
        synced = GaugeMetricFamily(
            "kubewatch_watch_synced",
            "1 once the watch's first LIST completed, else 0 (boolean).",
            labels=labels,
        )
        errors = CounterMetricFamily(
            "kubewatch_handler_errors",
            "Exceptions raised while handling a watch's changes; each lost one change (count).",
            labels=labels,
        )
        failing = GaugeMetricFamily(
            "kubewatch_watch_failing",
            "1 while the watch's latest LIST or WATCH attempt failed, else 0 (boolean).",
            labels=labels,
        )
        for state in states:
            values = [state.resource, state.scope]
            restarts.add_metric(values, state.watch_restarts)
            relists.add_metric(values, state.relists)
            silence.add_metric(values, state.last_activity_age_seconds)
            synced.add_metric(values, 1 if state.synced else 0)
            errors.add_metric(values, state.handler_errors)
            failing.add_metric(values, 0 if state.failure is None else 1)
        yield from (restarts, relists, silence, synced, errors, failing)

    def _collect_sinks(self) -> Iterator[Metric]:
        try:
            stats = dict(self._sinks())
        except Exception:
            log.exception("metrics: reading the sink counters failed; left out of this scrape")
            return
        for field, name, help_text in _SINK_COUNTERS:
            family = CounterMetricFamily(name, help_text, labels=["sink"])
            for sink, counters in stats.items():
                family.add_metric([sink], getattr(counters, field))
            yield family
        depth = GaugeMetricFamily(
            "kubewatch_queue_depth",
            "Events waiting in a sink's queue now, in-flight ones excluded (events).",
            labels=["sink"],
        )
        held = GaugeMetricFamily(
            "kubewatch_digest_held_events",
            "Events held now for the current burst window's digest of a sink (events).",
            labels=["sink"],
        )
        up = GaugeMetricFamily(
            "kubewatch_sink_up",
            "0 while a sink is down (several attempts in a row failed; its events are kept "
            "and it is probed with backoff), else 1 (boolean).",
            labels=["sink"],
        )
        for sink, counters in stats.items():
            depth.add_metric([sink], counters.queued)
            held.add_metric([sink], counters.held)
            up.add_metric([sink], 1 if counters.up else 0)
        yield from (depth, held, up)

    def _collect_state(self) -> Iterator[Metric]:
        try:
            view = self._state()
        except Exception:
            log.exception("metrics: reading the state failed; left out of this scrape")
            return
        if view is None:  # no state.path: no state metrics
            return
        spooled = GaugeMetricFamily(
            "kubewatch_spool_events",
            "Events in the durable spool owed to a sink, queued or in flight (events).",
            labels=["sink"],
        )
        for sink, count in view.spooled.items():
            spooled.add_metric([sink], count)
        yield spooled
        if view.oldest_age_seconds is not None:
            yield GaugeMetricFamily(
                "kubewatch_spool_oldest_event_age_seconds",
                "Seconds since the oldest event in the spool was seen; absent when empty.",
                value=view.oldest_age_seconds,
            )
        if view.checkpoint_age_seconds is not None:
            yield GaugeMetricFamily(
                "kubewatch_checkpoint_age_seconds",
                "Seconds since the spool and checkpoint were last committed to disk.",
                value=view.checkpoint_age_seconds,
            )
        recovered = CounterMetricFamily(
            "kubewatch_events_recovered",
            "Events recovered at start: spool (undelivered by the last run) or while_down "
            "(changes made while kubewatch was down) (count).",
            labels=["recovery"],
        )
        for kind in ("spool", "while_down"):
            recovered.add_metric([kind], view.recovered.get(kind, 0))
        yield recovered
        yield GaugeMetricFamily(
            "kubewatch_state_healthy",
            "1 while the state is written to disk, 0 after a write failed and it fell back "
            "to memory (boolean).",
            value=1 if view.healthy else 0,
        )


class Metrics:
    """kubewatch's metrics in their own registry.

    ``informers``, ``sinks`` and ``leader`` are called at scrape time only, from the HTTP
    server's thread: they must be cheap and thread-safe. Closures bind late, so they may
    refer to an app built after this object (``informers=lambda: app.watch_states()``).
    """

    def __init__(
        self,
        *,
        informers: WatchSource = _no_watches,
        sinks: SinkSource = _no_sinks,
        leader: LeaderSource = _no_election,
        state: StateSource = _no_state,
        handover_dropped: CountSource = _zero,
        namespace_hold: HoldSource = _no_hold,
        workers: WorkerSource = _no_workers,
        version: str = __version__,
    ) -> None:
        self.registry = CollectorRegistry()
        self._events = Counter(
            "kubewatch_events_observed",
            "Normalized change events produced from watches, before routing (count).",
            ["resource", "type"],
            registry=self.registry,
        )
        self._latency = Histogram(
            "kubewatch_delivery_latency_seconds",
            "Seconds from observing a change (observedAt) to a sink accepting it, "
            "retries and digest windows included.",
            ["sink"],
            buckets=DELIVERY_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.registry.register(
            StateCollector(
                informers=informers,
                sinks=sinks,
                leader=leader,
                state=state,
                handover_dropped=handover_dropped,
                namespace_hold=namespace_hold,
                workers=workers,
                version=version,
            )
        )

    def observe_event(self, resource: str, type: str) -> None:
        """Count one normalized event: ``observe_event("deployments.apps", "update")``."""
        self._events.labels(resource, type).inc()

    def observe_delivery(self, sink: str, seconds: float) -> None:
        """Record one delivery that took ``seconds`` since the change was observed (a
        negative value, from a wall clock stepping back, counts as 0)."""
        self._latency.labels(sink).observe(max(0.0, seconds))

    def exposition(self, accept: str = "") -> tuple[bytes, str]:
        """The scrape body and its Content-Type, negotiated from an ``Accept`` header
        (Prometheus text format by default, OpenMetrics when asked for)."""
        encoder, content_type = choose_encoder(accept)
        return encoder(self.registry), content_type
