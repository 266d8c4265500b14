"""The dispatcher's intake: overflow drops the oldest and counts it, drop warnings are
rate limited per sink, and every submitted event is accounted for under load."""

from __future__ import annotations

import logging
import random
import re
import threading

import pytest

from kubewatch.config import DigestConfig
from kubewatch.delivery import Dispatcher, SinkStats
from kubewatch.delivery.lane import DROP_LOG_INTERVAL
from kubewatch.errors import PermanentError, RetryableError
from kubewatch.events import Event
from tests.unit.delivery.test_delivery import (
    WAIT,
    FakeSink,
    Gate,
    RecordingSleep,
    delivery,
    make_event,
)


def test_overflow_drops_the_oldest_and_counts(caplog: pytest.LogCaptureFixture) -> None:
    """Not started, so nothing is taken off the queue: exactly the newest 3 survive. The
    7 drops happen within one second: one WARNING names the first, DEBUG lines name the
    others, and close() says how many went without a WARNING of their own."""
    caplog.set_level(logging.DEBUG, logger="kubewatch.delivery")
    clock = RecordingSleep()
    sink = FakeSink("s")
    d = Dispatcher({"s": sink}, delivery(queue_size=3, workers=1), clock=clock.clock)
    events = [make_event(f"ns/obj-{i}") for i in range(10)]
    for event in events:
        d.submit(event)
        assert d.depth("s") <= 3
    assert d.stats()["s"] == SinkStats(dropped=7, queued=3)
    drops = [r for r in caplog.records if "dropped" in r.getMessage()]
    assert [r.levelno for r in drops] == [logging.WARNING] + [logging.DEBUG] * 6
    for event, record in zip(events[:7], drops, strict=True):
        for part in ("'s'", event.id, "ConfigMap", event.key):
            assert part in record.getMessage()
    caplog.clear()
    d.start()
    assert d.close()
    assert sink.sent == events[7:]
    assert d.stats()["s"] == SinkStats(delivered=3, dropped=7)
    (summary,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert re.fullmatch(
        r"sink 's': queue full, dropped 6 event\(s\) since \S+Z \(not logged one by one\)",
        summary,
    )


def test_overflow_warnings_are_one_per_sink_per_second(caplog: pytest.LogCaptureFixture) -> None:
    """A flood of drops: at most one WARNING per sink per DROP_LOG_INTERVAL, each naming
    one event and counting the drops since the previous WARNING; another sink's drops
    have their own allowance."""
    time_ = RecordingSleep()
    d = Dispatcher(
        {"a": FakeSink("a"), "b": FakeSink("b")},
        delivery(queue_size=1, workers=1),
        clock=time_.clock,
    )
    d.submit(make_event(rv=0))  # fills both queues
    for second in range(3):
        for i in range(100):
            d.submit(make_event(rv=f"{second}-{i}"), ["a"])
        time_(DROP_LOG_INTERVAL / 2)
        d.submit(make_event(rv=f"{second}-b"), ["b"])
        time_(DROP_LOG_INTERVAL / 2)
    assert d.stats()["a"].dropped == 300
    assert d.stats()["b"].dropped == 3
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    a_lines = [m for m in warnings if m.startswith("sink 'a'")]
    b_lines = [m for m in warnings if m.startswith("sink 'b'")]
    assert len(a_lines) == 3
    assert "more" not in a_lines[0]
    assert all("; dropped 99 more event(s) since " in m for m in a_lines[1:])
    assert len(b_lines) == 3  # half a second apart from a's, but b's own allowance
    assert not any("more" in m for m in b_lines)
    caplog.clear()
    assert d.close() is False  # never started: what is queued is abandoned
    (summary,) = [
        r.getMessage()
        for r in caplog.records
        if r.levelno == logging.WARNING and "dropped" in r.getMessage()
    ]
    assert summary.startswith("sink 'a': queue full, dropped 99 event(s) since ")


def test_a_worker_reports_unlogged_drops_once_their_second_is_over(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Drops stop: the count of the unlogged ones is logged by the sink's worker after the
    interval, without waiting for the next drop or for close()."""
    time_ = RecordingSleep()
    gate = Gate()
    sink = FakeSink("s", gate)
    d = Dispatcher({"s": sink}, delivery(queue_size=1, workers=1), clock=time_.clock)
    d.start()
    d.submit(make_event(rv=0))
    assert gate.entered.wait(WAIT)  # the worker holds rv 0; the queue holds one more
    for rv in range(1, 6):
        d.submit(make_event(rv=rv))
    assert d.stats()["s"].dropped == 4
    time_(DROP_LOG_INTERVAL)
    gate.opened.set()
    assert sink.wait_sent(2)  # rv 0's worker finished it, then took the next one
    messages = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(messages) == 2
    assert "dropped 3 event(s) since" in messages[1]
    assert d.close()
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 2


def test_every_event_is_accounted_for_under_load() -> None:
    """Mixed outcomes, overflow and four producers: after a drain each event ended as
    exactly one of delivered / failed / dropped, queues never grew past their bound,
    and each key's delivered events are in submit order."""

    def behaviour(event: Event) -> None:
        roll = random.Random(event.id).random()  # same roll on every attempt of an event
        if roll < 0.1:
            raise PermanentError("no")
        if roll < 0.3:
            raise RetryableError("flaky")  # fails every attempt: exhausts them

    sink = FakeSink("s", behaviour)
    sleep = RecordingSleep()
    d = Dispatcher(
        {"s": sink},
        delivery(queue_size=20, workers=3, attempts=2),
        clock=sleep.clock,
        sleep=sleep,
    )
    d.start()
    over_bound: list[int] = []

    def producer(n: int) -> None:
        for rv in range(300):
            d.submit(make_event(f"ns/p{n}-k{rv % 7}", rv))
            if (depth := d.depth("s")) > 20:
                over_bound.append(depth)

    threads = [threading.Thread(target=producer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert d.close()
    stats = d.stats()["s"]
    assert over_bound == []
    assert stats.queued == 0
    assert stats.delivered + stats.failed + stats.dropped == 4 * 300
    assert stats.delivered == len(sink.sent)
    last: dict[str, int] = {}
    for event in sink.sent:
        rv = int(event.resource_version)
        assert rv > last.get(event.key, -1)
        last[event.key] = rv


def test_a_window_with_more_groups_than_room_drops_nothing() -> None:
    """A window's flush is a handful of events standing for a whole burst: with more groups
    than the queue has room (three namespaces, a queue of 2, not yet started), it goes over
    the bound rather than push out a waiting event or one of its digests. (A producer that
    waits for room, ``block=True``, is promised room for the digests its window owes, but
    never more than a shard's capacity.)"""
    now = [0.0]
    sink = FakeSink("s")
    d = Dispatcher(
        {"s": sink},
        delivery(queue_size=2, workers=1),
        digests={"s": DigestConfig(threshold=1, window=10.0)},
        clock=lambda: now[0],
    )
    d.submit(make_event("ns0/first"))  # passes: the window's threshold
    for n in range(3):  # held: three groups, one per namespace
        d.submit(make_event(f"ns{n}/held-a"))
        d.submit(make_event(f"ns{n}/held-b"))
    now[0] = 11.0
    d.flush_digests()  # the window ended: three digests into a queue of 2
    stats = d.stats()["s"]
    assert stats.dropped == 0
    assert stats.queued == 4 and stats.digested == 6
    d.start()
    assert d.close()
    assert [e.digest.count if e.digest else e.name for e in sink.sent] == ["first", 2, 2, 2]
