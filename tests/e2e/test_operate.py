"""Operating kubewatch against a real API server, as a cluster operator would see it.

* ``/metrics`` counts exactly what happened; ``/healthz`` and ``/readyz`` answer.
* ``/readyz`` tells the truth: a frozen API server (``kill -STOP``) makes it fail at the
  first read past its timeout, naming the failing watch, then the silent one; once the
  API server resumes it recovers, and nothing is lost or doubled.
* Two kubewatch processes with leader election: only the leader delivers; when it is
  killed the standby takes over after the Lease expires and re-delivers what it saw
  recently, so nothing is lost and a repeat carries the same ``id``.
* A configuration reload (file change or SIGHUP) starts new watches without restarting
  unchanged ones; an invalid file is rejected and the running configuration stays.
* A forbidden watch becomes a Warning Event on kubewatch's own Pod, and ``/readyz`` says
  it is failing and why.
* ``kubewatch replay`` of a real ``kubectl --watch --output-watch-events`` capture.

Every kubewatch here is a subprocess (``python -m kubewatch run``); each has its own
directory so that two can run in one test.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client as k8s
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.conftest import KUBECONFIG, Kubewatch, Receiver, base_config, wait_for, write_config

pytestmark = pytest.mark.e2e

SCRIPTS = os.environ.get("KUBE_LOCAL_SCRIPTS")
STATE = os.environ.get("KUBE_LOCAL_DIR")
REPO = Path(__file__).resolve().parents[2]
PORT_LINE = re.compile(r"serving /metrics, /healthz, /readyz on port (\d+)")


# -- helpers ---------------------------------------------------------------------------------


class Daemon(Kubewatch):
    """A kubewatch process in its own directory, with its health server's helpers."""

    def alive(self) -> bool:
        return self.proc.poll() is None

    def wait_log(self, text: str, count: int = 1, timeout: float = 30.0) -> None:
        wait_for(
            lambda: self.stderr.count(text) >= count or not self.alive(),
            timeout,
            f"{count} x {text!r} in the log",
        )
        assert self.alive(), f"kubewatch exited:\n{self.stderr}"

    @property
    def port(self) -> int:
        """The health server's port, from its log line (``server.port: 0`` picks one)."""
        found = wait_for(lambda: PORT_LINE.search(self.stderr), what="the health server's port")
        return int(found.group(1))

    def get(self, path: str) -> tuple[int, str]:
        """GET ``path`` on the health server: (status, body)."""
        url = f"http://127.0.0.1:{self.port}{path}"
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def metrics(self) -> str:
        status, body = self.get("/metrics")
        assert status == 200, body
        return body


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Callable[..., Daemon]]:
    """``daemon(config, name, env=…, kubeconfig=…)`` starts one; all are stopped after."""
    started: list[Daemon] = []

    def start(
        config: dict[str, Any],
        name: str = "kubewatch",
        env: dict[str, str] | None = None,
        kubeconfig: str | None = None,
    ) -> Daemon:
        d = Daemon(config, tmp_path / name, env, kubeconfig)
        started.append(d)
        return d

    yield start
    for d in started:
        d.stop()


def sample(text: str, name: str, **labels: str) -> float | None:
    """The value of the sample ``name`` whose labels include ``labels`` (None: absent)."""
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return float(s.value)
    return None


def body(**fields: Any) -> Any:
    """A request body: the client takes plain dicts where its signatures name models."""
    return fields


def cm(name: str, value: str = "1") -> Any:
    return body(metadata={"name": name}, data={"v": value})


def header(headers: dict[str, str], name: str) -> str | None:
    return next((v for k, v in headers.items() if k.lower() == name.lower()), None)


def names_of(events: list[dict[str, Any]], type_: str = "create") -> list[str]:
    return [e["name"] for e in events if e["type"] == type_]


# -- 1. metrics and health -------------------------------------------------------------------


