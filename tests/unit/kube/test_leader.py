"""Leader election: acquire, renew, expiry measured by the local clock, step-down, 409, release.

The Lease lives in a fake API server (resourceVersions, 409 on a stale PUT, scripted
faults); time is a fake clock that the injected ``sleep`` advances, and each test's script
runs from inside that sleep. So the elector's loop runs in the test's own thread and
nothing waits for real seconds (except the hung-request test, which needs a real clock).
"""

from __future__ import annotations

import copy
import logging
import re
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

import kubewatch.kube.leader as leader_module
from kubewatch.config import LeaderElectionConfig
from kubewatch.errors import ApiError
from kubewatch.kube.failures import ApiUnreachable
from kubewatch.kube.leader import LeaderElector, lease_namespace
from kubewatch.timefmt import micro_time

NS = "kw"
LEASES = f"/apis/coordination.k8s.io/v1/namespaces/{NS}/leases"
PATH = f"{LEASES}/kubewatch"
CONFIG = LeaderElectionConfig(lease_duration=15, renew_deadline=10, retry_period=2)
MICRO_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")
WAIT = 10.0
"""Seconds a test waits for something that should happen at once (a hang guard only)."""


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def wall(self) -> datetime:
        return datetime(2026, 11, 26, 22, 0, tzinfo=timezone.utc) + timedelta(seconds=self.now)


class FakeApi:
    """Leases in memory, with resourceVersions and the API server's 404/409 answers.

    ``fault(method, path)`` may return an exception to raise instead of answering;
    ``before_write(method, body)`` runs before a write is judged (to interleave a rival).
    """

    def __init__(self) -> None:
        self.objects: dict[str, dict[str, Any]] = {}
        self.calls: list[tuple[str, str]] = []
        self.fault: Callable[[str, str], Exception | None] = lambda method, path: None
        self.before_write: Callable[[str, dict[str, Any] | None], None] = lambda m, b: None
        self._rv = 100
        self._lock = threading.Lock()

    def _next_rv(self) -> str:
        self._rv += 1
        return str(self._rv)

    def _check(self, method: str, path: str) -> None:
        self.calls.append((method, path))
        error = self.fault(method, path)
        if error is not None:
            raise error

    def get_json(self, path: str, params: list[tuple[str, str]] | None = None) -> dict[str, Any]:
        with self._lock:
            self._check("GET", path)
            if path not in self.objects:
                raise ApiError(404, "NotFound", f"{path} not found")
            return copy.deepcopy(self.objects[path])

    def request_json(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        *,
        params: list[tuple[str, str]] | None = None,
        content_type: str = "application/json",
    ) -> dict[str, Any]:
        self.before_write(method, body)
        with self._lock:
            self._check(method, path)
            assert body is not None
            if method == "POST":
                target = f"{path}/{body['metadata']['name']}"
                if target in self.objects:
                    raise ApiError(409, "AlreadyExists", "exists")
                stored = copy.deepcopy(body)
                stored["metadata"] = {**body["metadata"], "resourceVersion": self._next_rv()}
                self.objects[target] = stored
                return copy.deepcopy(stored)
            assert method == "PUT", method
            if path not in self.objects:
                raise ApiError(404, "NotFound", "not found")
            current = self.objects[path]
            if body["metadata"].get("resourceVersion") != current["metadata"]["resourceVersion"]:
                raise ApiError(409, "Conflict", "the object has been modified")
            stored = copy.deepcopy(body)
            stored["metadata"] = {**body["metadata"], "resourceVersion": self._next_rv()}
            self.objects[path] = stored
            return copy.deepcopy(stored)

    # -- helpers for tests ----------------------------------------------------------------

    def spec(self, path: str = PATH) -> dict[str, Any]:
        return dict(self.objects[path]["spec"])

    def put_spec(self, path: str = PATH, **spec: Any) -> None:
        """Another replica writes the Lease (a new resourceVersion)."""
        with self._lock:
            obj = self.objects.setdefault(
                path, {"metadata": {"name": path.rsplit("/", 1)[1], "namespace": NS}, "spec": {}}
            )
            obj["spec"] = {**obj["spec"], **spec}
            obj["metadata"]["resourceVersion"] = self._next_rv()

    def count(self, method: str) -> int:
        return sum(1 for m, _ in self.calls if m == method)


