"""The package layout shows the pipeline: imports point one way, modules stay small.

Every module's imports are read with :mod:`ast` (nothing is imported), so a violation is
found even in code no test runs, including imports inside functions.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "kubewatch"

MAX_LINES = 400
"""A module longer than this does more than one job."""

TOO_LONG: frozenset[str] = frozenset()
"""Modules still over :data:`MAX_LINES`, to be split; one that shrinks must leave the set."""

LAYERS: dict[str, int] = {
    # pure building blocks: no I/O, no config
    "_version": 0,
    "errors": 0,
    "events": 0,
    "scrub": 0,
    "timefmt": 0,
    "words": 0,
    "backoff": 0,
    "match": 1,
    # the config, and what every stage may use
    "config": 2,
    "schema": 2,
    "observability": 2,
    "state": 2,
    "render": 2,
    "ratelimit": 2,
    # API-server I/O; where events go
    "kube": 3,
    "sinks": 3,
    # object dicts → events; events → sinks
    "watch": 4,
    "routing": 4,
    "delivery": 4,
    # operator mode: Notifier / ClusterSink specs → compiled entries
    "tenancy": 4,
    # what ties the stages together
    "replay": 5,
    "app": 5,
    # the command line
    "cli": 6,
    "__main__": 6,
}
"""Each top-level part of ``kubewatch`` and its layer: a part imports only from its own
layer or below."""

FORBIDDEN: dict[str, frozenset[str]] = {
    "kube": frozenset({"watch", "routing", "delivery", "sinks", "render", "replay", "state"}),
    "sinks": frozenset({"kube", "watch", "routing", "delivery", "replay", "state"}),
    "watch": frozenset({"routing", "delivery", "sinks", "render", "replay", "state"}),
    "routing": frozenset({"kube", "watch", "delivery", "sinks", "replay", "state"}),
    "delivery": frozenset({"kube", "watch", "routing", "replay"}),
    "match": frozenset({"config"}),
}
"""Imports between parts of the same layer (or below) that would still tangle stages: the
API-server side knows nothing of events, routing or sinks; sinks never import the watch
engine."""


def modules() -> Iterator[tuple[str, Path]]:
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        yield name, path


def part(module: str) -> str:
    """``kubewatch.kube.client`` → ``kube``; the package itself → ``kubewatch``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "kubewatch"


def imported(path: Path) -> Iterator[tuple[int, str]]:
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.lineno, node.module
        elif isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name


def upward_imports(name: str, path: Path) -> list[str]:
    """What ``name`` imports against the layering, as ``file:line: a → b`` lines."""
    here = part(name)
    found = []
    for line, target in imported(path):
        if target != "kubewatch" and not target.startswith("kubewatch."):
            continue
        there = part(target)
        if here in (there, "kubewatch"):  # the package root re-exports
            continue
        upward = LAYERS[there] > LAYERS[here]
        if upward or there in FORBIDDEN.get(here, frozenset()):
            found.append(f"{path.name}:{line}: {name} → {target}")
    return found


def _is_module(dotted: str) -> bool:
    relative = Path(*dotted.split(".")[1:])
    return (PACKAGE / relative).with_suffix(".py").is_file() or (PACKAGE / relative).is_dir()


def private_uses(name: str, path: Path) -> list[str]:
    """Underscore names ``name`` takes from another kubewatch module, by ``from … import
    _x`` or by ``module._x``, as ``file:line: a → b._x`` lines."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    aliases: dict[str, str] = {}  # local name → the kubewatch module it is bound to
    found = []
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            source = node.module or ""
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join([*base, *([source] if source else [])])
            if source != "kubewatch" and not source.startswith("kubewatch."):
                continue
            for alias in node.names:
                if _is_module(f"{source}.{alias.name}"):
                    aliases[alias.asname or alias.name] = f"{source}.{alias.name}"
                elif _private(alias.name) and source != name:
                    found.append(f"{path.name}:{node.lineno}: {name} → {source}.{alias.name}")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("kubewatch") and alias.asname:
                    aliases[alias.asname] = alias.name
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in aliases
            and _private(node.attr)
            and aliases[node.value.id] != name
        ):
            target = aliases[node.value.id]
            found.append(f"{path.name}:{node.lineno}: {name} → {target}.{node.attr}")
    return found


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


ALL = list(modules())


def test_every_part_has_a_layer() -> None:
    unknown = {part(name) for name, _ in ALL} - set(LAYERS) - {"kubewatch"}
    assert not unknown, f"add to LAYERS: {sorted(unknown)}"


@pytest.mark.parametrize(("name", "path"), ALL, ids=[name for name, _ in ALL])
def test_imports_point_down(name: str, path: Path) -> None:
    assert upward_imports(name, path) == []


@pytest.mark.parametrize(("name", "path"), ALL, ids=[name for name, _ in ALL])
def test_module_is_small(name: str, path: Path) -> None:
    lines = len(path.read_text().splitlines())
    if name in TOO_LONG:
        assert lines > MAX_LINES, f"{name} is small now: remove it from TOO_LONG"
    else:
        assert lines <= MAX_LINES, f"{name}: {lines} lines (at most {MAX_LINES}): split it by job"


@pytest.mark.parametrize(("name", "path"), ALL, ids=[name for name, _ in ALL])
def test_no_private_name_crosses_a_module(name: str, path: Path) -> None:
    """What another module needs is public where it is defined; an underscore means "only
    here", so renaming it never breaks a module that is not looking."""
    assert private_uses(name, path) == []


def test_the_check_sees_a_private_import(tmp_path: Path) -> None:
    """The checker itself: every way a module can reach into another's privates is seen;
    its own privates and public names are not."""
    path = tmp_path / "routing.py"
    path.write_text(
        "from kubewatch.match.selectors import FlatSelector, _hidden\n"
        "from kubewatch.config import fields as f\n"
        "import kubewatch.config.sinks as s\n"
        "from kubewatch.routing import _own\n"
        "x = f._secret, s._other, f.strict, __name__\n"
    )
    assert private_uses("kubewatch.routing", path) == [
        "routing.py:1: kubewatch.routing → kubewatch.match.selectors._hidden",
        "routing.py:5: kubewatch.routing → kubewatch.config.fields._secret",
        "routing.py:5: kubewatch.routing → kubewatch.config.sinks._other",
    ]


def test_the_check_sees_an_upward_import(tmp_path: Path) -> None:
    """The checker itself: a kube module importing the watch engine, a sink importing the
    informer, anything importing the app or the command line, inside a function too."""
    bad = tmp_path / "bad.py"
    bad.write_text(
        "from kubewatch.watch.pipeline import Fanout\n"
        "import kubewatch.cli\n"
        "def f():\n"
        "    from kubewatch.app import App\n"
    )
    assert len(upward_imports("kubewatch.kube.bad", bad)) == 3
    bad.write_text("from kubewatch.kube.informer import SharedInformer\n")
    assert len(upward_imports("kubewatch.sinks.bad", bad)) == 1
    bad.write_text("from kubewatch.cli import main\n")
    assert len(upward_imports("kubewatch.app.bad", bad)) == 1
    assert upward_imports("kubewatch.cli.bad", bad) == []