def test_metrics_count_exactly_what_happened_and_health_endpoints_answer(
    api: k8s.ApiClient, namespace: str, receiver: Receiver, daemon: Callable[..., Daemon]
) -> None:
    core = k8s.CoreV1Api(api)
    config = base_config(namespace, receiver, [{"kind": "ConfigMap"}])
    config["server"] = {"port": 0, "address": "127.0.0.1"}
    kw = daemon(config, env={"E2E_TOKEN": "t"})
    kw.wait_synced(1)
    wait_for(lambda: kw.get("/readyz")[0] == 200, what="/readyz 200 after the sync")
    assert kw.get("/healthz") == (200, "ok\n")

    for name in ("a", "b", "c"):
        core.create_namespaced_config_map(namespace, cm(name))
    core.patch_namespaced_config_map("a", namespace, {"data": {"v": "2"}})
    core.patch_namespaced_config_map("b", namespace, {"data": {"v": "2"}})
    core.delete_namespaced_config_map("c", namespace)
    wait_for(
        lambda: len(receiver.events) >= 6 and len(kw.events) >= 6, what="6 events in both sinks"
    )

    def delivered_everywhere() -> bool:
        text = kw.metrics()
        delivered = "kubewatch_events_delivered_total"
        return [sample(text, delivered, sink=s) for s in ("audit", "console")] == [6, 6]

    wait_for(delivered_everywhere, what="6 deliveries per sink in /metrics")
    time.sleep(1)  # nothing more may come
    assert len(receiver.events) == 6 and len(kw.events) == 6
    text = kw.metrics()
    observed = "kubewatch_events_observed_total"
    assert sample(text, observed, resource="configmaps", type="create") == 3
    assert sample(text, observed, resource="configmaps", type="update") == 2
    assert sample(text, observed, resource="configmaps", type="delete") == 1
    for sink in ("audit", "console"):
        assert sample(text, "kubewatch_events_delivered_total", sink=sink) == 6
        assert sample(text, "kubewatch_events_failed_total", sink=sink) == 0
        assert sample(text, "kubewatch_events_dropped_total", sink=sink) == 0
        assert sample(text, "kubewatch_delivery_latency_seconds_count", sink=sink) == 6
        assert sample(text, "kubewatch_queue_depth", sink=sink) == 0
    watch = {"resource": "configmaps", "watch": f"in {namespace}"}
    assert sample(text, "kubewatch_watch_synced", **watch) == 1
    assert sample(text, "kubewatch_relists_total", **watch) == 0
    assert sample(text, "kubewatch_informers", resource="configmaps") == 1
    assert sample(text, "kubewatch_build_info") == 1
    assert sample(text, "kubewatch_leader") is None  # no election configured
    assert kw.get("/readyz") == (200, "ok\n")
    assert kw.get("/healthz")[0] == 200
    assert kw.get("/nope")[0] == 404
    assert kw.stop() == 0


# -- 2. readiness when the API server freezes ------------------------------------------------

STALL_THRESHOLD = 5.0
READ_TIMEOUT = 4.0
SERVER_TIMEOUT = 2
"""A quiet healthy watch reopens every 2-3 s (serverTimeout to twice that, capped at 90 % of
readTimeout, whole seconds): always well inside the 5 s threshold. A frozen API server
sends nothing and answers no reopen: the watch is silent past the threshold within
threshold + readTimeout of the freeze."""


def apiserver_pid() -> int:
    """Read afresh each time: restart.sh (other fault tests) starts a new process."""
    assert STATE
    env = (Path(STATE) / "env").read_text()
    found = re.search(r"^export KUBE_LOCAL_APISERVER_PID=(\d+)\s*$", env, re.MULTILINE)
    assert found, env
    return int(found.group(1))


@contextlib.contextmanager
def frozen_apiserver() -> Iterator[None]:
    """``kill -STOP`` the API server: sockets stay open, nothing answers. Always resumed."""
    pid = apiserver_pid()
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


