"""Leader election and kubewatch's own Events against a real API server.

Two electors run in threads, each with its own connection, as two replicas would, with
short timings (lease 3 s, renew deadline 2 s, retry 0.5 s). A sampler checks the
``is_leader`` flags all along; a watch on the Lease records every version of its record,
which shows *how* each handover happened (a release, or an expiry) from the API server's
point of view rather than from timing.
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
from kubernetes import client as k8s

from kubewatch.config import LeaderElectionConfig
from kubewatch.kube.client import ClusterClient, Query
from kubewatch.kube.failures import ApiUnreachable
from kubewatch.kube.leader import LeaderElector
from kubewatch.kube.recorder import EventRecorder
from tests.e2e.conftest import KUBECONFIG, wait_for

pytestmark = pytest.mark.e2e

FAST = LeaderElectionConfig(
    lease_name="kubewatch-e2e", lease_duration=3, renew_deadline=2, retry_period=0.5
)
LEASES = "/apis/coordination.k8s.io/v1/namespaces/{}/leases"


@pytest.fixture
def connect() -> Iterator[Any]:
    clients: list[ClusterClient] = []

    def make() -> ClusterClient:
        client = ClusterClient.connect(str(KUBECONFIG), context="kube-local")
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


class Replica:
    """One elector in a thread; its callbacks log (event, who) into a shared list."""

    def __init__(self, client: ClusterClient, namespace: str, identity: str, log: list[Any]):
        self.identity = identity
        lock = threading.Lock()

        def note(what: str) -> None:
            with lock:
                log.append((what, identity))

        self.elector = LeaderElector(
            client,
            FAST,
            identity=identity,
            namespace=namespace,
            on_started_leading=lambda: note("started"),
            on_stopped_leading=lambda: note("stopped"),
        )
        self.thread = self.elector.start()

    def stop(self, release: bool = True) -> None:
        assert self.elector.stop(release=release, timeout=30), f"{self.identity} did not stop"
        self.thread.join(5)


class Sampler:
    """Reads both flags in a loop; a violation is B leading while A leads before and after."""

    def __init__(self, a: Replica, b: Replica) -> None:
        self.samples = 0
        self.violations = 0
        self._stop = threading.Event()
        self._a, self._b = a.elector, b.elector
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.002):
            for first, second in ((self._a, self._b), (self._b, self._a)):
                before = first.is_leader
                other = second.is_leader
                after = first.is_leader
                if before and other and after:
                    self.violations += 1
            self.samples += 1

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)


class LeaseHistory:
    """Every version of the Lease record, in order, from a watch opened before the test."""

    def __init__(self, client: ClusterClient, namespace: str, name: str) -> None:
        path = LEASES.format(namespace)
        query = Query(field_selector=f"metadata.name={name}")
        listed = client.list_page(path, query, limit=10)
        self.specs: list[dict[str, Any]] = [item["spec"] for item in listed.get("items", [])]
        self._stream = client.watch(
            path,
            query,
            resource_version=listed["metadata"]["resourceVersion"],
            timeout_seconds=120,
            read_timeout=150,
        )
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            for event in self._stream:
                if event.get("type") in ("ADDED", "MODIFIED"):
                    with self._lock:
                        self.specs.append(event["object"]["spec"])
        except ApiUnreachable:
            pass

    def holders(self) -> list[str]:
        """Holders in order, consecutive repeats (renewals) folded."""
        with self._lock:
            out: list[str] = []
            for spec in self.specs:
                holder = spec.get("holderIdentity") or ""
                if not out or out[-1] != holder:
                    out.append(holder)
            return out

    def first_claim_of(self, holder: str) -> tuple[dict[str, Any], dict[str, Any]]:
        """The first record of ``holder`` and the record it replaced."""
        with self._lock:
            for before, spec in itertools.pairwise(self.specs):
                if spec.get("holderIdentity") == holder and before.get("holderIdentity") != holder:
                    return before, spec
        raise AssertionError(f"{holder} never claimed the lease: {self.holders()}")

    def close(self) -> None:
        self._stream.close()
        self._thread.join(5)


def seconds_between(earlier: str, later: str) -> float:
    parse = "%Y-%m-%dT%H:%M:%S.%fZ"
    return (datetime.strptime(later, parse) - datetime.strptime(earlier, parse)).total_seconds()


def leader_of(a: Replica, b: Replica) -> tuple[Replica, Replica] | None:
    if a.elector.is_leader:
        return a, b
    if b.elector.is_leader:
        return b, a
    return None


@pytest.fixture
def replicas(connect: Any, namespace: str) -> Iterator[tuple[Replica, Replica, LeaseHistory, Any]]:
    history = LeaseHistory(connect(), namespace, FAST.lease_name)
    log: list[Any] = []
    a = Replica(connect(), namespace, "replica-a", log)
    b = Replica(connect(), namespace, "replica-b", log)
    sampler = Sampler(a, b)
    try:
        yield a, b, history, log
    finally:
        a.stop(release=False)
        b.stop(release=False)
        sampler.close()
        history.close()
    assert sampler.samples > 0
    assert sampler.violations == 0, "both replicas were leader at once"
    # The callbacks alternate: never two "started" without a "stopped" between them.
    leading: set[str] = set()
    for what, who in log:
        if what == "started":
            assert not leading, f"{who} started leading while {leading} led: {log}"
            leading.add(who)
        else:
            leading.discard(who)


def test_release_hands_over_at_the_next_attempt(
    replicas: tuple[Replica, Replica, LeaseHistory, Any],
) -> None:
    a, b, history, log = replicas
    leader, standby = wait_for(lambda: leader_of(a, b), what="a leader")
    wait_for(lambda: not standby.elector.is_leader and standby.elector.leader, what="standby")
    assert standby.elector.leader == leader.identity
    leader.stop(release=True)
    assert not leader.elector.is_leader
    wait_for(lambda: standby.elector.is_leader, what="the standby to take over")
    wait_for(lambda: standby.identity in history.holders(), what="the watch to see it")

    released, claim = history.first_claim_of(standby.identity)
    assert released["holderIdentity"] == ""  # the standby took the released record
    assert released["leaseDurationSeconds"] == 1
    assert claim["leaseTransitions"] == released["leaseTransitions"] + 1
    # Without the release it could not have happened before leaseDuration (3 s) after
    # the standby last saw the leader renew (the record before the release).
    assert seconds_between(released["renewTime"], claim["acquireTime"]) < FAST.lease_duration
    assert history.holders()[-3:] == [leader.identity, "", standby.identity]
    assert ("stopped", leader.identity) in log and ("started", standby.identity) in log


def test_without_release_the_standby_waits_for_the_lease_to_expire(
    replicas: tuple[Replica, Replica, LeaseHistory, Any],
) -> None:
    a, b, history, _ = replicas
    leader, standby = wait_for(lambda: leader_of(a, b), what="a leader")
    wait_for(lambda: standby.elector.leader == leader.identity, what="the standby to see it")
    leader.stop(release=False)  # its renewals end; the Lease still names it
    assert not leader.elector.is_leader
    wait_for(lambda: standby.elector.is_leader, what="the standby to take over")
    wait_for(lambda: standby.identity in history.holders(), what="the watch to see it")

    last_renewal, claim = history.first_claim_of(standby.identity)
    assert last_renewal["holderIdentity"] == leader.identity  # not released: expired
    assert claim["leaseTransitions"] == (last_renewal.get("leaseTransitions") or 0) + 1
    # The standby waited a full lease duration after it saw the last renewal.
    assert seconds_between(last_renewal["renewTime"], claim["acquireTime"]) >= FAST.lease_duration


def test_exactly_one_leader_while_both_run(
    replicas: tuple[Replica, Replica, LeaseHistory, Any],
) -> None:
    """Both campaign for a while (about twenty renewals): one leads throughout."""
    a, b, history, log = replicas
    leader, standby = wait_for(lambda: leader_of(a, b), what="a leader")
    wait_for(lambda: len(history.specs) >= 20, what="twenty renewals")
    assert leader.elector.is_leader and not standby.elector.is_leader
    assert set(history.holders()) == {leader.identity}
    assert log == [("started", leader.identity)]


# -- kubewatch's own Events ----------------------------------------------------------------


def pod_events(core: k8s.CoreV1Api, namespace: str, pod: str) -> list[Any]:
    return list(
        core.list_namespaced_event(
            namespace, field_selector=f"involvedObject.name={pod},involvedObject.kind=Pod"
        ).items
    )


def test_events_on_the_pod_are_aggregated(
    api: k8s.ApiClient, namespace: str, connect: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """From the environment the Helm chart sets (no POD_UID: the UID is looked up), two
    identical warnings become one Event with count 2, and ``kubectl describe`` shows it."""
    core = k8s.CoreV1Api(api)
    pod = core.create_namespaced_pod(
        namespace,
        {
            "metadata": {"name": "kubewatch-0"},
            "spec": {"containers": [{"name": "kw", "image": "x"}]},
        },
    )
    monkeypatch.setenv("POD_NAME", "kubewatch-0")
    monkeypatch.setenv("POD_NAMESPACE", namespace)
    monkeypatch.delenv("POD_UID", raising=False)
    recorder = EventRecorder.from_environment(connect(), min_interval=0.2)
    assert recorder is not None
    try:
        recorder.warning("SinkFailed", "sink audit: HTTP 503 Service Unavailable")
        wait_for(lambda: pod_events(core, namespace, "kubewatch-0"), what="the Event")
        recorder.warning("SinkFailed", "sink audit: HTTP 503 Service Unavailable")
        recorder.normal("LeaderElected", "kubewatch-0 became the leader")
        wait_for(
            lambda: (
                len(pod_events(core, namespace, "kubewatch-0")) == 2
                and {e.count for e in pod_events(core, namespace, "kubewatch-0")} == {1, 2}
            ),
            what="count 2 and a second Event",
        )
    finally:
        recorder.close()
    events = {e.reason: e for e in pod_events(core, namespace, "kubewatch-0")}
    failed = events["SinkFailed"]
    assert failed.count == 2
    assert failed.type == "Warning"
    assert failed.source.component == "kubewatch"
    assert failed.involved_object.uid == pod.metadata.uid
    assert failed.last_timestamp >= failed.first_timestamp
    assert events["LeaderElected"].type == "Normal"

    kubectl = shutil.which("kubectl")
    if kubectl:
        described = subprocess.run(
            [kubectl, "--context", "kube-local", "describe", "pod", "-n", namespace, "kubewatch-0"],
            env={**os.environ, "KUBECONFIG": str(KUBECONFIG)},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert "SinkFailed" in described and "(x2 over" in described
        assert "LeaderElected" in described
