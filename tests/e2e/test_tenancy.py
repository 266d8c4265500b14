"""Operator mode on a real API server: Notifiers reconciled by kubewatch itself, their
status and Events written by it, their events delivered to their own receivers only.

The CRDs are the chart's (``helm/kubewatch/crds/``). Receivers listen on 127.0.0.1, a
private address a tenant's sink may not use by default: the tests that deliver set
``tenancy.allowPrivateAddresses: true``; the one about ``SinkNotAllowed`` does not.
"""

from __future__ import annotations

import base64
import re
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from kubernetes import client as k8s

from .conftest import Kubewatch, Receiver, wait_for
from .test_health import alerts, create_pod, running, set_pod, states
from .test_tenancy_crds import GROUP, VERSION, crds  # noqa: F401  (fixture)

pytestmark = pytest.mark.e2e

PORT_LINE = re.compile(r"serving /metrics, /healthz, /readyz on port (\d+)")


@pytest.fixture
def namespaces(api: k8s.ApiClient) -> Iterator[Callable[..., str]]:
    """Makes namespaces (with labels); deletes them afterwards."""
    core = k8s.CoreV1Api(api)
    made: list[str] = []

    def make(labels: dict[str, str] | None = None) -> str:
        name = f"tn-{uuid.uuid4().hex[:8]}"
        core.create_namespace({"metadata": {"name": name, "labels": labels or {}}})
        made.append(name)
        return name

    yield make
    for name in made:
        core.delete_namespace(name)


@pytest.fixture
def custom(api: k8s.ApiClient, crds: list[str]) -> k8s.CustomObjectsApi:  # noqa: F811
    return k8s.CustomObjectsApi(api)


def run_operator(
    start_kubewatch: Callable[..., Kubewatch],
    home: str,
    *,
    private: bool = True,
    metrics: bool = False,
) -> Kubewatch:
    """kubewatch in operator mode; the file itself watches Services in ``home`` only.
    ``private``: tenant sinks may point at 127.0.0.1 (where the receivers are)."""
    config: dict[str, Any] = {
        "cluster": "e2e",
        "namespaces": {"include": [home]},
        "resources": [{"kind": "Service"}],
        "sinks": {"console": {"type": "stdout", "format": "json"}},
        "delivery": {"retry": {"attempts": 5, "maxBackoff": 1}},
        "tenancy": {"enabled": True, "allowPrivateAddresses": private, "namespace": home},
    }
    if metrics:
        config["server"] = {"port": 0, "address": "127.0.0.1"}
    env = {"POD_NAME": "kubewatch-e2e", "POD_NAMESPACE": home}
    kw = start_kubewatch(config, env)
    kw.wait_synced(1)
    return kw


def notifier(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Notifier",
        "metadata": {"name": name},
        "spec": spec,
    }


def hook_spec(url: str, kinds: tuple[str, ...] = ("ConfigMap",)) -> dict[str, Any]:
    return {
        "resources": [{"kind": k} for k in kinds],
        "sinks": {"hook": {"type": "webhook", "url": url}},
    }


def ready(custom: k8s.CustomObjectsApi, namespace: str, name: str) -> dict[str, Any] | None:
    """The Ready condition, once kubewatch wrote one for the current generation (of a
    ClusterSink when ``namespace`` is empty)."""
    if namespace:
        obj = custom.get_namespaced_custom_object(GROUP, VERSION, namespace, "notifiers", name)
    else:
        obj = custom.get_cluster_custom_object(GROUP, VERSION, "clustersinks", name)
    status = obj.get("status") or {}
    if status.get("observedGeneration") != obj["metadata"]["generation"]:
        return None
    return next((c for c in status.get("conditions") or () if c["type"] == "Ready"), None)


def wait_reason(
    custom: k8s.CustomObjectsApi, namespace: str, name: str, reason: str
) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        condition = ready(custom, namespace, name)
        return condition if condition is not None and condition["reason"] == reason else None

    condition: dict[str, Any] = wait_for(check, what=f"{namespace}/{name} {reason}")
    assert condition["status"] == ("True" if reason == "Ready" else "False")
    return condition


def configmap(core: k8s.CoreV1Api, namespace: str, name: str) -> None:
    core.create_namespaced_config_map(namespace, {"metadata": {"name": name}, "data": {"a": "1"}})


def names(receiver: Receiver) -> set[tuple[str, str]]:
    return {(e["namespace"], e["name"]) for e in receiver.events if "schemaVersion" in e}


