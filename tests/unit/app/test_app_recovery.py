"""A restart delivers everything the last run spooled: a spool larger than a sink's queue
waits for room instead of pushing its oldest events out."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

import kubewatch.app.core as app_module
from kubewatch.app import App
from kubewatch.config import parse_config
from kubewatch.events import Event
from kubewatch.sinks.base import SinkBase
from kubewatch.timefmt import utc_now
from kubewatch.watch.plan import Plan
from tests.unit.app.test_app_reload import Client
from tests.unit.delivery.test_delivery import make_event

SPOOLED = 10_000
OBJECTS = 100  # a hundred changes each: some shards get far more than their share


class Collecting(SinkBase):
    def __init__(self) -> None:
        self.name = "a"
        self.lock = threading.Lock()
        self.sent: list[Event] = []

    def send(self, event: Event) -> None:
        with self.lock:
            self.sent.append(event)

    def close(self) -> None:
        pass


def test_a_spool_larger_than_the_queue_is_delivered_whole_after_a_restart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = parse_config(
        f"""
resources: [{{kind: ConfigMap}}]
sinks:
  a: {{type: webhook, url: "http://127.0.0.1:9/a"}}
state: {{path: "{tmp_path}"}}
"""
    )
    assert (config.delivery.queue_size, config.delivery.workers) == (10_000, 4)  # 2,500 a shard
    sink = Collecting()
    monkeypatch.setattr(app_module, "build_sinks", lambda cfg, services=None: {"a": sink})

    # What the last run left: 10,000 events spooled, none delivered.
    first = App(config, Client(), Plan())  # type: ignore[arg-type]
    assert first.state is not None
    now = utc_now()  # recent: nothing expires (delivery.maxAge)
    events = [
        make_event(f"ns/obj-{i % OBJECTS}", rv=i + 1, observed_at=now) for i in range(SPOOLED)
    ]
    for event in events:
        first.state.spool.put(event, ("a",))
    first.state.close()

    app = App(config, Client(), Plan())  # type: ignore[arg-type]
    app.start()
    assert app.state is not None
    deadline = time.monotonic() + 120
    while app.state.spool.depth().get("a") and time.monotonic() < deadline:
        time.sleep(0.01)  # until every event is settled: delivered, or dropped
    stats = app._sink_stats()["a"]
    assert app.stop()
    assert stats.dropped == 0
    assert stats.delivered == SPOOLED
    assert sorted(e.id for e in sink.sent) == sorted(e.id for e in events)
    by_key: dict[str, list[int]] = {}
    for event in sink.sent:
        by_key.setdefault(event.key, []).append(int(event.resource_version))
    assert all(rvs == sorted(rvs) for rvs in by_key.values())  # oldest first per object
    again = App(config, Client(), Plan())  # type: ignore[arg-type]
    assert again.state is not None
    assert again.state.spool.recover() == []  # nothing left for the next start
    again.state.close()