@pytest.mark.fault
@pytest.mark.skipif(
    not (SCRIPTS and STATE), reason="needs KUBE_LOCAL_SCRIPTS and KUBE_LOCAL_DIR (../shared/kube)"
)
def test_readyz_fails_while_the_apiserver_is_frozen_and_recovers_without_loss(
    api: k8s.ApiClient, namespace: str, receiver: Receiver, daemon: Callable[..., Daemon]
) -> None:
    core = k8s.CoreV1Api(api)
    config = base_config(namespace, receiver, [{"kind": "ConfigMap"}])
    config["server"] = {"port": 0, "address": "127.0.0.1", "stallThreshold": STALL_THRESHOLD}
    config["watch"] = {
        "readTimeout": READ_TIMEOUT,
        "serverTimeout": SERVER_TIMEOUT,
        "discoveryInterval": 1,
    }
    kw = daemon(config, env={"E2E_TOKEN": "t"})
    kw.wait_synced(1)
    core.create_namespaced_config_map(namespace, cm("before"))
    wait_for(lambda: len(receiver.events) == 1, what="the first create")

    # Healthy and quiet for longer than the threshold, across several watch reopens:
    # never flagged.
    restarts = "kubewatch_watch_restarts_total"
    watch = {"resource": "configmaps", "watch": f"in {namespace}"}
    reopened = sample(kw.metrics(), restarts, **watch) or 0
    quiet_until = time.monotonic() + 2 * STALL_THRESHOLD
    while time.monotonic() < quiet_until:
        assert kw.get("/readyz") == (200, "ok\n"), "a quiet, healthy watch was flagged"
        time.sleep(0.2)
    assert (sample(kw.metrics(), restarts, **watch) or 0) >= reopened + 2

    with frozen_apiserver():
        # The first read past its timeout is a failed attempt: reported at once, with
        # the reason, and the silence past the threshold after that.
        _, reasons = wait_for(
            lambda: (r := kw.get("/readyz"))[0] == 503 and r,
            timeout=READ_TIMEOUT + 5,
            what="/readyz to fail while the API server is frozen",
        )
        assert f"watch configmaps in {namespace} failing: " in reasons, reasons
        _, reasons = wait_for(
            lambda: "silent for" in (r := kw.get("/readyz"))[1] and r,
            timeout=STALL_THRESHOLD + READ_TIMEOUT + 5,
            what="/readyz to report the silence too",
        )
        assert f"(threshold {STALL_THRESHOLD:.0f}s)" in reasons, reasons
        assert kw.get("/healthz")[0] == 200  # alive: a restart would not help

    wait_for(lambda: kw.get("/readyz")[0] == 200, timeout=60, what="/readyz to recover")
    core.create_namespaced_config_map(namespace, cm("after"))
    wait_for(
        lambda: "after" in names_of(receiver.events) and "after" in names_of(kw.events),
        timeout=30,
        what="the change after recovery",
    )
    time.sleep(2)
    for events in (receiver.events, kw.events):
        assert sorted(names_of(events)) == ["after", "before"], events
        assert len(events) == 2, events
    assert kw.stop() == 0


# -- 3. leader election between two processes ------------------------------------------------


def test_only_the_leader_delivers_and_the_standby_takes_over_without_loss(
    api: k8s.ApiClient, namespace: str, receiver: Receiver, daemon: Callable[..., Daemon]
) -> None:
    core, coordination = k8s.CoreV1Api(api), k8s.CoordinationV1Api(api)
    lease = f"kubewatch-{uuid.uuid4().hex[:6]}"
    config = base_config(namespace, receiver, [{"kind": "ConfigMap"}])
    config["server"] = {"port": 0, "address": "127.0.0.1"}
    config["leaderElection"] = {
        "enabled": True,
        "leaseName": lease,
        "namespace": namespace,
        "leaseDuration": 4,
        "renewDeadline": 3,
        "retryPeriod": 0.5,
    }
    replicas = {
        name: daemon(config, name, env={"POD_NAME": name, "E2E_TOKEN": f"token-{name}"})
        for name in ("kw-a", "kw-b")
    }
    for replica in replicas.values():
        replica.wait_synced(1)

    def holder() -> str:
        try:
            spec = coordination.read_namespaced_lease(lease, namespace).spec
        except k8s.ApiException as e:
            if e.status == 404:
                return ""
            raise
        return str(spec.holder_identity or "") if spec is not None else ""

    leader_name = wait_for(holder, what="a leader")
    standby_name = next(n for n in replicas if n != leader_name)
    leader, standby = replicas[leader_name], replicas[standby_name]
    leader.wait_log("became leader")
    standby.wait_log(f"leader is {leader_name}")
    assert sample(leader.metrics(), "kubewatch_leader") == 1
    assert sample(standby.metrics(), "kubewatch_leader") == 0

    # While both run: every event is delivered once, by the leader.
    for name in ("p1", "p2", "p3"):
        core.create_namespaced_config_map(namespace, cm(name))
    wait_for(lambda: len(receiver.events) >= 3, what="3 deliveries")
    time.sleep(1.5)
    assert sorted(names_of(receiver.events)) == ["p1", "p2", "p3"]
    assert {header(h, "X-Token") for h, _ in list(receiver.requests)} == {f"token-{leader_name}"}
    assert sorted(names_of(leader.events)) == ["p1", "p2", "p3"]
    assert standby.events == [], "the standby delivered"

    # Kill the leader around some changes: delivered (k1, k2), maybe not (k3), not (g*).
    for name in ("k1", "k2"):
        core.create_namespaced_config_map(namespace, cm(name))
    wait_for(
        lambda: {"k1", "k2"} <= set(names_of(receiver.events)), what="k1 and k2 from the leader"
    )
    core.create_namespaced_config_map(namespace, cm("k3"))
    leader.proc.kill()
    leader.proc.wait(5)
    for name in ("g1", "g2", "g3"):
        core.create_namespaced_config_map(namespace, cm(name))
    expected = {"p1", "p2", "p3", "k1", "k2", "k3", "g1", "g2", "g3"}
    wait_for(
        lambda: expected <= set(names_of(receiver.events)),
        timeout=30,
        what="every change made around the kill",
    )
    assert holder() == standby_name
    standby.wait_log("became leader")
    assert "leading: delivering" in standby.stderr
    assert sample(standby.metrics(), "kubewatch_leader") == 1

    core.create_namespaced_config_map(namespace, cm("after"))
    wait_for(lambda: "after" in names_of(receiver.events), what="a change after the handover")
    time.sleep(1.5)
    requests = list(receiver.requests)
    assert set(names_of([body for _, body in requests])) == expected | {"after"}
    ids: dict[str, set[str]] = defaultdict(set)
    for headers, body in requests:
        ids[body["name"]].add(body["id"])
        assert header(headers, "X-Kubewatch-Event-Id") == body["id"]
    assert all(len(v) == 1 for v in ids.values()), f"a repeat with another id: {dict(ids)}"
    by_standby = [b["name"] for h, b in requests if header(h, "X-Token") == f"token-{standby_name}"]
    for name in ("g1", "g2", "g3", "after"):
        assert name in by_standby, f"{name} was not delivered by the new leader"
    assert names_of([b for _, b in requests]).count("after") == 1
    assert standby.stop() == 0


