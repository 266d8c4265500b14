"""Resource resolution against discovery captured from a real kube-apiserver v1.20.2.

data/discovery-1.20.json maps every path ResourceTable.fetch requests to the server's answer,
captured with a Widget CRD (example.com/v1, short name wd) installed. Its odd parts are real:
built-ins have an empty singularName, Event is served by core v1 and events.k8s.io, Ingress
by networking.k8s.io and extensions, and CronJob only by batch/v1beta1 although batch
prefers v1.
"""

from __future__ import annotations

import copy
import json
import logging
import os
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import orjson
import pytest
import urllib3
from kubernetes import config

from kubewatch.errors import ApiError, ResolveError
from kubewatch.kube.discovery import NotInstalled, ResourceTable, ResourceType

DATA = Path(__file__).parents[1] / "data" / "discovery-1.20.json"

GetJson = Callable[[str], dict[str, Any]]


def _documents() -> dict[str, Any]:
    with DATA.open() as f:
        loaded: dict[str, Any] = json.load(f)
    return loaded


def fake_get_json(
    documents: Mapping[str, Any],
    failures: Mapping[str, BaseException] | None = None,
    requested: list[str] | None = None,
) -> GetJson:
    """A get_json serving captured documents: unknown paths answer 404 like the server."""

    def get_json(path: str) -> dict[str, Any]:
        if requested is not None:
            requested.append(path)
        if failures and path in failures:
            raise failures[path]
        if path not in documents:
            raise ApiError(404, "NotFound", f"the server could not find {path}")
        document: dict[str, Any] = copy.deepcopy(documents[path])
        return document

    return get_json


@pytest.fixture(scope="module")
def documents() -> dict[str, Any]:
    return _documents()


@pytest.fixture(scope="module")
def table(documents: dict[str, Any]) -> ResourceTable:
    return ResourceTable.fetch(fake_get_json(documents))


def test_fetch_requests_every_captured_document_and_nothing_else(
    documents: dict[str, Any],
) -> None:
    requested: list[str] = []
    table = ResourceTable.fetch(fake_get_json(documents, requested=requested))
    assert sorted(requested) == sorted(documents)
    assert len(requested) == len(set(requested))
    assert table.failed_groups == ()


@pytest.mark.parametrize(
    ("kind", "api_version", "expected"),
    [
        pytest.param("Deployment", None, "apps/v1 deployments", id="kind"),
        pytest.param("deployments", None, "apps/v1 deployments", id="plural"),
        pytest.param("deployment", None, "apps/v1 deployments", id="singular"),
        pytest.param("deploy", None, "apps/v1 deployments", id="short-name"),
        pytest.param("DEPLOYMENTS", None, "apps/v1 deployments", id="plural-upper-case"),
        pytest.param("  deploy ", None, "apps/v1 deployments", id="surrounding-space"),
        pytest.param("cm", None, "v1 configmaps", id="core-short-name"),
        pytest.param("ConfigMap", None, "v1 configmaps", id="core-kind"),
        pytest.param("configmap", None, "v1 configmaps", id="core-singular-from-kind"),
        pytest.param("Endpoints", None, "v1 endpoints", id="kind-equal-to-plural"),
        pytest.param("deployments.apps", None, "apps/v1 deployments", id="plural.group"),
        pytest.param("Deployment.apps", None, "apps/v1 deployments", id="Kind.group"),
        pytest.param("deploy.apps", None, "apps/v1 deployments", id="short.group"),
        pytest.param("widgets.example.com", None, "example.com/v1 widgets", id="crd-plural.group"),
        pytest.param("Widget.example.com", None, "example.com/v1 widgets", id="crd-Kind.group"),
        pytest.param("Widget", None, "example.com/v1 widgets", id="crd-kind"),
        pytest.param("widget", None, "example.com/v1 widgets", id="crd-singular"),
        pytest.param("wd", None, "example.com/v1 widgets", id="crd-short-name"),
        pytest.param("deployments.v1.apps", None, "apps/v1 deployments", id="plural.version.group"),
        pytest.param(
            "hpa.v2beta2.autoscaling",
            None,
            "autoscaling/v2beta2 horizontalpodautoscalers",
            id="short.version.group-non-preferred",
        ),
        pytest.param(
            "widgets.v1.example.com", None, "example.com/v1 widgets", id="crd-plural.version.group"
        ),
        pytest.param("Deployment", "apps/v1", "apps/v1 deployments", id="apiVersion+kind"),
        pytest.param("ConfigMap", "v1", "v1 configmaps", id="core-apiVersion+kind"),
        pytest.param(
            "Widget", "example.com/v1", "example.com/v1 widgets", id="crd-apiVersion+kind"
        ),
        pytest.param("deployments", "apps/v1", "apps/v1 deployments", id="apiVersion+plural"),
        pytest.param(
            "HorizontalPodAutoscaler",
            "autoscaling/v2beta1",
            "autoscaling/v2beta1 horizontalpodautoscalers",
            id="apiVersion-non-preferred",
        ),
        pytest.param("Ingress", "extensions/v1beta1", "extensions/v1beta1 ingresses", id="pinned"),
    ],
)
def test_accepted_forms(
    table: ResourceTable, kind: str, api_version: str | None, expected: str
) -> None:
    resolved = table.resolve(kind, api_version)
    assert f"{resolved.api_version} {resolved.plural}" == expected


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        pytest.param("Event", "v1", id="event-core-beats-events.k8s.io"),
        pytest.param("ev", "v1", id="event-short-name-core"),
        pytest.param("Event.events.k8s.io", "events.k8s.io/v1", id="event-group-preferred"),
        pytest.param(
            "events.v1beta1.events.k8s.io", "events.k8s.io/v1beta1", id="event-version-pinned"
        ),
        # networking.k8s.io comes before extensions in 1.20's /apis, so it wins.
        pytest.param("Ingress", "networking.k8s.io/v1", id="ingress-server-group-order"),
        pytest.param("ing", "networking.k8s.io/v1", id="ingress-short-name"),
        pytest.param("ingresses.extensions", "extensions/v1beta1", id="ingress-extensions"),
        pytest.param("hpa", "autoscaling/v1", id="hpa-preferred-version"),
        pytest.param("cronjobs", "batch/v1beta1", id="cronjob-only-non-preferred"),
    ],
)
def test_preference(table: ResourceTable, kind: str, expected: str) -> None:
    assert table.resolve(kind).api_version == expected