class Harness:
    """One elector on a fake clock; ``script(n)`` runs at the n-th sleep (from 1)."""

    def __init__(
        self,
        api: FakeApi,
        clock: FakeClock,
        identity: str = "a",
        config: LeaderElectionConfig = CONFIG,
    ) -> None:
        self.api = api
        self.clock = clock
        self.sleeps = 0
        self.script: Callable[[int], None] = lambda n: None
        self.log: list[tuple[str, float]] = []
        self.elector = LeaderElector(
            api,
            config,
            identity=identity,
            namespace=NS,
            on_started_leading=lambda: self.log.append(("started", clock.now)),
            on_stopped_leading=lambda: self.log.append(("stopped", clock.now)),
            clock=clock,
            wall=clock.wall,
            sleep=self._sleep,
        )

    def _sleep(self, seconds: float) -> None:
        self.clock.now += seconds
        self.sleeps += 1
        self.script(self.sleeps)

    def run(self, script: Callable[[int], None], max_sleeps: int = 200) -> None:
        def guarded(n: int) -> None:
            assert n <= max_sleeps, "the elector never stopped"
            script(n)

        self.script = guarded
        self.elector.run()

    def stop_after(self, sleeps: int, release: bool = True) -> Callable[[int], None]:
        def script(n: int) -> None:
            if n >= sleeps:
                self.elector.stop(release=release)

        return script


@pytest.fixture(autouse=True)
def _no_jitter(monkeypatch: pytest.MonkeyPatch) -> None:
    """Acquire waits are exactly retryPeriod, to keep the fake timeline readable."""
    monkeypatch.setattr(leader_module.random, "random", lambda: 0.0)


@pytest.fixture
def api() -> FakeApi:
    return FakeApi()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def test_acquires_an_absent_lease_by_creating_it(api: FakeApi, clock: FakeClock) -> None:
    h = Harness(api, clock)
    seen: list[dict[str, Any]] = []

    def script(n: int) -> None:
        seen.append(api.spec())
        assert h.elector.is_leader
        h.elector.stop()

    expected = micro_time(clock.wall())
    h.run(script)
    assert api.calls[:2] == [("GET", PATH), ("POST", LEASES)]
    spec = seen[0]
    assert spec["holderIdentity"] == "a"
    assert spec["leaseDurationSeconds"] == 15
    assert spec["leaseTransitions"] == 0
    assert MICRO_TIME.fullmatch(spec["acquireTime"])
    assert spec["renewTime"] == spec["acquireTime"] == expected
    assert [what for what, _ in h.log] == ["started", "stopped"]
    assert h.elector.leader == ""  # released on stop
    assert not h.elector.is_leader


def test_micro_time_format() -> None:
    moment = datetime(2026, 11, 26, 22, 10, 51, 123456, tzinfo=timezone.utc)
    assert micro_time(moment) == "2026-11-26T22:10:51.123456Z"
    assert micro_time(moment.astimezone(timezone(timedelta(hours=2)))) == micro_time(moment)


def test_renews_every_retry_period_keeping_acquire_time(api: FakeApi, clock: FakeClock) -> None:
    h = Harness(api, clock)
    specs: list[dict[str, Any]] = []
    leading: list[bool] = []

    def script(n: int) -> None:
        specs.append(api.spec())
        leading.append(h.elector.is_leader)
        if n >= 6:
            h.elector.stop(release=False)

    h.run(script)
    renew_times = [s["renewTime"] for s in specs]
    assert len(set(renew_times)) == len(renew_times)  # renewed between every two sleeps
    assert {s["acquireTime"] for s in specs} == {specs[0]["acquireTime"]}
    assert {s["leaseTransitions"] for s in specs} == {0}
    assert all(leading)
    assert api.count("PUT") == 5  # the fast path: no GET before each renewal
    assert api.count("GET") == 1
    assert api.spec()["holderIdentity"] == "a"  # not released


