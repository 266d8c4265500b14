"""desired_status(): status written only when it changed; lastTransitionTime only on a
transition of the condition's status."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from kubewatch.tenancy.reconcile import REASONS, Compiled, Failure, desired_status
from kubewatch.tenancy.status import with_delivery

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)
READY = Compiled(resources=(), sinks={}, routes=())


def ready_of(status: dict[str, Any]) -> dict[str, Any]:
    [cond] = [c for c in status["conditions"] if c["type"] == "Ready"]
    return cond


def test_first_status() -> None:
    status = desired_status(None, Failure("Invalid", "spec.x: bad"), 3, T0)
    assert status == {
        "observedGeneration": 3,
        "conditions": [
            {"type": "Ready", "status": "False", "reason": "Invalid", "message": "spec.x: bad",
             "lastTransitionTime": "2024-05-01T12:00:00Z", "observedGeneration": 3}
        ],
    }  # fmt: skip


def test_nothing_changed_writes_nothing() -> None:
    status = desired_status(None, READY, 1, T0)
    assert desired_status(status, READY, 1, T0 + timedelta(hours=1)) is None


def test_a_new_reason_keeps_the_transition_time() -> None:
    first = desired_status(None, Failure("Invalid", "a"), 1, T0)
    later = desired_status(first, Failure("SecretNotFound", "b"), 2, T0 + timedelta(minutes=5))
    assert later is not None
    cond = ready_of(later)
    assert (cond["reason"], cond["message"]) == ("SecretNotFound", "b")
    assert cond["lastTransitionTime"] == "2024-05-01T12:00:00Z"
    assert later["observedGeneration"] == cond["observedGeneration"] == 2


def test_a_transition_moves_the_time() -> None:
    first = desired_status(None, Failure("Invalid", "a"), 1, T0)
    fixed = desired_status(first, READY, 2, T0 + timedelta(minutes=5))
    assert fixed is not None
    assert ready_of(fixed)["status"] == "True"
    assert ready_of(fixed)["lastTransitionTime"] == "2024-05-01T12:05:00Z"


def test_other_fields_and_conditions_are_kept() -> None:
    old = with_delivery({"conditions": [{"type": "Other", "status": "True"}]}, "chat", T0)
    old = with_delivery(old, "hook", T0, error="HTTP 500")
    new = desired_status(old, READY, 1, T0)
    assert new is not None
    assert new["lastDelivery"] == {"time": "2024-05-01T12:00:00Z", "sink": "chat"}
    assert new["lastError"] == {
        "time": "2024-05-01T12:00:00Z",
        "sink": "hook",
        "message": "HTTP 500",
    }
    assert new["conditions"][0] == {"type": "Other", "status": "True"}


outcomes = st.one_of(
    st.just(READY),
    st.builds(Failure, st.sampled_from(REASONS[1:]), st.text(max_size=20)),
)


@given(st.lists(st.tuples(outcomes, st.integers(1, 5)), min_size=1, max_size=12))
def test_any_sequence_of_reconciles(steps: list[tuple[Any, int]]) -> None:
    """Applying each step's status: a repeat is a no-op, and the transition time is the
    time of the last change of Ready's status."""
    status: dict[str, Any] | None = None
    last_status, changed_at = None, None
    for i, (outcome, generation) in enumerate(steps):
        now = T0 + timedelta(minutes=i)
        new = desired_status(status, outcome, generation, now)
        if new is None:
            assert status is not None
            continue
        want = "True" if outcome.reason == "Ready" else "False"
        if want != last_status:
            last_status, changed_at = want, now
        status = new
        cond = ready_of(status)
        assert cond["status"] == want and cond["reason"] == outcome.reason
        assert cond["lastTransitionTime"] == changed_at.strftime("%Y-%m-%dT%H:%M:%SZ")
        assert desired_status(status, outcome, generation, now + timedelta(days=1)) is None
