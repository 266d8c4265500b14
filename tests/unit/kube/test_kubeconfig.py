"""kubewatch's own kubeconfig loader: client-go's rules for finding the file, the context,
the cluster's TLS settings and the user's credentials; every mistake one line naming the
file and the key."""

from __future__ import annotations

import base64
import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubewatch.kube import kubeconfig as kc
from kubewatch.kube.credentials import BasicAuth, BearerToken, NoCredentials, TokenFile
from kubewatch.kube.execplugin import ExecCredentials
from kubewatch.kube.kubeconfig import (
    ClusterConfigError,
    KubeconfigInvalid,
    load_configuration,
)

PEM = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


def write(
    path: Path,
    user: dict[str, Any] | None = None,
    cluster: dict[str, Any] | None = None,
    **extra: Any,
) -> Path:
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": cluster or {"server": "https://10.0.0.1:6443/"}}],
        "users": [{"name": "u", "user": user or {}}],
        "contexts": [
            {"name": "main", "context": {"cluster": "c", "user": "u"}},
            {"name": "other", "context": {"cluster": "c"}},
        ],
        "current-context": "main",
        **extra,
    }
    path.write_text(yaml.safe_dump(doc))
    return path


@pytest.fixture(autouse=True)
def no_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.delenv("KUBERNETES_SERVICE_PORT", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))


def test_cluster_fields_and_relative_paths(tmp_path: Path) -> None:
    """``certificate-authority`` and ``tokenFile`` are relative to the kubeconfig's directory
    (not the working directory); the server loses its trailing slash."""
    (tmp_path / "conf" / "pki").mkdir(parents=True)
    (tmp_path / "conf" / "pki" / "ca.crt").write_bytes(PEM)
    (tmp_path / "conf" / "token").write_text("from-file\n")
    path = write(
        tmp_path / "conf" / "kubeconfig",
        user={"tokenFile": "token"},
        cluster={
            "server": "https://10.0.0.1:6443/",
            "certificate-authority": "pki/ca.crt",
            "tls-server-name": "kubernetes.default.svc",
        },
    )
    config, context = load_configuration(str(path), None)
    assert context == "main"
    assert config.server == "https://10.0.0.1:6443"
    assert config.ca_pem == PEM
    assert config.tls_server_name == "kubernetes.default.svc"
    assert config.insecure is False
    assert isinstance(config.credentials, TokenFile)
    assert config.credentials.path == str(tmp_path / "conf" / "token")
    assert config.credentials.authorization() == "Bearer from-file"


def test_data_fields_win_over_files_and_are_base64(tmp_path: Path) -> None:
    user = {
        "client-certificate-data": base64.b64encode(b"CERT").decode(),
        "client-key-data": base64.b64encode(b"KEY").decode(),
        "client-certificate": "missing.crt",
    }
    cluster = {
        "server": "https://h",
        "certificate-authority-data": base64.b64encode(PEM).decode(),
        "certificate-authority": "missing.crt",
        "insecure-skip-tls-verify": True,
    }
    config, _ = load_configuration(str(write(tmp_path / "k", user, cluster)), None)
    assert config.ca_pem == PEM
    assert config.insecure is True
    assert isinstance(config.credentials, NoCredentials)
    cert = config.credentials.client_cert()
    assert cert is not None
    assert (cert.cert_pem, cert.key_pem) == (b"CERT", b"KEY")
    assert config.credentials.authorization() is None


def test_client_certificate_files_with_a_token(tmp_path: Path) -> None:
    (tmp_path / "u.crt").write_bytes(b"CERT")
    (tmp_path / "u.key").write_bytes(b"KEY")
    user = {"client-certificate": "u.crt", "client-key": "u.key", "token": "abc"}
    config, _ = load_configuration(str(write(tmp_path / "k", user)), None)
    assert isinstance(config.credentials, BearerToken)
    assert config.credentials.authorization() == "Bearer abc"
    assert config.credentials.client_cert() is not None
    assert config.credentials.secrets() == ["abc"]


def test_basic_auth(tmp_path: Path) -> None:
    config, _ = load_configuration(
        str(write(tmp_path / "k", {"username": "ann", "password": "s3cret"})), None
    )
    assert isinstance(config.credentials, BasicAuth)
    expected = "Basic " + base64.b64encode(b"ann:s3cret").decode()
    assert config.credentials.authorization() == expected
    assert "s3cret" in config.credentials.secrets()


def test_context_flag_and_anonymous_user(tmp_path: Path) -> None:
    path = write(tmp_path / "k", {"token": "t"})
    config, context = load_configuration(str(path), "other")
    assert context == "other"
    assert config.credentials.authorization() is None
    with pytest.raises(ClusterConfigError, match=r"context 'nope' not in .*contexts: main, other"):
        load_configuration(str(path), "nope")


