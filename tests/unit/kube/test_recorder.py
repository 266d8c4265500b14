"""kubewatch's own Events: recording, rate limits, the bounded queue, no-op without a Pod.

Most tests build the recorder with ``background=False`` and call ``process()`` themselves
after moving a fake clock, so every API call can be counted exactly; one test runs the
real background thread against the same fake API.
"""

from __future__ import annotations

import copy
import itertools
import logging
import threading
import time
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from kubewatch.errors import ApiError
from kubewatch.kube.recorder import EventRecorder

NS = "kw"
EVENTS = f"/api/v1/namespaces/{NS}/events"
POD = {"kind": "Pod", "name": "kubewatch-0", "namespace": NS, "uid": "uid-0"}
WAIT = 10.0
"""Seconds a test waits for something that should happen at once (a hang guard only)."""


class FakeClock:
    def __init__(self) -> None:
        self.now = 500.0

    def __call__(self) -> float:
        return self.now

    def wall(self) -> datetime:
        return datetime(2026, 11, 26, 22, 0, tzinfo=timezone.utc) + timedelta(seconds=self.now)


class FakeApi:
    """Events in memory; every call recorded; ``fail`` raises instead of answering."""

    def __init__(self) -> None:
        self.events: dict[str, dict[str, Any]] = {}
        self.calls: list[tuple[str, str, dict[str, Any] | None]] = []
        self.fail: Exception | None = None
        self.pods: dict[str, dict[str, Any]] = {}
        self.called = threading.Event()

    def get_json(self, path: str, params: list[tuple[str, str]] | None = None) -> dict[str, Any]:
        self.calls.append(("GET", path, None))
        if self.fail is not None:
            raise self.fail
        if path not in self.pods:
            raise ApiError(403, "Forbidden", "pods is forbidden")
        return self.pods[path]

    def request_json(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        *,
        params: list[tuple[str, str]] | None = None,
        content_type: str = "application/json",
    ) -> dict[str, Any]:
        self.calls.append((method, path, copy.deepcopy(body)))
        self.called.set()
        if self.fail is not None:
            raise self.fail
        assert body is not None
        if method == "POST":
            assert path == EVENTS
            name = body["metadata"]["name"]
            assert name not in self.events
            self.events[name] = copy.deepcopy(body)
            return copy.deepcopy(body)
        assert method == "PATCH", method
        assert content_type == "application/strategic-merge-patch+json"
        name = path.rsplit("/", 1)[1]
        if name not in self.events:
            raise ApiError(404, "NotFound", f"events {name!r} not found")
        self.events[name].update(body)
        return copy.deepcopy(self.events[name])

    def methods(self) -> list[str]:
        return [method for method, _, _ in self.calls]


@pytest.fixture
def api() -> FakeApi:
    return FakeApi()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def make(api: FakeApi, clock: FakeClock, **kwargs: Any) -> EventRecorder:
    kwargs.setdefault("involved", POD)
    return EventRecorder(
        api, namespace=NS, clock=clock, wall=clock.wall, background=False, **kwargs
    )


def test_creates_an_event_about_the_pod(api: FakeApi, clock: FakeClock) -> None:
    recorder = make(api, clock)
    recorder.warning("SinkFailed", "sink audit: HTTP 503")
    assert api.calls == []  # nothing is sent in the caller's thread
    assert recorder.process() is None
    (event,) = api.events.values()
    assert event["involvedObject"] == {
        "apiVersion": "v1",
        "kind": "Pod",
        "name": "kubewatch-0",
        "namespace": NS,
        "uid": "uid-0",
    }
    assert event["metadata"]["name"].startswith("kubewatch-0.")
    assert event["metadata"]["namespace"] == NS
    assert event["type"] == "Warning"
    assert event["reason"] == "SinkFailed"
    assert event["message"] == "sink audit: HTTP 503"
    assert event["count"] == 1
    assert event["source"] == {"component": "kubewatch"}
    assert event["firstTimestamp"] == event["lastTimestamp"] == "2026-11-26T22:08:20Z"


