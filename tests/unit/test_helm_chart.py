"""The Helm chart (helm/kubewatch), rendered by the real Helm engine (helm-python-sdk).

What is pinned here: lint passes; the schema rejects bad values with a message naming the
key; the RBAC rules are exactly what the config needs, both as written out per scenario and
as kubewatch's own planning (plan.py over captured 1.20 discovery) would use them; the kind
table agrees with discovery for every built-in resource; the rendered config is the values'
``config`` verbatim and passes ``kubewatch validate --offline``; the Pod runs restricted,
probed, with its state on a volume; one replica is a Deployment that never runs two Pods at
once, several a StatefulSet with a claim per replica. The e2e twin
(tests/e2e/test_helm_install.py) sends the same scenarios to a real API server.
"""

from __future__ import annotations

import base64
import functools
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import helm_python as helm
import pytest
import yaml

from kubewatch import __version__
from kubewatch.cli import main
from kubewatch.config import DEFAULT_ALLOWED_KINDS, SINK_TYPES, SlackSinkConfig, parse_config
from kubewatch.kube.discovery import ResourceTable
from kubewatch.sinks import registered_configs
from kubewatch.watch.plan import resolve_resources

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "kubewatch"
DISCOVERY = Path(__file__).parent / "data" / "discovery-1.20.json"
CONFIG_PATH = "/etc/kubewatch/config.yaml"
"""Where the Deployment mounts the config; the image's CMD names the same file."""
STATE_DIR = "/var/lib/kubewatch"
"""Where the Pod keeps state.db unless config.state.path says otherwise."""

RELEASE = "kw"
RELEASE_NS = "monitoring"
READ = ("get", "list", "watch")
CLUSTER = "*"
"""The scope of a ClusterRole grant in :func:`permissions`."""

Grant = tuple[str, str, str, str, str]
"""(scope, apiGroup, resource, verb, resourceName): scope is a namespace or ``*``."""


# -- rendering -------------------------------------------------------------------------------


MANIFEST_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
"""libyaml's safe loader where PyYAML has it: the same documents, parsed ten times faster
(hundreds of renders read every manifest of the chart)."""


@functools.cache
def chart() -> helm.Chart:
    return helm.Chart.load(CHART)


def render_files(
    values: dict[str, Any] | None = None, *, namespace: str = RELEASE_NS, name: str = RELEASE
) -> dict[str, str]:
    """Template path → rendered text, as ``helm template`` would write them."""
    return chart().render(values or {}, name=name, namespace=namespace)


def render(
    values: dict[str, Any] | None = None, *, namespace: str = RELEASE_NS, name: str = RELEASE
) -> list[dict[str, Any]]:
    """Every rendered manifest (NOTES.txt aside), in a stable order."""
    docs: list[dict[str, Any]] = []
    for path, text in sorted(render_files(values, namespace=namespace, name=name).items()):
        if not path.endswith("NOTES.txt"):
            docs.extend(d for d in yaml.load_all(text, Loader=MANIFEST_LOADER) if d)
    return docs


