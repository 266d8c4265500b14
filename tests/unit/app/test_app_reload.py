"""Reload under load: router and dispatcher swap as one, queued events move over in order,
nothing raises, nothing is lost, counters stay cumulative."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable

import pytest

import kubewatch.app.core as app_module
from kubewatch.app import App
from kubewatch.config import Config, parse_config
from kubewatch.events import Event
from kubewatch.sinks.base import SinkBase
from kubewatch.watch.plan import Plan
from tests.unit.delivery.test_delivery import make_event

CONFIG = """
resources: [{kind: ConfigMap}]
sinks:
  a: {type: webhook, url: "http://127.0.0.1:9/a"}
"""
WITH_B = """
  b: {type: webhook, url: "http://127.0.0.1:9/b"}
"""


class Client:
    """What App needs of a cluster client when nothing is watched."""

    context_name = "test"

    def close(self) -> None:
        pass


class SharedLog:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.sent: list[tuple[str, Event]] = []


class LoggingSink(SinkBase):
    def __init__(self, name: str, log: SharedLog) -> None:
        self.name = name
        self.log = log

    def send(self, event: Event) -> None:
        with self.log.lock:
            self.log.sent.append((self.name, event))

    def close(self) -> None:
        pass


def config(name: str) -> Config:
    """Sink ``a`` always; ``"b"`` adds sink ``b`` (every event goes to every sink)."""
    return parse_config(CONFIG + (WITH_B if name == "b" else ""))


def test_deliver_during_reloads_loses_nothing_and_keeps_each_objects_order(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    shared = SharedLog()
    monkeypatch.setattr(
        app_module,
        "build_sinks",
        lambda cfg, services=None: {name: LoggingSink(name, shared) for name in cfg.sinks},
    )
    app = App(config("a"), Client(), Plan())  # type: ignore[arg-type]
    app.start()
    errors: list[BaseException] = []
    stop = threading.Event()
    produced: dict[str, int] = {}

    def produce(t: int) -> None:
        rv = 0
        try:
            while not stop.is_set() or rv < 200:
                rv += 1
                app.deliver(make_event(f"ns/obj-{t}", rv=rv))
        except BaseException as e:  # a lost event
            errors.append(e)
        produced[f"ns/obj-{t}"] = rv

    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        threads = [threading.Thread(target=produce, args=(t,)) for t in range(4)]
        for thread in threads:
            thread.start()
        for i in range(20):
            app.reload(config("b" if i % 2 == 0 else "a"), Plan())
        stop.set()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(old)
    app.stop()
    assert errors == []
    by_key: dict[str, list[int]] = {}
    for sink, event in shared.sent:
        if sink == "a":  # configured throughout: it gets every event
            by_key.setdefault(event.key, []).append(int(event.resource_version))
    for key, count in produced.items():
        assert by_key[key] == list(range(1, count + 1)), key  # each once, in order
    assert app._sink_stats()["a"].delivered == sum(produced.values())


def test_counters_stay_cumulative_across_a_reload(monkeypatch: pytest.MonkeyPatch) -> None:
    shared = SharedLog()
    monkeypatch.setattr(
        app_module,
        "build_sinks",
        lambda cfg, services=None: {name: LoggingSink(name, shared) for name in cfg.sinks},
    )
    first = config("a")
    app = App(first, Client(), Plan())  # type: ignore[arg-type]
    app.start()
    for rv in range(5):
        app.deliver(make_event(rv=rv))
    second = first.model_copy(update={"delivery": first.delivery.model_copy(update={"workers": 2})})
    app.reload(second, Plan())  # a new dispatcher for the same sink
    for rv in range(5, 8):
        app.deliver(make_event(rv=rv))
    app.stop()
    assert app._sink_stats()["a"].delivered == 8


class Gate:
    """Shared by the sinks every reload builds: holds rv 1 in ``send`` until opened, and
    notes each send that began while another of the same object was in flight."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.open = threading.Event()
        self.sent: list[str] = []
        self.in_flight: set[str] = set()
        self.overlaps: list[str] = []


class GatedSink(SinkBase):
    def __init__(self, name: str, gate: Gate) -> None:
        self.name = name
        self.gate = gate

    def send(self, event: Event) -> None:
        gate = self.gate
        with gate.lock:
            if event.key in gate.in_flight:
                gate.overlaps.append(event.resource_version)
            gate.in_flight.add(event.key)
            gate.sent.append(event.resource_version)
        if event.resource_version == "1":
            gate.open.wait(10)
        with gate.lock:
            gate.in_flight.discard(event.key)

    def close(self) -> None:
        pass


def until(predicate: Callable[[], bool], timeout: float) -> bool:
    """Whether ``predicate`` came true within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


def test_a_chain_of_reloads_starts_no_dispatcher_before_every_older_one_finished(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Reload twice while the first dispatcher is still sending an object's event: the
    third dispatcher must wait for the first one, not only for the second (which never
    started), or the object's next event overtakes the one in flight."""
    gate = Gate()
    monkeypatch.setattr(
        app_module,
        "build_sinks",
        lambda cfg, services=None: {name: GatedSink(name, gate) for name in cfg.sinks},
    )
    first = config("a")
    app = App(first, Client(), Plan())  # type: ignore[arg-type]
    app.start()
    app.deliver(make_event(rv=1))
    assert until(lambda: gate.sent == ["1"], 10.0)  # rv 1 is in flight in the first dispatcher
    for workers in (2, 3):  # two reloads, each a new dispatcher for the same sink
        delivery = first.delivery.model_copy(update={"workers": workers})
        app.reload(first.model_copy(update={"delivery": delivery}), Plan())
    app.deliver(make_event(rv=2))
    overtaken = until(lambda: len(gate.sent) == 2, 2.0)  # bounded: it must NOT happen
    gate.open.set()
    app.stop()
    assert not overtaken and gate.overlaps == []
    assert gate.sent == ["1", "2"]
