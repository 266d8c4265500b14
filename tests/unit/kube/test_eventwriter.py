"""kubewatch.kube.eventwriter through the recorder: an expired Event created again,
retries of what may succeed later, refusals given up and warned once."""

from __future__ import annotations

import logging

import pytest

from kubewatch.errors import ApiError
from kubewatch.kube.failures import ApiUnreachable
from kubewatch.kube.recorder import MAX_ATTEMPTS
from tests.unit.kube.test_recorder import FakeApi, FakeClock, make


def test_an_expired_event_is_created_again() -> None:
    """The API server deleted the Event (its TTL): the PATCH gets 404, a new Event is
    created carrying the count."""
    api, clock = FakeApi(), FakeClock()
    recorder = make(api, clock)
    recorder.warning("SinkFailed", "boom")
    recorder.process()
    api.events.clear()
    clock.now += 20
    recorder.warning("SinkFailed", "boom")
    recorder.process()
    assert api.methods() == ["POST", "PATCH", "POST"]
    (event,) = api.events.values()
    assert event["count"] == 2
    assert event["firstTimestamp"] == "2026-11-26T22:08:20Z"
    clock.now += 20
    recorder.warning("SinkFailed", "boom")
    recorder.process()
    assert api.methods()[-1] == "PATCH"  # on the new Event
    assert event["metadata"]["name"] in api.calls[-1][1]


def test_unreachable_is_retried_at_the_next_turn() -> None:
    api, clock = FakeApi(), FakeClock()
    recorder = make(api, clock, min_interval=10)
    api.fail = ApiUnreachable("connection refused")
    recorder.warning("SinkFailed", "boom")
    recorder.process()
    recorder.warning("SinkFailed", "boom")
    recorder.process()
    assert len(api.calls) == 1  # the retry waits for the key's next turn
    api.fail = None
    clock.now += 10
    recorder.process()
    (event,) = api.events.values()
    assert event["count"] == 2


def test_a_failing_update_is_given_up_after_max_attempts() -> None:
    api, clock = FakeApi(), FakeClock()
    recorder = make(api, clock, min_interval=10)
    api.fail = ApiError(503, "ServiceUnavailable", "etcd")
    recorder.warning("SinkFailed", "boom")
    for _ in range(MAX_ATTEMPTS + 5):
        recorder.process()
        clock.now += 10
    assert len(api.calls) == MAX_ATTEMPTS
    assert recorder.process() is None  # nothing pending any more


def test_a_refusal_is_not_retried_and_warned_once(caplog: pytest.LogCaptureFixture) -> None:
    api, clock = FakeApi(), FakeClock()
    recorder = make(api, clock)
    api.fail = ApiError(403, "Forbidden", "events is forbidden")
    with caplog.at_level(logging.DEBUG, logger="kubewatch.kube.recorder"):
        recorder.warning("SinkFailed", "a")
        recorder.warning("SinkFailed", "b")
        assert recorder.process() is None
    assert len(api.calls) == 2
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "cannot record Kubernetes Event SinkFailed on kw/kubewatch-0" in warnings[0].message
