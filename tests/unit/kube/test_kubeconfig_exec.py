"""Exec credential plugins run for real: a small script prints an ExecCredential; its token
is cached until ``expirationTimestamp``, a 401 runs it again once, and a missing or failing
plugin is one line."""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubewatch.cli import EXIT_FAILURE, main
from kubewatch.errors import ApiError
from kubewatch.kube.client import ClusterClient
from kubewatch.kube.credentials import CredentialError
from kubewatch.kube.execplugin import ExecCredentials
from kubewatch.kube.kubeconfig import ClusterConfigError, load_configuration
from tests.apiserver_fakes import JsonHandler, serve
from tests.stress import hammer

V1 = "client.authentication.k8s.io/v1"
V1BETA1 = "client.authentication.k8s.io/v1beta1"

PLUGIN = """#!{python}
import json, os, pathlib, sys
runs = pathlib.Path(__file__).with_suffix(".runs")
n = int(runs.read_text()) + 1 if runs.exists() else 1
runs.write_text(str(n))
info = json.loads(os.environ["KUBERNETES_EXEC_INFO"])
status = {{"token": f"run-{{n}}"}}
expires = os.environ.get("EXPIRES")
if expires:
    status["expirationTimestamp"] = expires
pathlib.Path(__file__).with_suffix(".seen").write_text(json.dumps(
    {{"info": info, "args": sys.argv[1:], "env": os.environ.get("PLUGIN_ENV")}}))
print(json.dumps({{"apiVersion": info["apiVersion"], "kind": "ExecCredential", "status": status}}))
"""


def plugin(tmp_path: Path, body: str | None = None) -> Path:
    """An executable script: the ExecCredential printer above, or ``body``."""
    script = tmp_path / "bin" / "plugin"
    script.parent.mkdir(exist_ok=True)
    script.write_text(PLUGIN.format(python=sys.executable) if body is None else body)
    script.chmod(0o755)
    return script


def kubeconfig(
    tmp_path: Path, server: str, exec_spec: dict[str, Any], name: str = "kubeconfig"
) -> Path:
    path = tmp_path / name
    doc = {
        "apiVersion": "v1",
        "clusters": [{"name": "c", "cluster": {"server": server}}],
        "users": [{"name": "u", "user": {"exec": exec_spec}}],
        "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
        "current-context": "x",
    }
    path.write_text(yaml.safe_dump(doc))
    return path


def runs(script: Path) -> int:
    counter = script.with_suffix(".runs")
    return int(counter.read_text()) if counter.exists() else 0


@pytest.mark.parametrize("version", [V1, V1BETA1])
def test_the_plugin_gets_args_env_and_exec_info(tmp_path: Path, version: str) -> None:
    script = plugin(tmp_path)
    spec = {
        "apiVersion": version,
        "command": "./bin/plugin",  # relative to the kubeconfig
        "args": ["token", "--cluster=c"],
        "env": [{"name": "PLUGIN_ENV", "value": "from-kubeconfig"}],
        "interactiveMode": "Never",
        "provideClusterInfo": True,
    }
    config, _ = load_configuration(str(kubeconfig(tmp_path, "https://h:6443", spec)), None)
    assert config.credentials.authorization() == "Bearer run-1"
    assert config.credentials.authorization() == "Bearer run-1"  # no expiry: cached
    assert runs(script) == 1
    seen = json.loads(script.with_suffix(".seen").read_text())
    assert seen["args"] == ["token", "--cluster=c"]
    assert seen["env"] == "from-kubeconfig"
    assert seen["info"] == {
        "apiVersion": version,
        "kind": "ExecCredential",
        "spec": {"interactive": False, "cluster": {"server": "https://h:6443"}},
    }
    assert config.credentials.secrets() == ["run-1"]


