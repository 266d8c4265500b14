"""The collector read at scrape time: watch, sink, state, leader and loss metrics from the
live counters, so the watch and delivery threads never touch a metric."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping

from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric

from kubewatch._version import __version__
from kubewatch.observability.views import (
    CountSource,
    HoldSource,
    HoldStatsLike,
    InformerCountSource,
    LeaderSource,
    SinkSource,
    SinkStatsLike,
    StateSource,
    StateView,
    WatchSource,
    WatchState,
    WorkerSource,
    WorkerStatsLike,
)

log = logging.getLogger("kubewatch.observability.metrics")

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


def _no_informers() -> Mapping[str, int]:
    return {}


def _no_hold() -> HoldStatsLike | None:
    return None


def _no_workers() -> Mapping[str, WorkerStatsLike]:
    return {}


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
        informer_counts: InformerCountSource = _no_informers,
        notifiers: InformerCountSource = _no_informers,
        version: str = __version__,
    ) -> None:
        self._informers = informers
        self._notifiers = notifiers
        self._informer_counts = informer_counts
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
            counts = dict(self._informer_counts())
        except Exception:
            log.exception("metrics: reading the watch states failed; left out of this scrape")
            return
        yield _counted(
            "kubewatch_informers",
            "Informers open now per resource: one LIST+WATCH and one cache each, shared by "
            "every owner of that collection and selectors (informers).",
            "resource",
            counts,
        )
        notifiers = dict(self._notifiers())
        if notifiers:
            yield _counted(
                "kubewatch_notifiers",
                "Notifiers per reason of their last reconcile (Ready, Invalid, ...); absent "
                "unless tenancy.enabled (notifiers).",
                "reason",
                notifiers,
            )
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


def _counted(name: str, documentation: str, label: str, counts: dict[str, int]) -> Metric:
    """A gauge with one series per key of ``counts``."""
    family = GaugeMetricFamily(name, documentation, labels=[label])
    for key, count in sorted(counts.items()):
        family.add_metric([key], count)
    return family
