"""The field-path language: ``spec.replicas``, ``metadata.labels["app.kubernetes.io/name"]``,
``spec.containers[web].image``, with ``*`` and ``**`` wildcards, compiled into a
:class:`PathTree` that the diff and the routes walk.

Paths
    Dotted keys from the root (``spec.replicas``). A key containing ``.``, ``[``, ``]``,
    ``"``, whitespace or control characters, an empty key and the keys ``*`` / ``**`` are
    written JSON-quoted in brackets: ``metadata.labels["app.kubernetes.io/name"]``.
    Items of a keyed list are ``[<name>]`` (``spec.containers[web].image``), quoted the same
    way and also when the name is all digits; items of other lists are ``[0]``, ``[1]``."""

from __future__ import annotations

import enum
import functools
import json
import re
from collections.abc import Iterable
from typing import Final

__all__ = [
    "DEFAULT_IGNORE",
    "DEFAULT_IGNORE_TREE",
    "SECRET_REDACT_TREE",
    "PathTree",
    "compile_paths",
    "path_matches",
]

MISSING: Final = object()
"""Absent key (distinct from a JSON ``null``)."""

UNSAFE_KEY: Final = re.compile(r'\A\*{0,2}\Z|[.\[\]"\s\x00-\x1f]')
"""Keys that need the quoted ``["..."]`` form to parse back unambiguously."""

_BARE_SEGMENT: Final = re.compile(r'[^.\[\]"\s]+')

_JSON_DECODER: Final = json.JSONDecoder()


class PathTree:
    """Compiled path patterns: a tree walked alongside the objects, one dict lookup per key.

    ``children`` maps a key (dict key, list item name or index as text) to the subtree for
    it, with the ``*`` subtree already merged in; ``star`` is what any other key gets.
    The singleton ``ALL`` node means "this path and everything below matches".
    Immutable once built: share freely across threads.
    """

    __slots__ = ("children", "star")

    def __init__(self, children: dict[str, PathTree], star: PathTree | None) -> None:
        self.children = children
        self.star = star

    def __repr__(self) -> str:
        if self is ALL:
            return "PathTree(<all>)"
        star = "" if self.star is None else f", star={self.star!r}"
        return f"PathTree({self.children!r}{star})"


ALL: Final = PathTree({}, None)
ALL.star = ALL  # every key below an all-matching node also matches: no special case


def levels_below(node: PathTree | None) -> tuple[dict[str, PathTree] | None, PathTree | None]:
    """``node``'s children and star, or ``(None, None)`` where no pattern reaches: the walk
    then skips every lookup below."""
    return (None, None) if node is None else (node.children, node.star)


class _Wild(enum.Enum):
    ONE = "*"
    REST = "**"


_Segment = str | _Wild


class _RawNode:
    """Pattern trie before ``*`` subtrees are merged into literal siblings."""

    __slots__ = ("end", "literal", "star")

    def __init__(self) -> None:
        self.literal: dict[str, _RawNode] = {}
        self.star: _RawNode | None = None
        self.end = False


def _parse_pattern(pattern: str) -> list[_Segment]:
    """Split ``a.b["c.d"][web][*].**`` into segments; raise ValueError with the reason."""

    def fail(why: str) -> ValueError:
        return ValueError(f"invalid path pattern {pattern!r}: {why}")

    segments: list[_Segment] = []
    text = pattern.strip()
    if not text:
        raise fail("empty")
    i, n = 0, len(text)
    while i < n:
        char = text[i]
        if char == "[":
            if text.startswith('"', i + 1):
                try:
                    key, end = _JSON_DECODER.raw_decode(text, i + 1)
                except ValueError as exc:
                    raise fail(f"bad quoted key at {i}: {exc}") from None
                if not text.startswith("]", end):
                    raise fail(f"expected ']' at {end}")
                segments.append(key)
                i = end + 1
            else:
                end = text.find("]", i + 1)
                if end <= i + 1:
                    raise fail(f"unclosed or empty '[' at {i}")
                segments.append(_bare(text[i + 1 : end]))
                i = end + 1
            continue
        if char == ".":
            if not segments:
                raise fail("starts with '.'")
            i += 1
        elif segments:
            raise fail(f"expected '.' or '[' at {i}")
        match = _BARE_SEGMENT.match(text, i)
        if match is None:
            raise fail(f'expected a key at {i} (quote odd keys as ["..."])')
        segments.append(_bare(match.group()))
        i = match.end()
    if _Wild.REST in segments[:-1]:
        raise fail("'**' is allowed only as the last segment")
    return segments