# -- 4. reload -------------------------------------------------------------------------------


def test_reload_starts_new_watches_keeps_the_others_and_rejects_a_bad_file(
    api: k8s.ApiClient, namespace: str, receiver: Receiver, daemon: Callable[..., Daemon]
) -> None:
    core = k8s.CoreV1Api(api)
    config = base_config(namespace, receiver, [{"kind": "ConfigMap"}])
    config["server"] = {"port": 0, "address": "127.0.0.1"}
    kw = daemon(config, env={"E2E_TOKEN": "t"})
    kw.wait_synced(1)
    cm_synced = f"configmaps in {namespace}: synced,"
    cm_watch = {"resource": "configmaps", "watch": f"in {namespace}"}
    relists = sample(kw.metrics(), "kubewatch_relists_total", **cm_watch)
    assert relists is not None

    config["resources"] = [{"kind": "ConfigMap"}, {"kind": "Secret"}]
    write_config(kw.config_path, config)
    kw.wait_log(f"watching secrets in {namespace}")
    kw.wait_log(f"secrets in {namespace}: synced,")
    kw.wait_log("configuration reloaded: 2 watch(es)")
    assert kw.stderr.count(cm_synced) == 1, "the ConfigMap watch was restarted"
    assert kw.stderr.count(f"watching configmaps in {namespace}") == 1
    assert sample(kw.metrics(), "kubewatch_relists_total", **cm_watch) == relists
    for resource in ("configmaps", "secrets"):
        assert sample(kw.metrics(), "kubewatch_informers", resource=resource) == 1

    core.create_namespaced_config_map(namespace, cm("after-reload"))
    core.create_namespaced_secret(
        namespace, body(metadata={"name": "s1"}, stringData={"password": "hunter2"})
    )
    wait_for(
        lambda: {"after-reload", "s1"} <= set(names_of(receiver.events)),
        what="the ConfigMap and the Secret",
    )
    time.sleep(1.5)
    assert sorted(names_of(receiver.events)) == ["after-reload", "s1"]
    assert sorted(names_of(kw.events)) == ["after-reload", "s1"]
    assert {e["kind"] for e in receiver.events} == {"ConfigMap", "Secret"}

    # An invalid file: rejected, the running configuration stays.
    write_config(kw.config_path, {**config, "bogusKey": 1})
    kw.wait_log("new configuration rejected")
    assert "bogusKey" in kw.stderr
    core.create_namespaced_config_map(namespace, cm("after-rejection"))
    wait_for(
        lambda: "after-rejection" in names_of(receiver.events), what="delivery after rejection"
    )

    # Valid again (a file change), then SIGHUP with nothing changed: reloaded each time,
    # no watch restarted, still delivering once.
    write_config(kw.config_path, config)
    kw.wait_log("configuration reloaded", 2)
    kw.proc.send_signal(signal.SIGHUP)
    kw.wait_log("SIGHUP received; reloading")
    kw.wait_log("configuration reloaded", 3)
    core.create_namespaced_config_map(namespace, cm("after-sighup"))
    wait_for(lambda: "after-sighup" in names_of(receiver.events), what="delivery after SIGHUP")
    time.sleep(1.5)
    assert sorted(names_of(receiver.events)) == sorted(
        ["after-reload", "s1", "after-rejection", "after-sighup"]
    )
    assert kw.stderr.count(cm_synced) == 1
    assert kw.stderr.count(f"secrets in {namespace}: synced,") == 1
    assert sample(kw.metrics(), "kubewatch_relists_total", **cm_watch) == relists
    assert kw.alive()
    assert kw.stop() == 0


