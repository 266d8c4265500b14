"""kubewatch.backoff: the waits grow, stay within their jittered ceiling, cap, and start
over after a healthy period. Time is a parameter: no sleeps."""

from __future__ import annotations

import random

import pytest

from kubewatch.backoff import Backoff, RetryBackoff, ceiling


def test_ceiling_doubles_from_initial_to_the_cap() -> None:
    assert [ceiling(0.8, 30, n) for n in range(1, 8)] == [0.8, 1.6, 3.2, 6.4, 12.8, 25.6, 30]
    assert ceiling(0.8, 30, 10_000) == 30  # no overflow


def test_waits_are_jittered_within_half_the_ceiling_and_the_ceiling() -> None:
    now = [0.0]
    b = Backoff(0.8, 30, 120, rng=random.Random(7), clock=lambda: now[0])
    for n in range(1, 40):
        cap = ceiling(0.8, 30, n)
        delay = b.next_delay()
        assert cap / 2 <= delay <= cap
        now[0] += delay  # failing again right after each wait


def test_a_healthy_period_resets_and_reset_forgets() -> None:
    now = [0.0]
    b = Backoff(1, 8, 60, rng=random.Random(0), clock=lambda: now[0])
    for _ in range(5):
        b.next_delay()
    assert b.failures == 5
    now[0] += 60  # exactly the period: not yet healthy long enough
    assert b.next_delay() >= 4
    now[0] += 61
    assert 0.5 <= b.next_delay() <= 1
    b.next_delay()
    b.reset()
    assert b.failures == 0 and b.next_delay() <= 1


def test_initial_must_be_positive_and_below_the_cap() -> None:
    with pytest.raises(ValueError, match="initial"):
        Backoff(0, 1, 1)
    with pytest.raises(ValueError, match="initial"):
        Backoff(2, 1, 1)


def test_relists_and_deliveries_share_one_ceiling() -> None:
    """A sink's retries and a watch's relists grow by the same formula."""
    retry = RetryBackoff(initial=0.5, max_backoff=30.0)
    for failures in range(1, 80):
        assert retry.ceiling(failures) == ceiling(0.5, 30.0, failures)
