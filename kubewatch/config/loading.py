"""Reading a config file: YAML with line numbers, the size limit, expansion, validation,
and the error report."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import (
    ValidationError,
)

from kubewatch.config.expand import Expansion, TooBig, expand
from kubewatch.config.messages import convert
from kubewatch.config.model import Config
from kubewatch.config.shapes import PathPart, format_path, kind_of
from kubewatch.errors import ConfigError, ConfigErrors
from kubewatch.scrub import Scrubber, secret_forms

# --------------------------------------------------------------------------- YAML


def _yaml_error(exc: yaml.YAMLError, source: str) -> ConfigError:
    """Name file, line and column; never quote the line (it may hold a secret)."""
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    where = f"{source}, line {mark.line + 1}, column {mark.column + 1}" if mark else source
    problem = getattr(exc, "problem", None) or type(exc).__name__
    context = getattr(exc, "context", None)
    detail = f"{problem} ({context})" if context else str(problem)
    return ConfigError("", f"invalid YAML in {where}: {detail}")


@dataclass
class _Document:
    """A parsed document and what the node tree tells that the data no longer does."""

    data: Any = None
    duplicates: list[ConfigError] = field(default_factory=list)
    lines: dict[str, int] = field(default_factory=dict)
    """Key path → 1-based line, to report errors in the order they appear in the file."""


def _index(node: yaml.Node, doc: _Document) -> None:
    """Record each key's line and every repeated key (PyYAML silently keeps the last)."""
    seen: set[int] = set()
    stack: list[tuple[yaml.Node, tuple[PathPart, ...]]] = [(node, ())]
    while stack:
        current, path = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        doc.lines.setdefault(format_path(path), current.start_mark.line + 1)
        if isinstance(current, yaml.MappingNode):
            first: dict[str, int] = {}
            for key_node, value_node in current.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
                if not isinstance(key, str):
                    continue
                line = key_node.start_mark.line + 1
                if key in first:
                    doc.duplicates.append(
                        ConfigError(
                            format_path((*path, key)),
                            f"duplicate key (line {line}; first at line {first[key]})",
                        )
                    )
                    continue
                first[key] = line
                doc.lines.setdefault(format_path((*path, key)), line)
                stack.append((value_node, (*path, key)))
        elif isinstance(current, yaml.SequenceNode):
            stack.extend((v, (*path, i)) for i, v in enumerate(current.value))


def _read_yaml(text: str, source: str) -> _Document:
    """Parse one YAML document safely; syntax errors become a ConfigError at path ''."""
    try:  # the reader checks the first characters already (a NUL byte is a ReaderError)
        loader = yaml.SafeLoader(text)
    except yaml.YAMLError as exc:
        raise ConfigErrors([_yaml_error(exc, source)]) from None
    doc = _Document()
    try:
        node = loader.get_single_node()
        if node is not None:
            _index(node, doc)
            doc.data = loader.construct_document(node)
    except yaml.YAMLError as exc:
        raise ConfigErrors([_yaml_error(exc, source)]) from None
    except RecursionError:
        raise ConfigErrors([ConfigError("", f"{source} is nested too deeply")]) from None
    finally:
        loader.dispose()
    return doc


_PATH_TAIL = re.compile(r'(\.[^.\[]+|\[(?:\d+|"(?:[^"\\]|\\.)*")\])$')


def _line_of(path: str, lines: Mapping[str, int]) -> int:
    """The line of ``path`` or of its nearest ancestor in the file (a missing key's parent)."""
    while path:
        if path in lines:
            return lines[path]
        tail = _PATH_TAIL.search(path)
        path = path[: tail.start()] if tail else ""
    return 0


# --------------------------------------------------------------------------- public API


