"""End-to-end fixtures: a real API server, kubewatch as a subprocess, a real HTTP receiver.

These tests run only when ``KUBEWATCH_E2E_KUBECONFIG`` names a disposable cluster (never
the default kubeconfig). Fault tests also need ``KUBE_LOCAL_DIR`` (the state directory of
``../shared/kube/up.sh``) and ``KUBE_LOCAL_SCRIPTS`` (the folder holding ``restart.sh``).
"""

from __future__ import annotations

import http.server
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from kubernetes import client as k8s
from kubernetes import config as k8s_config

from kubewatch.schema import config_schema
from tests.e2e.servers import alertmanager, nats_server  # noqa: F401  (fixtures)

KUBECONFIG = os.environ.get("KUBEWATCH_E2E_KUBECONFIG")
WIDGET_CRD = "widgets.example.com"
EVENT_SCHEMA = Path(__file__).resolve().parents[2] / "docs" / "schema" / "event-v1.json"
_EVENT_VALIDATOR = jsonschema.Draft202012Validator(json.loads(EVENT_SCHEMA.read_text()))
"""Compiled once: every event a test receives is checked against the Event JSON schema."""
_CONFIG_VALIDATOR = jsonschema.Draft202012Validator(config_schema())
"""A configuration kubewatch started with must pass ``kubewatch config schema`` too."""


def check_event(document: Any) -> Any:
    """``document`` if it is a valid Event JSON (docs/schema/event-v1.json), else fail."""
    errors = [
        f"{'.'.join(map(str, e.absolute_path)) or '<top>'}: {e.message}"
        for e in _EVENT_VALIDATOR.iter_errors(document)
    ]
    assert not errors, f"event does not match {EVENT_SCHEMA.name}: {errors}\n{document}"
    return document


pytestmark = pytest.mark.e2e


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    skip = pytest.mark.skip(reason="set KUBEWATCH_E2E_KUBECONFIG to a disposable cluster")
    for item in items:
        if "e2e" in item.keywords and not KUBECONFIG:
            item.add_marker(skip)


def wait_for(predicate: Callable[[], Any], timeout: float = 20.0, what: str = "condition") -> Any:
    """Poll ``predicate`` until it returns something truthy; fail with ``what`` on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


@pytest.fixture(scope="session")
def api() -> k8s.ApiClient:
    assert KUBECONFIG
    return k8s_config.new_client_from_config(config_file=KUBECONFIG, context="kube-local")


@pytest.fixture
def namespace(api: k8s.ApiClient) -> Iterator[str]:
    name = f"e2e-{uuid.uuid4().hex[:8]}"
    core = k8s.CoreV1Api(api)
    core.create_namespace({"metadata": {"name": name}})
    yield name
    core.delete_namespace(name)


@pytest.fixture(scope="session")
def widget_crd(api: k8s.ApiClient) -> str:
    """A namespaced CRD ``Widget`` (example.com/v1, status subresource)."""
    ext = k8s.ApiextensionsV1Api(api)
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": WIDGET_CRD},
        "spec": {
            "group": "example.com",
            "scope": "Namespaced",
            "names": {
                "plural": "widgets",
                "singular": "widget",
                "kind": "Widget",
                "shortNames": ["wd"],
            },
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
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
    wait_for(lambda: _crd_established(ext), what="the Widget CRD to be established")
    return WIDGET_CRD


def _crd_established(ext: k8s.ApiextensionsV1Api) -> bool:
    crd = ext.read_custom_resource_definition(WIDGET_CRD)
    return any(
        c.type == "Established" and c.status == "True" for c in (crd.status.conditions or [])
    )


class Receiver:
    """A real HTTP server collecting webhook POSTs (bodies and headers)."""

    def __init__(self) -> None:
        self.requests: list[tuple[dict[str, str], dict[str, Any]]] = []
        self._checked = 0  # bodies already checked against the Event JSON schema
        self.status = 200
        self._lock = threading.Lock()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                status = receiver.status
                if status == 200:
                    with receiver._lock:
                        receiver.requests.append((dict(self.headers), json.loads(body)))
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def events(self) -> list[dict[str, Any]]:
        """The bodies received; each Event JSON among them checked against its schema
        (a webhook with a ``bodyTemplate`` posts other documents, left as they are)."""
        with self._lock:
            bodies = [body for _, body in self.requests]
        for body in bodies[self._checked :]:
            if isinstance(body, dict) and "schemaVersion" in body:
                check_event(body)
        self._checked = max(self._checked, len(bodies))
        return bodies

    def close(self) -> None:
        self.server.shutdown()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def write_config(path: Path, config: dict[str, Any]) -> None:
    """Replace the file in one step: kubewatch's config watcher never reads half a file."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(yaml.safe_dump(config))
    os.replace(tmp, path)


