"""Rate limits: the token bucket's arithmetic, its waits and pauses, and the dispatcher's
use of it (every attempt takes a token; Retry-After pauses every worker of a sink).

Time is a fake clock that only the injected sleep moves; real waits are hang guards.
"""

from __future__ import annotations

import logging
import math
import random
import threading
from collections.abc import Callable

import pytest

from kubewatch.backoff import MAX_RETRY_AFTER, RetryBackoff
from kubewatch.config import RateLimitConfig
from kubewatch.delivery import Dispatcher, SinkPolicy, SinkStats, TokenBucket
from kubewatch.delivery.queue import shard_of
from kubewatch.delivery.retry import RetryPolicy
from kubewatch.errors import RateLimited, RetryableError
from kubewatch.events import Event
from tests.unit.delivery.test_delivery import (
    WAIT,
    FakeSink,
    RecordingSleep,
    delivery,
    fail_times,
    make_event,
    two_keys_on_different_shards,
)

T0 = 1000.0


def bucket(per_second: float = 1.0, burst: int = 1) -> tuple[TokenBucket, RecordingSleep]:
    """A bucket on a fake clock that its sleep moves (``time.delays``: every wait)."""
    time_ = RecordingSleep(T0)
    return TokenBucket(per_second, burst, clock=time_.clock, sleep=time_), time_


# -- the bucket -------------------------------------------------------------------------


def test_a_full_bucket_gives_its_burst_at_once_then_one_token_per_interval() -> None:
    b, time_ = bucket(per_second=2.0, burst=3)
    grants = []
    for _ in range(6):
        assert b.acquire()
        grants.append(time_.now - T0)
    assert grants == [0.0, 0.0, 0.0, 0.5, 1.0, 1.5]
    assert time_.delays == [0.5, 0.5, 0.5]  # one exact sleep per token: no polling


def test_idle_time_refills_up_to_the_burst_only() -> None:
    b, time_ = bucket(per_second=1.0, burst=2)
    assert b.acquire() and b.acquire()
    time_(3600.0)  # an hour idle is worth two tokens, not 3600
    assert b.acquire() and b.acquire()
    assert time_.delays == [3600.0]
    assert b.try_acquire() == pytest.approx(1.0)


def test_try_acquire_takes_nothing_when_it_says_wait() -> None:
    b, time_ = bucket(per_second=4.0, burst=1)
    assert b.try_acquire() == 0.0
    time_(0.1)
    assert b.try_acquire() == pytest.approx(0.15)  # 0.4 of a token accrued
    assert b.try_acquire() == pytest.approx(0.15)  # asking again took nothing
    time_(0.15)
    assert b.try_acquire() == 0.0


def test_an_unlimited_bucket_never_waits() -> None:
    b = TokenBucket.from_config(None, clock=lambda: T0, sleep=lambda _: pytest.fail("slept"))
    assert not b.limited
    assert all(b.acquire() for _ in range(10_000))


def test_from_config() -> None:
    b = TokenBucket.from_config(RateLimitConfig(per_second=2.5, burst=4))
    assert (b.per_second, b.burst, b.limited) == (2.5, 4, True)


@pytest.mark.parametrize(
    ("per_second", "burst"),
    [
        pytest.param(0.0, 1, id="zero-rate"),
        pytest.param(-1.0, 1, id="negative-rate"),
        pytest.param(math.nan, 1, id="nan-rate"),
        pytest.param(1.0, 0, id="zero-burst"),
    ],
)
def test_nonsense_settings_are_refused(per_second: float, burst: int) -> None:
    with pytest.raises(ValueError):
        TokenBucket(per_second, burst)


