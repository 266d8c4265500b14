"""Health alerts against a real API server. It has no kubelet and no controllers: the tests
write Pod, Job, Deployment and Node status through the status subresource, as a kubelet or
a controller would."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k8s

from tests.e2e.conftest import Kubewatch, Receiver, base_config, wait_for

pytestmark = pytest.mark.e2e

ENV = {"E2E_TOKEN": "t"}
# resolveAfter is a config value (default 5m); these tests prove the recovery mechanism,
# so they set a short one explicitly rather than wait five minutes.
RESOLVE = "3s"
QUIET = 2.0
"""Seconds after which anything extra (a duplicate, a repeat) would have arrived."""


def alerts(receiver: Receiver) -> list[dict[str, Any]]:
    return [e for e in receiver.events if e["type"] == "alert"]


def states(receiver: Receiver, name: str) -> list[tuple[str, str]]:
    return [
        (e["alert"]["state"], e["alert"]["reason"]) for e in alerts(receiver) if e["name"] == name
    ]


def running(
    name: str = "app",
    *,
    ready: bool,
    restarts: int,
    last: str | None = None,
    exit_code: int = 1,
    waiting: str | None = None,
) -> dict[str, Any]:
    state: dict[str, Any] = (
        {"waiting": {"reason": waiting, "message": "back-off restarting failed container"}}
        if waiting
        else {"running": {"startedAt": "2026-11-26T22:00:00Z"}}
    )
    status: dict[str, Any] = {
        "name": name,
        "image": "busybox",
        "imageID": "",
        "ready": ready,
        "restartCount": restarts,
        "state": state,
    }
    if last:
        status["lastState"] = {
            "terminated": {
                "reason": last,
                "exitCode": exit_code,
                "startedAt": "2026-11-26T21:59:00Z",
                "finishedAt": f"2026-11-26T22:0{restarts % 10}:00Z",
            }
        }
    return status


def set_pod(core: k8s.CoreV1Api, namespace: str, name: str, *statuses: dict[str, Any]) -> None:
    core.patch_namespaced_pod_status(
        name, namespace, {"status": {"phase": "Running", "containerStatuses": list(statuses)}}
    )


def create_pod(core: k8s.CoreV1Api, namespace: str, name: str) -> None:
    core.create_namespaced_pod(
        namespace,
        {"metadata": {"name": name}, "spec": {"containers": [{"name": "app", "image": "busybox"}]}},
    )


def pod_config(namespace: str, receiver: Receiver, **health: Any) -> dict[str, Any]:
    return base_config(
        namespace,
        receiver,
        [{"kind": "Pod", "health": {"resolveAfter": RESOLVE, "logLines": 5, **health}}],
    )


def test_a_crash_loop_fires_once_and_resolves_once_without_logs_and_a_warning(
    api: k8s.ApiClient,
    namespace: str,
    receiver: Receiver,
    start_kubewatch: Callable[..., Kubewatch],
) -> None:
    core = k8s.CoreV1Api(api)
    kw = start_kubewatch(pod_config(namespace, receiver), ENV)
    kw.wait_synced(1)
    create_pod(core, namespace, "crash")
    set_pod(
        core,
        namespace,
        "crash",
        running(ready=False, restarts=1, last="Error", waiting="CrashLoopBackOff"),
    )
    wait_for(lambda: alerts(receiver), what="a firing alert")
    for restarts in (2, 3, 4):  # three more restarts: running, then backing off again
        set_pod(core, namespace, "crash", running(ready=False, restarts=restarts, last="Error"))
        set_pod(
            core,
            namespace,
            "crash",
            running(ready=False, restarts=restarts, last="Error", waiting="CrashLoopBackOff"),
        )
    time.sleep(QUIET)
    assert states(receiver, "crash") == [("firing", "CrashLoopBackOff")]
    [firing] = alerts(receiver)
    assert firing["alert"]["container"] == "app" and firing["alert"]["exitCode"] == 1
    assert firing["alert"]["logs"] is None  # no kubelet: no logs, the alert still goes out
    assert "alerts go out without logs" in kw.stderr
    assert firing["summary"].startswith(f"[e2e] FIRING CrashLoopBackOff Pod {namespace}/crash")

    set_pod(core, namespace, "crash", running(ready=True, restarts=4, last="Error"))
    wait_for(lambda: len(alerts(receiver)) >= 2, what="the resolved alert")
    time.sleep(QUIET)
    assert states(receiver, "crash") == [
        ("firing", "CrashLoopBackOff"),
        ("resolved", "CrashLoopBackOff"),
    ]
    assert alerts(receiver)[1]["alert"]["restartCount"] == 4
    # status-only updates are not reported as updates of the Pod
    assert [e for e in receiver.events if e["type"] != "alert"] == []

    create_pod(core, namespace, "oom")
    set_pod(
        core,
        namespace,
        "oom",
        running(
            ready=False, restarts=1, last="OOMKilled", exit_code=137, waiting="CrashLoopBackOff"
        ),
    )
    wait_for(lambda: states(receiver, "oom"), what="the OOMKilled alert")
    [oom] = [e for e in alerts(receiver) if e["name"] == "oom"]
    assert (oom["alert"]["reason"], oom["alert"]["exitCode"]) == ("OOMKilled", 137)
    core.delete_namespaced_pod("oom", namespace, grace_period_seconds=0)
    wait_for(lambda: len(states(receiver, "oom")) == 2, what="the deleted Pod's alert resolved")
    assert states(receiver, "oom")[1] == ("resolved", "OOMKilled")
    assert kw.stop() == 0


def test_existing_failures_are_not_reported_unless_notify_existing(
    api: k8s.ApiClient,
    namespace: str,
    receiver: Receiver,
    start_kubewatch: Callable[..., Kubewatch],
) -> None:
    core = k8s.CoreV1Api(api)
    create_pod(core, namespace, "old")
    set_pod(
        core,
        namespace,
        "old",
        running(ready=False, restarts=3, last="Error", waiting="CrashLoopBackOff"),
    )
    quiet = start_kubewatch(pod_config(namespace, receiver), ENV)
    quiet.wait_synced(1)
    set_pod(
        core,
        namespace,
        "old",
        running(ready=False, restarts=4, last="Error", waiting="CrashLoopBackOff"),
    )
    time.sleep(QUIET)
    assert alerts(receiver) == []
    assert quiet.stop() == 0

    loud = start_kubewatch(pod_config(namespace, receiver, notifyExisting=True), ENV)
    loud.wait_synced(1)
    wait_for(lambda: alerts(receiver), what="the existing failure reported")
    assert states(receiver, "old") == [("firing", "CrashLoopBackOff")]
    assert loud.stop() == 0


def test_with_a_state_dir_a_restart_does_not_send_firing_alerts_again(
    api: k8s.ApiClient,
    namespace: str,
    receiver: Receiver,
    tmp_path: Path,
) -> None:
    core = k8s.CoreV1Api(api)
    config = pod_config(namespace, receiver)
    config["state"] = {"path": str(tmp_path / "state")}
    first = Kubewatch(config, tmp_path / "first", ENV)
    try:
        first.wait_synced(1)
        create_pod(core, namespace, "crash")
        set_pod(
            core,
            namespace,
            "crash",
            running(ready=False, restarts=1, last="Error", waiting="CrashLoopBackOff"),
        )
        wait_for(lambda: alerts(receiver), what="a firing alert")
    finally:
        assert first.stop() == 0
    second = Kubewatch(config, tmp_path / "second", ENV)
    try:
        second.wait_synced(1)
        set_pod(
            core,
            namespace,
            "crash",
            running(ready=False, restarts=2, last="Error", waiting="CrashLoopBackOff"),
        )
        time.sleep(QUIET)
        assert states(receiver, "crash") == [("firing", "CrashLoopBackOff")]
        set_pod(core, namespace, "crash", running(ready=True, restarts=2, last="Error"))
        wait_for(lambda: len(alerts(receiver)) >= 2, what="the resolved alert")
        assert states(receiver, "crash") == [
            ("firing", "CrashLoopBackOff"),
            ("resolved", "CrashLoopBackOff"),
        ]
    finally:
        assert second.stop() == 0


def _conditions(*items: tuple[str, str, str]) -> list[dict[str, Any]]:
    now = "2026-11-26T22:00:00Z"
    return [
        {
            "type": t,
            "status": s,
            "reason": r,
            "message": f"{t} {s}",
            "lastTransitionTime": now,
            "lastUpdateTime": now,
            "lastProbeTime": now,
            "lastHeartbeatTime": now,
        }
        for t, s, r in items
    ]


def test_job_deployment_and_node_fire_and_resolve(
    api: k8s.ApiClient,
    namespace: str,
    receiver: Receiver,
    start_kubewatch: Callable[..., Kubewatch],
) -> None:
    batch, apps, core = k8s.BatchV1Api(api), k8s.AppsV1Api(api), k8s.CoreV1Api(api)
    node = f"e2e-node-{uuid.uuid4().hex[:6]}"
    health = {"resolveAfter": RESOLVE}
    config = base_config(
        namespace,
        receiver,
        [
            {"kind": "Job", "health": health},
            {"kind": "Deployment", "health": health},
            {"kind": "Node", "health": health, "names": {"include": [node]}},
        ],
    )
    kw = start_kubewatch(config, ENV)
    kw.wait_synced(3)
    pod_spec = {"containers": [{"name": "app", "image": "busybox"}]}
    batch.create_namespaced_job(
        namespace,
        {
            "metadata": {"name": "migrate"},
            "spec": {"template": {"spec": {**pod_spec, "restartPolicy": "Never"}}},
        },
    )
    labels = {"app": "web"}
    apps.create_namespaced_deployment(
        namespace,
        {
            "metadata": {"name": "web"},
            "spec": {
                "selector": {"matchLabels": labels},
                "template": {"metadata": {"labels": labels}, "spec": pod_spec},
            },
        },
    )
    core.create_node({"metadata": {"name": node}})
    try:
        apps.patch_namespaced_deployment_status(
            "web",
            namespace,
            {
                "status": {
                    "conditions": _conditions(
                        ("Progressing", "False", "ProgressDeadlineExceeded"),
                        ("Available", "False", "MinimumReplicasUnavailable"),
                    )
                }
            },
        )
        core.patch_node_status(
            node, {"status": {"conditions": _conditions(("Ready", "False", "KubeletNotReady"))}}
        )
        batch.patch_namespaced_job_status(
            "migrate",
            namespace,
            {
                "status": {
                    "startTime": "2026-11-26T21:00:00Z",
                    "conditions": _conditions(
                        ("FailureTarget", "True", "BackoffLimitExceeded"),
                        ("Failed", "True", "BackoffLimitExceeded"),
                    ),
                }
            },
        )
        wait_for(lambda: len(alerts(receiver)) >= 3, what="three firing alerts")
        assert states(receiver, "web") == [("firing", "ProgressDeadlineExceeded")]
        assert states(receiver, node) == [("firing", "NotReady")]
        assert states(receiver, "migrate") == [("firing", "BackoffLimitExceeded")]

        apps.patch_namespaced_deployment_status(
            "web",
            namespace,
            {
                "status": {
                    "conditions": _conditions(
                        ("Progressing", "True", "NewReplicaSetAvailable"),
                        ("Available", "True", "MinimumReplicasAvailable"),
                    )
                }
            },
        )
        core.patch_node_status(
            node, {"status": {"conditions": _conditions(("Ready", "True", "KubeletReady"))}}
        )
        batch.delete_namespaced_job("migrate", namespace, propagation_policy="Background")
        wait_for(lambda: len(alerts(receiver)) >= 6, what="three resolved alerts")
        time.sleep(QUIET)
        for name in ("web", node, "migrate"):
            assert [s for s, _ in states(receiver, name)] == ["firing", "resolved"], name
    finally:
        core.delete_node(node)
    assert kw.stop() == 0
