"""The Notifier and ClusterSink CRDs on a real API server: accepted as structural schemas,
unknown keys pruned, wrong types refused, status a subresource, READY/REASON/AGE columns.

The files applied are the chart's ``helm/kubewatch/crds/`` (a unit test pins them to
``kubewatch crds``), so what is proven here is what a ``helm install`` installs.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client as k8s

from kubewatch.tenancy.models import ClusterSinkSpec, NotifierSpec

from .conftest import wait_for

CRDS = Path(__file__).resolve().parents[2] / "helm" / "kubewatch" / "crds"
GROUP, VERSION = "kubewatch.io", "v1alpha1"

pytestmark = pytest.mark.e2e

NOTIFIER_SPEC: dict[str, Any] = {
    "suspend": False,
    "resources": [
        {"kind": "Deployment", "updates": {"watch": ["spec.template.spec.containers"]}},
        {"kind": "Event", "types": ["Warning"], "repeatWindow": "10m"},
    ],
    "sinks": {
        "chat": {
            "type": "slackWebhook",
            "urlFrom": {"secretKeyRef": {"name": "slack", "key": "url"}},
            "rateLimit": 2,
        },
        "hook": {
            "type": "webhook",
            "urlFrom": {"secretKeyRef": {"name": "hook", "key": "url"}},
            "headersFrom": {"X-Token": {"secretKeyRef": {"name": "hook", "key": "token"}}},
            "timeout": 2.5,
        },
    },
    "sinkRefs": [{"kind": "ClusterSink", "name": "ops-teams"}],
    "routes": [{"match": {"kinds": ["Event"]}, "sinks": ["chat", "ops-teams"]}],
}


def _established(ext: k8s.ApiextensionsV1Api, name: str) -> bool:
    crd = ext.read_custom_resource_definition(name)
    return any(
        c.type == "Established" and c.status == "True" for c in (crd.status.conditions or [])
    )


@pytest.fixture(scope="module")
def crds(api: k8s.ApiClient) -> list[str]:
    """The chart's CRDs, created (or replaced) and established."""
    ext = k8s.ApiextensionsV1Api(api)
    names = []
    for path in sorted(CRDS.glob("*.yaml")):
        body = yaml.safe_load(path.read_text())
        name = body["metadata"]["name"]
        try:
            ext.create_custom_resource_definition(body)
        except k8s.ApiException as e:
            assert e.status == 409, e.body
            current = ext.read_custom_resource_definition(name)
            body["metadata"]["resourceVersion"] = current.metadata.resource_version
            ext.replace_custom_resource_definition(name, body)
        names.append(name)
    for name in names:
        wait_for(lambda n=name: _established(ext, n), what=f"CRD {name} established")
    return names


@pytest.fixture
def objects(api: k8s.ApiClient, crds: list[str]) -> Iterator[k8s.CustomObjectsApi]:
    custom = k8s.CustomObjectsApi(api)
    yield custom
    try:
        custom.delete_cluster_custom_object(GROUP, VERSION, "clustersinks", "ops-teams")
    except k8s.ApiException as e:
        assert e.status == 404


def notifier(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Notifier",
        "metadata": {"name": name},
        "spec": spec,
    }


def test_both_crds_are_accepted_as_structural(api: k8s.ApiClient, crds: list[str]) -> None:
    ext = k8s.ApiextensionsV1Api(api)
    for name in crds:
        conditions = {
            c.type: c for c in ext.read_custom_resource_definition(name).status.conditions
        }
        assert "NonStructuralSchema" not in conditions, conditions["NonStructuralSchema"].message
    assert sorted(crds) == ["clustersinks.kubewatch.io", "notifiers.kubewatch.io"]


def test_a_valid_notifier_is_stored_as_written(
    objects: k8s.CustomObjectsApi, namespace: str
) -> None:
    created = objects.create_namespaced_custom_object(
        GROUP, VERSION, namespace, "notifiers", notifier("web-alerts", NOTIFIER_SPEC)
    )
    assert created["spec"] == NOTIFIER_SPEC
    NotifierSpec.model_validate(created["spec"])  # and kubewatch accepts what was stored


def test_unknown_keys_are_pruned_at_every_level(
    objects: k8s.CustomObjectsApi, namespace: str
) -> None:
    spec = json.loads(json.dumps(NOTIFIER_SPEC))
    spec["surprise"] = True
    spec["resources"][0]["namespacez"] = ["kube-system"]
    spec["sinks"]["chat"]["bogus"] = "x"
    spec["sinks"]["chat"]["urlFrom"]["secretKeyRef"]["namespace"] = "kube-system"
    created = objects.create_namespaced_custom_object(
        GROUP, VERSION, namespace, "notifiers", notifier("pruned", spec)
    )
    assert created["spec"] == NOTIFIER_SPEC


