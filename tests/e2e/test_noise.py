"""Noise control, routing, alerts, digests and escaping against a real API server."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client as k8s

from tests.e2e.conftest import KUBECONFIG, Kubewatch, Receiver, brief, wait_for
from tests.e2e.test_run import deployment, run_cli

pytestmark = pytest.mark.e2e

TOKEN_ENV = {"E2E_TOKEN": "t"}


@pytest.fixture
def second_receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def config(namespaces: list[str], resources: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {
        "cluster": "e2e",
        "namespaces": {"include": namespaces},
        "resources": resources,
        "sinks": {"console": {"type": "stdout", "format": "json"}},
        "delivery": {"retry": {"attempts": 20, "maxBackoff": 1}},
        **extra,
    }


def now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def kube_event(
    namespace: str, name: str, pod: str, reason: str, count: int, *, kind: str = "Warning"
) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "involvedObject": {
            "kind": "Pod",
            "namespace": namespace,
            "name": pod,
            "uid": f"uid-{pod}",
            "apiVersion": "v1",
        },
        "reason": reason,
        "message": f"{reason} happened to {pod}",
        "type": kind,
        "count": count,
        "source": {"component": "kubelet"},
        "firstTimestamp": now(),
        "lastTimestamp": now(),
    }


def test_update_noise_control_names_the_container_and_honours_ignore(
    api: k8s.ApiClient, namespace: str, start_kubewatch: Callable[..., Kubewatch]
) -> None:
    apps = k8s.AppsV1Api(api)
    cfg = config(
        [namespace],
        [{"kind": "Deployment", "events": ["update"], "updates": {"ignore": ["spec.replicas"]}}],
    )
    kw = start_kubewatch(cfg)
    kw.wait_synced(1)
    apps.create_namespaced_deployment(namespace, deployment("web", image="nginx:1.25"))
    apps.patch_namespaced_deployment("web", namespace, {"spec": {"replicas": 5}})  # ignored
    apps.patch_namespaced_deployment(
        "web",
        namespace,
        {"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]}}}},
    )
    wait_for(lambda: kw.events, what="the image update")
    time.sleep(2)
    assert len(kw.events) == 1
    event = kw.events[0]
    assert event["changes"] == [
        {
            "path": "spec.template.spec.containers[web].image",
            "op": "changed",
            "old": "nginx:1.25",
            "new": "nginx:1.27",
        }
    ]
    assert "containers[web].image nginx:1.25 → nginx:1.27" in event["summary"]


def test_warning_event_routed_to_one_sink_and_reported_once_per_window(
    api: k8s.ApiClient,
    namespace: str,
    receiver: Receiver,
    second_receiver: Receiver,
    start_kubewatch: Callable[..., Kubewatch],
) -> None:
    core = k8s.CoreV1Api(api)
    cfg = config(
        [namespace],
        [
            {"kind": "ConfigMap"},
            {
                "kind": "Event",
                "types": ["Warning"],
                "reasons": ["BackOff", "Failed.*"],
                "involvedKinds": ["Pod"],
                "repeatWindow": "4s",
            },
        ],
        sinks={
            "oncall": {"type": "webhook", "url": receiver.url},
            "audit": {"type": "webhook", "url": second_receiver.url},
        },
        routes=[
            {
                "match": {"kinds": ["Event"], "reasons": ["BackOff"]},
                "sinks": ["oncall"],
                "stop": True,
            },
            {"sinks": ["audit"]},
        ],
    )
    kw = start_kubewatch(cfg)
    kw.wait_synced(2)
    core.create_namespaced_event(namespace, kube_event(namespace, "web-1.a", "web-1", "BackOff", 1))
    core.create_namespaced_event(
        namespace, kube_event(namespace, "web-1.b", "web-1", "Pulled", 1, kind="Normal")
    )
    core.create_namespaced_event(
        namespace, kube_event(namespace, "web-2.c", "web-2", "FailedMount", 1)
    )
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "cm"}})
    for count in (2, 3, 4):  # repeats within the window: suppressed
        core.patch_namespaced_event("web-1.a", namespace, {"count": count, "lastTimestamp": now()})
    wait_for(
        lambda: len(receiver.events) >= 1 and len(second_receiver.events) >= 2, what="routed events"
    )
    time.sleep(4.5)  # the window passes
    core.patch_namespaced_event("web-1.a", namespace, {"count": 5, "lastTimestamp": now()})
    wait_for(lambda: len(receiver.events) >= 2, what="the repeat after the window")
    time.sleep(1.5)

    oncall = receiver.events
    assert [(e["kind"], e["k8sEvent"]["reason"], e["k8sEvent"]["count"]) for e in oncall] == [
        ("Event", "BackOff", 1),
        ("Event", "BackOff", 5),
    ]
    assert oncall[0]["k8sEvent"]["involvedObject"]["name"] == "web-1"
    assert oncall[0]["k8sEvent"]["message"] == "BackOff happened to web-1"
    audit = second_receiver.events
    assert sorted(
        (e["kind"], e["name"] if e["kind"] != "Event" else e["k8sEvent"]["reason"]) for e in audit
    ) == [
        ("ConfigMap", "cm"),
        ("Event", "FailedMount"),
    ]  # the Normal "Pulled" Event is filtered out; BackOff stopped at the first route


def test_mass_delete_arrives_as_a_digest(
    api: k8s.ApiClient,
    namespace: str,
    receiver: Receiver,
    start_kubewatch: Callable[..., Kubewatch],
) -> None:
    core = k8s.CoreV1Api(api)
    for i in range(200):
        core.create_namespaced_config_map(
            namespace, {"metadata": {"name": f"cm-{i:03d}", "labels": {"batch": "x"}}}
        )
    cfg = config(
        [namespace],
        [{"kind": "ConfigMap"}],
        sinks={
            "audit": {
                "type": "webhook",
                "url": receiver.url,
                "digest": {"threshold": 10, "window": "3s"},
            }
        },
    )
    kw = start_kubewatch(cfg)
    kw.wait_synced(1)
    core.delete_collection_namespaced_config_map(namespace, label_selector="batch=x")
    wait_for(lambda: any(e["digest"] for e in receiver.events), timeout=30, what="the digest")
    time.sleep(1)
    single = [e for e in receiver.events if not e["digest"]]
    digests = [e for e in receiver.events if e["digest"]]
    assert len(single) == 10 and all(e["type"] == "delete" for e in single)
    assert len(digests) == 1
    digest = digests[0]
    assert digest["digest"]["count"] == 190 and len(digest["digest"]["ids"]) == 190
    assert (
        digest["type"] == "delete"
        and digest["kind"] == "ConfigMap"
        and digest["namespace"] == namespace
    )
    assert (
        "190 ConfigMaps deleted in namespace" in digest["summary"]
        and "and 187 more" in digest["summary"]
    )
    ids = {e["id"] for e in single} | set(digest["digest"]["ids"])
    assert len(ids) == 200  # every delete accounted for, once


def test_dropped_namespace_is_never_delivered(
    api: k8s.ApiClient, namespace: str, start_kubewatch: Callable[..., Kubewatch]
) -> None:
    core = k8s.CoreV1Api(api)
    scratch = f"{namespace}-scratch"
    core.create_namespace({"metadata": {"name": scratch}})
    try:
        cfg = config(
            [],
            [{"kind": "ConfigMap", "namespaces": {"include": [f"{namespace}*"]}}],
            drop=[{"namespaces": ["*-scratch"]}],
        )
        kw = start_kubewatch(cfg)
        kw.wait_synced(1)
        core.create_namespaced_config_map(scratch, {"metadata": {"name": "dropped"}})
        core.create_namespaced_config_map(namespace, {"metadata": {"name": "kept"}})
        wait_for(lambda: kw.events, what="the kept create")
        time.sleep(2)
        assert brief(kw.events) == [("create", "ConfigMap", "kept")]
    finally:
        core.delete_namespace(scratch)


def test_object_text_is_escaped_for_the_sinks_markup(
    api: k8s.ApiClient,
    namespace: str,
    receiver: Receiver,
    start_kubewatch: Callable[..., Kubewatch],
) -> None:
    core = k8s.CoreV1Api(api)
    evil = "<!channel> <https://evil.example|click>"
    cfg = config(
        [namespace],
        [{"kind": "ConfigMap"}],
        sinks={
            "chat": {
                "type": "webhook",
                "url": receiver.url,
                "markup": "slack",
                "bodyTemplate": '{"text": "{{ summary }}", "name": "{{ name }}"}',
            },
            "console": {"type": "stdout", "format": "json"},
        },
    )
    kw = start_kubewatch(cfg)
    kw.wait_synced(1)
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "x"}})
    core.patch_namespaced_config_map("x", namespace, {"metadata": {"annotations": {"note": evil}}})
    wait_for(lambda: len(receiver.events) >= 2, what="both chat messages")
    text = receiver.events[1]["text"]
    assert "<!channel>" not in text and "<https://" not in text
    assert "&lt;!channel&gt; &lt;https://evil" in text  # the summary shortens long values
    # the JSON contract keeps the raw value: escaping is for markup, not for data
    update = next(e for e in kw.events if e["type"] == "update")
    assert update["changes"][0]["new"] == {"note": evil}


def test_validate_reports_bad_routes_templates_and_filters(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {
                "resources": [
                    {"kind": "ConfigMap", "labels": "app in ()", "updates": {"watch": ["spec..x"]}},
                    {"kind": "ConfigMap", "reasons": ["BackOff"]},
                ],
                "sinks": {
                    "console": {"type": "stdout", "format": "text", "template": "{{ evnt.kind }}"},
                    "hook": {
                        "type": "webhook",
                        "url": "http://127.0.0.1:9/x",
                        "bodyTemplate": "{{ summary",
                    },
                },
                "routes": [{"match": {"namespaces": ["/(/"]}, "sinks": ["console"]}],
            }
        )
    )
    result = run_cli("validate", "--config", str(cfg), "--kubeconfig", str(KUBECONFIG))
    assert result.returncode == 2
    for path in (
        "resources[0].labels",
        "resources[0].updates.watch[0]",
        "routes[0].match.namespaces[0]",
    ):
        assert path in result.stderr, result.stderr
    cfg.write_text(
        yaml.safe_dump(
            {
                "resources": [{"kind": "ConfigMap", "reasons": ["BackOff"]}],
                "sinks": {
                    "console": {"type": "stdout", "format": "text", "template": "{{ evnt.kind }}"},
                    "hook": {
                        "type": "webhook",
                        "url": "http://127.0.0.1:9/x",
                        "bodyTemplate": "{{ summary",
                    },
                },
            }
        )
    )
    result = run_cli("validate", "--config", str(cfg), "--kubeconfig", str(KUBECONFIG))
    assert result.returncode == 2
    assert "sinks.console.template" in result.stderr and "evnt" in result.stderr
    assert "sinks.hook.bodyTemplate" in result.stderr
    cfg.write_text(
        yaml.safe_dump(
            {
                "resources": [{"kind": "ConfigMap", "reasons": ["BackOff"]}],
                "sinks": {"console": {"type": "stdout"}},
            }
        )
    )
    result = run_cli("validate", "--config", str(cfg), "--kubeconfig", str(KUBECONFIG))
    assert result.returncode == 2
    assert "resources[0].reasons: applies only to kind Event" in result.stderr