def test_each_team_hears_only_its_own_namespace(
    api: k8s.ApiClient,
    custom: k8s.CustomObjectsApi,
    namespaces: Callable[..., str],
    start_kubewatch: Callable[..., Kubewatch],
) -> None:
    home, team_a, team_b = namespaces(), namespaces(), namespaces()
    hook_a, hook_b = Receiver(), Receiver()
    try:
        run_operator(start_kubewatch, home)
        for ns, hook in ((team_a, hook_a), (team_b, hook_b)):
            body = notifier("alerts", hook_spec(hook.url))
            custom.create_namespaced_custom_object(GROUP, VERSION, ns, "notifiers", body)
        for ns in (team_a, team_b):
            wait_reason(custom, ns, "alerts", "Ready")
        core = k8s.CoreV1Api(api)
        for i in range(3):
            configmap(core, team_a, f"a-{i}")
            configmap(core, team_b, f"b-{i}")
        want_a = {(team_a, f"a-{i}") for i in range(3)}
        want_b = {(team_b, f"b-{i}") for i in range(3)}
        wait_for(lambda: want_a <= names(hook_a) and want_b <= names(hook_b), what="both teams")
        assert names(hook_a) == want_a
        assert names(hook_b) == want_b
        assert {e["cluster"] for e in hook_a.events} == {"e2e"}

        def last_delivery() -> Any:
            obj = custom.get_namespaced_custom_object(GROUP, VERSION, team_a, "notifiers", "alerts")
            return (obj.get("status") or {}).get("lastDelivery")

        assert wait_for(last_delivery, what="status.lastDelivery")["sink"] == "hook"
    finally:
        hook_a.close()
        hook_b.close()


def test_an_invalid_notifier_says_where_and_is_ready_once_fixed(
    api: k8s.ApiClient,
    custom: k8s.CustomObjectsApi,
    namespaces: Callable[..., str],
    start_kubewatch: Callable[..., Kubewatch],
    receiver: Receiver,
) -> None:
    home, team = namespaces(), namespaces()
    run_operator(start_kubewatch, home)
    spec = hook_spec(receiver.url)
    spec["resources"][0]["updates"] = {"watch": ["data.["]}  # not a path
    custom.create_namespaced_custom_object(GROUP, VERSION, team, "notifiers", notifier("n", spec))
    condition = wait_reason(custom, team, "n", "Invalid")
    assert "spec.resources[0].updates" in condition["message"], condition

    def invalid_event() -> Any:
        events = k8s.CoreV1Api(api).list_namespaced_event(team).items
        return [
            e
            for e in events
            if (e.involved_object.kind, e.reason, e.type) == ("Notifier", "Invalid", "Warning")
        ]

    event = wait_for(invalid_event, what="a Warning Event Invalid on the Notifier")[0]
    assert event.involved_object.name == "n"
    assert "spec.resources[0].updates" in event.message

    custom.patch_namespaced_custom_object(
        GROUP, VERSION, team, "notifiers", "n", {"spec": hook_spec(receiver.url)}
    )
    wait_reason(custom, team, "n", "Ready")
    obj = custom.get_namespaced_custom_object(GROUP, VERSION, team, "notifiers", "n")
    assert obj["status"]["observedGeneration"] == obj["metadata"]["generation"] == 2


def test_what_a_tenant_may_not_do(
    custom: k8s.CustomObjectsApi,
    namespaces: Callable[..., str],
    start_kubewatch: Callable[..., Kubewatch],
    receiver: Receiver,
) -> None:
    home, team = namespaces(), namespaces()
    run_operator(start_kubewatch, home, private=False)
    secrets = notifier("secrets", hook_spec("https://hooks.example.com/x", ("Secret",)))
    custom.create_namespaced_custom_object(GROUP, VERSION, team, "notifiers", secrets)
    local = notifier("local", hook_spec(receiver.url))
    custom.create_namespaced_custom_object(GROUP, VERSION, team, "notifiers", local)
    condition = wait_reason(custom, team, "secrets", "KindNotAllowed")
    assert condition["message"].startswith("spec.resources[0].kind: Secret is not allowed")
    condition = wait_reason(custom, team, "local", "SinkNotAllowed")
    assert "spec.sinks.hook.url" in condition["message"]


def test_a_missing_secret_then_created_makes_it_ready(
    api: k8s.ApiClient,
    custom: k8s.CustomObjectsApi,
    namespaces: Callable[..., str],
    start_kubewatch: Callable[..., Kubewatch],
    receiver: Receiver,
) -> None:
    home, team = namespaces(), namespaces()
    run_operator(start_kubewatch, home)
    spec = {
        "resources": [{"kind": "ConfigMap"}],
        "sinks": {
            "hook": {"type": "webhook", "urlFrom": {"secretKeyRef": {"name": "hook", "key": "url"}}}
        },
    }
    custom.create_namespaced_custom_object(GROUP, VERSION, team, "notifiers", notifier("n", spec))
    condition = wait_reason(custom, team, "n", "SecretNotFound")
    assert "spec.sinks.hook.urlFrom.secretKeyRef" in condition["message"]
    core = k8s.CoreV1Api(api)
    value = base64.b64encode(receiver.url.encode()).decode()
    core.create_namespaced_secret(team, {"metadata": {"name": "hook"}, "data": {"url": value}})
    wait_reason(custom, team, "n", "Ready")
    configmap(core, team, "after")
    wait_for(lambda: (team, "after") in names(receiver), what="delivered through the Secret")