def test_a_key_only_a_namespace_could_name_is_not_in_the_schema(
    objects: k8s.CustomObjectsApi, namespace: str
) -> None:
    spec = json.loads(json.dumps(NOTIFIER_SPEC))
    spec["resources"][0]["namespaces"] = {"include": ["kube-system"]}
    spec["resources"][0]["namespaceSelector"] = "team=b"
    created = objects.create_namespaced_custom_object(
        GROUP, VERSION, namespace, "notifiers", notifier("other-ns", spec)
    )
    assert "namespaces" not in created["spec"]["resources"][0]
    assert "namespaceSelector" not in created["spec"]["resources"][0]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"suspend": "yes"}, "spec.suspend"),
        ({"resources": "Deployment"}, "spec.resources"),
        ({"sinks": {"chat": {"type": "pager"}}}, "spec.sinks.chat.type"),
        ({"sinkRefs": [{"kind": "Secret", "name": "x"}]}, "spec.sinkRefs"),
    ],
)
def test_wrong_types_are_refused(
    objects: k8s.CustomObjectsApi, namespace: str, change: dict[str, Any], field: str
) -> None:
    with pytest.raises(k8s.ApiException) as info:
        objects.create_namespaced_custom_object(
            GROUP, VERSION, namespace, "notifiers", notifier("bad", {**NOTIFIER_SPEC, **change})
        )
    assert info.value.status == 422
    assert field in info.value.body


def test_a_notifier_without_spec_is_refused(objects: k8s.CustomObjectsApi, namespace: str) -> None:
    body = notifier("empty", {})
    del body["spec"]
    with pytest.raises(k8s.ApiException) as info:
        objects.create_namespaced_custom_object(GROUP, VERSION, namespace, "notifiers", body)
    assert info.value.status == 422


def test_status_is_a_subresource_and_shows_in_columns(
    api: k8s.ApiClient, objects: k8s.CustomObjectsApi, namespace: str
) -> None:
    created = objects.create_namespaced_custom_object(
        GROUP, VERSION, namespace, "notifiers", notifier("status", NOTIFIER_SPEC)
    )
    status = {
        "observedGeneration": created["metadata"]["generation"],
        "conditions": [
            {
                "type": "Ready",
                "status": "False",
                "reason": "KindNotAllowed",
                "message": "spec.resources[1].kind: Secret is not allowed",
                "lastTransitionTime": "2024-05-01T12:00:00Z",
                "observedGeneration": 1,
            }
        ],
        "lastError": {"time": "2024-05-01T12:00:00Z", "sink": "chat", "message": "HTTP 500"},
    }
    ignored = {**created, "status": status}
    objects.replace_namespaced_custom_object(
        GROUP, VERSION, namespace, "notifiers", "status", ignored
    )
    read = objects.get_namespaced_custom_object(GROUP, VERSION, namespace, "notifiers", "status")
    assert "status" not in read, "the main resource must not write status"
    read["status"] = status
    objects.replace_namespaced_custom_object_status(
        GROUP, VERSION, namespace, "notifiers", "status", read
    )
    after = objects.get_namespaced_custom_object(GROUP, VERSION, namespace, "notifiers", "status")
    assert after["status"] == status
    assert after["metadata"]["generation"] == created["metadata"]["generation"]

    table = _table(api, f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/notifiers")
    columns = [c["name"] for c in table["columnDefinitions"]]
    assert columns == ["Name", "Ready", "Reason", "Age"]
    [row] = table["rows"]
    assert row["cells"][:3] == ["status", "False", "KindNotAllowed"]


def test_a_cluster_sink_is_cluster_scoped(objects: k8s.CustomObjectsApi) -> None:
    spec = {
        "allowedNamespaces": {"matchLabels": {"team": "a"}},
        "sink": {"type": "teams", "urlFrom": {"secretKeyRef": {"name": "teams", "key": "url"}}},
    }
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ClusterSink",
        "metadata": {"name": "ops-teams"},
        "spec": {**spec, "extra": 1},
    }
    created = objects.create_cluster_custom_object(GROUP, VERSION, "clustersinks", body)
    assert created["spec"] == spec
    assert "namespace" not in created["metadata"]
    ClusterSinkSpec.model_validate(created["spec"])


def _table(api: k8s.ApiClient, path: str) -> dict[str, Any]:
    """What ``kubectl get`` shows: the server-side Table of a collection."""
    response = api.call_api(
        *api.param_serialize(
            "GET",
            path,
            header_params={"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io"},
            auth_settings=["BearerToken"],
        )
    )
    response.read()
    table: dict[str, Any] = json.loads(response.data)
    return table