def test_group_order_of_the_server_decides(documents: dict[str, Any]) -> None:
    reordered = copy.deepcopy(documents)
    groups = reordered["/apis"]["groups"]
    names = [g["name"] for g in groups]
    extensions = groups.pop(names.index("extensions"))
    groups.insert(names.index("networking.k8s.io"), extensions)
    table = ResourceTable.from_documents(reordered)
    assert table.resolve("Ingress").api_version == "extensions/v1beta1"
    assert table.resolve("Event").api_version == "v1"


def test_preferred_version_decides_within_a_group(documents: dict[str, Any]) -> None:
    changed = copy.deepcopy(documents)
    autoscaling = next(g for g in changed["/apis"]["groups"] if g["name"] == "autoscaling")
    autoscaling["preferredVersion"] = {"groupVersion": "autoscaling/v2beta2", "version": "v2beta2"}
    table = ResourceTable.from_documents(changed)
    assert table.resolve("hpa").api_version == "autoscaling/v2beta2"


@pytest.mark.parametrize(
    ("kind", "api_version", "suggestion"),
    [
        pytest.param("Deploymnet", None, "Deployment", id="kind-typo"),
        pytest.param("confgmap", None, "ConfigMap", id="lowercase-typo"),
        pytest.param("Widgit", None, "Widget", id="crd-typo"),
        pytest.param("Deploymnet", "apps/v1", "Deployment", id="typo-in-built-in-group"),
        pytest.param("deploymnets.apps", None, "deployments.apps", id="dotted-typo"),
        pytest.param("deployments.app", None, "deployments.apps", id="group-typo"),
    ],
)
def test_unknown_names_suggest_close_matches(
    table: ResourceTable, kind: str, api_version: str | None, suggestion: str
) -> None:
    with pytest.raises(ResolveError) as caught:
        table.resolve(kind, api_version)
    assert type(caught.value) is ResolveError
    assert caught.value.suggestions[0] == suggestion
    assert len(caught.value.suggestions) <= 3
    assert f"did you mean {suggestion}" in str(caught.value)
    assert caught.value.ref == kind


def test_suggestions_are_distinct_and_watchable(table: ResourceTable) -> None:
    with pytest.raises(ResolveError) as caught:
        table.resolve("evnt")
    assert caught.value.suggestions == ("Event",)
    with pytest.raises(ResolveError) as caught:
        table.resolve("tokenreveiw")
    assert caught.value.suggestions == ()


def test_nothing_close_gives_no_suggestions(table: ResourceTable) -> None:
    with pytest.raises(ResolveError) as caught:
        table.resolve("xyzzy")
    assert type(caught.value) is ResolveError
    assert caught.value.suggestions == ()
    assert str(caught.value) == "unknown resource 'xyzzy'"


