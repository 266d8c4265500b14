"""Delivery workers survive what escapes them, and /healthz knows when they do not."""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Iterator

import pytest

from kubewatch.delivery import Dispatcher
from kubewatch.delivery.supervise import SEND_STUCK_AFTER, WorkerWatch
from kubewatch.errors import PermanentError
from kubewatch.events import Event
from kubewatch.observability.health import Heartbeats
from kubewatch.observability.metrics import Metrics
from tests.unit.delivery.test_delivery import WAIT, FakeSink, delivery, make_event


def test_a_raising_on_delivered_cannot_kill_the_worker(caplog: pytest.LogCaptureFixture) -> None:
    sink = FakeSink()

    def observer(name: str, event: Event) -> None:
        raise RuntimeError("observer bug")

    d = Dispatcher({"s": sink}, delivery(workers=1), on_delivered=observer)
    with caplog.at_level(logging.DEBUG, "kubewatch.delivery"), d:
        for rv in range(20):
            d.submit(make_event(rv=rv))
        assert sink.wait_sent(20)
        assert d.workers_alive() == (True, [])
    assert d.stats()["s"].delivered == 20
    assert d.worker_stats()["s"].callback_errors == 20
    lines = [r for r in caplog.records if "observer" in r.getMessage()]
    assert sum(r.levelno == logging.ERROR for r in lines) == 1  # rate limited


def test_a_raising_on_failed_cannot_kill_the_worker() -> None:
    def refuse(event: Event) -> None:
        raise PermanentError("no")

    sink = FakeSink(behaviour=refuse)
    failed = threading.Semaphore(0)

    def observer(name: str, event: Event, reason: str, permanent: bool) -> None:
        failed.release()
        raise RuntimeError("observer bug")

    with Dispatcher({"s": sink}, delivery(workers=1), on_failed=observer) as d:
        for rv in range(5):
            d.submit(make_event(rv=rv))
        for _ in range(5):
            assert failed.acquire(timeout=WAIT)
    assert d.stats()["s"].failed == 5
    assert d.worker_stats()["s"].callback_errors == 5


def test_a_worker_loop_that_fails_is_restarted_and_counted() -> None:
    sink = FakeSink()
    d = Dispatcher({"s": sink}, delivery(workers=1))
    drops = d._lanes["s"].drops
    flush = drops.flush
    calls = [0]

    def flaky(*, force: bool = False) -> None:
        calls[0] += 1
        if calls[0] == 1:
            raise RuntimeError("bug in the worker loop")
        flush(force=force)

    drops.flush = flaky  # type: ignore[method-assign]
    with d:
        for rv in range(3):
            d.submit(make_event(rv=rv))
        assert sink.wait_sent(3)
    assert d.worker_stats()["s"].restarts == 1
    assert d.stats()["s"].delivered == 3
    body = Metrics(workers=d.worker_stats).exposition()[0].decode()
    assert 'kubewatch_worker_restarts_total{sink="s"} 1.0' in body


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_healthz_fails_when_a_worker_thread_is_dead() -> None:
    d = Dispatcher({"s": FakeSink()}, delivery(workers=2))
    died = threading.Event()

    def work(*args: object) -> None:
        died.set()
        raise SystemExit  # not an Exception: the supervisor lets it end the thread

    d._sender._work = work  # type: ignore[method-assign]
    beats = Heartbeats(60.0)
    beats.add_check(d.workers_alive)
    with d:
        assert died.wait(WAIT)
        for thread in d._lanes["s"].threads:
            thread.join(WAIT)
        healthy, reasons = beats()
    assert not healthy
    assert "sink s: worker kubewatch-sink-s-0 is not running" in reasons
    assert d.workers_alive() == (True, [])  # closed: no longer a liveness matter


def test_healthz_fails_while_a_send_is_stuck_far_beyond_its_timeout() -> None:
    now = [0.0]
    gate, entered = threading.Event(), threading.Event()

    def block(event: Event) -> None:
        entered.set()
        gate.wait(WAIT)

    d = Dispatcher({"s": FakeSink(behaviour=block)}, delivery(workers=1), clock=lambda: now[0])
    with d:
        d.submit(make_event())
        assert entered.wait(WAIT)
        now[0] += SEND_STUCK_AFTER
        assert d.workers_alive() == (True, [])
        now[0] += 1
        healthy, reasons = d.workers_alive()
        assert not healthy
        assert reasons == ["sink s: a send has been running for 301s (limit 300s)"]
        gate.set()
        assert d._lanes["s"].sink.inner.wait_sent(1)  # type: ignore[attr-defined]
        for _ in range(1000):
            if d.workers_alive()[0]:
                break
            threading.Event().wait(0.01)
        assert d.workers_alive() == (True, [])


@pytest.fixture
def fast_switching() -> Iterator[None]:
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(old)


def test_worker_watch_counts_exactly_from_many_threads(fast_switching: None) -> None:
    watch = WorkerWatch("s", clock=lambda: 0.0)

    def bad(*args: object) -> None:
        raise ValueError("x")

    def work() -> None:
        for _ in range(300):
            watch.send_started()
            watch.callback(bad, 1)
            watch.send_ended()
            try:
                raise RuntimeError("loop")
            except RuntimeError:
                watch.restarted()

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stats = watch.stats()
    assert (stats.callback_errors, stats.restarts) == (2400, 2400)
    assert watch.stuck(-1.0) == []
