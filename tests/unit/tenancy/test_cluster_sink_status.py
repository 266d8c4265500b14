"""A ClusterSink's own status: Ready, or why not at its key path, kept current as its
Secrets change; written through the ClusterSink's status subresource."""

from __future__ import annotations

from typing import Any

from kubewatch.config import TenancyConfig
from kubewatch.tenancy.clustersinks import check_cluster_sink, cluster_sink_name
from kubewatch.tenancy.results import Compiled, Failure

from .conftest import ref, secret
from .test_controller import Rig, rig  # noqa: F401 (the fixture)

STATUS = "/apis/kubewatch.io/v1alpha1/clustersinks/ops/status"
TEAMS = "https://hooks.example.com/teams"


def cluster_sink(generation: int = 1, **sink: Any) -> dict[str, Any]:
    return {
        "apiVersion": "kubewatch.io/v1alpha1",
        "kind": "ClusterSink",
        "metadata": {"name": "ops", "uid": "uid-ops", "generation": generation},
        "spec": {
            "allowedNamespaces": {"matchLabels": {"team": "a"}},
            "sink": sink or {"type": "teams", "url": TEAMS},
        },
    }


def check(obj: dict[str, Any], secrets: dict[tuple[str, str], Any] | None = None) -> Any:
    found = secrets or {}
    return check_cluster_sink(
        obj,
        TenancyConfig(enabled=True),
        secrets=lambda ns, name: found.get((ns, name)),
        own_namespace="kubewatch",
    )


def test_a_usable_cluster_sink_is_ready() -> None:
    result = check(cluster_sink())
    assert isinstance(result, Compiled)
    assert result.message == "a teams sink"
    assert result.sinks["ops"].type == "teams"


def test_a_bad_value_is_invalid_at_its_key_path() -> None:
    result = check(cluster_sink(type="teams", url="ftp://hooks.example.com/x"))
    assert isinstance(result, Failure)
    assert result.reason == "Invalid"
    assert result.message.startswith("spec.sink.url: ")


def test_a_bad_spec_is_invalid() -> None:
    obj = cluster_sink()
    obj["spec"]["allowedNamespaces"] = {"matchLabels": "everyone"}
    result = check(obj)
    assert isinstance(result, Failure)
    assert (result.reason, result.message.split(":")[0]) == (
        "Invalid",
        "spec.allowedNamespaces.matchLabels",
    )


def test_secrets_are_read_in_kubewatchs_namespace_and_never_shown() -> None:
    obj = cluster_sink(type="teams", urlFrom=ref("teams", "url"))
    missing = check(obj)
    assert isinstance(missing, Failure)
    assert missing.reason == "SecretNotFound"
    assert missing.message == "spec.sink.urlFrom.secretKeyRef: Secret 'teams' not found"
    assert missing.secrets == {("kubewatch", "teams")}
    wrong = check(obj, {("kubewatch", "teams"): secret(url="ftp://s3cr3t.example.com/")})
    assert isinstance(wrong, Failure)
    assert wrong.reason == "Invalid"
    assert wrong.message.startswith("spec.sink.urlFrom: ")
    assert "s3cr3t" not in wrong.message
    ready = check(obj, {("kubewatch", "teams"): secret(url=TEAMS)})
    assert isinstance(ready, Compiled)
    assert ready.secrets == {("kubewatch", "teams")}


def test_the_controller_writes_the_cluster_sinks_status(rig: Rig) -> None:  # noqa: F811
    sinks = rig.controller.cluster_sinks
    sinks.put(cluster_sink())  # type: ignore[attr-defined]
    ran = rig.drain()
    assert [cluster_sink_name(k) for k in ran] == ["ops"]
    ((method, path, body),) = rig.client.writes
    assert (method, path) == ("PATCH", STATUS)
    ready = body["status"]["conditions"][0]
    assert (ready["type"], ready["status"], ready["reason"]) == ("Ready", "True", "Ready")
    assert body["status"]["observedGeneration"] == 1


def test_a_cluster_sink_follows_its_secret(rig: Rig) -> None:  # noqa: F811
    sinks = rig.controller.cluster_sinks
    sinks.put(cluster_sink(type="teams", urlFrom=ref("teams", "url")))  # type: ignore[attr-defined]
    rig.drain()
    assert rig.statuses()[-1]["conditions"][0]["reason"] == "SecretNotFound"
    rig.client.secrets[("kubewatch", "teams")] = secret(url=TEAMS)
    rig.secrets.put({"metadata": {"name": "teams", "namespace": "kubewatch"}})
    ran = rig.drain()
    assert [cluster_sink_name(k) for k in ran] == ["ops"]
    last = rig.statuses()[-1]["conditions"][0]
    assert (last["status"], last["reason"]) == ("True", "Ready")


def test_a_deleted_cluster_sink_is_forgotten(rig: Rig) -> None:  # noqa: F811
    sinks = rig.controller.cluster_sinks
    sinks.put(cluster_sink(type="teams", urlFrom=ref("teams", "url")))  # type: ignore[attr-defined]
    rig.drain()
    sinks.delete("ops")  # type: ignore[attr-defined]
    rig.drain()
    writes = len(rig.client.writes)
    rig.secrets.put({"metadata": {"name": "teams", "namespace": "kubewatch"}})
    assert rig.drain() == []  # nothing read the Secret any more
    assert len(rig.client.writes) == writes


def test_a_status_write_coming_back_queues_nothing(rig: Rig) -> None:  # noqa: F811
    """Our own status write returns through the watch with the same generation: neither
    the ClusterSink nor the Notifiers using it are checked again (their Secret GETs)."""
    sinks = rig.controller.cluster_sinks
    sinks.put(cluster_sink())  # type: ignore[attr-defined]
    spec = {
        "resources": [{"kind": "ConfigMap"}],
        "sinkRefs": [{"kind": "ClusterSink", "name": "ops"}],
    }
    rig.notifiers.put(
        {
            "apiVersion": "kubewatch.io/v1alpha1",
            "kind": "Notifier",
            "metadata": {"name": "web", "namespace": "team-a", "generation": 1},
            "spec": spec,
        }
    )
    rig.drain()
    assert rig.controller.reasons == {"team-a/web": "Ready"}
    for _, path, body in rig.client.writes:
        store = sinks if "clustersinks" in path else rig.notifiers
        (key,) = [k for k in store.store if path.split("/")[-2] == k.split("/")[-1]]
        obj = store.store.get(key).decode()  # type: ignore[union-attr]
        store.put({**obj, "status": body["status"]})  # type: ignore[attr-defined]
    assert rig.drain() == []
    sinks.put(cluster_sink(generation=2, type="teams", url=TEAMS + "/2"))  # type: ignore[attr-defined]
    assert sorted(rig.drain()) == ["clustersink:ops", "team-a/web"]
