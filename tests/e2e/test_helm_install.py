"""The Helm chart against a real API server: accepted as rendered, and least-privilege in use.

1. Every scenario of tests/unit/test_helm_chart.py is rendered by Helm with the cluster's
   capabilities (a server-side dry-run install) and each manifest is then applied with
   ``dryRun=All`` (server-side apply): the API server's validation and admission accept it,
   and nothing is created.
2. The chart is installed for real; a token is minted for its ServiceAccount (TokenRequest)
   and kubewatch runs locally as that identity with the config the chart rendered (sinks
   pointed to stdout, the state in a temporary directory): every configured watch syncs
   without a single 403, and what the config does not name is forbidden to that identity
   (SelfSubjectAccessReview and a direct list).
3. ``helm upgrade`` keeps the state's claim, and a Deployment that chart 0.1 left with the
   RollingUpdate strategy takes Recreate after the README's one-time patch.

There is no kubelet, scheduler or volume provisioner here, so the chart's Pod never runs
and its claim stays Pending: the local process stands in for the Pod, with the same
identity, config and environment.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import helm_python as helm
import pytest
import yaml
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.dynamic import DynamicClient

from tests.e2e.conftest import KUBECONFIG, wait_for
from tests.unit.test_helm_chart import (
    SCENARIOS,
    STDOUT,
    chart,
    permissions,
    render,
    scenario_env,
    scenarios,
)

pytestmark = pytest.mark.e2e

RELEASE = "kw"
SA = f"{RELEASE}-kubewatch"
CONTEXT = "kube-local"


@pytest.fixture
def namespaces(api: k8s.ApiClient) -> Iterator[tuple[str, tuple[str, str]]]:
    """A fresh release namespace and two namespaces for the config to watch."""
    base = f"e2e-helm-{uuid.uuid4().hex[:8]}"
    names = [base, f"{base}-a", f"{base}-b"]
    core = k8s.CoreV1Api(api)
    for name in names:
        core.create_namespace({"metadata": {"name": name}})
    yield base, (names[1], names[2])
    for name in names:
        try:
            core.delete_namespace(name)
        except k8s.ApiException as e:
            if e.status != 404:
                raise


@pytest.fixture(scope="session")
def service_monitor_crd(api: k8s.ApiClient) -> None:
    """The Prometheus Operator's ServiceMonitor, schema-less: enough to accept the manifest."""
    ext = k8s.ApiextensionsV1Api(api)
    name = "servicemonitors.monitoring.coreos.com"
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": name},
        "spec": {
            "group": "monitoring.coreos.com",
            "scope": "Namespaced",
            "names": {
                "plural": "servicemonitors",
                "singular": "servicemonitor",
                "kind": "ServiceMonitor",
            },
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
    try:
        ext.create_custom_resource_definition(crd)
    except k8s.ApiException as e:
        if e.status != 409:
            raise

    def established() -> bool:
        conditions = ext.read_custom_resource_definition(name).status.conditions or []
        return any(c.type == "Established" and c.status == "True" for c in conditions)

    wait_for(established, what="the ServiceMonitor CRD to be established")


def helm_config(namespace: str) -> helm.Config:
    return helm.Config(kubeconfig_path=KUBECONFIG, kube_context=CONTEXT, namespace=namespace)


def manifests(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(text) if d]


# -- 1. what Helm renders, the API server accepts ---------------------------------------------


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_rendered_manifests_pass_server_side_dry_run(
    scenario: str,
    api: k8s.ApiClient,
    namespaces: tuple[str, tuple[str, str]],
    service_monitor_crd: None,
    tmp_path: Path,
) -> None:
    release_ns, watched = namespaces
    values = scenarios(release_ns, watched)[scenario]
    with helm_config(release_ns) as cfg:
        release = cfg.install(chart(), RELEASE, values, namespace=release_ns, dry_run="server")
    docs = manifests(release["manifest"])

    dynamic = DynamicClient(api, cache_file=str(tmp_path / "discovery.json"))
    for doc in docs:
        resource = dynamic.resources.get(api_version=doc["apiVersion"], kind=doc["kind"])
        namespace = doc["metadata"].get("namespace") if resource.namespaced else None
        applied = dynamic.server_side_apply(
            resource,
            body=doc,
            namespace=namespace,
            field_manager="kubewatch-e2e",
            force_conflicts=True,
            dry_run="All",
        )
        assert applied.metadata.name == doc["metadata"]["name"]

    # nothing was created: a dry run, and not an install
    assert not k8s.CoreV1Api(api).list_namespaced_config_map(release_ns).items
    # what the cluster-aware render grants is what the offline render grants
    assert permissions(docs, release_ns=release_ns) == permissions(
        render(values, namespace=release_ns), release_ns=release_ns
    )
    workloads = [d for d in docs if d["kind"] in ("Deployment", "StatefulSet")]
    assert len(workloads) == 1
    if scenario == "replicas":
        (pdb,) = [d for d in docs if d["kind"] == "PodDisruptionBudget"]
        assert pdb["apiVersion"] == "policy/v1beta1"  # what a 1.20 API server serves
        (sts,) = workloads
        assert sts["kind"] == "StatefulSet" and sts["spec"]["volumeClaimTemplates"]
    if scenario == "default":
        assert workloads[0]["spec"]["strategy"]["type"] == "Recreate"
        assert [d["kind"] for d in docs].count("PersistentVolumeClaim") == 1


# -- 2. installed, kubewatch runs as the chart's identity -------------------------------------


class Check(NamedTuple):
    verb: str
    group: str
    resource: str
    namespace: str
    """"" for cluster-wide."""
    allowed: bool
    name: str = ""


def identity_checks(scenario: str, release_ns: str, a: str, b: str) -> list[Check]:
    """What the ServiceAccount may and may not do, per scenario."""
    outside = [
        Check("list", "", "secrets", "", False),
        Check("list", "", "pods", a, False),
        Check("create", "", "configmaps", a, False),
        Check("watch", "apps", "daemonsets", "", False),
        # its own Events, in its own namespace only
        Check("create", "", "events", release_ns, True),
        Check("patch", "", "events", release_ns, True),
        Check("create", "", "events", a, False),
        Check("list", "", "events", release_ns, False),
    ]
    per_scenario = {
        "default": [
            Check("list", "apps", "deployments", "", True),
            Check("watch", "", "configmaps", "", True),
            Check("list", "", "namespaces", "", False),
        ],
        "namespaced": [
            Check("watch", "", "configmaps", a, True),
            Check("list", "", "events", b, True),
            Check("list", "apps", "deployments", b, True),
            Check("list", "apps", "deployments", a, False),
            Check("list", "", "configmaps", "", False),
            Check("list", "", "configmaps", release_ns, False),
            Check("watch", "storage.k8s.io", "storageclasses", "", True),
        ],
        "crd": [
            Check("watch", "example.com", "widgets", a, True),
            Check("list", "batch", "jobs", a, True),
            Check("watch", "", "namespaces", "", True),
            Check("list", "example.com", "widgets", b, False),
            Check("list", "batch", "jobs", "", False),
        ],
        "secrets": [
            Check("watch", "", "configmaps", "", True),
            Check("get", "", "secrets", release_ns, False),
        ],
        "replicas": [
            Check("create", "coordination.k8s.io", "leases", release_ns, True),
            Check("update", "coordination.k8s.io", "leases", release_ns, True, "kubewatch"),
            Check("update", "coordination.k8s.io", "leases", release_ns, False, "another"),
            Check("list", "coordination.k8s.io", "leases", release_ns, False),
            Check("create", "coordination.k8s.io", "leases", a, False),
        ],
    }
    return outside + per_scenario[scenario]


EXPECTED_WATCHES = {"default": 2, "namespaced": 6, "crd": 3, "secrets": 1, "replicas": 2}
"""Watches (informers) each scenario starts: resources x namespaces, plus the Namespace
watch for a namespace selector."""


def token_kubeconfig(token: str, path: Path) -> Path:
    """A kubeconfig for ``token`` on the API server (and CA) of KUBEWATCH_E2E_KUBECONFIG."""
    assert KUBECONFIG
    source = yaml.safe_load(Path(KUBECONFIG).read_text())
    context = next(c["context"] for c in source["contexts"] if c["name"] == CONTEXT)
    cluster = dict(
        next(c["cluster"] for c in source["clusters"] if c["name"] == context["cluster"])
    )
    ca = cluster.get("certificate-authority")
    if ca and not os.path.isabs(ca):
        cluster["certificate-authority"] = str(Path(KUBECONFIG).parent / ca)
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "cluster", "cluster": cluster}],
                "users": [{"name": SA, "user": {"token": token}}],
                "contexts": [{"name": SA, "context": {"cluster": "cluster", "user": SA}}],
                "current-context": SA,
            }
        )
    )
    return path


