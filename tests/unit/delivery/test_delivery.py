"""Delivery: per-key order, isolation between sinks, retries and shutdown.

Fake sinks block on ``threading.Event`` gates instead of sleeping, and the backoff sleep
is injected (it records delays), so nothing here depends on timing.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from kubewatch.config import (
    CHAT_DIGEST,
    CHAT_RATE_LIMIT,
    DeliveryConfig,
    DigestConfig,
    RateLimitConfig,
    RetryConfig,
    parse_config,
)
from kubewatch.delivery import (
    Dispatcher,
    RetryBackoff,
    RetryPolicy,
    SinkPolicy,
    SinkStats,
    sink_policies,
)
from kubewatch.delivery.queue import QueueClosed, Shard, ShardedQueue, shard_capacities, shard_of
from kubewatch.errors import DeliveryError, PermanentError, RateLimited, RetryableError
from kubewatch.events import Event, EventType
from kubewatch.sinks.base import SinkBase

WAIT = 10.0
"""Seconds a test waits for something that should happen at once (a hang guard only)."""


def make_event(key: str = "default/app", rv: int | str = 1, **overrides: Any) -> Event:
    """An update of ConfigMap ``key`` at resourceVersion ``rv``; override any field."""
    namespace, _, name = key.rpartition("/")
    fields: dict[str, Any] = {
        "type": EventType.UPDATE,
        "cluster": "test",
        "kind": "ConfigMap",
        "api_version": "v1",
        "resource": "configmaps",
        "namespace": namespace or None,
        "name": name,
        "uid": f"uid-{key}",
        "resource_version": str(rv),
        "observed_at": "2026-11-26T22:10:51.123Z",
        "summary": f"update ConfigMap {key}",
    }
    fields.update(overrides)
    return Event(**fields)


def delivery(
    *,
    queue_size: int = 1000,
    workers: int = 4,
    attempts: int = 5,
    max_backoff: float = 30.0,
    drain_timeout: float = WAIT,
) -> DeliveryConfig:
    return DeliveryConfig(
        queue_size=queue_size,
        workers=workers,
        retry=RetryConfig(attempts=attempts, max_backoff=max_backoff),
        drain_timeout=drain_timeout,
    )


class FakeSink(SinkBase):
    """Records every attempt and every accepted event; ``behaviour`` may raise or block."""

    def __init__(self, name: str = "fake", behaviour: Callable[[Event], None] | None = None):
        self.name = name
        self.behaviour = behaviour
        self.attempts: list[Event] = []
        self.sent: list[Event] = []
        self.closed = 0
        self._cond = threading.Condition()

    def send(self, event: Event) -> None:
        with self._cond:
            self.attempts.append(event)
        if self.behaviour is not None:
            self.behaviour(event)
        with self._cond:
            self.sent.append(event)
            self._cond.notify_all()

    def wait_sent(self, n: int) -> bool:
        return self.wait_until(lambda sent: len(sent) >= n)

    def wait_until(self, predicate: Callable[[list[Event]], bool]) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: predicate(self.sent), WAIT)

    def close(self) -> None:
        self.closed += 1


class RecordingSleep:
    """Stands in for every wait of the dispatcher: records each delay and moves its own
    fake clock (``clock``) forward by it at once; never interrupted.

    Pass both: ``Dispatcher(..., clock=sleep.clock, sleep=sleep)``. The clock is what
    token buckets and Retry-After pauses read, so a wait always ends where it should.
    """

    def __init__(self, now: float = 1000.0) -> None:
        self.delays: list[float] = []
        self.now = now
        self._lock = threading.Lock()

    def clock(self) -> float:
        with self._lock:
            return self.now

    def __call__(self, delay: float) -> bool:
        with self._lock:
            self.delays.append(delay)
            self.now += delay
        return False


class Gate:
    """Blocks sends of chosen keys until opened; ``entered`` says a send is waiting."""

    def __init__(self, keys: set[str] | None = None) -> None:
        self.keys = keys
        self.entered = threading.Event()
        self.opened = threading.Event()

    def __call__(self, event: Event) -> None:
        if self.keys is None or event.key in self.keys:
            self.entered.set()
            self.opened.wait(WAIT)


def fail_times(n: int, error: Callable[[], DeliveryError]) -> Callable[[Event], None]:
    """A behaviour that raises ``error()`` on the first ``n`` attempts of each event."""
    seen: dict[str, int] = {}
    lock = threading.Lock()

    def behaviour(event: Event) -> None:
        with lock:
            seen[event.id] = seen.get(event.id, 0) + 1
            count = seen[event.id]
        if count <= n:
            raise error()

    return behaviour


def two_keys_on_different_shards(workers: int) -> tuple[str, str]:
    keys = [f"ns/obj-{i}" for i in range(100)]
    first = keys[0]
    other = next(k for k in keys if shard_of(k, workers) != shard_of(first, workers))
    return first, other


# -- queue ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("queue_size", "workers", "expected"),
    [
        pytest.param(10, 4, (3, 3, 2, 2), id="remainder-spread"),
        pytest.param(8, 4, (2, 2, 2, 2), id="even"),
        pytest.param(2, 4, (1, 1), id="fewer-slots-than-workers"),
        pytest.param(1, 1, (1,), id="minimal"),
        pytest.param(10_000, 64, (157,) * 16 + (156,) * 48, id="large"),
    ],
)
def test_shard_capacities_sum_to_queue_size(
    queue_size: int, workers: int, expected: tuple[int, ...]
) -> None:
    capacities = shard_capacities(queue_size, workers)
    assert capacities == expected
    assert sum(capacities) == queue_size
    assert min(capacities) >= 1


def test_shard_drops_oldest_and_closes() -> None:
    shard: Shard[int] = Shard(3)
    assert [shard.put(i) for i in range(5)] == [None, None, None, 0, 1]
    assert len(shard) == 3
    shard.close()
    with pytest.raises(QueueClosed):
        shard.put(9)
    assert [shard.get(), shard.get(), shard.get(), shard.get(), shard.get()] == [
        2,
        3,
        4,
        None,
        None,
    ]


def test_sharded_queue_never_exceeds_its_bound() -> None:
    """Invariant: every shard holds at most its capacity, all shards at most queue_size."""
    queue: ShardedQueue[str] = ShardedQueue(10, 4, key=lambda s: s)
    dropped = 0
    for i in range(1000):
        dropped += queue.put(f"ns/obj-{i % 37}") is not None
        assert all(len(s) <= s.capacity for s in queue.shards)
        assert len(queue) <= 10
    assert len(queue) + dropped == 1000


# -- retry policy -----------------------------------------------------------------------


class _MaxRandom(random.Random):
    """Jitter always at its ceiling, to read the ceilings off the policy."""

    def uniform(self, a: float, b: float) -> float:
        return b


def test_backoff_ceilings_double_up_to_the_cap() -> None:
    backoff = RetryBackoff(max_backoff=5.0)
    delays = [backoff.delay(n, RetryableError("x"), _MaxRandom()) for n in range(1, 8)]
    assert delays == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0, 5.0]
    assert backoff.ceiling(10_000) == 5.0  # no overflow on absurd attempt numbers


def test_backoff_full_jitter_stays_within_ceiling() -> None:
    backoff, rng = RetryBackoff(max_backoff=30.0), random.Random(7)
    for n in range(1, 20):
        for _ in range(50):
            assert 0.0 <= backoff.delay(n, RetryableError("x"), rng) <= backoff.ceiling(n)


@pytest.mark.parametrize(
    ("retry_after", "expected"),
    [
        pytest.param(42.0, 42.0, id="beyond-max-backoff"),
        pytest.param(1000.0, 300.0, id="capped-at-300"),
        pytest.param(0.0, 0.5, id="zero-keeps-backoff"),
        pytest.param(-5.0, 0.5, id="negative-ignored"),
    ],
)
def test_rate_limited_sets_a_minimum_wait(retry_after: float, expected: float) -> None:
    backoff = RetryBackoff(max_backoff=1.0)
    assert backoff.delay(1, RateLimited("slow", retry_after), _MaxRandom()) == expected


# -- dispatcher: order and isolation ----------------------------------------------------


def test_order_per_key_is_kept_under_concurrency() -> None:
    """Four submitter threads, 40 keys, 4 workers: each key's events arrive in order."""
    sink = FakeSink(behaviour=lambda _: time.sleep(0))  # yield: invites interleaving
    keys = [f"ns/obj-{i}" for i in range(40)]
    per_key = 50
    d = Dispatcher({"s": sink}, delivery(queue_size=100_000, workers=4))
    d.start()

    def submitter(mine: list[str]) -> None:
        for rv in range(per_key):
            for key in mine:
                d.submit(make_event(key, rv))

    threads = [threading.Thread(target=submitter, args=(keys[i::4],)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert d.close()
    received: dict[str, list[int]] = {}
    for event in sink.sent:
        received.setdefault(event.key, []).append(int(event.resource_version))
    assert received == {key: list(range(per_key)) for key in keys}
    assert d.stats()["s"] == SinkStats(delivered=len(keys) * per_key)


def test_a_blocked_key_does_not_block_a_key_on_another_worker() -> None:
    blocked, free = two_keys_on_different_shards(2)
    gate = Gate({blocked})
    sink = FakeSink(behaviour=gate)
    with Dispatcher({"s": sink}, delivery(workers=2)) as d:
        d.submit(make_event(blocked))
        assert gate.entered.wait(WAIT)
        d.submit(make_event(free))
        assert sink.wait_sent(1)
        assert [e.key for e in sink.sent] == [free]
        gate.opened.set()
    assert [e.key for e in sink.sent] == [free, blocked]


def test_a_stuck_sink_does_not_slow_a_healthy_one_nor_submit() -> None:
    """The bad sink's worker hangs and its queue overflows; submit never waits, and the
    good sink gets every event it did not have to drop, in order, up to the newest."""
    gate = Gate()
    bad, good = FakeSink("bad", gate), FakeSink("good")
    d = Dispatcher({"bad": bad, "good": good}, delivery(queue_size=5, workers=1))
    d.start()
    for rv in range(50):
        d.submit(make_event(rv=rv))
    assert good.wait_until(lambda sent: bool(sent) and sent[-1].resource_version == "49")
    rvs = [int(e.resource_version) for e in good.sent]
    assert rvs == sorted(rvs)
    assert d.stats()["good"].delivered + d.stats()["good"].dropped == 50
    assert gate.entered.wait(WAIT)
    stats = d.stats()["bad"]
    assert stats.delivered == 0
    assert stats.queued <= 5
    assert stats.queued + stats.dropped == 50 - 1  # one is stuck in flight
    gate.opened.set()
    assert d.close()
    assert d.stats()["bad"].delivered == 1 + stats.queued


def test_submit_to_named_sinks_only() -> None:
    a, b = FakeSink("a"), FakeSink("b")
    with Dispatcher({"a": a, "b": b}, delivery()) as d:
        d.submit(make_event(), ["b", "b"])
        with pytest.raises(KeyError, match="nope"):
            d.submit(make_event(rv=2), ["b", "nope"])
    assert (a.sent, [e.resource_version for e in b.sent]) == ([], ["1"])


def test_worker_threads_are_named_after_the_sink() -> None:
    d = Dispatcher({"alpha": FakeSink(), "beta": FakeSink()}, delivery(workers=2))
    d.start()
    names = {t.name for t in threading.enumerate()}
    assert {
        "kubewatch-sink-alpha-0",
        "kubewatch-sink-alpha-1",
        "kubewatch-sink-beta-0",
        "kubewatch-sink-beta-1",
    } <= names
    assert d.close()


# -- dispatcher: retries ----------------------------------------------------------------


def test_retry_then_success() -> None:
    sleep = RecordingSleep()
    sink = FakeSink(behaviour=fail_times(2, lambda: RetryableError("503")))
    with Dispatcher(
        {"s": sink}, delivery(), clock=sleep.clock, sleep=sleep, rng=random.Random(3)
    ) as d:
        d.submit(make_event())
    assert d.stats()["s"] == SinkStats(delivered=1, retried=2)
    assert len(sink.attempts) == 3
    assert len(sleep.delays) == 2
    assert 0 <= sleep.delays[0] <= 0.5
    assert 0 <= sleep.delays[1] <= 1.0


def test_rate_limited_delay_is_honoured_beyond_max_backoff() -> None:
    sleep = RecordingSleep()
    sink = FakeSink(behaviour=fail_times(1, lambda: RateLimited("429", 42.0)))
    with Dispatcher({"s": sink}, delivery(max_backoff=1.0), clock=sleep.clock, sleep=sleep) as d:
        d.submit(make_event())
    assert sleep.delays == [42.0]
    assert d.stats()["s"] == SinkStats(delivered=1, retried=1)


def test_permanent_error_is_not_retried(caplog: pytest.LogCaptureFixture) -> None:
    sleep = RecordingSleep()
    sink = FakeSink("hook", fail_times(1, lambda: PermanentError("HTTP 404")))
    event = make_event()
    with Dispatcher({"hook": sink}, delivery(), clock=sleep.clock, sleep=sleep) as d:
        d.submit(event)
    assert sleep.delays == []
    assert len(sink.attempts) == 1
    assert d.stats()["hook"] == SinkStats(failed=1)
    (record,) = [r for r in caplog.records if r.levelno == logging.ERROR]
    for part in ("'hook'", event.id, "ConfigMap", "default/app", "HTTP 404"):
        assert part in record.getMessage()


def test_attempts_exhausted_fails(caplog: pytest.LogCaptureFixture) -> None:
    sleep = RecordingSleep()
    sink = FakeSink("hook", fail_times(99, lambda: RetryableError("HTTP 502")))
    event = make_event()
    with Dispatcher({"hook": sink}, delivery(attempts=3), clock=sleep.clock, sleep=sleep) as d:
        d.submit(event)
    assert len(sink.attempts) == 3
    assert len(sleep.delays) == 2
    assert d.stats()["hook"] == SinkStats(failed=1, retried=2, up=False)  # 3 in a row: down
    (record,) = [r for r in caplog.records if r.levelno == logging.ERROR]
    message = record.getMessage()
    for part in ("'hook'", event.id, "ConfigMap", "default/app", "3 attempt(s)", "HTTP 502"):
        assert part in message


def test_a_sink_bug_is_logged_and_the_worker_survives(caplog: pytest.LogCaptureFixture) -> None:
    def behaviour(event: Event) -> None:
        if event.resource_version == "1":
            raise ValueError("bug in sink")

    sleep = RecordingSleep()
    sink = FakeSink("s", behaviour)
    with Dispatcher({"s": sink}, delivery(workers=1), clock=sleep.clock, sleep=sleep) as d:
        d.submit(make_event(rv=1))
        d.submit(make_event(rv=2))
    assert [e.resource_version for e in sink.sent] == ["2"]
    assert sleep.delays == []
    assert d.stats()["s"] == SinkStats(delivered=1, failed=1)
    (record,) = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert record.exc_info is not None
    assert isinstance(record.exc_info[1], ValueError)


# -- dispatcher: lifecycle --------------------------------------------------------------


def test_close_drains_and_closes_sinks_once() -> None:
    sinks = {"a": FakeSink("a"), "b": FakeSink("b")}
    d = Dispatcher(sinks, delivery(workers=3))
    d.start()
    for i in range(200):
        d.submit(make_event(f"ns/obj-{i % 17}", i))
    assert d.close() is True
    assert d.close() is True  # idempotent
    for name, sink in sinks.items():
        assert len(sink.sent) == 200
        assert sink.closed == 1
        assert d.stats()[name] == SinkStats(delivered=200)


def test_submit_and_start_after_close_raise() -> None:
    d = Dispatcher({"s": FakeSink()}, delivery())
    d.start()
    with pytest.raises(RuntimeError, match="started"):
        d.start()
    assert d.close()
    with pytest.raises(RuntimeError, match="closed"):
        d.submit(make_event())
    with pytest.raises(RuntimeError, match="closed"):
        d.start()


def test_close_without_start_abandons_the_queue() -> None:
    sink = FakeSink()
    d = Dispatcher({"s": sink}, delivery())
    d.submit(make_event())
    assert d.close() is False
    assert d.stats()["s"] == SinkStats(failed=1)
    assert sink.closed == 1


def test_close_times_out_on_a_stuck_sink(caplog: pytest.LogCaptureFixture) -> None:
    gate = Gate()
    sink = FakeSink("s", gate)
    d = Dispatcher({"s": sink}, delivery(workers=1))
    d.start()
    for rv in range(3):
        d.submit(make_event(rv=rv))
    assert gate.entered.wait(WAIT)
    started = time.monotonic()
    assert d.close(timeout=0.05) is False
    assert time.monotonic() - started < WAIT  # a hang guard, not a timing assertion
    assert d.stats()["s"] == SinkStats(failed=3)  # two never tried; one given up in flight
    assert sink.closed == 1
    assert any("abandoned" in r.getMessage() for r in caplog.records)
    gate.opened.set()
    # Let the released worker finish (it logs the late outcome) before the test's log
    # capture goes away.
    for thread in threading.enumerate():
        if thread.name.startswith("kubewatch-sink-"):
            thread.join(WAIT)


def test_close_interrupts_a_backoff_wait(caplog: pytest.LogCaptureFixture) -> None:
    """With the default sleep, a 300 s Retry-After wait ends as soon as close gives up."""
    tried = threading.Event()

    def behaviour(_: Event) -> None:
        tried.set()
        raise RateLimited("429", 300.0)

    d = Dispatcher({"s": FakeSink("s", behaviour)}, delivery(workers=1))
    d.start()
    d.submit(make_event())
    assert tried.wait(WAIT)
    assert d.close(timeout=0.05) is False
    assert d.stats()["s"] == SinkStats(failed=1)
    assert any("shutdown" in r.getMessage() for r in caplog.records if r.levelno == logging.ERROR)


# -- per-sink policies ------------------------------------------------------------------

POLICY_CONFIG = """
resources: [{kind: ConfigMap}]
delivery: {queueSize: 500, workers: 3, retry: {attempts: 7, maxBackoff: 9}}
sinks:
  plain: {type: webhook, url: "http://127.0.0.1:9/a"}
  tuned:
    type: webhook
    url: "http://127.0.0.1:9/b"
    queueSize: 20
    concurrency: 2
    retry: {attempts: 2, maxBackoff: 1}
    rateLimit: {perSecond: 5, burst: 10}
    digest: {threshold: 3, window: 5s}
  chat: {type: slackWebhook, url: "https://hooks.example/x"}
  quiet-chat: {type: slackWebhook, url: "https://hooks.example/y", rateLimit: null, digest: off}
"""


def test_policy_from_config_takes_the_sinks_keys_else_delivery() -> None:
    config = parse_config(POLICY_CONFIG)
    policies = sink_policies(config)
    global_retry = RetryPolicy(attempts=7, backoff=RetryBackoff(max_backoff=9.0))
    assert policies["plain"] == SinkPolicy(queue_size=500, concurrency=3, retry=global_retry)
    assert policies["plain"] == SinkPolicy.defaults(config.delivery)
    assert policies["tuned"] == SinkPolicy(
        queue_size=20,
        concurrency=2,
        retry=RetryPolicy(attempts=2, backoff=RetryBackoff(max_backoff=1.0)),
        rate_limit=RateLimitConfig(per_second=5, burst=10),
        digest=DigestConfig(threshold=3, window=5.0),
    )
    # chat sinks: one message a second and a digest unless turned off
    assert policies["chat"] == SinkPolicy(
        queue_size=500,
        concurrency=3,
        retry=global_retry,
        rate_limit=CHAT_RATE_LIMIT,
        digest=CHAT_DIGEST,
    )
    assert policies["quiet-chat"] == SinkPolicy(queue_size=500, concurrency=3, retry=global_retry)


def test_without_policies_every_sink_gets_the_delivery_defaults() -> None:
    """The old behaviour: delivery's queue size, workers and retry; no limit, no digest."""
    config = delivery(queue_size=9, workers=2, attempts=3)
    d = Dispatcher({"s": FakeSink()}, config)
    assert d.policy("s") == SinkPolicy.defaults(config)
    assert d.policy("s").rate_limit is None
    assert d.policy("s").digest is None
    assert d.close() is True


def test_policies_for_unknown_sinks_are_an_error() -> None:
    with pytest.raises(KeyError, match="nope"):
        Dispatcher({"a": FakeSink()}, delivery(), policies={"nope": SinkPolicy()})


@pytest.mark.parametrize(
    ("queue_size", "concurrency"),
    [pytest.param(0, 1, id="no-queue"), pytest.param(1, 0, id="no-worker")],
)
def test_a_policy_needs_a_queue_slot_and_a_worker(queue_size: int, concurrency: int) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        SinkPolicy(queue_size=queue_size, concurrency=concurrency)


def test_each_sink_runs_its_own_number_of_workers() -> None:
    d = Dispatcher(
        {"one": FakeSink("one"), "three": FakeSink("three"), "default": FakeSink("default")},
        delivery(workers=2),
        policies={"one": SinkPolicy(concurrency=1), "three": SinkPolicy(concurrency=3)},
    )
    d.start()
    names = {t.name for t in threading.enumerate() if t.name.startswith("kubewatch-sink-")}
    assert names >= {
        "kubewatch-sink-one-0",
        "kubewatch-sink-three-0",
        "kubewatch-sink-three-1",
        "kubewatch-sink-three-2",
        "kubewatch-sink-default-0",
        "kubewatch-sink-default-1",
    }
    assert not names & {
        "kubewatch-sink-one-1",
        "kubewatch-sink-three-3",
        "kubewatch-sink-default-2",
    }
    assert d.close()


def test_each_sink_has_its_own_queue_size() -> None:
    """Not started: each queue keeps exactly its own bound's worth of the newest events."""
    small, large = FakeSink("small"), FakeSink("large")
    d = Dispatcher(
        {"small": small, "large": large},
        delivery(queue_size=1000),
        policies={"small": SinkPolicy(queue_size=2, concurrency=1), "large": SinkPolicy(5, 1)},
    )
    events = [make_event(f"ns/obj-{i}") for i in range(10)]
    for event in events:
        d.submit(event)
    assert d.stats()["small"] == SinkStats(dropped=8, queued=2)
    assert d.stats()["large"] == SinkStats(dropped=5, queued=5)
    d.start()
    assert d.close()
    assert small.sent == events[8:]
    assert large.sent == events[5:]


def test_each_sink_retries_by_its_own_policy() -> None:
    sleep = RecordingSleep()
    always = fail_times(1000, lambda: RetryableError("HTTP 502"))
    brief, patient = FakeSink("brief", always), FakeSink("patient", always)
    with Dispatcher(
        {"brief": brief, "patient": patient},
        delivery(attempts=5),
        policies={
            "brief": SinkPolicy(retry=RetryPolicy(attempts=2)),
            "patient": SinkPolicy(retry=RetryPolicy(attempts=4)),
        },
        clock=sleep.clock,
        sleep=sleep,
    ) as d:
        d.submit(make_event())
    assert len(brief.attempts) == 2
    assert len(patient.attempts) == 4
    assert d.stats()["brief"] == SinkStats(failed=1, retried=1)
    assert d.stats()["patient"] == SinkStats(failed=1, retried=3, up=False)


def test_digests_shorthand_replaces_the_policys_digest() -> None:
    d = Dispatcher(
        {"a": FakeSink("a"), "b": FakeSink("b")},
        delivery(),
        policies={"a": SinkPolicy(digest=DigestConfig(threshold=5))},
        digests={"a": None, "b": DigestConfig(threshold=2)},
    )
    assert d.policy("a").digest is None
    assert d.policy("b").digest == DigestConfig(threshold=2)
    assert d.close() is True


class BlockingSleep:
    """A backoff wait that holds its worker until ``release`` is set, then reports an
    interruption (as close() would); ``entered`` says some worker is waiting in it."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()
        self.delays: list[float] = []

    def __call__(self, delay: float) -> bool:
        self.delays.append(delay)
        self.entered.set()
        return self.release.wait(WAIT)


def test_a_failing_sink_never_delays_a_healthy_one() -> None:
    """The failing sink retries with long backoff (it would take hours to give up) and
    its worker is held in its first backoff wait; meanwhile the healthy sink gets every
    event. Proven by state, not time: when the healthy sink has all 50, the failing one
    has given up on none and is still in the backoff of its first attempt."""
    sleep = BlockingSleep()
    failing = FakeSink("failing", fail_times(1000, lambda: RetryableError("HTTP 503")))
    healthy = FakeSink("healthy")
    d = Dispatcher(
        {"failing": failing, "healthy": healthy},
        delivery(),
        policies={
            "failing": SinkPolicy(
                concurrency=1, retry=RetryPolicy(100, RetryBackoff(initial=3600, max_backoff=3600))
            ),
            "healthy": SinkPolicy(concurrency=1),
        },
        sleep=sleep,
    )
    d.start()
    events = [make_event(f"ns/obj-{i}") for i in range(50)]
    for event in events:
        d.submit(event)
    assert healthy.wait_sent(50)
    assert sleep.entered.wait(WAIT)
    assert healthy.sent == events
    assert d.stats()["healthy"] == SinkStats(delivered=50)
    failing_stats = d.stats()["failing"]
    assert (failing_stats.delivered, failing_stats.failed) == (0, 0)  # still retrying
    assert failing.attempts == events[:1]  # in the backoff after its first attempt
    assert failing_stats.queued == 49
    assert not sleep.release.is_set()
    sleep.release.set()  # ends the backoff as an interruption: shutdown
    assert d.close(timeout=0) is False
    assert d.stats()["failing"].failed == 50