def test_the_credential_is_cached_until_it_expires(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    script = plugin(tmp_path)
    monkeypatch.setenv("EXPIRES", "2030-01-01T00:00:00Z")
    spec = {"apiVersion": V1, "command": str(script)}
    config, _ = load_configuration(str(kubeconfig(tmp_path, "https://h", spec)), None)
    assert isinstance(config.credentials, ExecCredentials)
    expiry = 1893456000.0  # 2030-01-01T00:00:00Z
    now = [expiry - 1]
    credentials = ExecCredentials(config.credentials.spec, clock=lambda: now[0])
    assert credentials.authorization() == "Bearer run-1"
    assert credentials.authorization() == "Bearer run-1"
    now[0] = expiry
    assert credentials.authorization() == "Bearer run-2"
    assert runs(script) == 2


class TokenServer(JsonHandler):
    """Answers 401 unless the bearer token is one of ``accepted``; records what it got."""

    accepted: set[str] = set()
    seen: list[str] = []

    def do_GET(self) -> None:
        auth = self.headers.get("Authorization", "")
        self.seen.append(auth)
        if auth.removeprefix("Bearer ") in self.accepted:
            self.send_json(200, {"kind": "APIVersions", "path": self.path})
        else:
            self.send_json(401, {"kind": "Status", "code": 401, "reason": "Unauthorized"})


@pytest.fixture
def token_server() -> Iterator[tuple[type[TokenServer], str]]:
    class Handler(TokenServer):
        accepted: set[str] = set()
        seen: list[str] = []

    httpd, url = serve(Handler)
    yield Handler, url
    httpd.shutdown()
    httpd.server_close()


def test_a_401_runs_the_plugin_again_once(
    tmp_path: Path, token_server: tuple[type[TokenServer], str]
) -> None:
    """The server refuses run-1 (revoked): the request is sent again with run-2 and
    succeeds; a server that refuses everything gets two requests, then a 401 error."""
    handler, url = token_server
    script = plugin(tmp_path)
    handler.accepted = {"run-2"}
    client = ClusterClient.connect(
        str(kubeconfig(tmp_path, url, {"apiVersion": V1, "command": str(script)}))
    )
    try:
        assert client.get_json("/api")["kind"] == "APIVersions"
        assert handler.seen == ["Bearer run-1", "Bearer run-2"]
        assert client.get_json("/api")["kind"] == "APIVersions"  # run-2 kept
        assert runs(script) == 2
        handler.accepted = set()
        handler.seen.clear()
        with pytest.raises(ApiError) as caught:
            client.get_json("/api")
        assert caught.value.status == 401
        assert handler.seen == ["Bearer run-2", "Bearer run-3"]
    finally:
        client.close()


def test_a_missing_or_failing_plugin_is_one_line(tmp_path: Path) -> None:
    missing = {
        "apiVersion": V1,
        "command": "kubewatch-no-such-plugin",
        "installHint": "Install\n it.",
    }
    path = kubeconfig(tmp_path, "https://h", missing)
    with pytest.raises(ClusterConfigError) as caught:
        ClusterClient.connect(str(path))
    assert str(caught.value) == (
        f"kubeconfig {path}: users[u].user.exec: command 'kubewatch-no-such-plugin' "
        "not found (Install it.)"
    )
    failing = plugin(
        tmp_path,
        "#!/bin/sh\necho 'line one' >&2\necho '  error: token expired, run login  ' >&2\nexit 3\n",
    )
    path = kubeconfig(tmp_path, "https://h", {"apiVersion": V1, "command": str(failing)})
    config, _ = load_configuration(str(path), None)
    with pytest.raises(CredentialError) as failed:
        config.credentials.authorization()
    assert str(failed.value) == (
        f"kubeconfig {path}: users[u].user.exec: command '{failing}' failed (exit 3): "
        "line one error: token expired, run login"
    )
    garbage = plugin(tmp_path, "#!/bin/sh\necho 'not json'\n")
    path = kubeconfig(tmp_path, "https://h", {"apiVersion": V1, "command": str(garbage)})
    config, _ = load_configuration(str(path), None)
    with pytest.raises(CredentialError, match="printed no ExecCredential JSON: 'not json'"):
        config.credentials.authorization()


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ({}, "has no token and no certificate"),
        ({"token": "t", "expirationTimestamp": "soon"}, "is not an RFC 3339 time"),
        ({"clientCertificateData": "x"}, "clientCertificateData and clientKeyData go together"),
    ],
)
def test_an_ExecCredential_without_what_is_needed(
    tmp_path: Path, status: dict[str, Any], expected: str
) -> None:
    answer = json.dumps({"apiVersion": V1, "kind": "ExecCredential", "status": status})
    script = plugin(tmp_path, f"#!/bin/sh\necho '{answer}'\n")
    path = kubeconfig(tmp_path, "https://h", {"apiVersion": V1, "command": str(script)})
    config, _ = load_configuration(str(path), None)
    with pytest.raises(CredentialError, match=expected):
        config.credentials.authorization()


def test_validate_reports_a_failing_plugin_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("resources: [{kind: ConfigMap}]\nsinks: {out: {type: stdout}}\n")
    failing = plugin(tmp_path, "#!/bin/sh\necho 'no credentials configured' >&2\nexit 1\n")
    path = kubeconfig(tmp_path, "https://h", {"apiVersion": V1, "command": str(failing)})
    code = main(["validate", "--config", str(config), "--kubeconfig", str(path)])
    err = capsys.readouterr().err
    assert code == EXIT_FAILURE
    assert len(err.strip().splitlines()) == 1, err
    assert "no credentials configured" in err
    assert "Traceback" not in err


def test_threads_share_one_plugin_run(tmp_path: Path) -> None:
    """Many watch threads asking at once: one run, the same token for all."""
    script = plugin(tmp_path)
    spec = {"apiVersion": V1, "command": str(script)}
    config, _ = load_configuration(str(kubeconfig(tmp_path, "https://h", spec)), None)
    got: list[str | None] = []
    lock = threading.Lock()

    def ask(_n: int) -> None:
        for _ in range(200):
            value = config.credentials.authorization()
            with lock:
                got.append(value)

    hammer(ask, threads=16)
    assert runs(script) == 1
    assert set(got) == {"Bearer run-1"}
    assert len(got) == 16 * 200


def test_concurrent_401s_run_the_plugin_once_more(tmp_path: Path) -> None:
    """Threads that all sent run-1 and got a 401 drop it once: the next run is run-2 for
    every one of them, not one run per thread."""
    script = plugin(tmp_path)
    spec = {"apiVersion": V1, "command": str(script)}
    config, _ = load_configuration(str(kubeconfig(tmp_path, "https://h", spec)), None)
    credentials = config.credentials
    assert credentials.authorization() == "Bearer run-1"
    barrier = threading.Barrier(8)
    after: list[str | None] = []

    def refused(_n: int) -> None:
        barrier.wait()
        credentials.unauthorized("Bearer run-1")
        after.append(credentials.authorization())

    hammer(refused, threads=8)
    assert runs(script) == 2
    assert set(after) == {"Bearer run-2"}