def _bare(text: str) -> _Segment:
    if text == "*":
        return _Wild.ONE
    if text == "**":
        return _Wild.REST
    return text


def _freeze(raws: list[_RawNode]) -> PathTree:
    """Merge the raw nodes that apply at one position, pushing ``*`` into literal keys."""
    if any(raw.end for raw in raws):
        return ALL
    stars = [raw.star for raw in raws if raw.star is not None]
    keys = dict.fromkeys(key for raw in raws for key in raw.literal)
    children = {
        key: _freeze([raw.literal[key] for raw in raws if key in raw.literal] + stars)
        for key in keys
    }
    return PathTree(children, _freeze(stars) if stars else None)


def compile_paths(patterns: Iterable[str]) -> PathTree:
    """Compile path patterns once (config load), for cheap matching on every event.

    Patterns use the output path syntax. A pattern matches its path and everything below
    it. ``*`` matches any one key, list item name or index at its level (``data.*``,
    ``spec.containers[*].image``); ``**``, allowed only as the last segment, matches
    everything below its parent but not the parent itself, which with the subtree rule
    makes ``a.**`` the same as ``a.*``. ``x[k]``, ``x.k`` and ``x["k"]`` are the same
    pattern; only a quoted ``["*"]`` is a literal star.
    """
    if isinstance(patterns, str):
        raise TypeError("compile_paths() takes an iterable of patterns, not one string")
    root = _RawNode()
    for pattern in patterns:
        node = root
        for segment in _parse_pattern(pattern):
            if isinstance(segment, str):
                node = node.literal.setdefault(segment, _RawNode())
            else:
                if node.star is None:
                    node.star = _RawNode()
                node = node.star
        node.end = True
    return _freeze([root])


DEFAULT_IGNORE: Final[tuple[str, ...]] = (
    # Changes on every write; the event carries it separately.
    "metadata.resourceVersion",
    # Server-side-apply bookkeeping, rewritten with fresh timestamps on most updates.
    "metadata.managedFields",
    # Bumped by every spec change, which is itself reported.
    "metadata.generation",
    # Observed state written by controllers (heartbeats, probe times): too chatty to notify.
    "status",
    # A full copy of the last applied manifest: duplicates the real changes, and is huge.
    'metadata.annotations["kubectl.kubernetes.io/last-applied-configuration"]',
    # Bumped by the deployment controller on each rollout; the template change is the news.
    'metadata.annotations["deployment.kubernetes.io/revision"]',
)
"""Paths that change without telling a human anything new."""

DEFAULT_IGNORE_TREE: Final = compile_paths(DEFAULT_IGNORE)

SECRET_REDACT_TREE: Final = compile_paths(["data.*", "stringData.*"])
"""Secret values: changes show the key path only, never the value."""


@functools.lru_cache(maxsize=4096)
def _path_keys(path: str) -> tuple[str, ...]:
    """``spec.containers[web].image`` → ``("spec", "containers", "web", "image")``."""
    keys: list[str] = []
    for segment in _parse_pattern(path):
        if not isinstance(segment, str):
            raise ValueError(
                f"invalid change path {path!r}: {segment.value!r} is a wildcard "
                '(a literal key is written ["*"])'
            )
        keys.append(segment)
    return tuple(keys)


def path_matches(path: str, tree: PathTree) -> bool:
    """Does the change path ``path`` lie at or below a pattern compiled into ``tree``?

    ``path`` is written as :func:`diff` writes it (``spec.containers[web].image``,
    ``metadata.labels["app.kubernetes.io/name"]``, ``spec.args[0]``) and parsed with the
    pattern grammar, so ``x.k``, ``x[k]`` and ``x["k"]`` are the same path. Whole segments
    are compared: pattern ``spec.rep`` does not match ``spec.replicas``, and a path *above*
    a pattern (``spec.containers[web]`` for ``spec.containers[*].image``) does not match;
    ``diff(..., only=tree)`` narrows such changes instead. Parsed paths are cached.
    Raises ValueError for a malformed path or one with a bare ``*``/``**`` segment.
    """
    node = tree
    for key in _path_keys(path):
        if node is ALL:
            return True
        sub = node.children.get(key, node.star)
        if sub is None:
            return False
        node = sub
    return node is ALL
