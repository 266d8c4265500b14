"""kubewatch.kube.eventseries through the recorder: which occurrences count towards one
Event, when a new one starts, and the bound on keys."""

from __future__ import annotations

from tests.unit.kube.test_recorder import EVENTS, FakeApi, FakeClock, make


def test_repeats_within_the_window_patch_the_count() -> None:
    api, clock = FakeApi(), FakeClock()
    recorder = make(api, clock)
    recorder.normal("LeaderElected", "a became the leader")
    recorder.process()
    clock.now += 60
    recorder.normal("LeaderElected", "a became the leader")
    recorder.process()
    assert api.methods() == ["POST", "PATCH"]
    (event,) = api.events.values()
    assert event["count"] == 2
    assert event["lastTimestamp"] == "2026-11-26T22:09:20Z"
    assert event["firstTimestamp"] == "2026-11-26T22:08:20Z"
    _, path, body = api.calls[1]
    assert path == f"{EVENTS}/{event['metadata']['name']}"
    assert body == {"count": 2, "lastTimestamp": "2026-11-26T22:09:20Z"}


def test_the_window_runs_from_the_last_occurrence() -> None:
    api, clock = FakeApi(), FakeClock()
    recorder = make(api, clock, window=600)
    for _ in range(4):  # every 500 s: each within the window of the one before
        recorder.warning("SinkFailed", "boom")
        recorder.process()
        clock.now += 500
    assert api.methods() == ["POST", "PATCH", "PATCH", "PATCH"]
    assert len(api.events) == 1


def test_a_new_event_after_the_window() -> None:
    api, clock = FakeApi(), FakeClock()
    recorder = make(api, clock, window=600)
    recorder.warning("SinkFailed", "boom")
    recorder.process()
    clock.now += 601
    recorder.warning("SinkFailed", "boom")
    recorder.process()
    assert api.methods() == ["POST", "POST"]
    assert [e["count"] for e in api.events.values()] == [1, 1]
    assert len({e["metadata"]["name"] for e in api.events.values()}) == 2


def test_different_messages_or_types_are_different_events() -> None:
    api, clock = FakeApi(), FakeClock()
    recorder = make(api, clock)
    recorder.warning("SinkFailed", "sink a")
    recorder.warning("SinkFailed", "sink b")
    recorder.normal("SinkFailed", "sink a")
    recorder.process()
    assert api.methods() == ["POST", "POST", "POST"]


def test_memory_is_bounded_by_max_keys() -> None:
    api, clock = FakeApi(), FakeClock()
    recorder = make(api, clock, max_keys=2)
    for message in ("a", "b", "c"):
        recorder.warning("SinkFailed", message)
        recorder.process()
    clock.now += 20
    recorder.warning("SinkFailed", "a")  # forgotten: a new Event, not a PATCH
    recorder.process()
    assert api.methods() == ["POST"] * 4