def test_a_cluster_sink_serves_the_namespaces_it_admits(
    api: k8s.ApiClient,
    custom: k8s.CustomObjectsApi,
    namespaces: Callable[..., str],
    start_kubewatch: Callable[..., Kubewatch],
    receiver: Receiver,
) -> None:
    home = namespaces()
    allowed, other = namespaces({"team": "a"}), namespaces({"team": "b"})
    sink_name = f"ops-{uuid.uuid4().hex[:6]}"
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ClusterSink",
        "metadata": {"name": sink_name},
        "spec": {
            "allowedNamespaces": {"matchLabels": {"team": "a"}},
            "sink": {"type": "webhook", "url": receiver.url},
        },
    }
    custom.create_cluster_custom_object(GROUP, VERSION, "clustersinks", body)
    try:
        run_operator(start_kubewatch, home, private=False)  # ClusterSinks are exempt
        spec = {
            "resources": [{"kind": "ConfigMap"}],
            "sinkRefs": [{"kind": "ClusterSink", "name": sink_name}],
        }
        for ns in (allowed, other):
            custom.create_namespaced_custom_object(
                GROUP, VERSION, ns, "notifiers", notifier("n", spec)
            )
        wait_reason(custom, allowed, "n", "Ready")
        wait_reason(custom, other, "n", "SinkNotAllowed")
        core = k8s.CoreV1Api(api)
        configmap(core, allowed, "yes")
        configmap(core, other, "no")
        wait_for(lambda: (allowed, "yes") in names(receiver), what="the ClusterSink delivers")
        assert (other, "no") not in names(receiver)
        wait_reason(custom, "", sink_name, "Ready")  # its own status
    finally:
        custom.delete_cluster_custom_object(GROUP, VERSION, "clustersinks", sink_name)


def test_a_cluster_sink_says_why_it_cannot_be_used(
    api: k8s.ApiClient,
    custom: k8s.CustomObjectsApi,
    namespaces: Callable[..., str],
    start_kubewatch: Callable[..., Kubewatch],
    receiver: Receiver,
) -> None:
    home = namespaces()
    sink_name = f"ops-{uuid.uuid4().hex[:6]}"
    url_from = {"secretKeyRef": {"name": "ops-hook", "key": "url"}}
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ClusterSink",
        "metadata": {"name": sink_name},
        "spec": {"sink": {"type": "webhook", "urlFrom": url_from}},
    }
    custom.create_cluster_custom_object(GROUP, VERSION, "clustersinks", body)
    try:
        run_operator(start_kubewatch, home, private=False)
        condition = wait_reason(custom, "", sink_name, "SecretNotFound")
        assert condition["message"] == (
            "spec.sink.urlFrom.secretKeyRef: Secret 'ops-hook' not found"
        )
        core = k8s.CoreV1Api(api)
        bad = base64.b64encode(b"ftp://example.com/").decode()
        core.create_namespaced_secret(
            home, {"metadata": {"name": "ops-hook"}, "data": {"url": bad}}
        )
        condition = wait_reason(custom, "", sink_name, "Invalid")
        assert condition["message"].startswith("spec.sink.urlFrom: ")
        good = base64.b64encode(receiver.url.encode()).decode()
        core.patch_namespaced_secret("ops-hook", home, {"data": {"url": good}})
        wait_reason(custom, "", sink_name, "Ready")
    finally:
        custom.delete_cluster_custom_object(GROUP, VERSION, "clustersinks", sink_name)


def test_many_notifiers_share_one_configmap_informer(
    custom: k8s.CustomObjectsApi,
    namespaces: Callable[..., str],
    start_kubewatch: Callable[..., Kubewatch],
) -> None:
    home = namespaces()
    teams = [namespaces() for _ in range(21)]
    kw = run_operator(start_kubewatch, home, metrics=True)
    for ns in teams:
        body = notifier("n", hook_spec("https://hooks.example.com/x"))
        custom.create_namespaced_custom_object(GROUP, VERSION, ns, "notifiers", body)
    for ns in teams:
        wait_reason(custom, ns, "n", "Ready")
    port = wait_for(lambda: PORT_LINE.search(kw.stderr), what="the metrics port").group(1)
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    assert 'kubewatch_informers{resource="configmaps"} 1.0' in text, text
    ready = re.search(r'^kubewatch_notifiers\{reason="Ready"\} (\S+)$', text, re.M)
    assert ready is not None, text
    assert float(ready.group(1)) >= 21  # earlier tests' Notifiers may still be terminating
    # operator mode's own watches are watches like the file's (metrics and /readyz)
    synced = r'^kubewatch_watch_synced\{resource="([^"]+)",watch="[^"]*\(operator mode\)"\} 1'
    own = {r.split(".")[0] for r in re.findall(synced, text, re.M)}
    assert own == {"notifiers", "clustersinks", "secrets"}, text
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as response:
        assert response.status == 200


