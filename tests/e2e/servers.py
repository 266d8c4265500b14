"""Real Alertmanager and NATS servers on loopback, each started by a test and stopped after.

Both come from Debian's packages (``prometheus-alertmanager``, ``nats-server``), which
``.ci/run`` installs; where a binary is missing the fixture skips and says which package
to install.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

ALERTMANAGER = ("prometheus-alertmanager", "/usr/bin/prometheus-alertmanager")
NATS_SERVER = ("nats-server", "/usr/sbin/nats-server")


def find_binary(name: str, path: str) -> str:
    found = shutil.which(name) or (path if Path(path).is_file() else None)
    if found is None:
        pytest.skip(f"{name} not installed (Debian: apt-get install {name})")
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _wait_ready(
    proc: subprocess.Popen[bytes], ready: Callable[[], bool], log: Path, what: str
) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"{what} exited with {proc.returncode}:\n{log.read_text()}")
        if ready():
            return
        time.sleep(0.1)
    raise AssertionError(f"{what} not ready after 30s:\n{log.read_text()}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


@dataclass
class Alertmanager:
    url: str

    def alerts(self) -> list[dict[str, Any]]:
        """``GET /api/v2/alerts``: the alerts Alertmanager holds as active (not resolved)."""
        response = httpx.get(f"{self.url}/api/v2/alerts", timeout=5)
        response.raise_for_status()
        result: list[dict[str, Any]] = response.json()
        return result


def _alertmanager_ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/-/ready", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture
def alertmanager(tmp_path: Path) -> Iterator[Alertmanager]:
    """An Alertmanager on a free port with its own config and storage, no clustering."""
    binary = find_binary(*ALERTMANAGER)
    home = tmp_path / "alertmanager"
    home.mkdir()
    config = home / "alertmanager.yml"
    config.write_text('route:\n  receiver: "null"\nreceivers:\n  - name: "null"\n')
    port = free_port()
    log = home / "log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.path={home / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--cluster.listen-address=",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(proc, lambda: _alertmanager_ready(url), log, "alertmanager")
        yield Alertmanager(url)
    finally:
        _stop(proc)


@dataclass
class NatsServer:
    url: str
    store: Path
    port: int
    proc: subprocess.Popen[bytes]


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[NatsServer]:
    """``nats-server -js`` on a free port, its JetStream store in a temporary folder."""
    binary = find_binary(*NATS_SERVER)
    store = tmp_path / "jetstream"
    port = free_port()
    log = tmp_path / "nats.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [binary, "-js", "-sd", str(store), "-a", "127.0.0.1", "-p", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_ready(proc, lambda: _port_open(port), log, "nats-server")
        yield NatsServer(f"nats://127.0.0.1:{port}", store, port, proc)
    finally:
        _stop(proc)