def allowed(client: k8s.ApiClient, check: Check) -> bool:
    attributes = {"verb": check.verb, "group": check.group, "resource": check.resource}
    if check.namespace:
        attributes["namespace"] = check.namespace
    if check.name:
        attributes["name"] = check.name
    review = k8s.AuthorizationV1Api(client).create_self_subject_access_review(
        {"spec": {"resourceAttributes": attributes}}
    )
    return bool(review.status.allowed)


@pytest.mark.parametrize("scenario", list(EXPECTED_WATCHES))
def test_installed_chart_gives_kubewatch_exactly_what_its_config_needs(
    scenario: str,
    api: k8s.ApiClient,
    namespaces: tuple[str, tuple[str, str]],
    widget_crd: str,
    tmp_path: Path,
) -> None:
    release_ns, (a, b) = namespaces
    values = scenarios(release_ns, (a, b))[scenario]
    core = k8s.CoreV1Api(api)
    with helm_config(release_ns) as cfg:
        cfg.install(chart(), RELEASE, values, namespace=release_ns, timeout=60)
        try:
            # the config as installed, sinks pointed to stdout (nothing leaves this machine)
            installed = core.read_namespaced_config_map(SA, release_ns).data["config.yaml"]
            config = yaml.safe_load(installed)
            config["sinks"] = STDOUT
            config_path = tmp_path / "config.yaml"
            config_path.write_text(yaml.safe_dump(config))

            token = core.create_namespaced_service_account_token(
                SA, release_ns, {"spec": {"expirationSeconds": 3600}}
            ).status.token
            kubeconfig = token_kubeconfig(token, tmp_path / "kubeconfig")

            # the default install has a claim for the state: Pending without a provisioner
            if scenario == "default":
                claim = core.read_namespaced_persistent_volume_claim(f"{SA}-state", release_ns)
                assert claim.spec.access_modes == ["ReadWriteOnce"]

            stderr = run_until_synced(
                config_path,
                kubeconfig,
                tmp_path,
                # what the Pod's environment holds: secretEnv and the downward API
                {
                    **scenario_env(values),
                    "POD_NAME": f"{SA}-0",
                    "POD_NAMESPACE": release_ns,
                    "POD_UID": str(uuid.uuid4()),
                },
                EXPECTED_WATCHES[scenario],
            )
            assert "HTTP 403" not in stderr and "forbidden" not in stderr.lower(), stderr

            identity = k8s_config.new_client_from_config(config_file=str(kubeconfig))
            for check in identity_checks(scenario, release_ns, a, b):
                assert allowed(identity, check) == check.allowed, check
            with pytest.raises(k8s.ApiException) as denied:
                k8s.CoreV1Api(identity).list_namespaced_pod(a)
            assert denied.value.status == 403
        finally:
            cfg.uninstall(RELEASE)


