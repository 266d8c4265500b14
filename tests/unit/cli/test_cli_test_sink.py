"""``kubewatch test-sink NAME``: one sample event to one real local receiver, once.

The receiver is a real HTTP server on loopback; no cluster is involved.
"""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kubewatch.cli import EXIT_CONFIG, EXIT_FAILURE, EXIT_OK, main
from kubewatch.cli.test_sink import TEST_SINK_OBJECT


class Receiver:
    """Answers every POST with ``status`` (and ``headers``) and records what it got."""

    def __init__(self) -> None:
        self.status = 200
        self.headers: dict[str, str] = {}
        self.body = b""
        self.requests: list[tuple[dict[str, str], dict[str, Any]]] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver._lock:
                    receiver.requests.append((dict(self.headers), json.loads(body)))
                self.send_response(receiver.status)
                for name, value in receiver.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(receiver.body)))
                self.end_headers()
                self.wfile.write(receiver.body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook/s3cr3t-path"
        self._thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def write_config(tmp_path: Path, receiver: Receiver, cluster: str | None = None) -> Path:
    lines = [f"cluster: {cluster}"] if cluster else []
    lines += [
        "resources: [{kind: ConfigMap}]",
        "sinks:",
        "  console: {type: stdout}",
        f"  audit: {{type: webhook, url: '{receiver.url}', retry: {{attempts: 10}}}}",
    ]
    path = tmp_path / "config.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_delivered_exactly_once(
    tmp_path: Path, receiver: Receiver, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, receiver, cluster="staging")
    assert main(["test-sink", "audit", "--config", str(config)]) == EXIT_OK
    out, err = capsys.readouterr()
    assert out == "delivered to audit (webhook)\n"
    assert err == ""
    ((headers, body),) = receiver.requests
    assert body["type"] == "create"
    assert body["name"] == TEST_SINK_OBJECT
    assert body["cluster"] == "staging"
    assert TEST_SINK_OBJECT in body["summary"]
    assert headers["X-Kubewatch-Event-Id"] == body["id"]


def test_cluster_defaults_to_test_and_each_run_has_its_own_id(
    tmp_path: Path, receiver: Receiver
) -> None:
    """No cluster is contacted, so without ``cluster:`` the event says ``test``; a second
    run is a new event (a receiver de-duplicating on the id must not swallow it)."""
    config = write_config(tmp_path, receiver)
    assert main(["test-sink", "audit", "--config", str(config)]) == EXIT_OK
    assert main(["test-sink", "audit", "--config", str(config)]) == EXIT_OK
    first, second = (body for _, body in receiver.requests)
    assert first["cluster"] == second["cluster"] == "test"
    assert first["id"] != second["id"]


def test_a_server_error_is_reported_once_without_retries(
    tmp_path: Path, receiver: Receiver, capsys: pytest.CaptureFixture[str]
) -> None:
    """retry.attempts is 10, yet test-sink tries once and says what the receiver said."""
    receiver.status, receiver.body = 500, b"database on fire"
    config = write_config(tmp_path, receiver)
    assert main(["test-sink", "audit", "--config", str(config)]) == EXIT_FAILURE
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("audit: retryable error: ")
    assert "HTTP 500" in err
    assert "database on fire" in err
    assert "s3cr3t-path" not in err  # the URL path may carry a token
    assert len(receiver.requests) == 1


def test_rate_limited_says_when(
    tmp_path: Path, receiver: Receiver, capsys: pytest.CaptureFixture[str]
) -> None:
    receiver.status, receiver.headers = 429, {"Retry-After": "30"}
    config = write_config(tmp_path, receiver)
    assert main(["test-sink", "audit", "--config", str(config)]) == EXIT_FAILURE
    err = capsys.readouterr().err
    assert err.startswith("audit: rate limited: ")
    assert "(retry after 30s)" in err
    assert len(receiver.requests) == 1


def test_a_client_error_is_permanent(
    tmp_path: Path, receiver: Receiver, capsys: pytest.CaptureFixture[str]
) -> None:
    receiver.status = 404
    config = write_config(tmp_path, receiver)
    assert main(["test-sink", "audit", "--config", str(config)]) == EXIT_FAILURE
    err = capsys.readouterr().err
    assert err.startswith("audit: permanent error: ")
    assert "HTTP 404" in err


def test_a_refused_connection_is_retryable(
    tmp_path: Path, receiver: Receiver, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, receiver)
    receiver.close()  # nobody listens on the port any more
    assert main(["test-sink", "audit", "--config", str(config)]) == EXIT_FAILURE
    assert capsys.readouterr().err.startswith("audit: retryable error: ")


def test_unknown_sink_lists_the_sinks_and_suggests_one(
    tmp_path: Path, receiver: Receiver, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, receiver)
    assert main(["test-sink", "audti", "--config", str(config)]) == EXIT_CONFIG
    err = capsys.readouterr().err
    assert "no sink 'audti'" in err
    assert "did you mean 'audit'?" in err
    assert "sinks: console, audit" in err
    assert receiver.requests == []


def test_only_the_named_sink_is_built(
    tmp_path: Path, receiver: Receiver, capsys: pytest.CaptureFixture[str]
) -> None:
    """Another sink's broken template does not stop testing this one."""
    path = tmp_path / "config.yaml"
    path.write_text(
        "resources: [{kind: ConfigMap}]\n"
        "sinks:\n"
        "  broken: {type: stdout, format: text, template: '{{ nosuchfield }}'}\n"
        f"  audit: {{type: webhook, url: '{receiver.url}'}}\n"
    )
    assert main(["test-sink", "audit", "--config", str(path)]) == EXIT_OK
    assert len(receiver.requests) == 1
    assert main(["test-sink", "broken", "--config", str(path)]) == EXIT_CONFIG
    assert "nosuchfield" in capsys.readouterr().err


def test_a_config_error_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("resources: [{kind: ConfigMap}]\nsinks: {audit: {type: webhok}}\n")
    assert main(["test-sink", "audit", "--config", str(path)]) == EXIT_CONFIG
    assert "unknown sink type" in capsys.readouterr().err
    assert main(["test-sink", "audit", "--config", str(tmp_path / "missing.yaml")]) == EXIT_CONFIG


def test_stdout_sink(
    tmp_path: Path, receiver: Receiver, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, receiver)
    assert main(["test-sink", "console", "--config", str(config), "--kubeconfig", "/nope"]) == 0
    first, second = capsys.readouterr().out.splitlines()
    assert json.loads(first)["name"] == TEST_SINK_OBJECT
    assert second == "delivered to console (stdout)"
