"""The work queue: client-go ``util/workqueue`` semantics, pinned.

Delays and backoff run on a fake clock that the test steps; the only real waits are hang
guards (a test that hangs fails instead of blocking the suite).
"""

from __future__ import annotations

import random
import sys
import threading
import time
from collections import Counter

import pytest

from kubewatch.kube.workqueue import (
    BASE_DELAY,
    MAX_DELAY,
    OVERALL_BURST,
    OVERALL_PER_SECOND,
    RateLimiter,
    WorkQueue,
)

HANG = 10.0
"""Seconds a thread may take before the test counts it as hung (never reached when green)."""


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def step(self, seconds: float) -> None:
        self.now += seconds


def queue() -> tuple[WorkQueue[str], FakeClock]:
    clock = FakeClock()
    return WorkQueue(clock=clock), clock


def assert_invariants(q: WorkQueue[str]) -> None:
    """The field invariants the module states."""
    with q._cond:
        queued = list(q._queue)
        assert len(queued) == len(set(queued)), "a key is queued twice"
        assert set(queued) <= q._dirty, "a queued key is not dirty"
        assert not set(queued) & q._processing, "a key is queued while processing"
        assert all(q._due[key] == due for due, _, key in q._waiting if key in q._due)


def drain(q: WorkQueue[str]) -> list[str]:
    """Every key queued now, each taken and done (never blocks)."""
    out = []
    while q.len():
        key = q.get()
        assert key is not None
        out.append(key)
        q.done(key)
    return out


# -- the queue --------------------------------------------------------------------------


def test_keys_come_out_in_order_and_duplicates_collapse() -> None:
    q, _ = queue()
    for key in ["a", "b", "a", "c", "b", "a"]:
        q.add(key)
    assert_invariants(q)
    assert q.len() == 3
    assert drain(q) == ["a", "b", "c"]


def test_a_key_added_while_processing_waits_and_runs_once_more_after_done() -> None:
    q, _ = queue()
    q.add("a")
    assert q.get() == "a"
    q.add("a")
    q.add("a")
    assert q.len() == 0, "handed out again while still being processed"
    assert_invariants(q)
    q.done("a")
    assert q.len() == 1
    assert drain(q) == ["a"]
    assert q.len() == 0


def test_done_without_a_new_add_does_not_queue_the_key_again() -> None:
    q, _ = queue()
    q.add("a")
    assert q.get() == "a"
    q.done("a")
    assert q.len() == 0


def test_a_waiting_get_wakes_for_an_add() -> None:
    q, _ = queue()
    got: list[str | None] = []
    worker = threading.Thread(target=lambda: got.append(q.get()))
    worker.start()
    q.add("a")
    worker.join(HANG)
    assert got == ["a"]


def test_shut_down_wakes_every_getter_and_ignores_later_adds() -> None:
    q, _ = queue()
    got: list[str | None] = []
    workers = [threading.Thread(target=lambda: got.append(q.get())) for _ in range(5)]
    for worker in workers:
        worker.start()
    q.shut_down()
    for worker in workers:
        worker.join(HANG)
    assert got == [None] * 5
    q.add("a")
    q.add_after("b", 1.0)
    q.add_rate_limited("c")
    assert q.len() == 0
    assert q.get() is None
    assert q.shutting_down


def test_shut_down_drops_what_is_queued_and_a_late_done_is_harmless() -> None:
    q, _ = queue()
    q.add("a")
    q.add("b")
    assert q.get() == "a"
    q.add("a")  # dirty while processing
    q.shut_down()
    assert q.get() is None
    q.done("a")
    assert q.len() == 0
    q.shut_down()  # idempotent


# -- delays -----------------------------------------------------------------------------


def test_add_after_adds_once_the_delay_has_passed() -> None:
    q, clock = queue()
    q.add_after("a", 1.0)
    assert q.len() == 0
    clock.step(0.5)
    assert q.len() == 0
    clock.step(0.5)
    assert q.len() == 1
    assert drain(q) == ["a"]


def test_a_delayed_key_keeps_its_earlier_due_time_and_is_added_once() -> None:
    q, clock = queue()
    q.add_after("a", 5.0)
    q.add_after("a", 1.0)  # earlier: moves it up
    q.add_after("a", 3.0)  # later: ignored
    clock.step(1.0)
    assert drain(q) == ["a"]
    assert_invariants(q)
    clock.step(10.0)
    assert q.len() == 0, "the replaced due time fired as well"


def test_delayed_keys_come_out_in_due_order_and_a_non_positive_delay_adds_at_once() -> None:
    q, clock = queue()
    q.add_after("late", 2.0)
    q.add_after("early", 1.0)
    q.add_after("now", 0.0)
    assert drain(q) == ["now"]
    clock.step(2.0)
    assert drain(q) == ["early", "late"]


def test_a_delayed_key_already_queued_collapses_into_it() -> None:
    q, clock = queue()
    q.add("a")
    q.add_after("a", 1.0)
    clock.step(1.0)
    assert drain(q) == ["a"]


def test_a_getter_waiting_for_a_delayed_key_gets_it_when_due() -> None:
    q, clock = queue()
    q.add_after("a", 30.0)
    got: list[str | None] = []
    worker = threading.Thread(target=lambda: got.append(q.get()))
    worker.start()
    clock.step(30.0)
    q.len()  # any call moves due keys in and wakes the getter
    worker.join(HANG)
    assert got == ["a"]


