"""``kubewatch validate``: 0 only when every check passed; a cluster that could not be
checked is 1; a malformed kubeconfig is one line and 2 (``run`` alike)."""

from __future__ import annotations

import http.server
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kubewatch.cli import EXIT_CONFIG, EXIT_FAILURE, EXIT_OK, main
from tests.apiserver_fakes import write_kubeconfig


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text("resources: [{kind: ConfigMap}]\nsinks: {out: {type: stdout}}\n")
    return path


def kubeconfig(tmp_path: Path, server: str) -> Path:
    return write_kubeconfig(
        tmp_path / "kubeconfig", server, token="not-a-valid-token", context="ctx"
    )


@pytest.fixture
def unauthorized() -> Iterator[str]:
    """An API server that refuses every request with 401, as one does a bad token."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b'{"kind":"Status","code":401,"reason":"Unauthorized","message":"no"}'
            self.send_response(401)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_validate(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["validate", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_offline_checks_the_file_only(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_validate(capsys, "--config", str(config), "--offline")
    assert code == EXIT_OK
    assert "configuration is valid" in out
    assert "not checked" in out


def test_missing_kubeconfig_is_a_failure(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nope"
    code, out, err = run_validate(capsys, "--config", str(config), "--kubeconfig", str(missing))
    assert code == EXIT_FAILURE
    assert "configuration is valid" not in out
    assert "--offline" in err


def test_unknown_context_is_a_failure(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    kc = kubeconfig(tmp_path, f"http://127.0.0.1:{closed_port()}")
    code, out, err = run_validate(
        capsys, "--config", str(config), "--kubeconfig", str(kc), "--context", "other"
    )
    assert code == EXIT_FAILURE
    assert "configuration is valid" not in out
    assert "'other'" in err


def test_unreachable_server_is_a_failure(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    kc = kubeconfig(tmp_path, f"http://127.0.0.1:{closed_port()}")
    code, out, err = run_validate(capsys, "--config", str(config), "--kubeconfig", str(kc))
    assert code == EXIT_FAILURE
    assert "configuration is valid" not in out
    assert "could not be checked" in err


def test_unauthorized_is_a_failure(
    config: Path, tmp_path: Path, unauthorized: str, capsys: pytest.CaptureFixture[str]
) -> None:
    kc = kubeconfig(tmp_path, unauthorized)
    code, out, err = run_validate(capsys, "--config", str(config), "--kubeconfig", str(kc))
    assert code == EXIT_FAILURE
    assert "configuration is valid" not in out
    assert "401" in err


@pytest.mark.parametrize("command", ["validate", "run"])
def test_malformed_kubeconfig_is_one_line(
    command: str, config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    kc = tmp_path / "kubeconfig"
    kc.write_text("apiVersion: v1\nclusters:\n  - name: c\n   cluster: {server: x}\n")
    code = main([command, "--config", str(config), "--kubeconfig", str(kc)])
    out, err = capsys.readouterr()
    assert code == EXIT_CONFIG
    assert "configuration is valid" not in out
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert str(kc) in lines[0]
    assert "line 4, column 4" in lines[0]
    assert "Traceback" not in err


def test_kubeconfig_that_is_not_a_mapping(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    kc = tmp_path / "kubeconfig"
    kc.write_text("- just\n- a list\n")
    code, _, err = run_validate(capsys, "--config", str(config), "--kubeconfig", str(kc))
    assert code == EXIT_CONFIG
    assert len(err.strip().splitlines()) == 1
    assert str(kc) in err
