"""One replayed collection: its informer (fed, never listing), the server-side field
selector evaluated with the server's semantics, its entries."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from kubewatch.kube import SharedInformer
from kubewatch.kube.discovery import ResourceType
from kubewatch.kube.reflector import WatchStreamLike
from kubewatch.match.patterns import LabelSelector, PatternError
from kubewatch.watch.normalize import compact, significant


class _OfflineSource:
    """The ListerWatcher of a replay's informers: they are fed directly, never started."""

    def list_page(self, *, limit: int, continue_token: str | None) -> dict[str, Any]:
        raise RuntimeError("a replay never lists")

    def watch(self, *, resource_version: str, timeout_seconds: int) -> WatchStreamLike:
        raise RuntimeError("a replay never watches")


def offline_informer(name: str, t: ResourceType) -> SharedInformer:
    return SharedInformer(
        name,
        _OfflineSource(),
        kind=t.kind,
        api_version=t.api_version,
        transform=compact,
        significant=significant,
    )


@dataclass(frozen=True, slots=True)
class FieldSelector:
    """A field selector (``a.b=c,d!=e``) evaluated on the object, as the API server does
    for the fields it supports (all of which are plain paths)."""

    text: str
    terms: tuple[tuple[tuple[str, ...], str, bool], ...]
    """(path, value, wanted): holds when ``(field == value) is wanted``."""

    @classmethod
    def parse(cls, text: str) -> FieldSelector:
        terms = []
        for term in (t.strip() for t in text.split(",")):
            if not term:
                continue
            m = re.fullmatch(r"([^=!\s]+)\s*(==|!=|=)\s*(\S*)", term)
            if m is None:
                raise PatternError(f"cannot parse field selector term {term!r}")
            terms.append((tuple(m.group(1).split(".")), m.group(3), m.group(2) != "!="))
        return cls(text, tuple(terms))

    def __call__(self, obj: dict[str, Any]) -> bool:
        for path, value, wanted in self.terms:
            current: Any = obj
            for part in path:
                current = current.get(part) if isinstance(current, dict) else None
            if isinstance(current, bool):
                current = "true" if current else "false"
            text = "" if current is None else str(current)
            if (text == value) is not wanted:
                return False
        return True


@dataclass(slots=True)
class FeedCollection:
    """What one live informer would watch: a resource in one namespace (or all), with the
    server-side selectors, feeding the entries that share it."""

    informer: SharedInformer
    namespace: str | None
    labels: LabelSelector | None
    fields: FieldSelector | None
    needs_namespace_labels: bool

    def selects(self, obj: dict[str, Any]) -> bool:
        if self.labels is not None:
            meta = obj.get("metadata") or {}
            if not self.labels(meta.get("labels")):
                return False
        return self.fields is None or self.fields(obj)
