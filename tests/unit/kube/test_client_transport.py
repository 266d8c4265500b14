"""ClusterClient over kubewatch's own transport against a local HTTPS server: the CA, client
certificates, ``tls-server-name``, ``insecure-skip-tls-verify``, the in-cluster token
rotating, the query string as the kubernetes client encoded it, and no command importing
the kubernetes client."""

from __future__ import annotations

import base64
import http.server
import json
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubewatch.kube import kubeconfig as kc
from kubewatch.kube.client import ClusterClient, Query
from kubewatch.kube.failures import ApiUnreachable
from kubewatch.kube.kubeconfig import ClusterConfigError
from tests.apiserver_fakes import JsonHandler, serve


def openssl(*args: str | Path) -> None:
    subprocess.run(["openssl", *map(str, args)], check=True, capture_output=True)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CA, a server certificate for 127.0.0.1 and kubernetes.default.svc, a client one."""
    d = tmp_path_factory.mktemp("pki")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    openssl("req", "-x509", *ec, "-days", "2", "-subj", "/CN=test-ca",
            "-keyout", d / "ca.key", "-out", d / "ca.crt")  # fmt: skip
    (d / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:kubernetes.default.svc\n")
    for name, subject in (("server", "/CN=apiserver"), ("client", "/O=system:masters/CN=ann")):
        openssl("req", *ec, "-subj", subject, "-keyout", d / f"{name}.key",
                "-out", d / f"{name}.csr")  # fmt: skip
        ext = ["-extfile", d / "san.ext"] if name == "server" else []
        openssl("x509", "-req", "-in", d / f"{name}.csr", "-CA", d / "ca.crt",
                "-CAkey", d / "ca.key", "-CAcreateserial", "-days", "2", *ext,
                "-out", d / f"{name}.crt")  # fmt: skip
    return d


class Recorder(JsonHandler):
    """Answers every GET with what it received: path, Authorization, client certificate."""

    accepted: set[str] | None = None  # bearer tokens accepted; None: any

    def do_GET(self) -> None:
        auth = self.headers.get("Authorization", "")
        if self.accepted is not None and auth.removeprefix("Bearer ") not in self.accepted:
            self.send_json(401, {"kind": "Status", "code": 401, "reason": "Unauthorized"})
            return
        peer = self.connection.getpeercert() if isinstance(self.connection, ssl.SSLSocket) else None
        subject = dict(x[0] for x in peer["subject"]) if peer else {}
        self.send_json(
            200,
            {
                "path": self.path,
                "authorization": auth,
                "client": subject.get("commonName", ""),
                "agent": self.headers.get("User-Agent", ""),
            },
        )


@pytest.fixture
def https(pki: Path) -> Iterator[tuple[type[Recorder], int]]:
    class Handler(Recorder):
        accepted = None

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(pki / "server.crt", pki / "server.key")
    ctx.load_verify_locations(pki / "ca.crt")
    ctx.verify_mode = ssl.CERT_OPTIONAL
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True)
    threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True).start()
    yield Handler, httpd.server_address[1]
    httpd.shutdown()
    httpd.server_close()


def kubeconfig(path: Path, cluster: dict[str, Any], user: dict[str, Any]) -> str:
    path.write_text(
        yaml.safe_dump(
            {
                "clusters": [{"name": "c", "cluster": cluster}],
                "users": [{"name": "u", "user": user}],
                "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "x",
            }
        )
    )
    return str(path)


def test_ca_file_client_certificate_and_token(
    pki: Path, https: tuple[type[Recorder], int], tmp_path: Path
) -> None:
    _, port = https
    (tmp_path / "pki").symlink_to(pki)
    path = kubeconfig(
        tmp_path / "kubeconfig",
        {"server": f"https://127.0.0.1:{port}", "certificate-authority": "pki/ca.crt"},
        {"client-certificate": "pki/client.crt", "client-key": "pki/client.key", "token": "t0"},
    )
    client = ClusterClient.connect(path)
    try:
        answer = client.get_json("/api")
        assert answer["client"] == "ann"
        assert answer["authorization"] == "Bearer t0"
        assert answer["agent"].startswith("kubewatch/")
        assert client.host == f"https://127.0.0.1:{port}"
        assert client.credentials() == ["t0"]
    finally:
        client.close()


def test_certificate_data_and_the_query_string(
    pki: Path, https: tuple[type[Recorder], int], tmp_path: Path
) -> None:
    """Selectors are encoded as the kubernetes client did (``quote``: ``/`` kept)."""
    _, port = https

    def data(name: str) -> str:
        return base64.b64encode((pki / name).read_bytes()).decode()

    path = kubeconfig(
        tmp_path / "kubeconfig",
        {"server": f"https://127.0.0.1:{port}", "certificate-authority-data": data("ca.crt")},
        {"client-certificate-data": data("client.crt"), "client-key-data": data("client.key")},
    )
    client = ClusterClient.connect(path)
    try:
        query = Query(label_selector="app in (web,api),tier!=db", field_selector="a.b/c=d e")
        answer = client.list_page("/api/v1/pods", query, limit=5, continue_token="x+y=")
        assert answer["path"] == (
            "/api/v1/pods?labelSelector=app%20in%20%28web%2Capi%29%2Ctier%21%3Ddb"
            "&fieldSelector=a.b/c%3Dd%20e&limit=5&continue=x%2By%3D"
        )
        assert answer["client"] == "ann"
        assert answer["authorization"] == ""
    finally:
        client.close()


def test_tls_server_name_and_insecure(
    pki: Path, https: tuple[type[Recorder], int], tmp_path: Path
) -> None:
    """``localhost`` is not in the server's certificate: refused, unless
    ``tls-server-name`` names one that is, or verification is off."""
    _, port = https
    server = {"server": f"https://localhost:{port}", "certificate-authority": str(pki / "ca.crt")}
    plain = ClusterClient.connect(kubeconfig(tmp_path / "a", server, {"token": "t"}))
    with pytest.raises(ApiUnreachable, match=r"SSL|certificate"):
        plain.get_json("/api")
    plain.close()
    named = {**server, "tls-server-name": "kubernetes.default.svc"}
    client = ClusterClient.connect(kubeconfig(tmp_path / "b", named, {"token": "t"}))
    assert client.get_json("/api")["authorization"] == "Bearer t"
    client.close()
    wrong = {**server, "tls-server-name": "elsewhere.example"}
    client = ClusterClient.connect(kubeconfig(tmp_path / "c", wrong, {"token": "t"}))
    with pytest.raises(ApiUnreachable):
        client.get_json("/api")
    client.close()
    insecure = {"server": f"https://localhost:{port}", "insecure-skip-tls-verify": True}
    client = ClusterClient.connect(kubeconfig(tmp_path / "d", insecure, {"token": "t"}))
    assert client.get_json("/api")["authorization"] == "Bearer t"
    client.close()


def test_a_client_key_that_does_not_match_is_one_line(pki: Path, tmp_path: Path) -> None:
    path = kubeconfig(
        tmp_path / "kubeconfig",
        {"server": "https://127.0.0.1:1", "certificate-authority": str(pki / "ca.crt")},
        {"client-certificate": str(pki / "client.crt"), "client-key": str(pki / "server.key")},
    )
    with pytest.raises(ClusterConfigError) as caught:
        ClusterClient.connect(path)
    assert "\n" not in str(caught.value)
    assert "do not match" in str(caught.value)


def test_in_cluster_token_rotation(
    pki: Path,
    https: tuple[type[Recorder], int],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """In a Pod: the ServiceAccount's CA verifies the server; when kubelet rotates the token
    and the API server stops accepting the old one, the 401 makes the client read the
    file again and the request succeeds with the new token."""
    handler, port = https
    sa = tmp_path / "serviceaccount"
    sa.mkdir()
    (sa / "ca.crt").write_bytes((pki / "ca.crt").read_bytes())
    (sa / "token").write_text("old\n")
    monkeypatch.setattr(kc, "SERVICE_ACCOUNT_DIR", str(sa))
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", str(port))
    client = ClusterClient.connect()
    try:
        assert client.context_name == "in-cluster"
        assert client.get_json("/api")["authorization"] == "Bearer old"
        (sa / "token").write_text("new\n")
        handler.accepted = {"new"}
        assert client.get_json("/api")["authorization"] == "Bearer new"
        assert client.credentials() == ["new"]
    finally:
        client.close()


def test_basic_auth_header(tmp_path: Path) -> None:
    httpd, url = serve(Recorder)
    path = kubeconfig(tmp_path / "k", {"server": url}, {"username": "ann", "password": "pw"})
    client = ClusterClient.connect(path)
    try:
        expected = "Basic " + base64.b64encode(b"ann:pw").decode()
        assert client.get_json("/version")["authorization"] == expected
    finally:
        client.close()
        httpd.shutdown()
        httpd.server_close()


def test_no_command_imports_the_kubernetes_client(tmp_path: Path) -> None:
    """Every command module and the app imported, a client connected and a GET made, in a
    fresh interpreter: the kubernetes package is never loaded (~20 MiB of RSS)."""
    httpd, url = serve(Recorder)
    path = kubeconfig(tmp_path / "k", {"server": url}, {"token": "t"})
    probe = f"""
import json, sys
import kubewatch.app, kubewatch.cli, kubewatch.cli.run, kubewatch.cli.validate
import kubewatch.cli.replay, kubewatch.kube.leader, kubewatch.kube.recorder
from kubewatch.kube.client import ClusterClient
client = ClusterClient.connect({path!r})
answer = client.get_json("/api")
print(json.dumps([answer["authorization"], sorted(m for m in sys.modules
                  if m == "kubernetes" or m.startswith("kubernetes."))]))
"""
    try:
        out = subprocess.run(
            [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
        ).stdout
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert json.loads(out) == ["Bearer t", []]
    help_modules = subprocess.run(
        [sys.executable, "-c", "import sys\nfrom kubewatch.cli import main\n"
         "try:\n    main(['run', '--help'])\nexcept SystemExit:\n    pass\n"
         "print('kubernetes' in sys.modules, file=sys.stderr)"],
        capture_output=True, text=True, check=True, timeout=60,
    ).stderr  # fmt: skip
    assert help_modules.strip().endswith("False")