def run_until_synced(
    config: Path, kubeconfig: Path, tmp: Path, env: dict[str, str], watches: int
) -> str:
    """Run kubewatch until every watch it starts has synced; return its stderr."""
    err_path = tmp / "kubewatch.stderr"
    with err_path.open("w") as err, (tmp / "kubewatch.stdout").open("w") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "kubewatch",
                "--log-level",
                "debug",
                "run",
                "--config",
                str(config),
                "--kubeconfig",
                str(kubeconfig),
                # as the chart's Pod has them; any free port (another test may hold 8080)
                "--state-dir",
                str(tmp / "state"),
                "--port",
                "0",
            ],
            stdout=out,
            stderr=err,
            env={**os.environ, **env},
        )
    try:

        def synced() -> bool:
            text = err_path.read_text()
            return proc.poll() is not None or (
                "delivering to" in text and text.count(": synced,") >= watches
            )

        wait_for(synced, timeout=60, what=f"{watches} watches to sync")
        assert proc.poll() is None, f"kubewatch exited:\n{err_path.read_text()}"
        text = err_path.read_text()
        namespace_watch = int("namespaces (for namespace selectors): synced" in text)
        assert text.count("kubewatch.kube.pool: watching ") + namespace_watch == watches, text
        assert text.count(": synced,") == watches, text
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(15)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert code == 0, err_path.read_text()
    return err_path.read_text()


# -- 3. upgrades ----------------------------------------------------------------------------

# The README's one-time step for a Deployment of chart 0.1 under server-side apply.
RECREATE_PATCH = [
    {"op": "remove", "path": "/spec/strategy/rollingUpdate"},
    {"op": "replace", "path": "/spec/strategy/type", "value": "Recreate"},
]


def test_upgrade_keeps_the_state_claim_and_moves_an_old_deployment_to_recreate(
    api: k8s.ApiClient, namespaces: tuple[str, tuple[str, str]]
) -> None:
    release_ns, _ = namespaces
    core, apps = k8s.CoreV1Api(api), k8s.AppsV1Api(api)
    with helm_config(release_ns) as cfg:
        cfg.install(chart(), RELEASE, {}, namespace=release_ns, timeout=60)
        try:
            claim = core.read_namespaced_persistent_volume_claim(f"{SA}-state", release_ns)
            # what chart 0.1 left: no strategy in its manifest, so the API server's default
            apps.patch_namespaced_deployment(
                SA, release_ns, [{"op": "remove", "path": "/spec/strategy"}]
            )
            old = apps.read_namespaced_deployment(SA, release_ns).spec.strategy
            assert old.type == "RollingUpdate" and old.rolling_update is not None

            apps.patch_namespaced_deployment(SA, release_ns, RECREATE_PATCH)
            changed = {"config": {"namespaces": {"exclude": ["kube-system", "kube-public"]}}}
            cfg.upgrade(chart(), RELEASE, changed, namespace=release_ns, timeout=60)

            deployment = apps.read_namespaced_deployment(SA, release_ns)
            assert deployment.spec.strategy.type == "Recreate"
            assert deployment.spec.strategy.rolling_update is None
            config = core.read_namespaced_config_map(SA, release_ns).data["config.yaml"]
            assert "kube-public" in config  # the upgrade did apply
            kept = core.read_namespaced_persistent_volume_claim(f"{SA}-state", release_ns)
            assert kept.metadata.uid == claim.metadata.uid
        finally:
            cfg.uninstall(RELEASE)
