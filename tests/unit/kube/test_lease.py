"""kubewatch.kube.lease through the elector: the claim written, and how a 409 or a 404
from a rival or a deleted Lease is judged."""

from __future__ import annotations

from typing import Any

from kubewatch.config import LeaderElectionConfig
from tests.unit.kube.test_leader import (  # noqa: F401  (_no_jitter: autouse)
    CONFIG,
    PATH,
    FakeApi,
    FakeClock,
    Harness,
    _no_jitter,
)


def test_lease_duration_is_rounded_up() -> None:
    """Others must never consider the claim shorter than the leader assumes it is."""
    api, clock = FakeApi(), FakeClock()
    config = LeaderElectionConfig(lease_duration=2.5, renew_deadline=2, retry_period=0.5)
    h = Harness(api, clock, config=config)
    h.run(h.stop_after(1, release=False))
    assert api.spec()["leaseDurationSeconds"] == 3


def test_a_conflict_on_acquire_means_a_rival_won() -> None:
    """The rival's write lands between our read and our PUT: 409, we read again and
    respect its fresh claim."""
    api, clock = FakeApi(), FakeClock()
    api.put_spec(holderIdentity="", leaseDurationSeconds=1)
    h = Harness(api, clock)
    raced: list[bool] = []

    def rival(method: str, body: dict[str, Any] | None) -> None:
        if method == "PUT" and not raced:
            raced.append(True)
            api.put_spec(holderIdentity="b", leaseDurationSeconds=15, renewTime="r1")

    api.before_write = rival
    h.run(h.stop_after(3))
    assert h.log == []
    assert api.spec()["holderIdentity"] == "b"
    assert api.count("PUT") == 1  # the one that lost; later attempts saw b's claim
    assert h.elector.leader == "b"


def test_a_conflict_on_create_means_a_rival_won() -> None:
    api, clock = FakeApi(), FakeClock()
    h = Harness(api, clock)

    def rival(method: str, body: dict[str, Any] | None) -> None:
        if method == "POST" and PATH not in api.objects:
            api.put_spec(holderIdentity="b", leaseDurationSeconds=15, renewTime="r1")

    api.before_write = rival
    h.run(h.stop_after(3))
    assert h.log == []
    assert api.spec()["holderIdentity"] == "b"


def test_a_conflict_on_renewal_is_checked_on_the_slow_path() -> None:
    """Someone touched the Lease without taking it (e.g. kubectl annotate): the leader
    reads it, sees itself as holder and renews on the new version."""
    api, clock = FakeApi(), FakeClock()
    h = Harness(api, clock)

    def script(n: int) -> None:
        if n == 2:
            api.put_spec()  # a new resourceVersion, same holder
        if n >= 4:
            h.elector.stop(release=False)

    h.run(script)
    assert [what for what, _ in h.log] == ["started", "stopped"]
    assert h.log[1][1] == 1000.0 + 4 * CONFIG.retry_period  # stopped by us, not lost
    assert api.count("GET") == 2


def test_a_deleted_lease_is_recreated_by_the_leader() -> None:
    api, clock = FakeApi(), FakeClock()
    h = Harness(api, clock)

    def script(n: int) -> None:
        if n == 2:
            del api.objects[PATH]
        if n >= 4:
            h.elector.stop(release=False)

    h.run(script)
    assert [what for what, _ in h.log] == ["started", "stopped"]
    assert api.count("POST") == 2
    assert api.spec()["holderIdentity"] == "a"
