"""Compiled label selectors and cached name verdicts, shared by the object filters and the
routes: small, pure, and fast on the hot path."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from kubewatch.match.patterns import NameMatcher, parse_selector

NO_META: Mapping[str, Any] = MappingProxyType({})

NS_CACHE_MAX = 4096
"""Namespace verdicts cached per filter. Namespaces are few and their names never change
meaning, so a verdict is computed once; past this many the cache restarts (a cluster
with more namespaces is still filtered correctly, just without the shortcut)."""

PLAIN_REASON = re.compile(r"[A-Za-z0-9_]+")
"""A reason pattern made of these characters can only full-match itself: a set lookup."""


# --------------------------------------------------------------------------- object filter


@dataclass(frozen=True, slots=True)
class FlatSelector:
    """A label selector flattened for speed: every term is ``(key, values, wanted)`` and
    holds when ``(labels.get(key) in values) is wanted``.

    Label values are strings, never ``None``, so ``exists`` is "value not in {None}" and
    ``!exists`` is "value in {None}"; ``in`` / ``notin`` keep their value sets (``None``
    is in neither, which gives Kubernetes' "a missing label is notin anything"). One loop
    of dict lookups, instead of a call per term.
    """

    text: str
    terms: tuple[tuple[str, frozenset[str | None], bool], ...]

    @classmethod
    def parse(cls, texts: list[str]) -> FlatSelector | None:
        """Several selectors that must all hold, as one; ``None`` if it selects everything."""
        terms: list[tuple[str, frozenset[str | None], bool]] = []
        for text in texts:
            for r in parse_selector(text).requirements:
                if r.op in ("in", "notin"):
                    terms.append((r.key, frozenset(r.values), r.op == "in"))
                elif r.op in ("exists", "!exists"):
                    terms.append((r.key, _ABSENT, r.op == "!exists"))
                else:  # pragma: no cover - a new operator in patterns.py
                    raise ValueError(f"unsupported selector operator {r.op!r} in {text!r}")
        if not terms:
            return None  # "" selects everything
        return cls(", ".join(t for t in texts if t.strip()), tuple(terms))

    def __call__(self, labels: Mapping[str, str] | None) -> bool:
        if labels is None:
            labels = NO_META
        for key, values, wanted in self.terms:  # noqa: SIM110 - a loop beats all(genexpr)
            if (labels.get(key) in values) is not wanted:
                return False
        return True


_ABSENT: frozenset[str | None] = frozenset([None])


def flat_selector(text: str | None) -> FlatSelector | None:
    return FlatSelector.parse([text]) if text is not None else None


class CachedNames:
    """A :class:`NameMatcher` for namespaces, with its verdicts cached by name.

    Namespaces are few and a name's verdict never changes, so patterns run once per
    namespace; past ``NS_CACHE_MAX`` names the cache restarts. Racing writers store
    equal values, so sharing across threads is safe.
    """

    __slots__ = ("_cache", "_matcher")

    def __init__(self, matcher: NameMatcher) -> None:
        self._matcher = matcher
        self._cache: dict[str, bool] = {}

    def __bool__(self) -> bool:
        return bool(self._matcher)

    def __call__(self, name: str) -> bool:
        verdict = self._cache.get(name)
        if verdict is None:
            verdict = self._matcher(name)
            if len(self._cache) >= NS_CACHE_MAX:
                self._cache.clear()
            self._cache[name] = verdict
        return verdict
