"""The dispatcher and its journal (the spool): what leaves it, what stays; a failing sink
pauses as a whole and rides out an outage; maxAge; handing queued events over on reload."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any

import pytest

from kubewatch.config import DeliveryConfig, DigestConfig, RetryConfig
from kubewatch.delivery import Dispatcher, SinkPolicy, SinkStats
from kubewatch.errors import PermanentError, RetryableError
from kubewatch.events import Event
from tests.unit.delivery.test_delivery import WAIT, FakeSink, RecordingSleep, fail_times, make_event


class Journal:
    """Records what the dispatcher says: owed (digests it made) and settled (sink, id)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.owed: list[tuple[str, tuple[str, ...]]] = []
        self.settled: list[tuple[str, str]] = []

    def put(self, event: Event, sinks: Iterable[str]) -> None:
        with self.lock:
            self.owed.append((event.id, tuple(sinks)))

    def settle(self, sink: str, event_id: str) -> None:
        with self.lock:
            self.settled.append((sink, event_id))


def journal() -> Journal:
    return Journal()


def defaults(**overrides: Any) -> DeliveryConfig:
    return DeliveryConfig(**overrides)


def test_delivered_and_permanently_refused_events_leave_the_journal() -> None:
    j = journal()

    def behaviour(event: Event) -> None:
        if event.name == "bad":
            raise PermanentError("HTTP 400")

    sink = FakeSink("s", behaviour)
    with Dispatcher({"s": sink}, defaults(), journal=j) as d:
        ok, bad = make_event("ns/ok"), make_event("ns/bad")
        d.submit(ok)
        d.submit(bad)
    assert sorted(j.settled) == sorted([("s", ok.id), ("s", bad.id)])


def test_events_abandoned_by_shutdown_stay_in_the_journal() -> None:
    j = journal()
    gate = threading.Event()
    sink = FakeSink("s", lambda e: gate.wait(WAIT))
    d = Dispatcher({"s": sink}, defaults(workers=1), journal=j)
    d.start()
    events = [make_event("ns/a", rv=i) for i in range(5)]
    for event in events:
        d.submit(event)
    assert d.close(timeout=0.05) is False
    gate.set()
    assert j.settled == []  # none delivered for sure: all owed at the next start
    assert d.abandoned == 5


def test_overflow_drops_leave_the_journal() -> None:
    j = journal()
    gate = threading.Event()
    sink = FakeSink("s", lambda e: gate.wait(WAIT))
    d = Dispatcher(
        {"s": sink}, defaults(), policies={"s": SinkPolicy(queue_size=2, concurrency=1)}, journal=j
    )
    events = [make_event("ns/a", rv=i) for i in range(5)]
    for event in events:
        d.submit(event)  # not started: 3 oldest dropped
    assert [i for _, i in j.settled] == [e.id for e in events[:3]]
    gate.set()
    d.start()
    d.close()


def test_a_sink_down_for_many_attempts_gets_the_event_with_the_defaults() -> None:
    """An outage of 40 failed probes: with the default policy (no attempt limit, maxAge
    1 h) the event waits and is delivered once the receiver is back; the sink as a whole
    is paused with growing backoff, capped at maxBackoff."""
    sleep = RecordingSleep()
    states: list[tuple[str, bool]] = []
    sink = FakeSink("s", fail_times(40, lambda: RetryableError("connection refused")))
    config = defaults()
    with Dispatcher(
        {"s": sink},
        config,
        clock=sleep.clock,
        sleep=sleep,
        on_sink_state=lambda name, up, _: states.append((name, up)),
    ) as d:
        d.submit(make_event())
        assert sink.wait_sent(1)
    assert len(sink.attempts) == 41
    assert d.stats()["s"] == SinkStats(delivered=1, retried=40)
    assert max(sleep.delays) <= config.retry.max_backoff
    assert sum(sleep.delays) > 10 * 60  # 40 probes spread over more than ten minutes
    assert states == [("s", False), ("s", True)]


