"""One process per state directory: a second one fails at once, naming the holder."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from kubewatch.cli import main
from kubewatch.cli.common import EXIT_CONFIG
from kubewatch.state import LOCK_FILE, StateLocked, open_state

HOLDER = """
import sys
from kubewatch.state import open_state
state = open_state(sys.argv[1])
assert state is not None
print("holding", flush=True)
sys.stdin.read()  # until the test closes stdin (or kills us)
state.close()
"""


@pytest.fixture
def holder(tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    """Another process with ``tmp_path/state`` open, until the test ends it."""
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(tmp_path / "state")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "holding"
    yield proc
    proc.kill()
    proc.communicate()


def test_a_second_process_fails_naming_the_directory_and_the_holder(
    tmp_path: Path, holder: subprocess.Popen[str]
) -> None:
    directory = str(tmp_path / "state")
    with pytest.raises(StateLocked) as caught:
        open_state(directory)
    assert caught.value.pid == holder.pid
    assert directory in str(caught.value) and f"pid {holder.pid}" in str(caught.value)


def test_kill_9_of_the_holder_leaves_no_lock_behind(
    tmp_path: Path, holder: subprocess.Popen[str]
) -> None:
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    assert (tmp_path / "state" / LOCK_FILE).exists()  # the file stays; its lock went with it
    state = open_state(str(tmp_path / "state"))
    assert state is not None
    state.close()


def test_the_lock_is_released_on_close(tmp_path: Path) -> None:
    directory = str(tmp_path / "state")
    state = open_state(directory)
    assert state is not None
    with pytest.raises(StateLocked):  # a second opener, even in this process
        open_state(directory)
    state.close()
    child = subprocess.run(
        [sys.executable, "-c", HOLDER, directory],
        input="",
        capture_output=True,
        text=True,
        check=False,
    )
    assert child.returncode == 0, child.stderr
    again = open_state(directory)
    assert again is not None
    again.close()


def test_kubewatch_run_on_a_held_directory_exits_2_with_one_line(
    tmp_path: Path, holder: subprocess.Popen[str], capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(
        yaml.safe_dump({"resources": [{"kind": "ConfigMap"}], "sinks": {"out": {"type": "stdout"}}})
    )
    directory = str(tmp_path / "state")
    # No cluster needed: the check comes before connecting to one.
    missing = str(tmp_path / "no-kubeconfig")
    code = main(["run", "--config", str(config), "--state-dir", directory, "--kubeconfig", missing])
    _, err = capsys.readouterr()
    assert code == EXIT_CONFIG == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert directory in lines[0] and f"pid {holder.pid}" in lines[0]