def only(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, got {len(found)}"
    return found[0]


def kinds(docs: list[dict[str, Any]]) -> list[str]:
    return sorted(d["kind"] for d in docs)


def pod_spec(docs: list[dict[str, Any]], kind: str = "Deployment") -> dict[str, Any]:
    spec: dict[str, Any] = only(docs, kind)["spec"]["template"]["spec"]
    return spec


def kubewatch_container(docs: list[dict[str, Any]], kind: str = "Deployment") -> dict[str, Any]:
    (container,) = pod_spec(docs, kind)["containers"]
    return dict(container)


def state_volume(docs: list[dict[str, Any]], kind: str = "Deployment") -> tuple[str, Any]:
    """(where the container mounts the state volume, that volume's source)."""
    (mount,) = [m for m in kubewatch_container(docs, kind)["volumeMounts"] if m["name"] == "state"]
    volumes = [v for v in pod_spec(docs, kind)["volumes"] if v["name"] == "state"]
    return mount["mountPath"], volumes[0] if volumes else None


def rendered_config(docs: list[dict[str, Any]]) -> dict[str, Any]:
    config: dict[str, Any] = yaml.safe_load(only(docs, "ConfigMap")["data"]["config.yaml"])
    return config


def permissions(
    docs: list[dict[str, Any]], sa: str = f"{RELEASE}-kubewatch", release_ns: str = RELEASE_NS
) -> set[Grant]:
    """What the ServiceAccount ``sa`` of ``release_ns`` may do: the rules of the roles bound
    to it, flattened. A role nobody binds grants nothing, so bindings are followed."""
    roles = {
        (d["kind"], d["metadata"].get("namespace", ""), d["metadata"]["name"]): d
        for d in docs
        if d["kind"] in ("Role", "ClusterRole")
    }
    grants: set[Grant] = set()
    for b in docs:
        if b["kind"] not in ("RoleBinding", "ClusterRoleBinding"):
            continue
        subjects = [(s["kind"], s["name"], s.get("namespace")) for s in b["subjects"]]
        assert subjects == [("ServiceAccount", sa, release_ns)], b
        ns = b["metadata"].get("namespace", "")
        ref = b["roleRef"]
        role = roles[(ref["kind"], ns if ref["kind"] == "Role" else "", ref["name"])]
        scope = ns if b["kind"] == "RoleBinding" else CLUSTER
        for rule in role["rules"]:
            for group in rule["apiGroups"]:
                for resource in rule["resources"]:
                    for verb in rule["verbs"]:
                        for name in rule.get("resourceNames") or [""]:
                            grants.add((scope, group, resource, verb, name))
    return grants


def reads(scope: str, group: str, *resources: str) -> set[Grant]:
    return {(scope, group, r, v, "") for r in resources for v in READ}


def own_events(namespace: str = RELEASE_NS) -> set[Grant]:
    """Events about kubewatch's own Pod (rbac.emitEvents, on by default)."""
    return {(namespace, "", "events", v, "") for v in ("create", "patch")}


def lease(namespace: str = RELEASE_NS, name: str = "kubewatch") -> set[Grant]:
    """The leader election Lease: create it, then read and renew only that one."""
    return {(namespace, "coordination.k8s.io", "leases", "create", "")} | {
        (namespace, "coordination.k8s.io", "leases", v, name) for v in ("get", "update")
    }


NOTES = "kubewatch/templates/NOTES.txt"


def render_error(values: dict[str, Any]) -> str:
    with pytest.raises(helm.HelmError) as info:
        render(values)
    return str(info.value)


# -- scenarios (shared with tests/e2e/test_helm_install.py) -----------------------------------

STDOUT = {"console": {"type": "stdout", "format": "json"}}


def scenarios(release_ns: str, watched: tuple[str, str]) -> dict[str, dict[str, Any]]:
    """Values for each scenario; ``watched`` names two namespaces that must exist on a cluster."""
    a, b = watched
    return {
        "default": {},
        "namespaced": {
            "config": {
                "namespaces": {"include": [a, b]},
                "resources": [
                    {"kind": "ConfigMap"},
                    {"kind": "deploy", "namespaces": {"include": [b]}},
                    {"kind": "Event", "types": ["Warning"]},
                    {"kind": "StorageClass"},
                ],
                "sinks": STDOUT,
            }
        },
        "crd": {
            "config": {
                "namespaces": {"include": [a]},
                "resources": [
                    {"kind": "Widget", "namespaceSelector": "kubewatch-e2e notin (off)"},
                    {"kind": "Job", "apiVersion": "batch/v1"},
                ],
                "sinks": STDOUT,
            },
            "rbac": {
                "extraRules": [
                    {"kind": "Widget", "apiGroups": ["example.com"], "resources": ["widgets"]}
                ]
            },
        },
        "secrets": {
            "config": {
                "cluster": "${CLUSTER_NAME}",
                "resources": [{"kind": "ConfigMap"}],
                "sinks": {
                    **STDOUT,
                    "audit": {
                        "type": "webhook",
                        "url": "https://audit.example.com/kubewatch",
                        "headers": {"Authorization": "Bearer ${AUDIT_TOKEN}"},
                    },
                },
            },
            "secretEnv": {"CLUSTER_NAME": "e2e", "AUDIT_TOKEN": "s3cr3t-audit-token"},
            "existingSecret": "kubewatch-extra-env",
        },
        "replicas": {"replicaCount": 2, "config": {"leaderElection": {"enabled": True}}},
        "no-persistence": {"persistence": {"enabled": False}},
        "existing-claim": {"persistence": {"existingClaim": "kubewatch-state"}},
        "no-storage-class": {
            "persistence": {"storageClass": "-", "size": "256Mi"},
            "config": {"state": {"path": "/data/kubewatch"}},
        },
        "replicas-no-persistence": {
            "replicaCount": 3,
            "config": {"leaderElection": {"enabled": True}},
            "persistence": {"enabled": False},
        },
        "metrics": {
            "config": {
                "resources": [{"kind": "Deployment"}],
                "sinks": STDOUT,
                "server": {"port": 9090},
            },
            "metrics": {"enabled": True, "serviceMonitor": {"enabled": True}},
        },
    }


SCENARIOS = scenarios(RELEASE_NS, ("shop", "web"))


def scenario_env(values: dict[str, Any]) -> dict[str, str]:
    """The environment the Pod would get from secretEnv."""
    return {str(k): str(v) for k, v in (values.get("secretEnv") or {}).items()}


# -- lint and metadata -----------------------------------------------------------------------


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_lint_passes_strict_with_each_scenario(scenario: str) -> None:
    report = helm.lint(CHART, SCENARIOS[scenario], strict=True, namespace=RELEASE_NS)
    assert report["errors"] == []
    problems = [m for m in report["messages"] if m["severity"] >= 2]
    assert problems == []


def test_lint_against_the_oldest_supported_kubernetes() -> None:
    report = helm.lint(CHART, strict=True, kube_version="v1.20.2")
    assert report["errors"] == []
    assert [m for m in report["messages"] if m["severity"] >= 2] == []


def test_chart_metadata_matches_kubewatch() -> None:
    meta = chart().metadata
    assert meta["apiVersion"] == "v2"
    assert meta["name"] == "kubewatch"
    assert meta["appVersion"] == __version__


ICON_BASE = "https://raw.githubusercontent.com/kubewatch/kubewatch/main/"


def test_chart_has_an_icon_shipped_in_the_repository() -> None:
    """Artifact Hub and helm lint want an ``icon``: an SVG of this repository, by its raw URL."""
    icon = chart().metadata.get("icon", "")
    assert icon.startswith(ICON_BASE) and icon.endswith(".svg"), icon
    svg = ROOT / icon.removeprefix(ICON_BASE)
    assert svg.is_file(), f"{svg} is not in the repository"
    assert svg.read_text().lstrip().startswith("<svg")


def test_values_say_the_image_is_the_users_own_build() -> None:
    """No image is published: values.yaml says so beside ``image.repository``."""
    text = (CHART / "values.yaml").read_text()
    before = text[: text.index("  repository: ")]
    comment = before[before.rindex("image:") :]
    assert "No image is published" in comment and "podman build" in comment


def test_schema_sink_types_are_kubewatchs() -> None:
    """The schema's list of sink types is the config model's, so neither drifts."""
    schema = json.loads((CHART / "values.schema.json").read_text())
    sink = schema["properties"]["config"]["properties"]["sinks"]["additionalProperties"]
    assert tuple(sink["properties"]["type"]["enum"]) == SINK_TYPES


# -- default values ----------------------------------------------------------------------------


def test_default_values_render_a_cluster_wide_watcher() -> None:
    docs = render()
    assert kinds(docs) == [
        "ClusterRole",
        "ClusterRoleBinding",
        "ConfigMap",
        "Deployment",
        "PersistentVolumeClaim",
        "Role",
        "RoleBinding",
        "ServiceAccount",
    ]
    assert permissions(docs) == (
        reads(CLUSTER, "", "configmaps") | reads(CLUSTER, "apps", "deployments") | own_events()
    )
    role = only(docs, "ClusterRole")
    assert role["metadata"]["name"] == f"{RELEASE_NS}-{RELEASE}-kubewatch"
    assert role["rules"] == [
        {"apiGroups": [""], "resources": ["configmaps"], "verbs": list(READ)},
        {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": list(READ)},
    ]


def test_default_deployment_is_restricted_and_wired() -> None:
    docs = render()
    deploy = only(docs, "Deployment")
    pod = deploy["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert deploy["spec"]["replicas"] == 1
    assert pod["serviceAccountName"] == f"{RELEASE}-kubewatch"
    assert pod["securityContext"] == {
        "runAsNonRoot": True,
        "runAsUser": 10001,
        "runAsGroup": 10001,
        "fsGroup": 10001,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
    }
    assert container["image"] == f"ghcr.io/kubewatch/kubewatch:{__version__}"
    assert container["args"] == [
        "--log-level",
        "info",
        "run",
        "--config",
        CONFIG_PATH,
        "--state-dir",
        STATE_DIR,
    ]
    assert container["resources"]["requests"] and container["resources"]["limits"]["memory"]
    env = {e["name"]: e["valueFrom"]["fieldRef"]["fieldPath"] for e in container["env"]}
    assert env == {
        "POD_NAME": "metadata.name",
        "POD_NAMESPACE": "metadata.namespace",
        "POD_UID": "metadata.uid",
    }
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    assert mounts[os.path.dirname(CONFIG_PATH)]["readOnly"] is True
    volumes = {v["name"]: v for v in pod["volumes"]}
    config_volume = volumes[mounts[os.path.dirname(CONFIG_PATH)]["name"]]
    assert config_volume["configMap"]["name"] == only(docs, "ConfigMap")["metadata"]["name"]
    assert "envFrom" not in container


def test_default_install_is_probed_on_the_health_server() -> None:
    docs = render()
    container = kubewatch_container(docs)
    assert rendered_config(docs)["server"] == {"port": 8080}
    assert container["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
    liveness, readiness = container["livenessProbe"], container["readinessProbe"]
    assert liveness["httpGet"] == {"path": "/healthz", "port": "http"}
    assert readiness["httpGet"] == {"path": "/readyz", "port": "http"}
    for probe in (liveness, readiness):
        assert probe["initialDelaySeconds"] > 0 and probe["failureThreshold"] >= 3
        assert probe["timeoutSeconds"] < probe["periodSeconds"]
    # /healthz fails after 60 s without a heartbeat: a restart only after a longer silence
    assert liveness["periodSeconds"] * liveness["failureThreshold"] >= 60


def test_default_state_is_on_a_claim_and_one_pod_at_a_time() -> None:
    docs = render()
    deploy = only(docs, "Deployment")
    assert deploy["spec"]["strategy"] == {"type": "Recreate"}
    claim = only(docs, "PersistentVolumeClaim")
    assert claim["metadata"]["name"] == f"{RELEASE}-kubewatch-state"
    assert claim["metadata"]["namespace"] == RELEASE_NS
    assert claim["spec"] == {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": "1Gi"}},
    }  # no storageClassName: the cluster's default class
    mount, volume = state_volume(docs)
    assert mount == STATE_DIR
    assert volume["persistentVolumeClaim"] == {"claimName": claim["metadata"]["name"]}
    container = kubewatch_container(docs)
    assert container["args"][-2:] == ["--state-dir", STATE_DIR]
    # the root filesystem stays read-only; the volume's group is kubewatch's
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    pod = pod_spec(docs)
    assert pod["securityContext"]["fsGroup"] == pod["securityContext"]["runAsGroup"] == 10001


def test_default_config_is_the_values_config_verbatim() -> None:
    docs = render()
    assert rendered_config(docs) == chart().values["config"]


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_rendered_config_passes_kubewatch_validate(
    scenario: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``kubewatch validate --offline`` (its CLI entry, in this process) accepts it."""
    values = SCENARIOS[scenario]
    config = rendered_config(render(values))
    assert config == chart().merge_values(values)["config"]
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    for name, value in scenario_env(values).items():
        monkeypatch.setenv(name, value)
    code = main(["validate", "--offline", "--config", str(path)])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "configuration is valid" in out


def test_config_change_rolls_the_pod() -> None:
    def checksum(values: dict[str, Any]) -> str:
        deploy = only(render(values), "Deployment")
        return str(deploy["spec"]["template"]["metadata"]["annotations"]["checksum/config"])

    base = checksum({})
    assert checksum({}) == base
    assert checksum({"config": {"namespaces": {"exclude": ["kube-public"]}}}) != base


# -- RBAC per scenario ------------------------------------------------------------------------


def test_namespaced_watching_gets_roles_in_exactly_those_namespaces() -> None:
    docs = render(SCENARIOS["namespaced"])
    assert permissions(docs) == (
        reads("shop", "", "configmaps", "events")
        | reads("web", "", "configmaps", "events")
        | reads("web", "apps", "deployments")
        # cluster-scoped kinds cannot be granted by a Role
        | reads(CLUSTER, "storage.k8s.io", "storageclasses")
        | own_events()
    )
    roles = [d for d in docs if d["kind"] == "Role"]
    assert sorted(r["metadata"]["namespace"] for r in roles) == [RELEASE_NS, "shop", "web"]
    assert {r["metadata"]["name"] for r in roles} == {f"{RELEASE}-kubewatch"}


def test_crd_by_kind_through_extra_rules_and_namespaces_for_the_selector() -> None:
    docs = render(SCENARIOS["crd"])
    assert permissions(docs) == (
        reads("shop", "example.com", "widgets")
        | reads("shop", "batch", "jobs")
        # the namespace selector needs namespace labels, which only a cluster-wide read gives
        | reads(CLUSTER, "", "namespaces")
        | own_events()
    )


def test_secrets_come_from_the_environment() -> None:
    values = SCENARIOS["secrets"]
    docs = render(values)
    secret = only(docs, "Secret")
    assert secret["metadata"]["name"] == f"{RELEASE}-kubewatch-env"
    decoded = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    assert decoded == values["secretEnv"]
    (container,) = only(docs, "Deployment")["spec"]["template"]["spec"]["containers"]
    assert container["envFrom"] == [
        {"secretRef": {"name": f"{RELEASE}-kubewatch-env"}},
        {"secretRef": {"name": "kubewatch-extra-env"}},
    ]
    # the config keeps the references; the values live only in the Secret
    text = only(docs, "ConfigMap")["data"]["config.yaml"]
    assert "${AUDIT_TOKEN}" in text and "s3cr3t" not in text
    annotations = only(docs, "Deployment")["spec"]["template"]["metadata"]["annotations"]
    assert "checksum/secret" in annotations
    assert permissions(docs) == reads(CLUSTER, "", "configmaps") | own_events()


def test_two_replicas_get_a_disruption_budget_and_their_lease() -> None:
    docs = render(SCENARIOS["replicas"])
    assert only(docs, "StatefulSet")["spec"]["replicas"] == 2
    pdb = only(docs, "PodDisruptionBudget")
    assert pdb["apiVersion"] == "policy/v1"  # the offline default Kubernetes version is recent
    assert pdb["spec"]["maxUnavailable"] == 1
    assert pdb["spec"]["selector"] == only(docs, "StatefulSet")["spec"]["selector"]
    assert permissions(docs) == (
        reads(CLUSTER, "", "configmaps")
        | reads(CLUSTER, "apps", "deployments")
        | lease()
        | own_events()
    )


def test_replicas_run_as_a_stateful_set_with_a_claim_each() -> None:
    docs = render(SCENARIOS["replicas"])
    assert "Deployment" not in kinds(docs) and "PersistentVolumeClaim" not in kinds(docs)
    sts = only(docs, "StatefulSet")
    assert sts["spec"]["podManagementPolicy"] == "Parallel"
    (template,) = sts["spec"]["volumeClaimTemplates"]
    assert template["metadata"]["name"] == "state"
    assert template["spec"] == {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": "1Gi"}},
    }
    mount, volume = state_volume(docs, "StatefulSet")
    assert (mount, volume) == (STATE_DIR, None)  # the claim template provides it
    assert kubewatch_container(docs, "StatefulSet")["args"][-2:] == ["--state-dir", STATE_DIR]
    # the governing Service: headless, selecting the replicas
    services = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Service"}
    headless = services[sts["spec"]["serviceName"]]
    assert headless["spec"]["clusterIP"] == "None"
    assert headless["spec"]["selector"] == sts["spec"]["selector"]["matchLabels"]
    pod_labels = sts["spec"]["template"]["metadata"]["labels"]
    assert sts["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    # leader election campaigns under the Pod name, stable in a StatefulSet
    env = {e["name"] for e in kubewatch_container(docs, "StatefulSet")["env"]}
    assert {"POD_NAME", "POD_NAMESPACE", "POD_UID"} <= env
    assert "statefulset/kw-kubewatch" in render_files(SCENARIOS["replicas"])[NOTES]


def test_replicas_without_persistence_get_an_empty_dir_each() -> None:
    docs = render(SCENARIOS["replicas-no-persistence"])
    sts = only(docs, "StatefulSet")
    assert sts["spec"]["replicas"] == 3
    assert "volumeClaimTemplates" not in sts["spec"]
    assert state_volume(docs, "StatefulSet") == (
        STATE_DIR,
        {"name": "state", "emptyDir": {"sizeLimit": "1Gi"}},
    )


def test_without_persistence_the_state_is_on_an_empty_dir() -> None:
    docs = render(SCENARIOS["no-persistence"])
    assert "PersistentVolumeClaim" not in kinds(docs)
    assert only(docs, "Deployment")["spec"]["strategy"] == {"type": "Recreate"}
    assert state_volume(docs) == (STATE_DIR, {"name": "state", "emptyDir": {"sizeLimit": "1Gi"}})
    assert kubewatch_container(docs)["args"][-2:] == ["--state-dir", STATE_DIR]
    notes = render_files(SCENARIOS["no-persistence"])[NOTES]
    assert "emptyDir" in notes and "persistence.enabled: true" in notes


def test_an_existing_claim_is_mounted_and_none_created() -> None:
    docs = render(SCENARIOS["existing-claim"])
    assert "PersistentVolumeClaim" not in kinds(docs)
    mount, volume = state_volume(docs)
    assert mount == STATE_DIR
    assert volume["persistentVolumeClaim"] == {"claimName": "kubewatch-state"}
    notes = render_files(SCENARIOS["existing-claim"])[NOTES]
    assert "PersistentVolumeClaim kubewatch-state" in notes


def test_storage_class_dash_asks_for_no_class_and_state_path_moves_the_mount() -> None:
    docs = render(SCENARIOS["no-storage-class"])
    claim = only(docs, "PersistentVolumeClaim")
    assert claim["spec"]["storageClassName"] == ""
    assert claim["spec"]["resources"]["requests"]["storage"] == "256Mi"
    assert state_volume(docs)[0] == "/data/kubewatch"
    assert kubewatch_container(docs)["args"][-2:] == ["--state-dir", "/data/kubewatch"]
    named = render({"persistence": {"storageClass": "fast-ssd"}})
    assert only(named, "PersistentVolumeClaim")["spec"]["storageClassName"] == "fast-ssd"
    values = {**SCENARIOS["replicas"], "persistence": {"storageClass": "-"}}
    (template,) = only(render(values), "StatefulSet")["spec"]["volumeClaimTemplates"]
    assert template["spec"]["storageClassName"] == ""


def test_claim_annotations_and_access_modes_are_passed_on() -> None:
    values = {
        "persistence": {
            "annotations": {"helm.sh/resource-policy": "keep"},
            "accessModes": ["ReadWriteOncePod"],
        }
    }
    claim = only(render(values), "PersistentVolumeClaim")
    assert claim["metadata"]["annotations"] == {"helm.sh/resource-policy": "keep"}
    assert claim["spec"]["accessModes"] == ["ReadWriteOncePod"]


@pytest.mark.parametrize(
    ("values", "fragment"),
    [
        pytest.param(
            {**SCENARIOS["replicas"], "persistence": {"existingClaim": "shared"}},
            "every replica needs a state of its own",
            id="one-claim-for-several-replicas",
        ),
        pytest.param(
            {"config": {"state": {"path": "/tmp/state"}}}, "share a mount", id="state-in-tmp"
        ),
        pytest.param(
            {"config": {"state": {"path": "/etc/kubewatch"}}},
            "share a mount",
            id="state-on-the-config",
        ),
    ],
)
def test_state_volumes_that_cannot_work_fail(values: dict[str, Any], fragment: str) -> None:
    assert fragment in render_error(values)


def test_the_lease_is_where_config_puts_it() -> None:
    values = {
        "config": {
            "resources": [{"kind": "Pod"}],
            "leaderElection": {"enabled": True, "leaseName": "kw-prod", "namespace": "locks"},
        },
        "rbac": {"emitEvents": False},
    }
    assert permissions(render(values)) == reads(CLUSTER, "", "pods") | lease("locks", "kw-prod")


def test_more_replicas_without_leader_election_fail() -> None:
    message = render_error({"replicaCount": 2})
    assert "config.leaderElection.enabled" in message and "every replica" in message


def test_metrics_probes_service_monitor_and_own_events() -> None:
    docs = render(SCENARIOS["metrics"])
    assert "ServiceMonitor" in kinds(docs) and "Service" in kinds(docs)
    (container,) = only(docs, "Deployment")["spec"]["template"]["spec"]["containers"]
    assert container["ports"] == [{"name": "http", "containerPort": 9090, "protocol": "TCP"}]
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    service = only(docs, "Service")
    assert service["spec"]["ports"][0]["targetPort"] == "http"
    monitor = only(docs, "ServiceMonitor")
    assert monitor["spec"]["endpoints"][0]["port"] == service["spec"]["ports"][0]["name"]
    selected = monitor["spec"]["selector"]["matchLabels"]
    assert selected.items() <= service["metadata"]["labels"].items()
    assert permissions(docs) == reads(CLUSTER, "apps", "deployments") | own_events()


def test_probes_follow_the_server_and_can_be_turned_off() -> None:
    def container(values: dict[str, Any]) -> dict[str, Any]:
        return kubewatch_container(render(values))

    served = {"config": {"server": {"port": 9000}}}
    assert container(served)["readinessProbe"]["httpGet"]["port"] == "http"
    assert container(served)["ports"][0]["containerPort"] == 9000
    unprobed = container({"probes": {"enabled": False}})
    assert "readinessProbe" not in unprobed and "livenessProbe" not in unprobed
    # port 0 means "any free port": nothing could reach it
    assert "ports" not in container({"config": {"server": {"port": 0}}})
    # Helm deletes a key set to null: no server, nothing to probe
    serverless = container({"config": {"server": None}})
    assert "ports" not in serverless and "livenessProbe" not in serverless


def test_own_events_can_be_turned_off() -> None:
    docs = render({"rbac": {"emitEvents": False}})
    assert "Role" not in kinds(docs)
    assert permissions(docs) == reads(CLUSTER, "", "configmaps") | reads(
        CLUSTER, "apps", "deployments"
    )


@pytest.mark.parametrize(
    ("values", "fragment"),
    [
        pytest.param(
            {"metrics": {"enabled": True}, "config": {"server": None}},
            "set config.server.port",
            id="metrics-without-a-server",
        ),
        pytest.param(
            {"metrics": {"enabled": True}, "config": {"server": {"port": 0}}},
            "set config.server.port",
            id="metrics-on-a-random-port",
        ),
        pytest.param(
            {
                "config": {"server": {"port": 9090}},
                "metrics": {"serviceMonitor": {"enabled": True}},
            },
            "needs metrics.enabled",
            id="monitor-without-metrics",
        ),
    ],
)
def test_features_needing_the_http_server_say_so(values: dict[str, Any], fragment: str) -> None:
    assert fragment in render_error(values)


def test_glob_include_means_cluster_wide() -> None:
    values = {
        "config": {
            "namespaces": {"include": ["team-*", "shop"]},
            "resources": [{"kind": "Pod"}],
            "sinks": STDOUT,
        }
    }
    assert permissions(render(values)) == reads(CLUSTER, "", "pods") | own_events()


def test_excluded_plain_names_get_no_role() -> None:
    values = {
        "config": {
            "namespaces": {"include": ["shop", "web"]},
            "resources": [{"kind": "Pod", "namespaces": {"exclude": ["web"]}}],
            "sinks": STDOUT,
        },
        "rbac": {"emitEvents": False},
    }
    assert permissions(render(values)) == reads("shop", "", "pods")


def test_resource_include_outside_the_global_one_fails() -> None:
    values = {
        "config": {
            "namespaces": {"include": ["shop"]},
            "resources": [{"kind": "Pod", "namespaces": {"include": ["web"]}}],
            "sinks": STDOUT,
        }
    }
    message = render_error(values)
    assert "config.resources[0].namespaces.include" in message


def test_rbac_create_false_renders_no_rbac() -> None:
    assert not {"Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding"} & set(
        kinds(render({"rbac": {"create": False}}))
    )


def test_existing_service_account_is_bound() -> None:
    docs = render({"serviceAccount": {"create": False, "name": "watcher"}})
    assert "ServiceAccount" not in kinds(docs)
    assert permissions(docs, sa="watcher") == (
        reads(CLUSTER, "", "configmaps") | reads(CLUSTER, "apps", "deployments") | own_events()
    )


# -- RBAC agrees with kubewatch's own planning ------------------------------------------------


@functools.cache
def discovery() -> ResourceTable:
    return ResourceTable.from_documents(json.loads(DISCOVERY.read_text()))


def needed(values: dict[str, Any]) -> set[Grant]:
    """What kubewatch does with this config: list and watch what plan.py plans over 1.20
    discovery, read namespaces for selectors, hold its Lease, record its own Events."""
    merged = chart().merge_values(values)
    config = parse_config(yaml.safe_dump(merged["config"]), env=scenario_env(values))
    plan = resolve_resources(config, discovery())
    assert not plan.pending
    grants: set[Grant] = set()
    for watch in plan.watches:
        for ns in watch.namespaces:
            grants |= reads(ns or CLUSTER, watch.resource.group, watch.resource.plural)
    if config.namespace_selector or any(r.namespace_selector for r in config.resources):
        grants |= reads(CLUSTER, "", "namespaces")
    election = config.leader_election
    if election.enabled:
        grants |= lease(election.namespace or RELEASE_NS, election.lease_name)
    if merged["rbac"]["emitEvents"]:
        grants |= own_events()
    return grants


PLANNED = {
    **SCENARIOS,
    "mixed-includes": {
        "config": {
            "namespaces": {"include": ["shop", "web", "ops"]},
            "namespaceSelector": "tier=prod",
            "resources": [
                {"kind": "po", "namespaces": {"exclude": ["ops"]}},
                {"kind": "deployments.apps", "namespaces": {"include": ["web", "ops"]}},
                {"kind": "cronjob"},
                {"kind": "ing"},
                {"kind": "events", "apiVersion": "events.k8s.io/v1"},
                {"kind": "Node"},
                {"kind": "clusterroles.rbac.authorization.k8s.io"},
                {"kind": "wd"},
            ],
            "sinks": STDOUT,
        },
        "rbac": {
            "extraRules": [{"kind": "wd", "apiGroups": ["example.com"], "resources": ["widgets"]}]
        },
    },
    "per-resource-glob": {
        "config": {
            "resources": [
                {"kind": "Secret", "namespaces": {"include": ["team-*"]}},
                {"kind": "ConfigMap", "namespaces": {"include": ["shop"]}},
                {"kind": "Widget", "apiVersion": "example.com/v1"},
            ],
            "sinks": STDOUT,
        }
    },
}


@pytest.mark.parametrize("scenario", list(PLANNED))
def test_rbac_is_exactly_what_kubewatch_plans_to_watch(scenario: str) -> None:
    values = PLANNED[scenario]
    assert permissions(render(values)) == needed(values)


# -- the kind table --------------------------------------------------------------------------


def _builtin_resources() -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(group, version, APIResource) of every watchable built-in resource in 1.20 discovery."""
    docs = json.loads(DISCOVERY.read_text())
    for path, doc in docs.items():
        parts = path.strip("/").split("/")
        if parts[0] == "api" and len(parts) == 2:
            group, version = "", parts[1]
        elif parts[0] == "apis" and len(parts) == 3:
            group, version = parts[1], parts[2]
        else:
            continue
        if "." in group and not group.endswith(".k8s.io"):
            continue  # a CRD (example.com) in the captured data
        for resource in doc.get("resources", []):
            if "/" not in resource["name"] and {"list", "watch"} <= set(resource["verbs"]):
                yield group, version, resource


def _reference_forms() -> list[dict[str, str]]:
    """Every way a config may name each built-in resource (what kubectl accepts)."""
    forms: dict[str, dict[str, str]] = {}
    for group, version, resource in _builtin_resources():
        kind, plural = resource["kind"], resource["name"]
        names = [kind, plural, kind.lower(), *resource.get("shortNames", [])]
        if group:
            names += [f"{plural}.{group}", f"{plural}.{version}.{group}"]
        for name in names:
            forms.setdefault(name, {"kind": name})
        api_version = f"{group}/{version}" if group else version
        forms.setdefault(f"{kind}@{api_version}", {"kind": kind, "apiVersion": api_version})
    return list(forms.values())


@pytest.mark.parametrize("reference", _reference_forms(), ids=lambda r: "@".join(r.values()))
def test_kind_table_resolves_like_discovery(reference: dict[str, str]) -> None:
    """Each name form resolves in the chart to the group, plural and scope kubewatch finds."""
    values = {
        "config": {
            "namespaces": {"include": ["shop"]},
            "resources": [reference],
            "sinks": STDOUT,
        },
        "rbac": {"emitEvents": False},
    }
    resource = discovery().resolve(reference["kind"], reference.get("apiVersion"))
    scope = "shop" if resource.namespaced else CLUSTER
    assert permissions(render(values)) == reads(scope, resource.group, resource.plural)


def test_kind_table_covers_the_built_in_groups() -> None:
    table = yaml.safe_load((CHART / "files" / "kinds.yaml").read_text())["kinds"]
    groups = {entry["group"] for entry in table}
    for group in (
        "",
        "apps",
        "batch",
        "autoscaling",
        "policy",
        "networking.k8s.io",
        "rbac.authorization.k8s.io",
        "storage.k8s.io",
        "events.k8s.io",
        "coordination.k8s.io",
        "discovery.k8s.io",
    ):
        assert group in groups
    seen: dict[tuple[str, str], str] = {}
    for entry in table:
        assert set(entry) == {"kind", "group", "plural", "namespaced", "short"}
        for name in {entry["kind"].lower(), entry["plural"], *entry["short"]}:
            key = (entry["group"], name)
            assert key not in seen, f"{name} names both {seen[key]} and {entry['kind']}"
            seen[key] = entry["kind"]


@pytest.mark.parametrize(
    ("reference", "group", "plural"),
    [
        pytest.param({"kind": "Widget", "apiVersion": "example.com/v1"}, "example.com", "widgets"),
        pytest.param({"kind": "NetworkPolicy", "apiVersion": "crd.projectcalico.org/v1"},
                     "crd.projectcalico.org", "networkpolicies", id="kind-in-another-group"),
        pytest.param({"kind": "Policy", "apiVersion": "kyverno.io/v1"}, "kyverno.io", "policies"),
        pytest.param({"kind": "Status", "apiVersion": "x.example/v1"}, "x.example", "statuses"),
        pytest.param({"kind": "gateways.gateway.networking.k8s.io"},
                     "gateway.networking.k8s.io", "gateways", id="plural.group"),
        pytest.param({"kind": "certificates.v1.cert-manager.io"},
                     "cert-manager.io", "certificates", id="plural.version.group"),
        pytest.param({"kind": "Widget.example.com"}, "example.com", "widgets", id="Kind.group"),
    ],
)  # fmt: skip
def test_custom_resource_named_with_its_group_is_guessed(
    reference: dict[str, str], group: str, plural: str
) -> None:
    values = {"config": {"resources": [reference], "sinks": STDOUT}, "rbac": {"emitEvents": False}}
    assert permissions(render(values)) == reads(CLUSTER, group, plural)


def test_extra_rules_override_a_guess_and_set_the_scope() -> None:
    values = {
        "config": {
            "namespaces": {"include": ["shop"]},
            "resources": [
                {"kind": "Mouse", "apiVersion": "zoo.example/v1"},
                {"kind": "Cage"},
            ],
            "sinks": STDOUT,
        },
        "rbac": {
            "extraRules": [
                {"kind": "Mouse", "apiGroups": ["zoo.example"], "resources": ["mice"]},
                {
                    "kind": "Cage",
                    "apiGroups": ["zoo.example"],
                    "resources": ["cages"],
                    "namespaced": False,
                },
            ],
            "emitEvents": False,
        },
    }
    assert permissions(render(values)) == reads("shop", "zoo.example", "mice") | reads(
        CLUSTER, "zoo.example", "cages"
    )


def test_unknown_bare_kind_fails_pointing_to_extra_rules() -> None:
    values = {
        "config": {"resources": [{"kind": "Pod"}, {"kind": "Widget"}], "sinks": STDOUT},
    }
    message = render_error(values)
    assert 'config.resources[1].kind: "Widget" is not a built-in kind' in message
    assert "rbac.extraRules" in message and "apiVersion" in message


# -- values the chart refuses ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "fragments"),
    [
        pytest.param({"replicas": 2}, ["additional properties 'replicas' not allowed"],
                     id="typo-at-top-level"),
        pytest.param({"replicaCount": 0}, ["/replicaCount", "minimum"], id="no-replicas"),
        pytest.param({"replicaCount": "2"}, ["/replicaCount", "want integer"], id="string-count"),
        pytest.param({"config": {"resources": []}}, ["/config/resources", "minItems"],
                     id="nothing-to-watch"),
        pytest.param({"config": {"resources": [{"apiVersion": "v1"}]}},
                     ["/config/resources/0", "missing property 'kind'"], id="resource-no-kind"),
        pytest.param({"config": {"sinks": {"chat": {"type": "slak"}}}},
                     ["/config/sinks/chat/type", "'slack'"], id="unknown-sink-type"),
        pytest.param({"secretEnv": {"TOKEN": 5}}, ["/secretEnv/TOKEN", "want string"],
                     id="secret-not-a-string"),
        pytest.param({"secretEnv": {"TOKEN": ""}}, ["/secretEnv/TOKEN", "minLength"],
                     id="secret-empty"),
        pytest.param({"secretEnv": {"slack-token": "x"}}, ["'slack-token'", "pattern"],
                     id="secret-name-not-a-variable"),
        pytest.param({"rbac": {"extraRules": [{"kind": "W", "apiGroups": ["a"],
                                               "resources": ["ws"], "verbs": ["*"]}]}},
                     ["/rbac/extraRules/0", "'verbs' not allowed"], id="extra-rule-verbs"),
        pytest.param({"rbac": {"extraRules": [{"kind": "W", "resources": ["ws"]}]}},
                     ["/rbac/extraRules/0", "'apiGroups'"], id="extra-rule-no-group"),
        pytest.param({"image": {"pullPolicy": "Sometimes"}}, ["/image/pullPolicy"],
                     id="pull-policy"),
        pytest.param({"logLevel": "verbose"}, ["/logLevel", "'debug'"], id="log-level"),
        pytest.param({"persistence": {"enabled": "yes"}}, ["/persistence/enabled", "want boolean"],
                     id="persistence-yes"),
        pytest.param({"persistence": {"size": "lots"}}, ["/persistence/size", "pattern"],
                     id="persistence-size"),
        pytest.param({"persistence": {"size": 5}}, ["/persistence/size", "want string"],
                     id="persistence-size-number"),
        pytest.param({"persistence": {"accessModes": ["ReadOnlyMany"]}},
                     ["/persistence/accessModes/0", "'ReadWriteOnce'"], id="read-only-state"),
        pytest.param({"persistence": {"accessModes": []}}, ["/persistence/accessModes", "minItems"],
                     id="no-access-mode"),
        pytest.param({"persistence": {"storageClass": 5}}, ["/persistence/storageClass"],
                     id="storage-class-number"),
        pytest.param({"persistence": {"existingclaim": "x"}}, ["'existingclaim' not allowed"],
                     id="persistence-typo"),
        pytest.param({"config": {"state": {"path": "state"}}}, ["/config/state/path", "pattern"],
                     id="relative-state-path"),
        pytest.param({"probes": {"liveness": {"periodSeconds": 0}}},
                     ["/probes/liveness/periodSeconds", "minimum"], id="probe-period"),
        pytest.param({"probes": {"readiness": {"path": "/x"}}}, ["'path' not allowed"],
                     id="probe-path"),
    ],
)  # fmt: skip
def test_schema_rejects_bad_values_naming_the_key(
    values: dict[str, Any], fragments: list[str]
) -> None:
    message = render_error(values)
    assert "values don't meet the specifications of the schema" in message
    for fragment in fragments:
        assert fragment in message


def test_unset_variable_in_config_fails_at_install_not_in_the_pod() -> None:
    values = {
        "config": {
            "resources": [{"kind": "Pod"}],
            "sinks": {"hook": {"type": "webhook", "url": "https://h.example/${HOOK_ID}"}},
            "cluster": "$${LITERAL}",
        }
    }
    message = render_error(values)
    assert "config references ${HOOK_ID} but nothing sets it" in message
    assert "LITERAL" not in message
    render({**values, "secretEnv": {"HOOK_ID": "abc"}})
    render({**values, "extraEnv": [{"name": "HOOK_ID", "value": "abc"}]})
    render({**values, "existingSecret": "hooks"})  # may hold it: not knowable at render time


# -- the README's Slack example --------------------------------------------------------------


def test_slack_example_renders_and_validates(tmp_path: Path) -> None:
    values = yaml.safe_load((CHART / "examples" / "slack.yaml").read_text())
    assert "values don't meet" in render_error(values)  # the token must be set
    values["secretEnv"]["SLACK_BOT_TOKEN"] = "xoxb-not-a-real-token"
    docs = render(values)
    assert permissions(docs) == (
        reads(CLUSTER, "apps", "deployments", "statefulsets")
        | reads(CLUSTER, "", "events")
        | own_events()
    )
    config = rendered_config(docs)
    assert config["sinks"]["slack"]["token"] == "${SLACK_BOT_TOKEN}"
    # Helm merges maps: the chart's default console sink stays (events in the Pod's log)
    assert set(config["sinks"]) == {"console", "slack"}
    values["config"]["sinks"]["console"] = None
    assert set(rendered_config(render(values))["sinks"]) == {"slack"}
    parsed = parse_config(yaml.safe_dump(config), env=scenario_env(values))
    assert parsed.sinks["slack"].token == "xoxb-not-a-real-token"  # type: ignore[union-attr]
    if SlackSinkConfig in registered_configs():
        path = tmp_path / "config.yaml"
        path.write_text(yaml.safe_dump(config))
        result = subprocess.run(
            [sys.executable, "-m", "kubewatch", "validate", "--offline", "--config", str(path)],
            check=False,
            capture_output=True,
            text=True,
            env={**os.environ, **scenario_env(values)},
            timeout=60,
        )
        assert result.returncode == 0, result.stderr


def test_notes_summarize_watches_and_permissions() -> None:
    notes = render_files(SCENARIOS["namespaced"])[NOTES]
    assert "in namespace shop (Role kw-kubewatch)" in notes
    assert "State: /var/lib/kubewatch on PersistentVolumeClaim kw-kubewatch-state (1Gi)" in notes
    assert re.search(r"cluster-wide \(ClusterRole monitoring-kw-kubewatch\):\n\s+storage", notes)


def test_watching_the_release_namespace_merges_into_one_role() -> None:
    values = {
        "config": {
            "namespaces": {"include": [RELEASE_NS]},
            "resources": [{"kind": "ConfigMap"}],
            "leaderElection": {"enabled": True},
        }
    }
    docs = render(values)
    assert kinds(docs).count("Role") == 1
    assert permissions(docs) == reads(RELEASE_NS, "", "configmaps") | lease() | own_events()


@pytest.mark.parametrize(
    ("health", "log_grant"),
    [
        pytest.param(None, False, id="no-health"),
        pytest.param({}, False, id="health-without-logs"),
        pytest.param({"logLines": 0}, False, id="logLines-0"),
        pytest.param({"logLines": 20}, True, id="logLines-20"),
    ],
)
def test_pods_log_is_granted_only_when_alerts_carry_logs(
    health: dict[str, Any] | None, log_grant: bool
) -> None:
    pod: dict[str, Any] = {"kind": "Pod", "namespaces": {"include": ["shop"]}}
    if health is not None:
        pod["health"] = health
    values = {
        "config": {"resources": [pod, {"kind": "Node"}], "sinks": STDOUT},
        "rbac": {"emitEvents": False},
    }
    expected = reads("shop", "", "pods") | reads(CLUSTER, "", "nodes")
    if log_grant:
        expected |= reads("shop", "", "pods/log")
    assert permissions(render(values)) == expected


# -- operator mode (config.tenancy.enabled) ---------------------------------------------------


def tenancy_values(**tenancy: Any) -> dict[str, Any]:
    return {
        "config": {"resources": [{"kind": "Pod"}], "sinks": STDOUT, "tenancy": tenancy},
        "rbac": {"emitEvents": False},
    }


def by_name(docs: list[dict[str, Any]], suffix: str) -> dict[str, Any]:
    [found] = [d for d in docs if d["metadata"]["name"].endswith(suffix)]
    return found


def test_tenancy_off_renders_no_tenancy_rbac() -> None:
    names = [d["metadata"]["name"] for d in render(tenancy_values())]
    assert not [n for n in names if "tenancy" in n or "notifiers" in n]


def test_tenancy_grants_the_controller_what_it_reads_and_writes() -> None:
    grants = permissions(render(tenancy_values(enabled=True)))
    assert reads(CLUSTER, "kubewatch.io", "notifiers", "clustersinks") <= grants
    for verb in ("get", "update", "patch"):
        assert (CLUSTER, "kubewatch.io", "notifiers/status", verb, "") in grants
        assert (CLUSTER, "kubewatch.io", "clustersinks/status", verb, "") in grants
    assert reads(CLUSTER, "", "secrets", "namespaces") <= grants
    assert {(CLUSTER, "", "events", v, "") for v in ("create", "patch")} <= grants
    # every kind of tenancy.allowedKinds' default, as kubewatch resolves it
    assert reads(CLUSTER, "apps", "deployments", "statefulsets", "daemonsets") <= grants
    assert reads(CLUSTER, "batch", "jobs", "cronjobs") <= grants
    assert reads(CLUSTER, "networking.k8s.io", "ingresses") <= grants
    assert reads(CLUSTER, "", "pods", "services", "configmaps", "events") <= grants
    assert not [g for g in grants if g[0] == CLUSTER and g[2] in ("notifiers", "clustersinks")
                and g[3] not in READ]  # fmt: skip


def test_tenancy_kinds_follow_the_config() -> None:
    values = tenancy_values(enabled=True, allowedKinds=["ConfigMap", "widgets.example.com"])
    grants = permissions(render(values))
    assert reads(CLUSTER, "example.com", "widgets") <= grants
    assert (CLUSTER, "apps", "deployments", "list", "") not in grants
    denied = tenancy_values(enabled=True, allowedKinds=["ConfigMap"], deniedKinds=["cm"])
    assert (CLUSTER, "", "configmaps", "list", "") not in permissions(render(denied))


def test_the_charts_default_allowed_kinds_are_kubewatchs() -> None:
    template = (CHART / "templates" / "tenancy.yaml").read_text()
    [listed] = re.findall(r'\| default \(list ((?:"\w+" ?)+)\)', template)
    assert tuple(re.findall(r'"(\w+)"', listed)) == DEFAULT_ALLOWED_KINDS


def test_notifiers_are_aggregated_into_edit_admin_and_view() -> None:
    docs = render(tenancy_values(enabled=True))
    edit, view = by_name(docs, "-notifiers-edit"), by_name(docs, "-notifiers-view")
    aggregate = "rbac.authorization.k8s.io/aggregate-to-"
    assert edit["metadata"]["labels"][f"{aggregate}edit"] == "true"
    assert edit["metadata"]["labels"][f"{aggregate}admin"] == "true"
    assert view["metadata"]["labels"][f"{aggregate}view"] == "true"
    assert f"{aggregate}edit" not in view["metadata"]["labels"]
    [edit_rule] = edit["rules"]
    assert edit_rule["resources"] == ["notifiers"]  # never status, never ClusterSinks
    assert {"create", "update", "delete"} <= set(edit_rule["verbs"])
    [view_rule] = view["rules"]
    assert set(view_rule["verbs"]) == set(READ)
    assert not [
        d for d in docs if d["kind"].endswith("Binding") and "notifiers" in d["metadata"]["name"]
    ]


def test_the_chart_ships_the_crds() -> None:
    crds = sorted(p.name for p in (CHART / "crds").glob("*.yaml"))
    assert crds == ["clustersinks.kubewatch.io.yaml", "notifiers.kubewatch.io.yaml"]