class Kubewatch:
    """``python -m kubewatch run`` in a subprocess; stdout JSON lines are collected."""

    def __init__(
        self,
        config: dict[str, Any],
        tmp: Path,
        env: dict[str, str] | None = None,
        kubeconfig: str | None = None,
    ) -> None:
        tmp.mkdir(parents=True, exist_ok=True)
        self.config_path = tmp / "config.yaml"
        write_config(self.config_path, config)
        self.stderr_path = tmp / "kubewatch.stderr"
        self._stdout_lines: list[str] = []
        self._checked = 0  # events already checked against the Event JSON schema
        self._lock = threading.Lock()
        with self.stderr_path.open("w") as stderr:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "kubewatch",
                    "--log-level",
                    "debug",
                    "run",
                    "--config",
                    str(self.config_path),
                    "--kubeconfig",
                    kubeconfig or str(KUBECONFIG),
                ],
                stdout=subprocess.PIPE,
                stderr=stderr,
                text=True,
                env={**os.environ, **(env or {})},
            )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._lock:
                self._stdout_lines.append(line)

    @property
    def stdout_lines(self) -> list[str]:
        with self._lock:
            return list(self._stdout_lines)

    @property
    def events(self) -> list[dict[str, Any]]:
        """The JSON lines of stdout, each checked against the Event JSON schema (once)."""
        events = [json.loads(line) for line in self.stdout_lines if line.strip()]
        for event in events[self._checked :]:
            check_event(event)
        self._checked = max(self._checked, len(events))
        return events

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text()

    def wait_synced(self, watches: int, timeout: float = 30.0) -> None:
        wait_for(
            lambda: self.stderr.count(": synced,") >= watches or self.proc.poll() is not None,
            timeout,
            f"{watches} watches to sync",
        )
        assert self.proc.poll() is None, f"kubewatch exited:\n{self.stderr}"
        raw = yaml.safe_load(self.config_path.read_text())
        errors = [e.message for e in _CONFIG_VALIDATOR.iter_errors(raw)]
        assert not errors, f"kubewatch runs with it, the config schema refuses it: {errors}"

    def stop(self, timeout: float = 15.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)  # a paused one could not drain
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
            self._reader.join(5)

    def pause(self) -> None:
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        self.proc.send_signal(signal.SIGCONT)


@pytest.fixture
def start_kubewatch(tmp_path: Path) -> Iterator[Callable[..., Kubewatch]]:
    started: list[Kubewatch] = []

    def start(config: dict[str, Any], env: dict[str, str] | None = None) -> Kubewatch:
        kw = Kubewatch(config, tmp_path, env)
        started.append(kw)
        return kw

    yield start
    for kw in started:
        kw.stop()


def base_config(
    namespace: str, receiver: Receiver, resources: list[dict[str, Any]]
) -> dict[str, Any]:
    """Watch ``resources`` in ``namespace`` only, to stdout (JSON) and the receiver."""
    return {
        "cluster": "e2e",
        "namespaces": {"include": [namespace]},
        "resources": resources,
        "sinks": {
            "console": {"type": "stdout", "format": "json"},
            "audit": {
                "type": "webhook",
                "url": receiver.url,
                "headers": {"X-Token": "${E2E_TOKEN}"},
            },
        },
        "delivery": {"retry": {"attempts": 20, "maxBackoff": 1}},
        "watch": {"discoveryInterval": 1},
    }


def brief(events: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    """(type, kind, name) of each event, in order."""
    return [(e["type"], e["kind"], e["name"]) for e in events]