def test_a_getter_sleeps_until_the_first_key_is_due_on_the_real_clock() -> None:
    q: WorkQueue[str] = WorkQueue()
    q.add_after("a", 0.002)
    assert q.get() == "a"


# -- rate limits ------------------------------------------------------------------------


def test_per_key_backoff_doubles_from_5ms_to_1000s_and_forget_resets_it() -> None:
    limiter: RateLimiter[str] = RateLimiter(per_second=1e9, burst=10**6, clock=FakeClock())
    delays = [limiter.when("a") for _ in range(20)]
    assert delays[:4] == [BASE_DELAY, 2 * BASE_DELAY, 4 * BASE_DELAY, 8 * BASE_DELAY]
    assert delays[-1] == MAX_DELAY
    assert max(delays) == MAX_DELAY
    assert limiter.when("b") == BASE_DELAY, "keys back off independently"
    assert limiter.num_requeues("a") == 20
    limiter.forget("a")
    assert limiter.num_requeues("a") == 0
    assert limiter.when("a") == BASE_DELAY


def test_the_default_limiter_is_client_gos_controller_limiter() -> None:
    limiter: RateLimiter[str] = RateLimiter()
    assert (limiter.base_delay, limiter.max_delay) == (0.005, 1000.0)
    assert (OVERALL_PER_SECOND, OVERALL_BURST) == (10.0, 100)


def test_the_overall_bucket_spreads_many_failing_keys() -> None:
    clock = FakeClock()
    limiter: RateLimiter[str] = RateLimiter(per_second=10.0, burst=2, clock=clock)
    delays = [limiter.when(f"k{i}") for i in range(5)]
    assert delays == pytest.approx([BASE_DELAY, BASE_DELAY, 0.1, 0.2, 0.3])
    clock.step(1.0)  # ten tokens gained: the three promised, and the bucket full again
    assert limiter.when("k9") == pytest.approx(BASE_DELAY)


def test_add_rate_limited_requeues_with_backoff_until_forgotten() -> None:
    clock = FakeClock()
    q: WorkQueue[str] = WorkQueue(RateLimiter(clock=clock), clock=clock)
    q.add_rate_limited("a")
    q.add_rate_limited("a")  # second failure: 10 ms; the first due time (5 ms) stays
    assert q.num_requeues("a") == 2
    assert q.len() == 0
    clock.step(BASE_DELAY)
    assert drain(q) == ["a"]
    q.forget("a")
    assert q.num_requeues("a") == 0


# -- many threads -----------------------------------------------------------------------


def test_stress_one_worker_per_key_and_every_last_add_is_processed() -> None:
    """Producers bump a key's version, then add it (now or after a ms or two); workers
    record the version they saw when a run starts. No key ever runs on two workers at
    once, and once the producers stop every key's last run saw its last version without
    a shutdown to wake anyone (a lost wake-up leaves a key queued and this waits in vain).
    Three rounds, the middle one with plain adds only, each starting with idle workers."""
    q: WorkQueue[str] = WorkQueue()
    keys = [f"ns/obj-{i}" for i in range(8)]
    lock = threading.Lock()
    progress = threading.Condition(lock)
    version = dict.fromkeys(keys, 0)
    seen = dict.fromkeys(keys, -1)
    active: set[str] = set()
    overlaps: list[str] = []
    runs: Counter[str] = Counter()
    adds = 0

    def produce(seed: int, delays: bool) -> None:
        nonlocal adds
        rng = random.Random(seed)
        for _ in range(500):
            key = rng.choice(keys)
            with lock:
                version[key] += 1
                adds += 1
            if delays and rng.random() < 0.1:
                q.add_after(key, rng.choice([0.0, 0.001, 0.002]))
            else:
                q.add(key)

    def work() -> None:
        while (key := q.get()) is not None:
            with lock:
                if key in active:
                    overlaps.append(key)
                active.add(key)
                seen[key] = version[key]
                runs[key] += 1
            time.sleep(0)  # let the others run while this key is being processed
            with lock:
                active.discard(key)
            q.done(key)
            with progress:
                progress.notify_all()

    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    caught_up = []
    try:
        workers = [threading.Thread(target=work, daemon=True) for _ in range(8)]
        for thread in workers:
            thread.start()
        for round_ in range(3):  # between rounds every worker waits in get: idle wake-ups
            producers = [
                threading.Thread(target=produce, args=(round_ * 100 + i, round_ != 1))
                for i in range(8)
            ]
            for thread in producers:
                thread.start()
            for thread in producers:
                thread.join()
            with progress:
                caught_up.append(progress.wait_for(lambda: seen == version, HANG))
        q.shut_down()
        for thread in workers:
            thread.join(HANG)
    finally:
        sys.setswitchinterval(old)
    assert overlaps == []
    behind = {k: (seen[k], version[k]) for k in keys if seen[k] != version[k]}
    assert caught_up == [True] * 3, behind
    assert not any(thread.is_alive() for thread in workers)
    assert sum(runs.values()) <= adds
    assert_invariants(q)
