"""Building the parts of an app from a config: its sinks, the checks that need no cluster,
this replica's identity, and the sink counters of several dispatchers added up."""

from __future__ import annotations

import os
import socket

from kubewatch.config import Config
from kubewatch.delivery import SinkStats
from kubewatch.errors import ConfigError, ConfigErrors
from kubewatch.routing import Router
from kubewatch.sinks import Sink, SinkServices, build_sink
from kubewatch.sinks.threads import ThreadBooks
from kubewatch.state import State

__all__ = [
    "build_sinks",
    "check_config",
    "default_identity",
    "sink_services",
    "sum_stats",
]


def build_sinks(config: Config, services: SinkServices | None = None) -> dict[str, Sink]:
    """Every configured sink, templates compiled; ConfigErrors lists every bad one.
    ``services``: what the sinks keep across reloads (the app's; else fresh ones)."""
    sinks: dict[str, Sink] = {}
    errors: list[ConfigError] = []
    for name, sink_config in config.sinks.items():
        try:
            sinks[name] = build_sink(name, sink_config, services)
        except ConfigErrors as e:
            errors.extend(e.errors)
    if errors:
        for sink in sinks.values():
            sink.close()
        raise ConfigErrors(errors)
    return sinks


def sink_services(state: State | None) -> SinkServices:
    """The app's services for its sinks: thread roots and open alerts kept in the state,
    when there is one."""
    if state is None:
        return SinkServices()
    return SinkServices(ThreadBooks(lambda sink: state.memo(f"threads/{sink}")), state.memo)


def check_config(config: Config) -> None:
    """What can be checked without a cluster beyond the model: templates and routes."""
    for sink in build_sinks(config).values():
        sink.close()
    Router.build(config)


def default_identity() -> str:
    """This replica's name in a Lease: the Pod name, else host and process."""
    return os.environ.get("POD_NAME") or f"{socket.gethostname()}-{os.getpid()}"


def sum_stats(parts: list[dict[str, SinkStats]]) -> dict[str, SinkStats]:
    """Counters of several dispatchers added up per sink (the last one says ``up``)."""
    total: dict[str, SinkStats] = {}
    for stats in parts:
        for name, s in stats.items():
            t = total.get(name)
            total[name] = (
                s
                if t is None
                else SinkStats(
                    delivered=t.delivered + s.delivered,
                    failed=t.failed + s.failed,
                    retried=t.retried + s.retried,
                    dropped=t.dropped + s.dropped,
                    queued=t.queued + s.queued,
                    digested=t.digested + s.digested,
                    held=t.held + s.held,
                    expired=t.expired + s.expired,
                    up=s.up,
                )
            )
    return total