def parse_config(
    text: str,
    env: Mapping[str, str] | None = None,
    source: str = "<config>",
    *,
    base_dir: str | os.PathLike[str] | None = None,
) -> Config:
    """Validate a YAML document into a :class:`Config`, or raise every mistake at once.

    ``env`` (default ``os.environ``) feeds ``${VAR}``; ``source`` names the document in
    messages; ``base_dir`` anchors relative file paths (``caFile``), default the cwd.
    """
    env = os.environ if env is None else env
    doc = _read_yaml(text, source)
    data, errors = doc.data, doc.duplicates
    if data is None:
        errors.append(
            ConfigError("", f"{source} is empty; it needs at least 'resources' and 'sinks'")
        )
        raise ConfigErrors(errors)
    if not isinstance(data, dict):
        errors.append(
            ConfigError(
                "",
                f"{source} must be a mapping of keys (resources, sinks, ...), got {kind_of(data)}",
            )
        )
        raise ConfigErrors(errors)
    exp = Expansion()
    try:
        expanded = expand(data, env, (), exp, set())
    except TooBig:
        raise ConfigErrors(
            [ConfigError("", f"{source} is too large, nested too deeply or recursive")]
        ) from None
    errors.extend(exp.errors)
    context = {"base_dir": os.fspath(base_dir)} if base_dir is not None else None
    try:
        config = Config.model_validate(expanded, context=context)
    except ValidationError as exc:
        # `from None`: the ValidationError's text quotes input values, secrets included.
        errors.extend(convert(exc, exp))
    if errors:
        ordered = sorted(_unique(errors), key=lambda e: _line_of(e.path, doc.lines))
        raise ConfigErrors(_redact(ordered, exp.secrets)) from None
    return config


MAX_CONFIG_BYTES = 1024 * 1024
"""A configuration is a few KiB; a larger file is refused before it is parsed (a 12 MB
one took 42 s and 1 GB of memory to refuse after parsing)."""


def _too_large(source: str, size: int, limit: int) -> ConfigErrors:
    return ConfigErrors(
        [
            ConfigError(
                "",
                f"{source}: {size:,} bytes or more, larger than the {limit:,} bytes "
                "(1 MiB) a configuration may have",
            )
        ]
    )


def load_config(
    path: str | os.PathLike[str],
    env: Mapping[str, str] | None = None,
    *,
    max_bytes: int = MAX_CONFIG_BYTES,
) -> Config:
    """Read and validate a configuration file of at most ``max_bytes``; see
    :func:`parse_config`. The size is checked before anything is parsed."""
    source = os.fspath(path)
    try:
        with open(source, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size > max_bytes:
                raise _too_large(source, size, max_bytes)
            data = f.read(max_bytes + 1)  # a pipe or /proc file has no size: read one more
        if len(data) > max_bytes:
            raise _too_large(source, len(data), max_bytes)
        text = data.decode("utf-8-sig")
    except FileNotFoundError:
        raise ConfigErrors([ConfigError("", f"{source}: file not found")]) from None
    except IsADirectoryError:
        raise ConfigErrors([ConfigError("", f"{source}: is a directory, not a file")]) from None
    except PermissionError:
        raise ConfigErrors([ConfigError("", f"{source}: permission denied")]) from None
    except UnicodeDecodeError as exc:
        raise ConfigErrors(
            [ConfigError("", f"{source}: not UTF-8 text (byte {exc.start})")]
        ) from None
    except OSError as exc:
        raise ConfigErrors([ConfigError("", f"{source}: {exc.strerror or exc}")]) from None
    return parse_config(text, env, source, base_dir=Path(source).absolute().parent)


def format_errors(err: ConfigErrors, source: str) -> str:
    """One header line and one indented line per mistake, for stderr."""
    n = len(err.errors)
    lines = [f"{source}: {n} error{'' if n == 1 else 's'}"]
    lines += [f"  {e.path}: {e.message}" if e.path else f"  {e.message}" for e in err.errors]
    return "\n".join(lines)


def _unique(errors: list[ConfigError]) -> list[ConfigError]:
    """Drop exact repeats (one YAML alias reused in two places fails twice)."""
    seen: set[tuple[str, str]] = set()
    out = []
    for e in errors:
        if (e.path, e.message) not in seen:
            seen.add((e.path, e.message))
            out.append(e)
    return out


def _redact(errors: list[ConfigError], secrets: set[str]) -> list[ConfigError]:
    """Last line of defence: no substituted value of 8+ characters may reach a message,
    in any form it travels in (URL-encoded, base64, a URL's password)."""
    scrub = Scrubber({f for s in secrets if len(s) >= 8 for f in secret_forms(s)}, min_length=8)
    if scrub.pattern is None:
        return errors
    out = []
    for e in errors:
        msg = scrub(e.message)
        out.append(e if msg == e.message else ConfigError(e.path, msg))
    return out
