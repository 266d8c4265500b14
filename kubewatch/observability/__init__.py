"""Observability: logging, Prometheus metrics, and the health/metrics HTTP server.

* :mod:`~kubewatch.observability.logs` — ``setup_logging`` (text or JSON on stderr) and
  the :class:`SecretRedactor` every line passes through (``register_secret``).
* :mod:`~kubewatch.observability.metrics` — :class:`Metrics`: ``observe_event`` and
  ``observe_delivery`` on the hot path, everything else read from live state at scrape
  time (:class:`WatchState`, the dispatcher's ``SinkStats``).
* :mod:`~kubewatch.observability.health` — :class:`HealthServer` (``/metrics``,
  ``/healthz``, ``/readyz``), :class:`Readiness` (watches synced and not stalled) and
  :class:`Heartbeats` (loops still turning).

Nothing here imports the app, the informer or the dispatcher: state comes in through
callables and protocols, so the stages stay one-directional.
"""

from kubewatch.observability.health import Check, HealthServer, Heartbeats, Readiness
from kubewatch.observability.logs import (
    LogFormat,
    SecretRedactor,
    register_secret,
    setup_logging,
)
from kubewatch.observability.metrics import Metrics, WatchState, seconds_since, watch_states

__all__ = [
    "Check",
    "HealthServer",
    "Heartbeats",
    "LogFormat",
    "Metrics",
    "Readiness",
    "SecretRedactor",
    "WatchState",
    "register_secret",
    "seconds_since",
    "setup_logging",
    "watch_states",
]