def test_an_event_older_than_max_age_fails_as_expired() -> None:
    sleep = RecordingSleep()
    j = journal()
    sink = FakeSink("s", fail_times(10_000, lambda: RetryableError("HTTP 503")))
    with Dispatcher(
        {"s": sink}, defaults(max_age=120.0), clock=sleep.clock, sleep=sleep, journal=j
    ) as d:
        event = make_event()
        d.submit(event)
    stats = d.stats()["s"]
    assert (stats.failed, stats.expired, stats.delivered) == (1, 1, 0)
    assert sum(sleep.delays) >= 120.0 - 30.0
    assert j.settled == [("s", event.id)]


def test_a_recovered_event_counts_its_age_against_max_age() -> None:
    sleep = RecordingSleep()
    sink = FakeSink("s", fail_times(10_000, lambda: RetryableError("HTTP 503")))
    with Dispatcher({"s": sink}, defaults(max_age=100.0), clock=sleep.clock, sleep=sleep) as d:
        d.submit(make_event(), age=200.0)
    assert sink.attempts == []
    assert d.stats()["s"].expired == 1


def test_retry_attempts_keeps_its_meaning_when_set() -> None:
    sleep = RecordingSleep()
    sink = FakeSink("s", fail_times(99, lambda: RetryableError("HTTP 502")))
    config = defaults(retry=RetryConfig(attempts=3))
    with Dispatcher({"s": sink}, config, clock=sleep.clock, sleep=sleep) as d:
        d.submit(make_event())
    assert len(sink.attempts) == 3
    assert d.stats()["s"].failed == 1


def test_digests_are_owed_and_the_events_they_fold_leave() -> None:
    j = journal()
    sleep = RecordingSleep()
    sink = FakeSink("s")
    policy = SinkPolicy(digest=DigestConfig(threshold=2, window=10.0))
    d = Dispatcher(
        {"s": sink}, defaults(), policies={"s": policy}, clock=sleep.clock, sleep=sleep, journal=j
    )
    d.start()
    events = [make_event(f"ns/o{i}", rv=i) for i in range(6)]
    for event in events:
        d.submit(event)
    assert j.owed == []  # the window is still open: nothing folded yet
    assert {i for _, i in j.settled} <= {e.id for e in events[:2]}  # at most the 2 passed
    sleep.now += 11.0
    d.flush_digests()
    d.close()
    digests = [e for e in sink.sent if e.digest is not None]
    assert len(digests) == 1
    assert j.owed == [(digests[0].id, ("s",))]
    settled = [i for _, i in j.settled]
    assert sorted(settled) == sorted([e.id for e in events] + [digests[0].id])


def test_hand_over_keeps_each_objects_order_and_the_digest_barriers() -> None:
    gate = threading.Event()
    old = Dispatcher(
        {"s": FakeSink("s", lambda e: gate.wait(WAIT))},
        defaults(),
        policies={"s": SinkPolicy(concurrency=3)},
    )
    events = [make_event(f"ns/o{i % 4}", rv=i) for i in range(40)]
    for event in events:
        old.submit(event)
    taken = old.hand_over()
    with pytest.raises(RuntimeError):
        old.submit(make_event())
    gate.set()
    old.close()
    moved = [event for event, _ in taken["s"]]
    assert sorted(e.id for e in moved) == sorted(e.id for e in events)
    for key in {e.key for e in events}:
        assert [e for e in moved if e.key == key] == [e for e in events if e.key == key]
    new_sink = FakeSink("s")
    with Dispatcher({"s": new_sink}, defaults()) as new:
        for event, age in taken["s"]:
            new.submit(event, ("s",), age=age)
    for key in {e.key for e in events}:
        assert [e for e in new_sink.sent if e.key == key] == [e for e in events if e.key == key]
