"""``kubewatch validate`` against a fake API server whose RBAC allows ``list`` but not
``watch`` on some resources: each collection must be both listable and watchable, the
namespaces too when a namespace selector is in effect."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
import yaml

from kubewatch.cli import main
from tests.apiserver_fakes import JsonHandler, serve, write_kubeconfig

DISCOVERY = json.loads(
    (Path(__file__).parents[1] / "data" / "discovery-1.20.json").read_text(encoding="utf-8")
)


class RbacServer:
    """Discovery, LISTs that work, and access reviews that deny ``watch`` on ``unwatchable``
    resources (plurals)."""

    def __init__(self, unwatchable: set[str]) -> None:
        self.reviews: list[dict[str, Any]] = []
        server = self

        class Handler(JsonHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                path = urlparse(self.path).path
                if path in DISCOVERY:
                    self.send_json(200, DISCOVERY[path])
                else:
                    self.send_json(200, {"metadata": {"resourceVersion": "1"}, "items": []})

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                attributes = body["spec"]["resourceAttributes"]
                server.reviews.append(attributes)
                denied = attributes["verb"] == "watch" and attributes["resource"] in unwatchable
                status = {"allowed": not denied}
                if denied:
                    status["reason"] = f"no RBAC policy matched ({attributes['resource']})"
                self.send_json(201, {**body, "status": status})

        self.httpd, self.url = serve(Handler)

    def close(self) -> None:
        self.httpd.shutdown()


def files(tmp_path: Path, url: str, config: dict[str, Any]) -> list[str]:
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", url)
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
