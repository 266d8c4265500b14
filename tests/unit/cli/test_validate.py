"""``kubewatch validate`` against a fake API server whose RBAC allows ``list`` but not
``watch`` on some resources: each collection must be both listable and watchable, the
namespaces too when a namespace selector is in effect."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
import yaml

from kubewatch.cli import main

DISCOVERY = json.loads(
    (Path(__file__).parents[1] / "data" / "discovery-1.20.json").read_text(encoding="utf-8")
)


class RbacServer:
    """Discovery, LISTs that work, and access reviews that deny ``watch`` on ``unwatchable``
    resources (plurals)."""

    def __init__(self, unwatchable: set[str]) -> None:
        self.reviews: list[dict[str, Any]] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                path = urlparse(self.path).path
                if path in DISCOVERY:
                    self._json(200, DISCOVERY[path])
                else:
                    self._json(200, {"metadata": {"resourceVersion": "1"}, "items": []})

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                attributes = body["spec"]["resourceAttributes"]
                server.reviews.append(attributes)
                denied = attributes["verb"] == "watch" and attributes["resource"] in unwatchable
                status = {"allowed": not denied}
                if denied:
                    status["reason"] = f"no RBAC policy matched ({attributes['resource']})"
                self._json(201, {**body, "status": status})

            def _json(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()


def files(tmp_path: Path, url: str, config: dict[str, Any]) -> list[str]:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": url}}],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "x",
            }
        )
    )
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({**config, "sinks": {"out": {"type": "stdout"}}}))
    return ["validate", "--config", str(path), "--kubeconfig", str(kubeconfig)]


@pytest.fixture
def rbac(request: pytest.FixtureRequest) -> Iterator[RbacServer]:
    server = RbacServer(set(request.param))
    yield server
    server.close()


@pytest.mark.parametrize("rbac", [["configmaps"]], indirect=True)
def test_listable_but_not_watchable_fails(
    rbac: RbacServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = {
        "namespaces": {"include": ["a", "b"]},
        "resources": [{"kind": "ConfigMap"}, {"kind": "Deployment"}],
    }
    assert main(files(tmp_path, rbac.url, config)) == 1
    out, err = capsys.readouterr()
    assert "resources[0]: cannot watch configmaps in a: no RBAC policy matched" in err
    assert "resources[0]: cannot watch configmaps in b" in err
    assert "resources[1]: deployments.apps in a: listable and watchable" in out
    watched = {(r["resource"], r.get("namespace"), r["group"]) for r in rbac.reviews}
    assert ("deployments", "a", "apps") in watched and ("configmaps", "b", "") in watched


@pytest.mark.parametrize("rbac", [["namespaces"]], indirect=True)
def test_a_namespace_selector_needs_namespaces_watchable(
    rbac: RbacServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = {"namespaceSelector": "env=prod", "resources": [{"kind": "ConfigMap"}]}
    assert main(files(tmp_path, rbac.url, config)) == 1
    out, err = capsys.readouterr()
    assert "configmaps cluster-wide: listable and watchable" in out
    assert "namespaceSelector: cannot watch namespaces: no RBAC policy matched" in err


@pytest.mark.parametrize("rbac", [[]], indirect=True)
def test_all_allowed_passes(
    rbac: RbacServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = {"namespaceSelector": "env=prod", "resources": [{"kind": "ConfigMap"}]}
    assert main(files(tmp_path, rbac.url, config)) == 0
    out, _ = capsys.readouterr()
    assert "namespaceSelector: namespaces: listable and watchable" in out