def test_repeats_within_the_interval_become_one_call_with_the_count(
    api: FakeApi, clock: FakeClock
) -> None:
    """A flapping sink: 50 failures in 5 s cost one POST and, 10 s later, one PATCH."""
    recorder = make(api, clock, min_interval=10)
    start = clock.now
    for _ in range(50):
        recorder.warning("SinkFailed", "boom")
        due = recorder.process()
        clock.now += 0.1
    assert api.methods() == ["POST"]
    assert due == start + 10
    assert recorder.process() == start + 10  # nothing before it is due
    clock.now = start + 10
    assert recorder.process() is None
    assert api.methods() == ["POST", "PATCH"]
    assert api.calls[1][2] == {"count": 50, "lastTimestamp": "2026-11-26T22:08:24Z"}
    (event,) = api.events.values()
    assert event["count"] == 50


def test_at_most_one_call_per_key_per_interval(api: FakeApi, clock: FakeClock) -> None:
    recorder = make(api, clock, min_interval=10)
    times: list[float] = []
    for _ in range(600):  # one failure a second for ten minutes
        recorder.warning("SinkFailed", "boom")
        before = len(api.calls)
        recorder.process()
        if len(api.calls) > before:
            times.append(clock.now)
        clock.now += 1
    assert all(b - a >= 10 for a, b in itertools.pairwise(times))
    assert len(times) == 60
    (event,) = api.events.values()
    assert event["count"] >= 591  # all but the last interval's repeats


def test_the_global_budget_caps_all_keys_together(api: FakeApi, clock: FakeClock) -> None:
    recorder = make(api, clock, burst=3, per_second=0.5)
    for i in range(10):
        recorder.warning("WatchFailed", f"watch {i}: forbidden")
    due = recorder.process()
    assert api.methods() == ["POST"] * 3
    assert due == clock.now + 2  # the next token
    clock.now += 2
    recorder.process()
    assert len(api.calls) == 4
    clock.now += 100
    recorder.process()
    assert len(api.calls) == 7  # a full bucket again, no more
    clock.now += 100
    recorder.process()
    assert len(api.calls) == 10
    assert len(api.events) == 10


