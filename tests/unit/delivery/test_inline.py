"""Inline delivery (``Dispatcher(inline=True)``, what ``kubewatch replay`` to stdout uses):
no worker threads, each submit delivers before it returns, with the same retries and
counts as threaded delivery, in submit order."""

from __future__ import annotations

import random
import threading

import pytest

from kubewatch.config import DigestConfig
from kubewatch.delivery import Dispatcher, SinkStats
from kubewatch.errors import PermanentError, RetryableError
from kubewatch.events import Event
from tests.unit.delivery.test_delivery import (
    FakeSink,
    RecordingSleep,
    delivery,
    fail_times,
    make_event,
)


def test_each_submit_delivers_on_the_callers_thread_in_order() -> None:
    threads: list[threading.Thread] = []
    sink = FakeSink("s", behaviour=lambda _: threads.append(threading.current_thread()))
    events = [make_event(f"ns/obj-{i % 7}", rv=i) for i in range(50)]
    d = Dispatcher({"s": sink}, delivery(queue_size=4), inline=True)
    d.start()
    for i, event in enumerate(events):
        d.submit(event, block=True)
        assert sink.sent == events[: i + 1] and d.depth("s") == 0
    assert d.close()
    assert set(threads) == {threading.current_thread()}
    assert d.stats()["s"] == SinkStats(delivered=50)
    assert d.workers_alive() == (True, [])


def test_retries_and_failures_are_counted_as_with_workers() -> None:
    sleep = RecordingSleep()
    flaky = FakeSink("flaky", behaviour=fail_times(2, lambda: RetryableError("503")))

    def refuse(event: Event) -> None:
        raise PermanentError("no")

    refusing = FakeSink("refusing", behaviour=refuse)
    d = Dispatcher(
        {"flaky": flaky, "refusing": refusing},
        delivery(),
        clock=sleep.clock,
        sleep=sleep,
        rng=random.Random(3),
        inline=True,
    )
    d.submit(make_event(rv=1))  # before start: queued, delivered by start
    assert flaky.attempts == []
    d.start()
    assert len(flaky.attempts) == 3 and len(sleep.delays) == 2
    d.submit(make_event(rv=2), ["flaky"])
    assert d.close()
    assert len(flaky.attempts) == 6 and len(sleep.delays) == 4
    assert d.stats()["flaky"] == SinkStats(delivered=2, retried=4)
    assert d.stats()["refusing"] == SinkStats(failed=1)


def test_an_interrupted_send_is_counted_as_failed() -> None:
    def interrupt(event: Event) -> None:
        raise KeyboardInterrupt

    d = Dispatcher({"s": FakeSink("s", behaviour=interrupt)}, delivery(), inline=True)
    d.start()
    with pytest.raises(KeyboardInterrupt):
        d.submit(make_event(), block=True)
    assert not d.close()
    assert d.stats()["s"] == SinkStats(failed=1)


def test_no_inline_delivery_with_digests() -> None:
    with pytest.raises(ValueError, match="digest"):
        Dispatcher(
            {"s": FakeSink("s")},
            delivery(),
            digests={"s": DigestConfig(window=10.0, threshold=2)},
            inline=True,
        )
