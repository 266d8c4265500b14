"""kubewatch's own kubeconfig loader and transport against the real API server, one way of
authenticating at a time: a client certificate signed by the cluster's CA, the
kubeconfig's bearer token, an exec plugin, a ServiceAccount token as a Pod has it (the
in-cluster config), and ``tls-server-name``. ``kubewatch run`` itself is started with the
client certificate and reports a ConfigMap created."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client as k8s

from kubewatch.errors import ApiError
from kubewatch.kube import kubeconfig as kc
from kubewatch.kube.client import ClusterClient
from kubewatch.kube.failures import ApiUnreachable
from tests.e2e.conftest import KUBECONFIG, Kubewatch, wait_for

pytestmark = pytest.mark.e2e


def local_dir() -> Path:
    state = os.environ.get("KUBE_LOCAL_DIR") or str(Path(str(KUBECONFIG)).parent)
    pki = Path(state) / "pki"
    if not (pki / "ca.key").exists():
        pytest.skip("needs the kube-local state directory (its CA key) to sign a client cert")
    return pki


def cluster() -> dict[str, Any]:
    doc = yaml.safe_load(Path(str(KUBECONFIG)).read_text())
    found: dict[str, Any] = doc["clusters"][0]["cluster"]
    return found


def admin_token() -> str:
    doc = yaml.safe_load(Path(str(KUBECONFIG)).read_text())
    return str(next(u["user"]["token"] for u in doc["users"] if u["name"] == "admin"))


def write(path: Path, cluster_entry: dict[str, Any], user: dict[str, Any]) -> str:
    path.write_text(
        yaml.safe_dump(
            {
                "clusters": [{"name": "c", "cluster": cluster_entry}],
                "users": [{"name": "u", "user": user}],
                "contexts": [{"name": "e2e", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "e2e",
            }
        )
    )
    return str(path)


def client_cert_kubeconfig(tmp_path: Path) -> str:
    """A kubeconfig whose user is a client certificate (CN=e2e-admin, O=system:masters)."""
    pki = local_dir()
    key, csr, crt = tmp_path / "admin.key", tmp_path / "admin.csr", tmp_path / "admin.crt"
    subprocess.run(
        ["openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-subj", "/O=system:masters/CN=e2e-admin", "-keyout", key, "-out", csr],
        check=True, capture_output=True,
    )  # fmt: skip
    subprocess.run(
        ["openssl", "x509", "-req", "-in", csr, "-CA", pki / "ca.crt", "-CAkey", pki / "ca.key",
         "-CAcreateserial", "-CAserial", tmp_path / "ca.srl", "-days", "1", "-out", crt],
        check=True, capture_output=True,
    )  # fmt: skip
    return write(
        tmp_path / "kubeconfig",
        cluster(),
        {"client-certificate": "admin.crt", "client-key": "admin.key"},
    )


def whoami_can_list_namespaces(client: ClusterClient) -> bool:
    return bool(client.get_json("/api/v1/namespaces", [("limit", "1")]).get("items") is not None)


def test_client_certificate(tmp_path: Path) -> None:
    client = ClusterClient.connect(client_cert_kubeconfig(tmp_path))
    try:
        assert whoami_can_list_namespaces(client)
        assert client.credentials() == []
    finally:
        client.close()


def test_bearer_token_and_a_refused_one(tmp_path: Path) -> None:
    client = ClusterClient.connect(str(KUBECONFIG), "kube-local")
    try:
        assert whoami_can_list_namespaces(client)
    finally:
        client.close()
    bogus = ClusterClient.connect(write(tmp_path / "k", cluster(), {"token": "not-a-token"}))
    try:
        with pytest.raises(ApiError) as caught:
            bogus.get_json("/api")
        assert caught.value.status == 401
    finally:
        bogus.close()


def test_exec_plugin(tmp_path: Path) -> None:
    script = tmp_path / "plugin"
    answer = {
        "apiVersion": "client.authentication.k8s.io/v1",
        "kind": "ExecCredential",
        "status": {"token": admin_token()},
    }
    script.write_text(f"#!/bin/sh\necho '{json.dumps(answer)}'\n")
    script.chmod(0o755)
    spec = {"apiVersion": "client.authentication.k8s.io/v1", "command": "./plugin"}
    client = ClusterClient.connect(write(tmp_path / "k", cluster(), {"exec": spec}))
    try:
        assert whoami_can_list_namespaces(client)
    finally:
        client.close()


def test_tls_server_name(tmp_path: Path) -> None:
    """The server's certificate names kubernetes.default.svc: accepted as tls-server-name;
    a name it does not hold is refused."""
    good = {**cluster(), "tls-server-name": "kubernetes.default.svc"}
    client = ClusterClient.connect(write(tmp_path / "a", good, {"token": admin_token()}))
    try:
        assert whoami_can_list_namespaces(client)
    finally:
        client.close()
    bad = {**cluster(), "tls-server-name": "elsewhere.example"}
    client = ClusterClient.connect(write(tmp_path / "b", bad, {"token": admin_token()}))
    try:
        with pytest.raises(ApiUnreachable):
            client.get_json("/api")
    finally:
        client.close()


def test_in_cluster_service_account_token(
    api: k8s.ApiClient, namespace: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A ServiceAccount token from the TokenRequest API, mounted as a Pod has it."""
    core = k8s.CoreV1Api(api)
    core.create_namespaced_service_account(namespace, {"metadata": {"name": "kubewatch"}})
    request = {"spec": {"audiences": ["https://kubernetes.default.svc"]}}
    token = core.create_namespaced_service_account_token("kubewatch", namespace, request)
    sa = tmp_path / "serviceaccount"
    sa.mkdir()
    (sa / "token").write_text(token.status.token)
    ca = cluster()["certificate-authority"]
    (sa / "ca.crt").write_bytes(Path(ca).read_bytes())
    server = cluster()["server"].removeprefix("https://")
    host, port = server.rsplit(":", 1)
    monkeypatch.setattr(kc, "SERVICE_ACCOUNT_DIR", str(sa))
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", host)
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", port)
    client = ClusterClient.connect()
    try:
        assert client.context_name == "in-cluster"
        assert client.get_json("/api")["kind"] == "APIVersions"  # any identity may discover
        with pytest.raises(ApiError) as caught:  # RBAC: no rights granted
            client.get_json("/api/v1/namespaces")
        assert caught.value.status == 403
        assert "system:serviceaccount:" in caught.value.message
    finally:
        client.close()


def test_run_with_a_client_certificate(api: k8s.ApiClient, namespace: str, tmp_path: Path) -> None:
    kubeconfig = client_cert_kubeconfig(tmp_path)
    config = {
        "cluster": "e2e",
        "namespaces": {"include": [namespace]},
        "resources": [{"kind": "ConfigMap"}],
        "sinks": {"console": {"type": "stdout", "format": "json"}},
    }
    kw = Kubewatch(config, tmp_path / "run", kubeconfig=kubeconfig)
    try:
        kw.wait_synced(1)
        k8s.CoreV1Api(api).create_namespaced_config_map(
            namespace, {"metadata": {"name": "by-cert"}, "data": {"a": "1"}}
        )
        wait_for(lambda: any(e["name"] == "by-cert" for e in kw.events), what="the ADDED event")
    finally:
        assert kw.stop() == 0
