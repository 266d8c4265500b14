"""``${VAR}`` expansion in string values, bounded in size and depth."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from kubewatch.config.fields import Expanded
from kubewatch.config.shapes import PathPart, format_path
from kubewatch.errors import ConfigError

# --------------------------------------------------------------------------- env expansion

_REF = re.compile(r"\$\$\{|\$\{([^}]*)(\}?)")
_VAR_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_MAX_NODES = 200_000
_MAX_DEPTH = 64


class TooBig(Exception):
    """The document is absurdly large or nested (an alias bomb, most likely)."""


@dataclass
class Expansion:
    """The result of expanding ``${VAR}`` throughout a document."""

    errors: list[ConfigError] = field(default_factory=list)
    raw: dict[str, str] = field(default_factory=dict)
    """Key paths whose value came (partly) from the environment → the text before expansion."""
    broken: set[str] = field(default_factory=set)
    """Paths whose expansion failed: their validation errors would only repeat it."""
    secrets: set[str] = field(default_factory=set)
    nodes: int = 0


def _expand_str(
    text: str, env: Mapping[str, str], path: tuple[PathPart, ...], out: Expansion
) -> str:
    """Replace ``${NAME}`` from env and ``$${`` by ``${``; record problems by path."""
    if "${" not in text:
        return text
    pieces: list[str] = []
    pos = 0
    used = False
    problems: list[str] = []
    for m in _REF.finditer(text):
        pieces.append(text[pos : m.start()])
        pos = m.end()
        if m.group(0) == "$${":
            pieces.append("${")
            continue
        name, closed = m.group(1), m.group(2)
        if not closed:
            problems.append("unterminated '${' (write '$${' for a literal '${')")
            pieces.append(m.group(0))
        elif not _VAR_NAME.fullmatch(name):
            problems.append(
                f"invalid variable name {name!r} in '${{...}}' (use letters, digits and '_'; "
                "write '$${' for a literal '${')"
            )
            pieces.append(m.group(0))
        elif name not in env:
            problems.append(f"environment variable {name} is not set")
            pieces.append(m.group(0))
        else:
            value = env[name]
            pieces.append(value)
            used = True
            if value:
                out.secrets.add(value)
    pieces.append(text[pos:])
    where = format_path(path)
    out.errors.extend(ConfigError(where, p) for p in problems)
    if problems:
        out.broken.add(where)
        return text
    if used:
        out.raw[where] = text
        return Expanded("".join(pieces))
    return "".join(pieces)


def expand(
    data: Any,
    env: Mapping[str, str],
    path: tuple[PathPart, ...],
    out: Expansion,
    active: set[int],
) -> Any:
    """Copy the document with every string *value* expanded; keys are left alone."""
    out.nodes += 1
    if out.nodes > _MAX_NODES or len(path) > _MAX_DEPTH:
        raise TooBig
    if isinstance(data, str):
        return _expand_str(data, env, path, out)
    if isinstance(data, dict | list):
        if id(data) in active:
            raise TooBig
        active.add(id(data))
        try:
            if isinstance(data, dict):
                return {
                    k: expand(v, env, (*path, k if isinstance(k, str) else str(k)), out, active)
                    for k, v in data.items()
                }
            return [expand(v, env, (*path, i), out, active) for i, v in enumerate(data)]
        finally:
            active.discard(id(data))
    return data
