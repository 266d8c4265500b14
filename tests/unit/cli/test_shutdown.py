"""SIGTERM ends ``kubewatch run`` at once whatever its start is waiting for.

``kubewatch run`` as a process, against a fake API server that serves discovery (from
``data/discovery-1.20.json``) and then stops answering the one request under test: the
namespaces LIST a namespace selector waits for (hanging, or refused with 403), or discovery
itself. A Pod gets SIGKILL after its grace period (30 s by default), so the process must
exit well within it; the bound below is a third of that, the waits it guards are 30 s to
minutes long.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import pytest
import yaml

from tests.apiserver_fakes import JsonHandler, serve, write_kubeconfig

DISCOVERY = json.loads(
    (Path(__file__).parents[1] / "data" / "discovery-1.20.json").read_text(encoding="utf-8")
)
EXIT_BOUND = 10.0
"""Seconds the stopped process may take: well below a 30 s grace period."""


class FakeApiServer:
    """Discovery documents, then ``mode`` for the request under test: ``hang`` (never
    answer), ``forbid`` (403) for the namespaces LIST, or ``hang-discovery``."""

    def __init__(self, mode: str) -> None:
        self.release = threading.Event()
        self.hit = threading.Event()  # the request under test arrived
        server = self

        class Handler(JsonHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                path = urlparse(self.path).path
                if mode == "hang-discovery" and path.startswith("/apis/"):
                    server.hit.set()
                    server.release.wait(120)
                    return
                if path in DISCOVERY:
                    self.send_json(200, DISCOVERY[path])
                elif path == "/api/v1/namespaces":
                    server.hit.set()
                    if mode == "hang":
                        server.release.wait(120)
                        return
                    self.send_json(403, {"kind": "Status", "code": 403, "reason": "Forbidden"})
                else:  # the watched resource: an empty list, then idle watches
                    self.send_json(200, {"metadata": {"resourceVersion": "1"}, "items": []})

        self.httpd, self.url = serve(Handler)

    def close(self) -> None:
        self.release.set()
        self.httpd.shutdown()


@pytest.fixture(params=["hang", "forbid", "hang-discovery"])
def server(request: pytest.FixtureRequest) -> Iterator[FakeApiServer]:
    fake = FakeApiServer(request.param)
    yield fake
    fake.close()


def test_sigterm_while_start_waits_exits_at_once(server: FakeApiServer, tmp_path: Path) -> None:
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", server.url)
    config = tmp_path / "config.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "namespaceSelector": "env=prod",
                "resources": [{"kind": "ConfigMap"}],
                "sinks": {"out": {"type": "stdout"}},
            }
        )
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("POD_")}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "kubewatch.cli",
            "run",
            "--config",
            str(config),
            "--kubeconfig",
            str(kubeconfig),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.hit.wait(30), "kubewatch never reached the request under test"
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(EXIT_BOUND)
        except subprocess.TimeoutExpired:
            pytest.fail(f"still running {EXIT_BOUND:.0f}s after SIGTERM")
    finally:
        proc.kill()
        _, stderr = proc.communicate()
    assert code == 0, stderr
    assert "received SIGTERM; stopping" in stderr
