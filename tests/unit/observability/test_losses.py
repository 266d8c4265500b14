"""Losses are visible: handler exceptions and handover overflow are counted and logged,
one line per interval, and exported in /metrics."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from kubewatch.app import HANDOVER_EVENTS, HandoverBuffer
from kubewatch.kube import SharedInformer
from kubewatch.observability.metrics import Metrics, watch_states
from kubewatch.watch.nshold import HoldStats
from tests.unit.delivery.test_delivery import make_event
from tests.unit.kube.test_informer import FakeListerWatcher


def cm(name: str, rv: int) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "ns", "uid": name, "resourceVersion": str(rv)}}


class Failing:
    def __init__(self) -> None:
        self.calls = 0

    def on_add(self, obj: dict[str, Any], is_initial_list: bool) -> None:
        self.calls += 1
        raise ValueError("bug")

    def on_update(self, old: dict[str, Any], new: dict[str, Any]) -> None:
        raise ValueError("bug")

    def on_delete(self, obj: object) -> None:
        raise ValueError("bug")


def informer() -> SharedInformer:
    return SharedInformer(
        "configmaps cluster-wide", FakeListerWatcher([], []), kind="ConfigMap", api_version="v1"
    )


def test_handler_errors_are_counted_logged_once_per_interval_and_exported(
    caplog: pytest.LogCaptureFixture,
) -> None:
    inf = informer()
    failing = Failing()
    inf.add_handler(failing)
    with caplog.at_level(logging.DEBUG, "kubewatch.kube"):
        for i in range(50):
            inf.watch_event("ADDED", cm(f"c{i}", i + 1))
        inf.watch_event("MODIFIED", cm("c0", 100))
        inf.watch_event("DELETED", cm("c1", 101))
    assert failing.calls == 50
    assert inf.handler_errors == 52
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert "handler failed on add of ns/c0" in errors[0].getMessage()
    assert errors[0].exc_info is not None
    metrics = Metrics(informers=lambda: watch_states([inf]))
    body = metrics.exposition()[0].decode()
    assert 'kubewatch_handler_errors_total{resource="configmaps",watch="cluster-wide"} 52.0' in body


def test_the_next_line_says_how_many_were_not_logged(caplog: pytest.LogCaptureFixture) -> None:
    inf = informer()
    inf.add_handler(Failing())
    clock = [0.0]
    inf._handler_log._clock = lambda: clock[0]
    with caplog.at_level(logging.ERROR, "kubewatch.kube"):
        for i in range(5):
            inf.watch_event("ADDED", cm(f"c{i}", i + 1))
        clock[0] += 10.0
        inf.watch_event("ADDED", cm("late", 9))
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2
    assert "and 4 more like it" in lines[1]


def test_handover_overflow_is_counted_logged_once_per_interval_and_exported(
    caplog: pytest.LogCaptureFixture,
) -> None:
    buffer = HandoverBuffer(window=3600.0, clock=lambda: 0.0)
    with caplog.at_level(logging.DEBUG, "kubewatch.app"):
        for i in range(HANDOVER_EVENTS + 25):
            buffer.add(make_event(rv=i), ("s",))
    assert buffer.dropped == 25
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "handover buffer full" in warnings[0].getMessage()
    drained = buffer.drain()
    assert len(drained) == HANDOVER_EVENTS
    assert drained[0][0].resource_version == "25"  # the oldest were the ones dropped
    metrics = Metrics(handover_dropped=lambda: buffer.dropped)
    assert "kubewatch_handover_dropped_total 25.0" in metrics.exposition()[0].decode()


def test_expiry_by_age_is_not_counted_as_dropped() -> None:
    now = [0.0]
    buffer = HandoverBuffer(window=10.0, clock=lambda: now[0])
    buffer.add(make_event(rv=1), ("s",))
    now[0] = 100.0
    buffer.add(make_event(rv=2), ("s",))
    assert buffer.dropped == 0


def test_namespace_hold_counters_are_exported() -> None:
    metrics = Metrics(namespace_hold=lambda: HoldStats(held_total=7, expired_total=2, held=1))
    body = metrics.exposition()[0].decode()
    assert "kubewatch_namespace_held_total 7.0" in body
    assert "kubewatch_namespace_hold_expired_total 2.0" in body
    assert "kubewatch_namespace_held_events 1.0" in body
