"""A Namespace and its objects applied at once, with a namespaceSelector: no create lost.

The Namespace watch and the resource watches are separate streams: the ConfigMap's or
the Deployment's ADDED may reach kubewatch before its Namespace's does. kubewatch holds
such objects until it knows the namespace's labels, so every create is reported.

To make the race likely rather than rare, kubewatch is stopped (SIGSTOP, as a CPU-starved
or GC-paused process would be) while the objects are created, so each watch has a backlog
and their threads work through them side by side.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from kubernetes import client as k8s

from tests.e2e.conftest import Kubewatch, wait_for
from tests.e2e.test_run import deployment

pytestmark = pytest.mark.e2e

ROUNDS = 60


@pytest.fixture
def run_id(api: k8s.ApiClient) -> Iterator[str]:
    run = uuid.uuid4().hex[:6]
    yield run
    core = k8s.CoreV1Api(api)
    for ns in core.list_namespace(label_selector=f"e2e-race={run}").items:
        core.delete_namespace(ns.metadata.name)


def test_objects_created_with_their_namespace_are_all_reported(
    api: k8s.ApiClient, run_id: str, start_kubewatch: Callable[..., Kubewatch]
) -> None:
    config: dict[str, Any] = {
        "cluster": "e2e",
        "namespaceSelector": f"e2e-race={run_id}",
        "resources": [{"kind": "ConfigMap"}, {"kind": "Deployment"}],
        "sinks": {"console": {"type": "stdout", "format": "json"}},
    }
    kw = start_kubewatch(config)
    kw.wait_synced(3)  # namespaces, configmaps, deployments
    core, apps = k8s.CoreV1Api(api), k8s.AppsV1Api(api)
    expected = set()
    kw.pause()
    for i in range(ROUNDS):
        ns = f"e2e-race-{run_id}-{i}"
        core.create_namespace({"metadata": {"name": ns, "labels": {"e2e-race": run_id}}})
        core.create_namespaced_config_map(ns, {"metadata": {"name": "settings"}})
        apps.create_namespaced_deployment(ns, deployment("web"))
        expected |= {("create", "ConfigMap", ns, "settings"), ("create", "Deployment", ns, "web")}
    kw.resume()

    def reported() -> set[tuple[str, str, str, str]]:
        return {(e["type"], e["kind"], e["namespace"], e["name"]) for e in kw.events}

    wait_for(lambda: reported() >= expected, 30, f"{len(expected)} creates")
    assert reported() == expected
    creates = [e for e in kw.events if e["type"] == "create"]
    assert len(creates) == len(expected)  # each once
