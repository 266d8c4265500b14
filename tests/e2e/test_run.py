"""kubewatch run against a real API server: what it reports, once, and what it does not."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client as k8s

from tests.e2e.conftest import KUBECONFIG, Kubewatch, Receiver, base_config, brief, wait_for

pytestmark = pytest.mark.e2e

TOKEN_ENV = {"E2E_TOKEN": "e2e-header-token-value"}


def deployment(name: str, replicas: int = 1, image: str = "nginx:1.25") -> dict[str, Any]:
    labels = {"app": name}
    return {
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "web", "image": image}]},
            },
        },
    }


def test_lifecycle_of_configmap_deployment_and_crd_reported_once_to_both_sinks(
    api: k8s.ApiClient,
    namespace: str,
    widget_crd: str,
    receiver: Receiver,
    start_kubewatch: Callable[..., Kubewatch],
) -> None:
    core, apps, custom = k8s.CoreV1Api(api), k8s.AppsV1Api(api), k8s.CustomObjectsApi(api)
    core.create_namespaced_config_map(
        namespace, {"metadata": {"name": "existing"}, "data": {"a": "1"}}
    )
    config = base_config(
        namespace,
        receiver,
        [
            {"kind": "cm"},
            {"kind": "deployments.apps"},
            {"kind": "Widget", "apiVersion": "example.com/v1"},
        ],
    )
    kw = start_kubewatch(config, TOKEN_ENV)
    kw.wait_synced(3)

    core.create_namespaced_config_map(
        namespace, {"metadata": {"name": "app"}, "data": {"mode": "a"}}
    )
    core.patch_namespaced_config_map("app", namespace, {"data": {"mode": "b"}})
    core.delete_namespaced_config_map("app", namespace)

    apps.create_namespaced_deployment(namespace, deployment("web"))
    apps.patch_namespaced_deployment("web", namespace, {"spec": {"replicas": 3}})
    # status-only and metadata-only churn: not an update anyone wants to hear about
    apps.patch_namespaced_deployment_status(
        "web", namespace, {"status": {"observedGeneration": 2, "replicas": 3}}
    )
    apps.patch_namespaced_deployment(
        "web", namespace, {"metadata": {"annotations": {"deployment.kubernetes.io/revision": "2"}}}
    )
    apps.patch_namespaced_deployment(
        "web",
        namespace,
        {"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]}}}},
    )
    apps.delete_namespaced_deployment("web", namespace)

    widget = {
        "apiVersion": "example.com/v1",
        "kind": "Widget",
        "metadata": {"name": "w1"},
        "spec": {"size": 1},
    }
    custom.create_namespaced_custom_object("example.com", "v1", namespace, "widgets", widget)
    custom.patch_namespaced_custom_object(
        "example.com", "v1", namespace, "widgets", "w1", {"spec": {"size": 2}}
    )
    custom.patch_namespaced_custom_object_status(
        "example.com", "v1", namespace, "widgets", "w1", {"status": {"ready": True}}
    )
    custom.delete_namespaced_custom_object("example.com", "v1", namespace, "widgets", "w1")

    expected = [
        ("create", "ConfigMap", "app"),
        ("update", "ConfigMap", "app"),
        ("delete", "ConfigMap", "app"),
        ("create", "Deployment", "web"),
        ("update", "Deployment", "web"),
        ("update", "Deployment", "web"),
        ("delete", "Deployment", "web"),
        ("create", "Widget", "w1"),
        ("update", "Widget", "w1"),
        ("delete", "Widget", "w1"),
    ]
    wait_for(
        lambda: len(kw.events) >= len(expected) and len(receiver.events) >= len(expected),
        what="all events in both sinks",
    )
    time.sleep(2)  # anything extra (a duplicate, a status update) would arrive by now

    for sink_events in (kw.events, receiver.events):
        got = brief(sink_events)
        for kind in ("ConfigMap", "Deployment", "Widget"):
            assert [t for t in got if t[1] == kind] == [t for t in expected if t[1] == kind]
        assert len(got) == len(expected)

    # both sinks got the same events, byte for byte in content
    by_id = {e["id"]: e for e in kw.events}
    assert set(by_id) == {e["id"] for e in receiver.events}
    for e in receiver.events:
        assert by_id[e["id"]] == e

    updates = {(e["kind"], e["resourceVersion"]): e for e in kw.events if e["type"] == "update"}
    cm_update = next(e for (kind, _), e in updates.items() if kind == "ConfigMap")
    assert cm_update["changes"] == [{"path": "data.mode", "op": "changed", "old": "a", "new": "b"}]
    dep_paths = sorted(
        c["path"] for e in updates.values() if e["kind"] == "Deployment" for c in e["changes"]
    )
    assert dep_paths == ["spec.replicas", "spec.template.spec.containers[web].image"]
    widget_update = next(e for e in updates.values() if e["kind"] == "Widget")
    assert widget_update["changes"][0]["path"] == "spec.size"
    assert (
        widget_update["apiVersion"] == "example.com/v1"
        and widget_update["resource"] == "widgets.example.com"
    )

    create = next(e for e in kw.events if e["type"] == "create" and e["kind"] == "Deployment")
    assert create["namespace"] == namespace and create["cluster"] == "e2e"
    assert create["apiVersion"] == "apps/v1" and create["resource"] == "deployments.apps"
    assert create["labels"] == {"app": "web"}
    assert create["summary"] == f"[e2e] Deployment {namespace}/web created"
    assert all(e["finalStateUnknown"] is False for e in kw.events)
    assert all(e["name"] != "existing" for e in kw.events)  # pre-existing: not a create

    # the webhook carried the configured header, from the environment
    headers = [h for h, _ in receiver.requests]
    assert all(h.get("X-Token") == TOKEN_ENV["E2E_TOKEN"] for h in headers)
    assert TOKEN_ENV["E2E_TOKEN"] not in kw.stderr

    assert kw.stop() == 0


def test_secret_values_never_leave_the_process(
    api: k8s.ApiClient,
    namespace: str,
    receiver: Receiver,
    start_kubewatch: Callable[..., Kubewatch],
) -> None:
    core = k8s.CoreV1Api(api)
    kw = start_kubewatch(base_config(namespace, receiver, [{"kind": "Secret"}]), TOKEN_ENV)
    kw.wait_synced(1)
    values = ["hunter2-first-value", "s3cr3t-second-value", "string-data-value"]
    core.create_namespaced_secret(
        namespace, {"metadata": {"name": "db"}, "stringData": {"password": values[0]}}
    )
    core.patch_namespaced_secret(
        "db", namespace, {"data": {"password": base64.b64encode(values[1].encode()).decode()}}
    )
    core.patch_namespaced_secret("db", namespace, {"stringData": {"token": values[2]}})
    core.delete_namespaced_secret("db", namespace)
    wait_for(lambda: len(receiver.events) >= 4 and len(kw.events) >= 4, what="secret events")
    assert kw.stop() == 0

    update = next(e for e in kw.events if e["type"] == "update")
    assert update["changes"] == [
        {"path": "data.password", "op": "changed", "old": "<redacted>", "new": "<redacted>"}
    ]
    added = [e for e in kw.events if e["type"] == "update"][1]["changes"]
    assert added == [{"path": "data.token", "op": "added", "old": None, "new": "<redacted>"}]
    everything = "".join(kw.stdout_lines) + kw.stderr + repr(receiver.requests)
    for value in values:
        assert value not in everything
        assert base64.b64encode(value.encode()).decode() not in everything


def test_sigterm_drains_and_exits_zero_within_10s(
    namespace: str, receiver: Receiver, start_kubewatch: Callable[..., Kubewatch]
) -> None:
    kw = start_kubewatch(base_config(namespace, receiver, [{"kind": "ConfigMap"}]), TOKEN_ENV)
    kw.wait_synced(1)
    started = time.monotonic()
    assert kw.stop(timeout=10) == 0
    assert time.monotonic() - started < 10
    assert "stopped in" in kw.stderr


def test_crd_installed_after_start_is_watched_once_it_appears(
    api: k8s.ApiClient,
    namespace: str,
    receiver: Receiver,
    start_kubewatch: Callable[..., Kubewatch],
) -> None:
    ext, custom = k8s.ApiextensionsV1Api(api), k8s.CustomObjectsApi(api)
    group = f"g{namespace[4:]}.example.org"
    config = base_config(namespace, receiver, [{"kind": "Gadget", "apiVersion": f"{group}/v1"}])
    kw = start_kubewatch(config, TOKEN_ENV)
    wait_for(lambda: "once it is installed" in kw.stderr, what="the not-installed warning")
    assert kw.proc.poll() is None
    ext.create_custom_resource_definition(
        {
            "metadata": {"name": f"gadgets.{group}"},
            "spec": {
                "group": group,
                "scope": "Namespaced",
                "names": {"plural": "gadgets", "singular": "gadget", "kind": "Gadget"},
                "versions": [
                    {
                        "name": "v1",
                        "served": True,
                        "storage": True,
                        "schema": {
                            "openAPIV3Schema": {
                                "type": "object",
                                "x-kubernetes-preserve-unknown-fields": True,
                            }
                        },
                    }
                ],
            },
        }
    )
    try:
        kw.wait_synced(1)
        custom.create_namespaced_custom_object(
            group,
            "v1",
            namespace,
            "gadgets",
            {"apiVersion": f"{group}/v1", "kind": "Gadget", "metadata": {"name": "g1"}},
        )
        wait_for(lambda: brief(kw.events) == [("create", "Gadget", "g1")], what="the Gadget create")
    finally:
        ext.delete_custom_resource_definition(f"gadgets.{group}")


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kubewatch", *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
    )


def test_unknown_kind_is_a_config_error_with_suggestions_and_nothing_starts(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {
                "resources": [{"kind": "ConfigMap"}, {"kind": "Deploymnet"}],
                "sinks": {"console": {"type": "stdout"}},
            }
        )
    )
    for command in ("run", "validate"):
        result = run_cli(command, "--config", str(cfg), "--kubeconfig", str(KUBECONFIG))
        assert result.returncode == 2, result.stderr
        assert "resources[1].kind" in result.stderr and "Deployment" in result.stderr
        assert "watching" not in result.stderr
        assert result.stdout.count("{") == 0


def test_validate_checks_that_each_resource_is_listable(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {
                "namespaces": {"exclude": ["kube-system"]},
                "resources": [
                    {"kind": "cm"},
                    {"kind": "deploy"},
                    {"kind": "Nope", "apiVersion": "nope.example.io/v1"},
                ],
                "sinks": {"console": {"type": "stdout"}},
            }
        )
    )
    ok = run_cli("validate", "--config", str(cfg), "--kubeconfig", str(KUBECONFIG))
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "configmaps cluster-wide fields metadata.namespace!=kube-system: listable" in ok.stdout
    assert "resources[2]: Nope is not installed yet" in ok.stdout
    denied = run_cli(
        "validate",
        "--config",
        str(cfg),
        "--kubeconfig",
        str(KUBECONFIG),
        "--context",
        "kube-local-viewer",
    )
    assert denied.returncode == 1
    assert "cannot list" in denied.stderr and "403" in denied.stderr
