"""The container image, without a Docker engine: the Dockerfile's steps, replayed.

No engine runs on these machines, so this test does what the Dockerfile does, the same way:
copy what its build stage COPYs (checked against .dockerignore), build the wheel with the
same command, install it into a fresh virtual environment without pip of its own (as the
final stage does), and run the image's ENTRYPOINT with ``--help`` and with ``validate`` on
the Helm chart's default config, mounted where the image's CMD looks for it. It also pins
what the chart relies on: the non-root UID and the config path.

Slow-ish (a wheel build and a dependency install, 20-40 s from the local package index) but
part of the default run: it is the only proof that the wheel is complete.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from kubewatch import __version__
from tests.unit.test_helm_chart import CONFIG_PATH, chart, render, rendered_config

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


# -- reading the Dockerfile ------------------------------------------------------------------


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined, comments dropped."""
    logical: list[str] = []
    pending = ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    out = []
    for line in logical:
        word, _, rest = line.partition(" ")
        out.append((word.upper(), rest.strip()))
    return out


def stages() -> list[list[tuple[str, str]]]:
    result: list[list[tuple[str, str]]] = []
    for ins in instructions():
        if ins[0] == "FROM":
            result.append([])
        if result:
            result[-1].append(ins)
    return result


def final(instruction: str) -> str:
    """The arguments of the last ``instruction`` of the final stage."""
    found = [args for word, args in stages()[-1] if word == instruction]
    assert found, f"the final stage has no {instruction}"
    return found[-1]


def test_dockerfile_shape() -> None:
    build, runtime = stages()
    assert len(stages()) == 2
    assert build[0][1].endswith(" AS build")
    base_arg = next(a for w, a in instructions() if w == "ARG" and a.startswith("PYTHON_IMAGE="))
    assert re.fullmatch(r"PYTHON_IMAGE=python:3\.\d+-slim(-\w+)?", base_arg)
    assert runtime[0][1] == "${PYTHON_IMAGE}"  # the same slim base, nothing from the build stage
    # the wheel is built in the first stage and reaches the second only through a mount
    build_runs = [a for w, a in build if w == "RUN"]
    assert any("pip wheel . --no-deps" in a for a in build_runs)
    assert not [a for w, a in runtime if w == "COPY"]
    runs = " ".join(a for w, a in runtime if w == "RUN")
    assert "--mount=type=bind,from=build" in runs
    assert "venv --without-pip" in runs
    for forbidden in ("apt-get", "gcc", "build-essential"):
        assert forbidden not in runs
    assert "PIP_NO_CACHE_DIR=1" in runs

    assert json.loads(final("ENTRYPOINT")) == ["kubewatch"]
    assert json.loads(final("CMD")) == ["run", "--config", CONFIG_PATH]
    user = final("USER")
    uid, _, gid = user.partition(":")
    assert uid.isdigit() and int(uid) != 0 and gid.isdigit() and int(gid) != 0
    pod = chart().values["podSecurityContext"]
    assert (pod["runAsUser"], pod["runAsGroup"]) == (int(uid), int(gid))

    labels = final("LABEL")
    for key in ("title", "description", "version", "revision", "licenses"):
        assert f"org.opencontainers.image.{key}=" in labels
    version_arg = next(a for w, a in runtime if w == "ARG" and a.startswith("VERSION="))
    assert version_arg == f"VERSION={__version__}"


# -- the build context -----------------------------------------------------------------------


def ignored(path: str, patterns: list[str]) -> bool:
    """.dockerignore semantics for what is used here: last match wins, ``!`` re-includes,
    a pattern matching a directory covers everything below it, ``**/`` matches any depth."""
    verdict = False
    parts = path.split("/")
    for line in patterns:
        negate = line.startswith("!")
        pattern = line.removeprefix("!").rstrip("/")
        candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        if pattern.startswith("**/"):
            tail = pattern.removeprefix("**/")
            hit = any(fnmatch.fnmatchcase(p, tail) for p in parts)
        else:
            hit = any(fnmatch.fnmatchcase(c, pattern) for c in candidates)
        if hit:
            verdict = not negate
    return verdict


def copy_sources() -> list[str]:
    """The sources of every COPY in the build stage."""
    sources: list[str] = []
    for word, args in stages()[0]:
        if word == "COPY":
            sources += args.split()[:-1]
    return sources


def test_dockerignore_sends_only_what_the_build_copies() -> None:
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for source in copy_sources():
        assert not ignored(source, patterns), source
    assert not ignored("kubewatch/cli/__init__.py", patterns)
    for unwanted in (
        "tests/unit/config/test_config.py",
        ".git/config",
        ".venv/bin/python",
        "config.yaml",
        "kubewatch/cli/__pycache__/run.cpython-311.pyc",
        "helm/kubewatch/values.yaml",
    ):
        assert ignored(unwanted, patterns), unwanted


# -- the replayed build ----------------------------------------------------------------------


def build_context(dest: Path) -> Path:
    """What the build stage's COPYs put into its WORKDIR (caches left out, as .dockerignore)."""
    dest.mkdir()
    for source in copy_sources():
        src = ROOT / source
        if src.is_dir():
            shutil.copytree(src, dest / source, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, dest / source)
    return dest


def run(
    *cmd: str | Path, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(c) for c in cmd],
        check=False,
        capture_output=True,
        text=True,
        timeout=500,
        cwd=cwd,
        env=env if env is not None else {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
    )
    assert result.returncode == 0, f"{cmd}:\n{result.stdout}\n{result.stderr}"
    return result


def test_wheel_in_a_fresh_environment_runs_the_entrypoint(tmp_path: Path) -> None:
    src = build_context(tmp_path / "src")
    wheels = tmp_path / "wheels"
    # build stage: RUN python -m pip wheel . --no-deps --wheel-dir /wheels
    run(sys.executable, "-m", "pip", "wheel", ".", "--no-deps", "--wheel-dir", wheels, cwd=src)
    (wheel,) = wheels.glob("kubewatch-*.whl")
    assert wheel.name.startswith(f"kubewatch-{__version__}-")

    # final stage: a venv without pip; the base interpreter's pip installs into it
    venv = tmp_path / "opt-kubewatch"
    run(sys.executable, "-m", "venv", "--without-pip", venv)
    python = venv / "bin" / "python"
    run(sys.executable, "-m", "pip", "--python", python, "install", "--no-warn-script-location",
        wheel)  # fmt: skip
    assert not (venv / "bin" / "pip").exists()

    # ENTRYPOINT ["kubewatch"], found on PATH=/opt/kubewatch/bin:$PATH
    entrypoint = venv / "bin" / json.loads(final("ENTRYPOINT"))[0]
    isolated = {"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "PYTHONDONTWRITEBYTECODE": "1"}
    help_text = run(entrypoint, "--help", env=isolated).stdout
    assert "run" in help_text and "validate" in help_text
    assert run(entrypoint, "--version", env=isolated).stdout.strip() == f"kubewatch {__version__}"
    # the package really comes from the venv, not from the source tree
    origin = run(python, "-c", "import kubewatch; print(kubewatch.__file__)", cwd=tmp_path).stdout
    assert origin.startswith(str(venv))

    # CMD ["run", "--config", "/etc/kubewatch/config.yaml"] with the chart's default config there
    etc = tmp_path / "etc-kubewatch"
    etc.mkdir()
    config = etc / Path(CONFIG_PATH).name
    config.write_text(yaml.safe_dump(rendered_config(render())))
    out = run(entrypoint, "validate", "--offline", "--config", config, env=isolated, cwd=tmp_path)
    assert "configuration is valid" in out.stdout