def test_deleting_a_notifier_stops_its_deliveries(
    api: k8s.ApiClient,
    custom: k8s.CustomObjectsApi,
    namespaces: Callable[..., str],
    start_kubewatch: Callable[..., Kubewatch],
    receiver: Receiver,
) -> None:
    home, team, fence = namespaces(), namespaces(), namespaces()
    kw = run_operator(start_kubewatch, home)
    for ns in (team, fence):
        body = notifier("n", hook_spec(receiver.url))
        custom.create_namespaced_custom_object(GROUP, VERSION, ns, "notifiers", body)
        wait_reason(custom, ns, "n", "Ready")
    core = k8s.CoreV1Api(api)
    configmap(core, team, "before")
    wait_for(lambda: (team, "before") in names(receiver), what="delivered before the delete")
    custom.delete_namespaced_custom_object(GROUP, VERSION, team, "notifiers", "n")
    wait_for(lambda: f"Notifier {team}/n: stopped" in kw.stderr, what="the Notifier stopped")
    configmap(core, team, "after")
    # The fence: the same ConfigMap informer reports this one after "after", and the
    # fence Notifier still delivers to the same receiver: once it arrived, "after" had
    # its turn and was not delivered.
    configmap(core, fence, "later")
    wait_for(lambda: (fence, "later") in names(receiver), what="the fence Notifier's event")
    assert (team, "after") not in names(receiver)


def test_a_sink_refusing_for_good_is_a_warning_on_the_notifier(
    api: k8s.ApiClient,
    custom: k8s.CustomObjectsApi,
    namespaces: Callable[..., str],
    start_kubewatch: Callable[..., Kubewatch],
    receiver: Receiver,
) -> None:
    home, team = namespaces(), namespaces()
    run_operator(start_kubewatch, home)
    receiver.status = 400  # a permanent refusal: not retried
    custom.create_namespaced_custom_object(
        GROUP, VERSION, team, "notifiers", notifier("n", hook_spec(receiver.url))
    )
    wait_reason(custom, team, "n", "Ready")
    configmap(k8s.CoreV1Api(api), team, "refused")

    def sink_failed() -> Any:
        events = k8s.CoreV1Api(api).list_namespaced_event(team).items
        return [
            e for e in events if (e.involved_object.kind, e.reason) == ("Notifier", "SinkFailed")
        ]

    event = wait_for(sink_failed, what="a SinkFailed Event on the Notifier")[0]
    assert event.type == "Warning" and event.message.startswith("sink hook: ")

    def last_error() -> Any:
        obj = custom.get_namespaced_custom_object(GROUP, VERSION, team, "notifiers", "n")
        return (obj.get("status") or {}).get("lastError")

    assert wait_for(last_error, what="status.lastError")["sink"] == "hook"


def test_a_notifier_gets_health_alerts_of_its_namespace(
    api: k8s.ApiClient,
    custom: k8s.CustomObjectsApi,
    namespaces: Callable[..., str],
    start_kubewatch: Callable[..., Kubewatch],
    receiver: Receiver,
) -> None:
    home, team, other = namespaces(), namespaces(), namespaces()
    run_operator(start_kubewatch, home)
    spec = {  # resolveAfter: short, to see the recovery (the mechanism, not the default)
        "resources": [{"kind": "Pod", "health": {"resolveAfter": "3s"}}],
        "sinks": {"hook": {"type": "webhook", "url": receiver.url}},
    }
    custom.create_namespaced_custom_object(GROUP, VERSION, team, "notifiers", notifier("n", spec))
    wait_reason(custom, team, "n", "Ready")
    core = k8s.CoreV1Api(api)
    crash = running(ready=False, restarts=1, last="Error", waiting="CrashLoopBackOff")
    for ns in (team, other):
        create_pod(core, ns, "crash")
        set_pod(core, ns, "crash", crash)
    wait_for(lambda: states(receiver, "crash"), what="a firing alert")
    set_pod(core, team, "crash", running(ready=True, restarts=1, last="Error"))
    wait_for(lambda: len(states(receiver, "crash")) == 2, what="the recovery")
    assert states(receiver, "crash") == [
        ("firing", "CrashLoopBackOff"),
        ("resolved", "CrashLoopBackOff"),
    ]
    assert {e["namespace"] for e in alerts(receiver)} == {team}  # the other namespace's Pod: no
    assert not [e for e in receiver.events if e["type"] != "alert"]  # health only: no adds