def test_no_takeover_while_the_holder_renews(
    api: FakeApi, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """Even with a renewTime far in the past: only a *change* of the record counts."""
    api.put_spec(
        holderIdentity="b", leaseDurationSeconds=15, renewTime="2020-01-01T00:00:00.000000Z"
    )
    h = Harness(api, clock)

    def script(n: int) -> None:
        if n % 5 == 0:  # b renews every 10 s (retryPeriod 2 s per sleep)
            api.put_spec(renewTime=micro_time(clock.wall()))
        if n >= 40:  # 80 s, more than five lease durations
            h.elector.stop()

    with caplog.at_level(logging.INFO, logger="kubewatch.kube.leader"):
        h.run(script)
    assert h.log == []
    assert api.count("PUT") == 0 and api.count("POST") == 0
    assert api.spec()["holderIdentity"] == "b"
    assert h.elector.leader == "b"
    assert "leader is b" in caplog.text


def test_takes_over_only_after_the_record_is_unchanged_for_the_lease_duration(
    api: FakeApi, clock: FakeClock
) -> None:
    """The expiry runs from when *we* first saw the record, whatever its renewTime says:
    a renewTime in the future does not hold us off, one in the past does not hurry us."""
    api.put_spec(
        holderIdentity="b",
        leaseDurationSeconds=15,
        renewTime="2099-01-01T00:00:00.000000Z",
        acquireTime="2099-01-01T00:00:00.000000Z",
        leaseTransitions=4,
    )
    h = Harness(api, clock)
    first_seen = clock.now
    h.run(h.stop_after(20, release=False))
    (started,) = [t for what, t in h.log if what == "started"]
    assert started >= first_seen + 15
    assert started < first_seen + 15 + CONFIG.retry_period + 1e-9  # the first try after it
    spec = api.spec()
    assert spec["holderIdentity"] == "a"
    assert spec["leaseTransitions"] == 5
    assert spec["acquireTime"] != "2099-01-01T00:00:00.000000Z"


def test_an_observed_change_restarts_the_expiry(api: FakeApi, clock: FakeClock) -> None:
    api.put_spec(holderIdentity="b", leaseDurationSeconds=15, renewTime="x1")
    h = Harness(api, clock)
    changed_at: list[float] = []

    def script(n: int) -> None:
        if n == 6:  # 12 s in, b renews once more and then dies
            api.put_spec(renewTime="x2")
            changed_at.append(clock.now)
        if n >= 30:
            h.elector.stop(release=False)

    h.run(script)
    (started,) = [t for what, t in h.log if what == "started"]
    assert started >= changed_at[0] + 15


def test_takes_a_released_lease_at_once(api: FakeApi, clock: FakeClock) -> None:
    api.put_spec(holderIdentity="", leaseDurationSeconds=1, leaseTransitions=2)
    h = Harness(api, clock)
    start = clock.now
    h.run(h.stop_after(1, release=False))
    assert h.log[0] == ("started", start)
    assert api.spec()["leaseTransitions"] == 3


def test_takes_back_its_own_lease_at_once_after_a_restart(api: FakeApi, clock: FakeClock) -> None:
    api.put_spec(holderIdentity="a", leaseDurationSeconds=15, acquireTime="t0", leaseTransitions=7)
    h = Harness(api, clock)
    start = clock.now
    h.run(h.stop_after(1, release=False))
    assert h.log[0] == ("started", start)
    assert api.spec()["leaseTransitions"] == 7  # no change of holder
    assert api.spec()["acquireTime"] == "t0"


def test_steps_down_when_renewals_fail_past_the_deadline(api: FakeApi, clock: FakeClock) -> None:
    h = Harness(api, clock)
    broken_at: list[float] = []
    last_renewal: list[float] = []

    def script(n: int) -> None:
        if n == 3:
            last_renewal.append(clock.now - CONFIG.retry_period)  # the renewal before this sleep
            broken_at.append(clock.now)
            api.fault = lambda method, path: ApiUnreachable(f"{method} {path}: refused")
        if n >= 3 and h.log[-1][0] == "started":
            assert h.elector.is_leader == (clock.now < last_renewal[0] + CONFIG.renew_deadline)
        if n >= 12:
            h.elector.stop()

    h.run(script)
    assert [what for what, _ in h.log] == ["started", "stopped"]
    stopped = h.log[1][1]
    assert last_renewal[0] + CONFIG.renew_deadline <= stopped
    assert stopped < last_renewal[0] + CONFIG.lease_duration  # before anyone may take over
    assert not h.elector.is_leader


def test_api_errors_count_like_unreachable(api: FakeApi, clock: FakeClock) -> None:
    h = Harness(api, clock)

    def script(n: int) -> None:
        if n == 2:
            api.fault = lambda method, path: ApiError(500, "InternalError", "etcd")
        if n >= 10:
            h.elector.stop()

    h.run(script)
    assert [what for what, _ in h.log] == ["started", "stopped"]
    last_renewal = 1000.0 + CONFIG.retry_period  # the renewal at the first sleep
    assert last_renewal + CONFIG.renew_deadline <= h.log[1][1]
    assert h.log[1][1] < last_renewal + CONFIG.lease_duration


def test_steps_down_at_once_when_someone_else_holds_it(api: FakeApi, clock: FakeClock) -> None:
    h = Harness(api, clock)
    taken_at: list[float] = []

    def script(n: int) -> None:
        if n == 2:
            api.put_spec(holderIdentity="b", renewTime="now")
            taken_at.append(clock.now)
        if n >= 4:
            h.elector.stop()

    h.run(script)
    assert h.log == [("started", 1000.0), ("stopped", taken_at[0])]
    assert api.spec()["holderIdentity"] == "b"  # never clobbered, not even by the release
    assert h.elector.leader == "b"


def test_stop_releases_so_a_standby_takes_over_at_once(api: FakeApi, clock: FakeClock) -> None:
    first = Harness(api, clock, identity="a")
    first.run(first.stop_after(3))
    released = api.spec()
    assert released["holderIdentity"] == ""
    assert released["leaseDurationSeconds"] == 1
    assert released["leaseTransitions"] == 0
    assert [what for what, _ in first.log] == ["started", "stopped"]

    second = Harness(api, clock, identity="b")
    start = clock.now
    second.run(second.stop_after(1, release=False))
    assert second.log[0] == ("started", start)  # no wait for an expiry
    assert api.spec()["holderIdentity"] == "b"
    assert api.spec()["leaseTransitions"] == 1


def test_stop_without_release_leaves_the_claim_to_expire(api: FakeApi, clock: FakeClock) -> None:
    first = Harness(api, clock, identity="a")
    first.run(first.stop_after(2, release=False))
    assert [what for what, _ in first.log] == ["started", "stopped"]
    assert api.spec()["holderIdentity"] == "a"

    second = Harness(api, clock, identity="b")
    start = clock.now
    second.run(second.stop_after(12, release=False))
    (started,) = [t for what, t in second.log if what == "started"]
    assert started >= start + CONFIG.lease_duration


def test_stop_while_campaigning_calls_no_callback(api: FakeApi, clock: FakeClock) -> None:
    api.put_spec(holderIdentity="b", leaseDurationSeconds=15, renewTime="r")
    h = Harness(api, clock)
    h.run(h.stop_after(2))
    assert h.log == []
    assert api.spec()["holderIdentity"] == "b"


def test_stop_before_run_returns_at_once(api: FakeApi, clock: FakeClock) -> None:
    h = Harness(api, clock)
    assert h.elector.stop()
    h.elector.run()
    assert api.calls == [] and h.log == []
    with pytest.raises(RuntimeError):
        h.elector.run()


def test_callback_errors_are_logged_and_the_elector_carries_on(
    api: FakeApi, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    def boom() -> None:
        raise RuntimeError("boom")

    ticks: list[int] = []

    def sleep(seconds: float) -> None:
        clock.now += seconds
        ticks.append(1)
        if len(ticks) >= 3:
            elector.stop()

    elector = LeaderElector(
        api,
        CONFIG,
        identity="a",
        namespace=NS,
        on_started_leading=boom,
        on_stopped_leading=boom,
        clock=clock,
        wall=clock.wall,
        sleep=sleep,
    )
    elector.run()
    assert "on_started_leading failed" in caplog.text
    assert "on_stopped_leading failed" in caplog.text
    assert api.spec()["holderIdentity"] == ""  # renewed, then released


def test_transitions_are_logged_at_info(
    api: FakeApi, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    h = Harness(api, clock)

    def script(n: int) -> None:
        if n == 2:
            api.put_spec(holderIdentity="b", renewTime="now")
        if n >= 3:
            h.elector.stop()

    with caplog.at_level(logging.INFO, logger="kubewatch.kube.leader"):
        h.run(script)
    text = caplog.text
    assert "kw/kubewatch: became leader (a): created the lease" in text
    assert "lost leadership (a): the lease is held by b" in text
    assert "leader is b" in text


def test_a_hung_request_cannot_keep_a_leader_past_its_deadline() -> None:
    """Real clock, short timings: the renewal hangs (the client's own read timeout is a
    minute) and the leader still steps down at its renew deadline."""
    api = FakeApi()
    gate = threading.Event()
    stopped = threading.Event()
    config = LeaderElectionConfig(lease_duration=0.6, renew_deadline=0.4, retry_period=0.1)
    elector = LeaderElector(
        api,
        config,
        identity="a",
        namespace=NS,
        on_started_leading=lambda: None,
        on_stopped_leading=stopped.set,
    )
    thread = elector.start()
    try:
        deadline = time.monotonic() + WAIT
        while not elector.is_leader:
            assert time.monotonic() < deadline, "never became leader"
            time.sleep(0.01)

        def hang(method: str, path: str) -> Exception | None:
            if method != "GET":
                gate.wait(WAIT)
            return ApiUnreachable("after the hang")

        api.fault = hang
        assert stopped.wait(WAIT), "the leader did not step down"
        assert not elector.is_leader
    finally:
        gate.set()
        assert elector.stop(timeout=WAIT)
        thread.join(WAIT)


def test_lease_namespace(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("POD_NAMESPACE", raising=False)
    assert lease_namespace(LeaderElectionConfig()) == "default"
    monkeypatch.setenv("POD_NAMESPACE", "ops")
    assert lease_namespace(LeaderElectionConfig()) == "ops"
    assert lease_namespace(LeaderElectionConfig(namespace="elsewhere")) == "elsewhere"


def test_empty_identity_is_refused(api: FakeApi) -> None:
    with pytest.raises(ValueError):
        LeaderElector(
            api,
            CONFIG,
            identity="",
            namespace=NS,
            on_started_leading=lambda: None,
            on_stopped_leading=lambda: None,
        )