# -- 5. a forbidden watch becomes a Warning Event on kubewatch's Pod -------------------------


def service_account_kubeconfig(token: str, namespace: str, path: Path) -> str:
    """A kubeconfig for ``token`` on the e2e cluster (server and CA from its kubeconfig)."""
    assert KUBECONFIG
    admin = yaml.safe_load(Path(KUBECONFIG).read_text())
    context = next(c for c in admin["contexts"] if c["name"] == admin["current-context"])
    cluster = dict(
        next(c for c in admin["clusters"] if c["name"] == context["context"]["cluster"])["cluster"]
    )
    ca = cluster.get("certificate-authority")
    if ca and not os.path.isabs(ca):
        cluster["certificate-authority"] = str(Path(KUBECONFIG).resolve().parent / ca)
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "e2e", "cluster": cluster}],
        "users": [{"name": "kubewatch", "user": {"token": token}}],
        "contexts": [
            {
                "name": "kubewatch",
                "context": {"cluster": "e2e", "user": "kubewatch", "namespace": namespace},
            }
        ],
        "current-context": "kubewatch",
    }
    path.write_text(yaml.safe_dump(doc))
    return str(path)


def test_a_forbidden_watch_is_a_warning_event_on_the_pod_and_the_rest_flows(
    api: k8s.ApiClient,
    namespace: str,
    receiver: Receiver,
    daemon: Callable[..., Daemon],
    tmp_path: Path,
) -> None:
    core, rbac = k8s.CoreV1Api(api), k8s.RbacAuthorizationV1Api(api)
    core.create_namespaced_service_account(namespace, body(metadata={"name": "kubewatch"}))
    rbac.create_namespaced_role(
        namespace,
        body(
            metadata={"name": "kubewatch"},
            rules=[
                {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list", "watch"]},
                {"apiGroups": [""], "resources": ["events"], "verbs": ["create", "patch"]},
            ],
        ),
    )
    rbac.create_namespaced_role_binding(
        namespace,
        body(
            metadata={"name": "kubewatch"},
            roleRef={"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "kubewatch"},
            subjects=[{"kind": "ServiceAccount", "name": "kubewatch", "namespace": namespace}],
        ),
    )
    user = f"system:serviceaccount:{namespace}:kubewatch"
    authz = k8s.AuthorizationV1Api(api)

    def allowed(verb: str, resource: str) -> bool:
        attributes = {"namespace": namespace, "verb": verb, "resource": resource}
        review = authz.create_subject_access_review(
            body(spec={"user": user, "resourceAttributes": attributes})
        )
        return review.status is not None and bool(review.status.allowed)

    wait_for(
        lambda: allowed("watch", "configmaps") and allowed("create", "events"),
        what="the Role to take effect",
    )
    assert not allowed("list", "secrets")
    pod = core.create_namespaced_pod(
        namespace,
        body(
            metadata={"name": "kubewatch-0"},
            spec={"containers": [{"name": "kubewatch", "image": "x"}]},
        ),
    )
    assert pod.metadata is not None and pod.metadata.uid
    pod_uid = pod.metadata.uid
    minted = core.create_namespaced_service_account_token(
        "kubewatch", namespace, body(spec={"expirationSeconds": 3600})
    )
    assert minted.status is not None and minted.status.token
    kubeconfig = service_account_kubeconfig(
        minted.status.token, namespace, tmp_path / "sa.kubeconfig"
    )

    scoped = {"namespaces": {"include": [namespace]}}
    config = base_config(
        namespace, receiver, [{"kind": "ConfigMap", **scoped}, {"kind": "Secret", **scoped}]
    )
    config["server"] = {"port": 0, "address": "127.0.0.1"}
    env = {
        "E2E_TOKEN": "t",
        "POD_NAME": "kubewatch-0",
        "POD_NAMESPACE": namespace,
        "POD_UID": pod_uid,
    }
    kw = daemon(config, env=env, kubeconfig=kubeconfig)
    kw.wait_synced(1)

    def forbidden_events() -> list[Any]:
        events = core.list_namespaced_event(
            namespace, field_selector="involvedObject.name=kubewatch-0"
        ).items
        return [e for e in events if e.reason == "WatchForbidden"]

    event = wait_for(forbidden_events, timeout=30, what="a WatchForbidden Event")[0]
    assert event.type == "Warning"
    assert event.involved_object.kind == "Pod"
    assert event.involved_object.name == "kubewatch-0"
    assert event.involved_object.namespace == namespace
    assert event.involved_object.uid == pod_uid
    assert f"secrets in {namespace}" in event.message, event.message
    assert event.source.component == "kubewatch"
    status, reasons = kw.get("/readyz")
    assert status == 503 and f"watch secrets in {namespace} failing: " in reasons, reasons
    assert "HTTP 403 Forbidden" in reasons, reasons

    core.create_namespaced_config_map(namespace, cm("still-flowing"))
    wait_for(
        lambda: (
            "still-flowing" in names_of(receiver.events) and "still-flowing" in names_of(kw.events)
        ),
        what="the ConfigMap change",
    )
    assert kw.alive()
    assert kw.stop() == 0


# -- 6. replay of a real kubectl capture -----------------------------------------------------


def capture_with_kubectl(kubectl: str, core: k8s.CoreV1Api, namespace: str, out: Path) -> None:
    """Record a create, an update and a delete of ConfigMap ``captured`` as kubectl sees
    them. A ConfigMap made first shows when kubectl's watch is established."""
    core.create_namespaced_config_map(namespace, cm("seed"))
    assert KUBECONFIG
    with out.open("w") as stdout:
        proc = subprocess.Popen(
            [
                kubectl,
                "--kubeconfig",
                KUBECONFIG,
                "get",
                "configmaps",
                "-n",
                namespace,
                "--watch",
                "--output-watch-events",
                "-o",
                "json",
            ],
            stdout=stdout,
            stderr=subprocess.PIPE,
        )
    try:
        wait_for(lambda: '"seed"' in out.read_text(), what="kubectl to list")
        core.create_namespaced_config_map(
            namespace, body(metadata={"name": "captured"}, data={"mode": "a"})
        )
        core.patch_namespaced_config_map("captured", namespace, {"data": {"mode": "b"}})
        core.delete_namespaced_config_map("captured", namespace)
        wait_for(lambda: '"DELETED"' in out.read_text(), what="kubectl to see the delete")
    finally:
        proc.terminate()
        proc.wait(10)


def test_replay_of_a_real_capture_previews_create_update_delete(
    api: k8s.ApiClient, namespace: str, tmp_path: Path
) -> None:
    kubectl = shutil.which("kubectl")
    capture = tmp_path / "capture.json"
    if kubectl:
        capture_with_kubectl(kubectl, k8s.CoreV1Api(api), namespace, capture)
        key, path, old, new = f"{namespace}/captured", "data.mode", "a", "b"
    else:  # the capture shipped in examples/, recorded the same way
        capture = REPO / "examples" / "watch-capture.json"
        key, path, old, new = "kw-demo/app-settings", "data.LOG_LEVEL", "info", "debug"
    config_path = tmp_path / "replay.yaml"
    write_config(
        config_path,
        {
            "resources": [{"kind": "ConfigMap"}],
            "sinks": {"console": {"type": "stdout", "format": "text"}},
        },
    )
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "kubewatch",
            "replay",
            str(capture),
            "--config",
            str(config_path),
            "--dry-run",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "--- console (stdout) would receive:" in out
    assert f"ConfigMap {key} created" in out, out
    assert f"ConfigMap {key} updated: {path} {old} → {new}" in out, out
    assert f"ConfigMap {key} deleted" in out, out
    lines = [line for line in out.splitlines() if f"ConfigMap {key} " in line]
    assert [line.split(f"ConfigMap {key} ")[1].split(":")[0] for line in lines] == [
        "created",
        "updated",
        "deleted",
    ]
