"""
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

The views the collector reads are in :mod:`.views`, the collector in :mod:`.collectors`;
this module holds the registry and the observed metrics."""

from __future__ import annotations

import logging

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.exposition import choose_encoder
from typing_extensions import Unpack

from kubewatch.observability.collectors import StateCollector
from kubewatch.observability.views import (
    CountSource,
    HoldSource,
    HoldStatsLike,
    InformerCountSource,
    InformerView,
    LeaderSource,
    SinkSource,
    SinkStatsLike,
    Sources,
    StateSource,
    StateView,
    WatchSource,
    WatchState,
    WorkerSource,
    WorkerStatsLike,
    watch_states,
)
from kubewatch.timefmt import seconds_since

log = logging.getLogger(__name__)

__all__ = [
    "DELIVERY_LATENCY_BUCKETS",
    "CountSource",
    "HoldSource",
    "HoldStatsLike",
    "InformerCountSource",
    "InformerView",
    "LeaderSource",
    "Metrics",
    "SinkSource",
    "SinkStatsLike",
    "Sources",
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


class Metrics:
    """kubewatch's metrics in their own registry.

    ``informers``, ``sinks``, ``leader`` and the other sources are called at scrape time
    only, from the HTTP server's thread: they must be cheap and thread-safe. Closures bind
    late, so they may refer to an app built after this object
    (``informers=lambda: app.watch_states()``).
    """

    def __init__(self, **sources: Unpack[Sources]) -> None:
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
        self.registry.register(StateCollector(**sources))

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