@pytest.mark.parametrize(
    ("kind", "api_version"),
    [
        pytest.param("Widget", "acme.io/v1", id="apiVersion-group-not-served"),
        pytest.param("Gadget", "example.com/v1", id="served-crd-group-kind-missing"),
        pytest.param("gadgets.example.com", None, id="dotted-served-crd-group"),
        pytest.param("certificates.cert-manager.io", None, id="dotted-group-not-served"),
        pytest.param("Certificate.v1.cert-manager.io", None, id="kind.version.group"),
        # CRD projects inside *.k8s.io: not the apiserver's own groups.
        pytest.param("httproutes.gateway.networking.k8s.io", None, id="gateway-api"),
        pytest.param("VolumeSnapshot", "snapshot.storage.k8s.io/v1", id="volume-snapshot"),
    ],
)
def test_not_installed(table: ResourceTable, kind: str, api_version: str | None) -> None:
    with pytest.raises(NotInstalled, match="CustomResourceDefinition"):
        table.resolve(kind, api_version)


@pytest.mark.parametrize(
    ("kind", "api_version", "message"),
    [
        pytest.param("Gadget", None, "unknown resource 'Gadget'", id="bare-kind"),
        pytest.param("Deploymnet", "apps/v1", "in apps/v1", id="built-in-group"),
        pytest.param("foos.apps", None, "in group apps", id="dotted-built-in-group"),
        pytest.param("foos.networking.k8s.io", None, "in group networking.k8s.io", id="k8s.io"),
        pytest.param(
            "FlowSchema",
            "flowcontrol.apiserver.k8s.io/v1",
            "served as: flowcontrol.apiserver.k8s.io/v1beta1",
            id="built-in-version-not-served",
        ),
        pytest.param(
            "Foo", "resource.k8s.io/v1", "group resource.k8s.io is not served", id="newer-group"
        ),
        pytest.param(
            "Widget",
            "example.com/v2",
            "not served as example.com/v2; served as: example.com/v1",
            id="crd-version-not-served",
        ),
        pytest.param(
            "deployments.v2.apps", None, "not served as apps/v2; served as: apps/v1", id="dotted"
        ),
        pytest.param("CronJob", "batch/v1", "served as: batch/v1beta1", id="cronjob-v1"),
        pytest.param("ConfigMap", "v2", "not served as v2; served as: v1", id="core-v2"),
        pytest.param(
            "hpa",
            "autoscaling/v2",
            "served as: autoscaling/v1, autoscaling/v2beta1, autoscaling/v2beta2",
            id="versions-in-preference-order",
        ),
        pytest.param("", None, "empty resource kind", id="empty"),
        pytest.param("pods/log", None, "subresource", id="subresource"),
        pytest.param("Scale", None, "unknown resource 'Scale'", id="subresource-kind-skipped"),
    ],
)
def test_resolve_errors_that_are_not_crds(
    table: ResourceTable, kind: str, api_version: str | None, message: str
) -> None:
    with pytest.raises(ResolveError, match=message) as caught:
        table.resolve(kind, api_version)
    assert not isinstance(caught.value, NotInstalled)


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        pytest.param("bindings", "bindings cannot be listed and watched", id="create-only"),
        pytest.param("Binding", "bindings cannot be listed and watched", id="by-kind"),
        pytest.param(
            "tokenreviews",
            "tokenreviews.authentication.k8s.io cannot be listed and watched",
            id="grouped",
        ),
        pytest.param("cs", "componentstatuses cannot be listed and watched", id="list-no-watch"),
    ],
)
def test_not_watchable(table: ResourceTable, kind: str, message: str) -> None:
    with pytest.raises(ResolveError, match=message):
        table.resolve(kind)