def test_kubeconfig_variable_then_home_then_not_found(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = write(tmp_path / "first", {"token": "first"})
    second = write(tmp_path / "second", {"token": "second"})
    monkeypatch.setenv("KUBECONFIG", f"{first}{os.pathsep}{second}")
    config, _ = load_configuration(None, None)
    assert config.credentials.authorization() == "Bearer first"
    explicit, _ = load_configuration(str(second), None)  # --kubeconfig wins
    assert explicit.credentials.authorization() == "Bearer second"
    monkeypatch.delenv("KUBECONFIG")
    with pytest.raises(ClusterConfigError, match="not found and not running in a Pod"):
        load_configuration(None, None)
    (tmp_path / "home" / ".kube").mkdir(parents=True)
    write(tmp_path / "home" / ".kube" / "config", {"token": "home"})
    config, _ = load_configuration(None, None)
    assert config.credentials.authorization() == "Bearer home"


def test_in_cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """In a Pod without a kubeconfig: the service's address (IPv6 in brackets), the
    ServiceAccount's CA and its token, which is read again when it rotates."""
    (tmp_path / "token").write_text("first")
    (tmp_path / "ca.crt").write_bytes(PEM)
    monkeypatch.setattr(kc, "SERVICE_ACCOUNT_DIR", str(tmp_path))
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "fd00:10:96::1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    config, context = load_configuration(None, None)
    assert context == "in-cluster"
    assert config.server == "https://[fd00:10:96::1]:443"
    assert config.ca_pem == PEM
    assert config.credentials.authorization() == "Bearer first"
    (tmp_path / "token").write_text("second")
    assert config.credentials.unauthorized("Bearer first") is True  # a 401: read again
    assert config.credentials.authorization() == "Bearer second"
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1")
    assert load_configuration(None, None)[0].server == "https://10.96.0.1:443"
    with pytest.raises(ClusterConfigError, match="--context needs a kubeconfig"):
        load_configuration(None, "main")
    monkeypatch.delenv("KUBERNETES_SERVICE_PORT")
    with pytest.raises(ClusterConfigError, match="KUBERNETES_SERVICE_PORT"):
        load_configuration(None, None)
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    (tmp_path / "token").unlink()
    with pytest.raises(ClusterConfigError, match="no token file"):
        load_configuration(None, None)


def test_a_token_file_is_read_again_every_period(tmp_path: Path) -> None:
    """Bound ServiceAccount tokens rotate: the file is read again after ``period``."""
    now = [0.0]
    (tmp_path / "token").write_text("one")
    source = TokenFile(str(tmp_path / "token"), period=60.0, clock=lambda: now[0])
    assert source.authorization() == "Bearer one"
    (tmp_path / "token").write_text("two")
    now[0] = 59.0
    assert source.authorization() == "Bearer one"
    now[0] = 60.0
    assert source.authorization() == "Bearer two"
    (tmp_path / "token").unlink()  # being replaced: the last token is kept
    now[0] = 200.0
    assert source.authorization() == "Bearer two"
    assert source.unauthorized("Bearer two") is False  # nothing fresher to try


def test_exec_spec_is_read_with_its_command_relative_to_the_kubeconfig(tmp_path: Path) -> None:
    user = {
        "exec": {
            "apiVersion": "client.authentication.k8s.io/v1",
            "command": "./bin/plugin",
            "args": ["get-token", "--x"],
            "env": [{"name": "A", "value": "1"}],
            "interactiveMode": "Never",
            "provideClusterInfo": True,
        }
    }
    config, _ = load_configuration(str(write(tmp_path / "k", user)), None)
    assert isinstance(config.credentials, ExecCredentials)
    spec = config.credentials.spec
    assert spec.command == str(tmp_path / "bin" / "plugin")
    assert spec.args == ("get-token", "--x")
    assert spec.env == (("A", "1"),)
    assert spec.cluster_info == {"server": "https://10.0.0.1:6443"}
    bare = {"exec": {**user["exec"], "command": "aws"}}  # no separator: looked up on PATH
    config, _ = load_configuration(str(write(tmp_path / "k", bare)), None)
    assert isinstance(config.credentials, ExecCredentials)
    assert config.credentials.spec.command == "aws"


def test_exec_token_with_the_kubeconfig_client_certificate(tmp_path: Path) -> None:
    """A plugin that answers a token only: the kubeconfig's certificate is still presented."""
    script = tmp_path / "plugin"
    answer = '{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential",'
    script.write_text(f'#!/bin/sh\necho \'{answer}"status":{{"token":"tok"}}}}\'\n')
    script.chmod(0o755)
    user = {
        "client-certificate-data": base64.b64encode(b"CERT").decode(),
        "client-key-data": base64.b64encode(b"KEY").decode(),
        "exec": {"apiVersion": "client.authentication.k8s.io/v1", "command": str(script)},
    }
    config, _ = load_configuration(str(write(tmp_path / "k", user)), None)
    assert config.credentials.authorization() == "Bearer tok"
    cert = config.credentials.client_cert()
    assert cert is not None
    assert cert.cert_pem == b"CERT"


EXEC = {"apiVersion": "client.authentication.k8s.io/v1beta1", "command": "x"}


@pytest.mark.parametrize(
    ("user", "cluster", "extra", "expected"),
    [
        pytest.param(
            {"auth-provider": {"name": "gcp", "config": {}}},
            None,
            {},
            "users[u].user.auth-provider: the 'gcp' auth-provider is not supported",
            id="auth-provider",
        ),
        pytest.param(
            {"token": "t", "username": "a"}, None, {}, "users[u].user: set one of", id="two-ways"
        ),
        pytest.param(
            {"client-certificate-data": "Q0VSVA=="},
            None,
            {},
            "client-certificate and client-key go together",
            id="cert-without-key",
        ),
        pytest.param(
            {"tokenFile": "nope"}, None, {}, "users[u].user.tokenFile: ", id="token-file-missing"
        ),
        pytest.param(
            None,
            {"server": "https://h", "certificate-authority": "nope.crt"},
            {},
            "clusters[c].cluster.certificate-authority: ",
            id="ca-missing",
        ),
        pytest.param(
            None,
            {"server": "https://h", "certificate-authority-data": "!!"},
            {},
            "certificate-authority-data: not base64",
            id="ca-not-base64",
        ),
        pytest.param(None, {"insecure-skip-tls-verify": True}, {}, "server: missing", id="server"),
        pytest.param(
            None, {"server": "10.0.0.1:6443"}, {}, "is not an http(s):// URL", id="server-url"
        ),
        pytest.param(None, None, {"contexts": 3}, "contexts: expected a list", id="contexts"),
        pytest.param(
            None, None, {"current-context": "gone"}, "'gone' is not in contexts", id="current"
        ),
        pytest.param(
            None,
            None,
            {"contexts": [{"name": "main", "context": {"cluster": "c", "user": "ghost"}}]},
            "contexts[main].context.user: 'ghost' is not in users",
            id="user-missing",
        ),
        pytest.param(
            None,
            {"server": "https://h", "insecure-skip-tls-verify": "yes"},
            {},
            "expected true or false",
            id="insecure-not-bool",
        ),
        pytest.param(
            {"exec": {**EXEC, "apiVersion": "client.authentication.k8s.io/v1alpha1"}},
            None,
            {},
            "users[u].user.exec.apiVersion: 'client.authentication.k8s.io/v1alpha1' is not one",
            id="exec-version",
        ),
        pytest.param(
            {"exec": {**EXEC, "interactiveMode": "Always"}},
            None,
            {},
            "exec.interactiveMode: Always needs a terminal",
            id="exec-interactive",
        ),
        pytest.param(
            {"exec": {**EXEC, "env": {"A": "1"}}}, None, {}, "exec.env: expected", id="exec-env"
        ),
        pytest.param({"exec": {**EXEC, "command": ""}}, None, {}, "command: missing", id="exec"),
    ],
)
def test_a_mistake_is_one_line_naming_the_file_and_the_key(
    tmp_path: Path,
    user: dict[str, Any] | None,
    cluster: dict[str, Any] | None,
    extra: dict[str, Any],
    expected: str,
) -> None:
    path = write(tmp_path / "kubeconfig", user, cluster, **extra)
    with pytest.raises(ClusterConfigError) as caught:
        load_configuration(str(path), None)
    message = str(caught.value)
    assert "\n" not in message
    assert f"kubeconfig {path}: " in message
    assert expected in message


def test_auth_provider_says_to_use_an_exec_plugin(tmp_path: Path) -> None:
    path = write(tmp_path / "k", {"auth-provider": {"name": "oidc"}})
    with pytest.raises(KubeconfigInvalid, match="use an exec credential plugin"):
        load_configuration(str(path), None)


def test_no_current_context(tmp_path: Path) -> None:
    path = write(tmp_path / "k", {"token": "t"}, **{"current-context": ""})
    with pytest.raises(ClusterConfigError, match="no current-context; choose one with --context"):
        load_configuration(str(path), None)
    assert load_configuration(str(path), "main")[1] == "main"