def test_a_full_queue_drops_with_a_debug_line(
    api: FakeApi, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    recorder = make(api, clock, queue_size=3)
    with caplog.at_level(logging.DEBUG, logger="kubewatch.kube.recorder"):
        for i in range(5):
            recorder.warning("SinkFailed", f"sink {i}")
    assert recorder.dropped == 2
    assert caplog.text.count("Kubernetes Event dropped") == 2
    recorder.process()
    assert [body["message"] for _, _, body in api.calls if body] == [
        "sink 0",
        "sink 1",
        "sink 2",
    ]
    recorder.warning("SinkFailed", "room again")
    assert recorder.dropped == 2


def test_recording_never_raises(api: FakeApi, clock: FakeClock) -> None:
    recorder = make(api, clock)
    api.fail = RuntimeError("a bug in the client")
    recorder.warning("SinkFailed", "boom")
    recorder.process()

    def broken_clock() -> float:
        raise RuntimeError("clock broke")

    broken = EventRecorder(api, namespace=NS, involved=POD, clock=clock, background=False)
    broken._clock = broken_clock
    broken.warning("SinkFailed", "boom")  # logged at DEBUG, nothing raised


def test_long_texts_are_cut(api: FakeApi, clock: FakeClock) -> None:
    recorder = make(api, clock)
    recorder.warning("R" * 500, "m" * 5000)
    recorder.process()
    (event,) = api.events.values()
    assert len(event["reason"]) == 128
    assert len(event["message"]) == 1024


def test_from_environment_without_a_pod_is_none_with_one_info_line(
    api: FakeApi, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv("POD_NAME", raising=False)
    monkeypatch.setenv("POD_NAMESPACE", NS)
    with caplog.at_level(logging.INFO, logger="kubewatch.kube.recorder"):
        assert EventRecorder.from_environment(api) is None
    assert [r.levelno for r in caplog.records] == [logging.INFO]
    assert "records no Kubernetes Events" in caplog.text
    assert api.calls == []


def test_from_environment_with_pod_uid(
    api: FakeApi, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("POD_NAME", "kubewatch-1")
    monkeypatch.setenv("POD_NAMESPACE", NS)
    monkeypatch.setenv("POD_UID", "uid-1")
    recorder = EventRecorder.from_environment(api, background=False, clock=clock)
    assert recorder is not None
    recorder.normal("LeaderElected", "x")
    recorder.process()
    assert api.methods() == ["POST"]  # no lookup of the Pod
    (event,) = api.events.values()
    assert event["involvedObject"]["uid"] == "uid-1"
    assert event["involvedObject"]["name"] == "kubewatch-1"
    assert event["metadata"]["namespace"] == NS


def test_from_environment_reads_the_pod_uid_once(
    api: FakeApi, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("POD_NAME", "kubewatch-1")
    monkeypatch.setenv("POD_NAMESPACE", NS)
    monkeypatch.delenv("POD_UID", raising=False)
    api.pods[f"/api/v1/namespaces/{NS}/pods/kubewatch-1"] = {"metadata": {"uid": "uid-9"}}
    recorder = EventRecorder.from_environment(api, background=False, clock=clock)
    assert recorder is not None
    recorder.normal("LeaderElected", "x")
    recorder.normal("LeaderElected", "y")
    recorder.process()
    assert api.methods() == ["GET", "POST", "POST"]
    assert {e["involvedObject"]["uid"] for e in api.events.values()} == {"uid-9"}


def test_without_a_uid_events_are_still_recorded(
    api: FakeApi,
    clock: FakeClock,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("POD_NAME", "kubewatch-1")
    monkeypatch.setenv("POD_NAMESPACE", NS)
    monkeypatch.delenv("POD_UID", raising=False)
    recorder = EventRecorder.from_environment(api, background=False, clock=clock)
    assert recorder is not None
    with caplog.at_level(logging.INFO, logger="kubewatch.kube.recorder"):
        recorder.normal("LeaderElected", "x")
        recorder.process()
    assert api.methods() == ["GET", "POST"]  # 403 on the Pod: go on without the UID
    assert "uid" not in next(iter(api.events.values()))["involvedObject"]
    assert "set POD_UID" in caplog.text


def test_the_background_thread_sends_and_close_flushes(api: FakeApi) -> None:
    recorder = EventRecorder(api, namespace=NS, involved=POD, min_interval=3600)
    try:
        recorder.warning("SinkFailed", "boom")
        assert api.called.wait(WAIT)
        deadline = time.monotonic() + WAIT
        while not api.events:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        recorder.warning("SinkFailed", "boom")  # held back by the hour-long interval
    finally:
        recorder.close(timeout=WAIT)
    assert api.methods() == ["POST", "PATCH"]  # the last flush waives the interval
    (event,) = api.events.values()
    assert event["count"] == 2
    recorder.warning("SinkFailed", "after close")
    assert recorder.dropped == 1


def test_involved_object_needs_a_name() -> None:
    with pytest.raises(ValueError):
        EventRecorder(FakeApi(), namespace=NS, involved={"kind": "Pod"}, background=False)


def test_an_event_about_another_object_goes_to_its_namespace(clock: FakeClock) -> None:
    """A Notifier's Events: on the Notifier, in its namespace; counted per object."""
    calls: list[tuple[str, str, dict[str, Any]]] = []

    class Api(FakeApi):
        def request_json(self, method: str, path: str, body: Any = None, **kw: Any) -> Any:
            calls.append((method, path, copy.deepcopy(body)))
            return body

    notifier = {"apiVersion": "kubewatch.io/v1alpha1", "kind": "Notifier",
                "name": "web", "namespace": "team-a", "uid": "n-1"}  # fmt: skip
    recorder = make(Api(), clock, min_interval=10)
    recorder.warning("Invalid", "spec.sinks: required", notifier)
    recorder.warning("Invalid", "spec.sinks: required", {**notifier, "name": "api"})
    recorder.warning("SinkFailed", "sink audit: HTTP 503")
    recorder.process()
    assert [(m, p) for m, p, _ in calls] == [
        ("POST", "/api/v1/namespaces/team-a/events"),
        ("POST", "/api/v1/namespaces/team-a/events"),
        ("POST", EVENTS),
    ]
    assert calls[0][2]["involvedObject"] == notifier
    assert calls[0][2]["metadata"]["namespace"] == "team-a"
    assert calls[1][2]["involvedObject"]["name"] == "api"
    assert calls[2][2]["involvedObject"] == {"apiVersion": "v1", **POD}
    recorder.warning("Invalid", "spec.sinks: required", notifier)
    clock.now += 10
    recorder.process()
    assert calls[-1][0] == "PATCH"
    assert calls[-1][1].startswith("/api/v1/namespaces/team-a/events/web.")
    assert calls[-1][2]["count"] == 2