def test_failing_group_version_is_skipped(
    documents: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    failures = {
        "/apis/example.com/v1": ApiError(503, "ServiceUnavailable", "service unavailable"),
        "/apis/events.k8s.io/v1beta1": ApiError(404, "NotFound", "gone"),
    }
    with caplog.at_level(logging.WARNING, logger="kubewatch.kube.discovery"):
        table = ResourceTable.fetch(fake_get_json(documents, failures))
    assert table.failed_groups == ("events.k8s.io/v1beta1", "example.com/v1")
    warned = " ".join(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    assert "example.com/v1" in warned
    assert "503" in warned
    assert "events.k8s.io/v1beta1" in warned
    assert table.resolve("deploy").api_version == "apps/v1"
    assert table.resolve("Event.events.k8s.io").api_version == "events.k8s.io/v1"
    with pytest.raises(NotInstalled, match=r"discovery failed for example\.com/v1"):
        table.resolve("Widget", "example.com/v1")
    with pytest.raises(ResolveError, match=r"discovery failed for .*example\.com/v1"):
        table.resolve("wd")


def test_missing_document_counts_as_failed(documents: dict[str, Any]) -> None:
    partial = {p: d for p, d in documents.items() if p != "/apis/example.com/v1"}
    assert ResourceTable.from_documents(partial).failed_groups == ("example.com/v1",)


@pytest.mark.parametrize(
    "path",
    [pytest.param("/api", id="api"), pytest.param("/apis", id="apis")],
)
def test_root_documents_must_answer(documents: dict[str, Any], path: str) -> None:
    failures = {path: ApiError(403, "Forbidden", "no")}
    with pytest.raises(ApiError):
        ResourceTable.fetch(fake_get_json(documents, failures))


def test_connection_errors_propagate(documents: dict[str, Any]) -> None:
    failures = {"/apis/apps/v1": ConnectionResetError("reset by peer")}
    with pytest.raises(OSError, match="reset by peer"):
        ResourceTable.fetch(fake_get_json(documents, failures))


@pytest.mark.parametrize(
    ("kind", "namespace", "path"),
    [
        pytest.param("cm", "ns", "/api/v1/namespaces/ns/configmaps", id="core-namespaced"),
        pytest.param("cm", None, "/api/v1/configmaps", id="core-all-namespaces"),
        pytest.param("cm", "", "/api/v1/configmaps", id="empty-namespace-is-all"),
        pytest.param("no", None, "/api/v1/nodes", id="core-cluster-scoped"),
        pytest.param("deploy", "ns", "/apis/apps/v1/namespaces/ns/deployments", id="grouped"),
        pytest.param("deploy", None, "/apis/apps/v1/deployments", id="grouped-all"),
        pytest.param(
            "crd",
            None,
            "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
            id="grouped-cluster-scoped",
        ),
        pytest.param("wd", "ns", "/apis/example.com/v1/namespaces/ns/widgets", id="crd"),
    ],
)
def test_path(table: ResourceTable, kind: str, namespace: str | None, path: str) -> None:
    assert table.resolve(kind).path(namespace) == path


def test_path_rejects_a_namespace_for_cluster_scoped(table: ResourceTable) -> None:
    with pytest.raises(ValueError, match="nodes is cluster-scoped"):
        table.resolve("Node").path("ns")


def test_resource_type_fields(table: ResourceTable) -> None:
    deploy = table.resolve("deploy")
    assert deploy == ResourceType(
        group="apps",
        version="v1",
        kind="Deployment",
        plural="deployments",
        singular="deployment",
        namespaced=True,
        short_names=("deploy",),
        verbs=frozenset(
            {"create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"}
        ),
    )
    assert deploy.api_version == "apps/v1"
    assert deploy.group_resource == "deployments.apps"
    assert deploy.watchable
    cm = table.resolve("cm")
    assert (cm.api_version, cm.group_resource) == ("v1", "configmaps")
    assert table.resolve("wd").singular == "widget"


# --- e2e: the same resolution against a live API server -------------------------------------


def _client_get_json(kubeconfig: str) -> tuple[GetJson, Callable[[], None]]:
    """A get_json over the kubernetes client's raw path, and a close function."""
    api = config.new_client_from_config(config_file=kubeconfig)  # type: ignore[no-untyped-call]

    def get_json(path: str) -> dict[str, Any]:
        method, url, headers, _, _ = api.param_serialize(
            "GET", path, header_params={"Accept": "application/json"}, auth_settings=["BearerToken"]
        )
        try:
            response = api.call_api(method, url, header_params=headers, _request_timeout=(5, 30))
        except urllib3.exceptions.HTTPError as error:
            raise OSError(f"GET {path}: {error}") from error
        response.read()
        if response.status >= 400:
            raise ApiError(response.status, str(response.reason), response.data.decode()[:200])
        decoded: dict[str, Any] = orjson.loads(response.data)
        return decoded

    return get_json, api.close


@pytest.fixture
def live_get_json() -> Iterator[GetJson]:
    kubeconfig = os.environ.get("KUBEWATCH_E2E_KUBECONFIG")
    if not kubeconfig:
        pytest.skip("KUBEWATCH_E2E_KUBECONFIG names no disposable cluster")
    get_json, close = _client_get_json(kubeconfig)
    yield get_json
    close()


@pytest.mark.e2e
def test_e2e_resolves_against_live_server(live_get_json: GetJson) -> None:
    table = ResourceTable.fetch(live_get_json)
    assert table.resolve("deploy").path("default") == "/apis/apps/v1/namespaces/default/deployments"
    assert table.resolve("cm").path() == "/api/v1/configmaps"
    assert table.resolve("Event").api_version == "v1"