def test_concurrent_takers_never_beat_the_rate() -> None:
    """8 threads take 25 tokens each on a shared fake clock: at every grant, the grants so
    far are at most ``burst + per_second * elapsed``."""
    time_ = RecordingSleep(T0)
    grants: list[float] = []  # the clock just after each grant (never before it)
    lock = threading.Lock()
    b = TokenBucket(10.0, 5, clock=time_.clock, sleep=time_)

    def taker() -> None:
        for _ in range(25):
            assert b.acquire()
            with lock:
                grants.append(time_.clock())

    threads = [threading.Thread(target=taker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(WAIT)
    assert len(grants) == 200
    for n, at in enumerate(sorted(grants), start=1):
        assert n <= 5 + 10.0 * (at - T0) + 1e-6


# -- interruption -----------------------------------------------------------------------


def test_close_interrupts_a_waiting_acquire() -> None:
    """The default sleep waits real seconds (here: 1000 per token) until close()."""
    asked = threading.Event()

    def clock() -> float:
        asked.set()
        return T0  # time stands still: only close() can end the wait

    b = TokenBucket(0.001, 1, clock=clock)
    assert b.acquire()  # the one token of the burst
    asked.clear()
    result: list[bool] = []
    taker = threading.Thread(target=lambda: result.append(b.acquire()))
    taker.start()
    assert asked.wait(WAIT)  # it has looked at the bucket and is about to wait 1000 s
    b.close()
    taker.join(WAIT)
    assert not taker.is_alive()
    assert result == [False]
    assert b.acquire() is False  # closed for good


def test_an_interrupted_sleep_takes_no_token() -> None:
    b = TokenBucket(1.0, 1, clock=lambda: T0, sleep=lambda _: True)
    assert b.acquire()
    assert b.acquire() is False
    assert b.try_acquire() == pytest.approx(1.0)  # still empty: nothing was taken


# -- pauses -----------------------------------------------------------------------------


def test_a_pause_holds_every_token_until_it_ends() -> None:
    b, time_ = bucket(per_second=1.0, burst=5)
    assert b.pause(30.0)
    assert b.paused_for() == 30.0
    assert b.acquire()
    assert time_.now == T0 + 30.0
    assert time_.delays == [30.0]


def test_a_pause_keeps_one_token_and_accrues_none() -> None:
    """After a 429, one attempt at the end of the pause, then the rate: no burst."""
    b, time_ = bucket(per_second=1.0, burst=5)
    b.pause(60.0)
    grants = []
    for _ in range(3):
        assert b.acquire()
        grants.append(time_.now - T0)
    assert grants == [60.0, 61.0, 62.0]


def test_a_pause_is_extended_never_shortened() -> None:
    b, time_ = bucket()
    assert b.pause(30.0)
    assert not b.pause(5.0)
    time_(10.0)
    assert not b.pause(20.0)  # ends at the same time as the first
    assert b.pause(25.0)  # ends later
    assert b.paused_for() == 25.0
    for nonsense in (0.0, -1.0, math.inf, math.nan):
        assert not b.pause(nonsense)


def test_an_unlimited_bucket_honours_pauses() -> None:
    b, time_ = bucket(per_second=math.inf)
    b.pause(12.0)
    assert b.acquire()
    assert time_.delays == [12.0]
    assert b.acquire() and b.acquire()
    assert time_.delays == [12.0]


# -- the dispatcher ---------------------------------------------------------------------


class ClockedSink(FakeSink):
    """Also records the fake clock's reading at each attempt."""

    def __init__(
        self, name: str, clock: Callable[[], float], behaviour: Callable[[Event], None] | None
    ) -> None:
        super().__init__(name, behaviour)
        self.clock = clock
        self.times: list[tuple[str, float]] = []  # (key, clock) per attempt

    def send(self, event: Event) -> None:
        with self._cond:
            self.times.append((event.key, self.clock()))
        super().send(event)


class _MaxRandom(random.Random):
    """Backoff jitter at its ceiling: the waits are known in advance."""

    def uniform(self, a: float, b: float) -> float:
        return b


def test_every_attempt_takes_a_token_retries_included() -> None:
    """1 per second, one worker: the failure pauses the sink for its backoff (0.5 s, during
    which no token accrues, as with Retry-After), then the retry waits for its token, and
    the next event for the one after."""
    time_ = RecordingSleep(T0)
    fail_once = fail_times(1, lambda: RetryableError("503"))

    def behaviour(event: Event) -> None:
        if event.key == "ns/a":
            fail_once(event)

    sink = ClockedSink("chat", time_.clock, behaviour)
    policy = SinkPolicy(concurrency=1, rate_limit=RateLimitConfig(per_second=1.0, burst=1))
    with Dispatcher(
        {"chat": sink},
        delivery(),
        policies={"chat": policy},
        clock=time_.clock,
        sleep=time_,
        rng=_MaxRandom(),  # type: ignore[arg-type]
    ) as d:
        d.submit(make_event("ns/a"))
        d.submit(make_event("ns/b"))
    assert sink.times == [("ns/a", T0), ("ns/a", T0 + 1.5), ("ns/b", T0 + 2.5)]
    # the pause of 0.5 (first retry's ceiling), then a whole token's wait
    assert time_.delays[:2] == [1.5, 1.0]
    assert d.stats()["chat"] == SinkStats(delivered=2, retried=1)


def test_a_sink_keeps_its_rate_with_many_workers() -> None:
    time_ = RecordingSleep(T0)
    sink = ClockedSink("chat", time_.clock, None)
    policy = SinkPolicy(concurrency=4, rate_limit=RateLimitConfig(per_second=2.0, burst=3))
    with Dispatcher(
        {"chat": sink}, delivery(), policies={"chat": policy}, clock=time_.clock, sleep=time_
    ) as d:
        for i in range(40):
            d.submit(make_event(f"ns/obj-{i}"))
    times = sorted(t for _, t in sink.times)
    assert len(times) == 40
    for n, at in enumerate(times, start=1):
        assert n <= 3 + 2.0 * (at - T0) + 1e-6


def test_rate_limited_pauses_every_worker_of_the_sink(caplog: pytest.LogCaptureFixture) -> None:
    """Worker A gets a 429 (Retry-After 30) and sits in its backoff; the event submitted
    after that to worker B waits for the pause to end, although its own bucket has a
    token and nothing of B's failed. Without the pause, B would send at once: the clock
    does not move while A waits (A's sleep is held until B has sent)."""
    caplog.set_level(logging.INFO, logger="kubewatch.delivery")
    key_a, key_b = two_keys_on_different_shards(2)
    worker_a = f"kubewatch-sink-chat-{shard_of(key_a, 2)}"
    time_ = RecordingSleep(T0)
    a_waits, b_sent = threading.Event(), threading.Event()
    slept: list[tuple[str, float]] = []

    def sleep(delay: float) -> bool:
        name = threading.current_thread().name
        slept.append((name, delay))
        if name == worker_a:
            a_waits.set()
            assert b_sent.wait(WAIT)
        return time_(delay)

    def behaviour(event: Event) -> None:
        if event.key == key_a and len([k for k, _ in sink.times if k == key_a]) == 1:
            raise RateLimited("HTTP 429", 30.0)
        if event.key == key_b:
            b_sent.set()

    sink = ClockedSink("chat", time_.clock, behaviour)
    d = Dispatcher(
        {"chat": sink},
        delivery(),
        policies={"chat": SinkPolicy(concurrency=2)},
        clock=time_.clock,
        sleep=sleep,
    )
    with d:
        d.submit(make_event(key_a))
        assert a_waits.wait(WAIT)  # A failed with 429, paused the sink, is in backoff
        d.submit(make_event(key_b))
        assert b_sent.wait(WAIT)
    assert sink.times[0] == (key_a, T0)
    assert sink.times[1] == (key_b, T0 + 30.0)  # B waited for the pause
    assert sink.times[2][0] == key_a
    assert (worker_a, 30.0) in slept  # A's own backoff: at least the Retry-After
    assert [s for s in slept if s[0] != worker_a] == [
        (f"kubewatch-sink-chat-{shard_of(key_b, 2)}", 30.0)
    ]
    assert d.stats()["chat"] == SinkStats(delivered=2, retried=1)
    assert any(
        "receiver asked to wait 30.0s" in r.getMessage() and "2 worker(s)" in r.getMessage()
        for r in caplog.records
    )


def test_a_paused_sink_does_not_pause_another() -> None:
    """Separate buckets: while one sink sits out a 300 s Retry-After, another sink (with
    a rate limit of its own) sends everything without waiting for it."""
    time_ = RecordingSleep(T0)
    held, release = threading.Event(), threading.Event()

    def sleep(delay: float) -> bool:
        if threading.current_thread().name.startswith("kubewatch-sink-limited-"):
            held.set()
            return release.wait(WAIT)  # ends as an interruption (shutdown)
        return time_(delay)

    limited = FakeSink("limited", fail_times(1000, lambda: RateLimited("429", 300.0)))
    other = ClockedSink("other", time_.clock, None)
    d = Dispatcher(
        {"limited": limited, "other": other},
        delivery(),
        policies={
            "limited": SinkPolicy(concurrency=2),
            "other": SinkPolicy(rate_limit=RateLimitConfig(per_second=100.0, burst=20)),
        },
        clock=time_.clock,
        sleep=sleep,
    )
    d.start()
    for i in range(20):
        d.submit(make_event(f"ns/obj-{i}"))
    assert held.wait(WAIT)
    assert other.wait_sent(20)
    assert [t for _, t in other.times] == [T0] * 20  # never waited: the burst covers it
    assert d.stats()["limited"].delivered == 0
    assert d.stats()["limited"].failed == 0  # still waiting out its Retry-After
    release.set()
    assert d.close(timeout=0) is False


def test_retry_after_is_capped_for_the_pause_too() -> None:
    assert RetryBackoff().retry_after(RateLimited("429", 1e9)) == MAX_RETRY_AFTER
    assert RetryBackoff().retry_after(RateLimited("429", -3.0)) == 0.0
    assert RetryBackoff().retry_after(RetryableError("503")) == 0.0
    assert RetryPolicy().backoff.retry_after(RateLimited("429", 7.0)) == 7.0


def test_close_interrupts_a_token_wait() -> None:
    """Real sleep: a sink at one message per 1000 s; close() ends the wait at once and
    counts the event as failed (shutdown)."""
    sink = FakeSink("slow")
    policy = SinkPolicy(concurrency=1, rate_limit=RateLimitConfig(per_second=0.001, burst=1))
    d = Dispatcher({"slow": sink}, delivery(), policies={"slow": policy})
    d.start()
    d.submit(make_event("ns/a"))
    d.submit(make_event("ns/b"))
    assert sink.wait_sent(1)
    assert d.close(timeout=0) is False
    assert [e.key for e in sink.sent] == ["ns/a"]
    assert d.stats()["slow"] == SinkStats(delivered=1, failed=1)
