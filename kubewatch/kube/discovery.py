"""Discovery: turn what a user writes ("deploy", "Widget" in "example.com/v1") into a resource.

The table is built once from the API server's discovery documents, the same ones kubectl's
RESTMapper reads, so a name resolves here exactly when ``kubectl get <name>`` would find it,
and to the same group and version. It needs only a ``get_json(path)`` callable, which keeps it
free of any HTTP library and lets tests feed it captured documents.
"""

from __future__ import annotations

import difflib
import logging
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from kubewatch.errors import ApiError, ResolveError

__all__ = ["NotInstalled", "ResourceTable", "ResourceType"]

log = logging.getLogger(__name__)

GetJson = Callable[[str], dict[str, Any]]
"""GET an API path and return its decoded JSON; raises ApiError (HTTP) or OSError (network)."""

_VERSION = re.compile(r"v\d+(?:(?:alpha|beta)\d+)?")
"""What an API version looks like: tells "deployments.v1.apps" from "widgets.example.com"."""

_BUILTIN_DOTTED_GROUPS = frozenset(
    {
        "admissionregistration.k8s.io",
        "apiextensions.k8s.io",
        "apiregistration.k8s.io",
        "authentication.k8s.io",
        "authorization.k8s.io",
        "certificates.k8s.io",
        "coordination.k8s.io",
        "discovery.k8s.io",
        "events.k8s.io",
        "flowcontrol.apiserver.k8s.io",
        "internal.apiserver.k8s.io",
        "networking.k8s.io",
        "node.k8s.io",
        "rbac.authorization.k8s.io",
        "resource.k8s.io",
        "scheduling.k8s.io",
        "settings.k8s.io",
        "storage.k8s.io",
        "storagemigration.k8s.io",
    }
)
"""Groups the kube-apiserver itself serves. An explicit list rather than "ends in .k8s.io":
CRD-based projects live there too (gateway.networking.k8s.io, snapshot.storage.k8s.io) and a
missing HTTPRoute is a CRD not installed, not a typo."""

_SUGGEST_CUTOFF = 0.7
"""Similarity a suggestion needs: typos score 0.8+, while difflib's default 0.6 also offers
DaemonSet for "Deploymnet"."""
_MAX_SUGGESTIONS = 3


class NotInstalled(ResolveError):
    """The reference names a non-built-in group the server does not serve it in: most likely a
    CRD (or aggregated API) that is not installed yet, so waiting may help where a typo cannot."""


@dataclass(frozen=True, slots=True)
class ResourceType:
    """One watchable collection as discovery describes it; everything a LIST/WATCH needs."""

    group: str
    version: str
    kind: str
    plural: str
    singular: str
    namespaced: bool
    short_names: tuple[str, ...]
    verbs: frozenset[str]

    @property
    def api_version(self) -> str:
        """The ``apiVersion`` objects carry ("v1", "apps/v1"); built-in list items lack it."""
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def group_resource(self) -> str:
        """kubectl's unambiguous name ("deployments.apps", "configmaps"), for messages and keys."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def watchable(self) -> bool:
        """An informer needs both LIST and WATCH."""
        return {"list", "watch"} <= self.verbs

    def path(self, namespace: str | None = None) -> str:
        """The collection's URL path, in ``namespace`` or across all of them (None or "").

        A namespace for a cluster-scoped resource is a caller bug, so it raises ValueError
        instead of being dropped silently like kubectl does.
        """
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if not namespace:
            return f"{base}/{self.plural}"
        if not self.namespaced:
            raise ValueError(f"{self.group_resource} is cluster-scoped: no namespace {namespace!r}")
        return f"{base}/namespaces/{namespace}/{self.plural}"


@dataclass(frozen=True, slots=True)
class _Group:
    """A group as /api or /apis lists it: versions ordered preferred first, then server order."""

    name: str
    versions: tuple[str, ...]

    def path(self, version: str) -> str:
        return f"/apis/{self.name}/{version}" if self.name else f"/api/{version}"


class ResourceTable:
    """Every resource the server serves, in kubectl's priority order, and name resolution.

    Build it with :meth:`fetch` (live) or :meth:`from_documents` (captured); the constructor
    is internal.
    """

    def __init__(
        self,
        types: Iterable[ResourceType],
        preferred: Mapping[str, str],
        failed_groups: Iterable[str] = (),
    ) -> None:
        self._types = tuple(types)
        self._preferred = dict(preferred)
        self._failed = tuple(failed_groups)
        self._names = tuple(_names(t) for t in self._types)

    @property
    def failed_groups(self) -> tuple[str, ...]:
        """Group versions ("metrics.k8s.io/v1beta1") whose discovery failed and were skipped."""
        return self._failed

    @classmethod
    def fetch(cls, get_json: GetJson) -> ResourceTable:
        """Read discovery from the server.

        /api and /apis must answer (their errors propagate); a group version that answers an
        HTTP error (an aggregated API that is down, a version removed meanwhile) is logged and
        skipped, like kubectl does. Connection errors propagate: a table silently missing
        whatever came after a broken connection would turn into wrong "not installed" errors.
        """
        documents: dict[str, Any] = {"/api": get_json("/api"), "/apis": get_json("/apis")}
        for group in _groups(documents):
            for version in group.versions:
                path = group.path(version)
                try:
                    documents[path] = get_json(path)
                except ApiError as error:
                    log.warning(
                        "discovery of %s failed, its resources are skipped: %s",
                        _group_version(group.name, version),
                        error,
                    )
        return cls.from_documents(documents)

    @classmethod
    def from_documents(cls, documents: Mapping[str, Any]) -> ResourceTable:
        """Build from discovery documents keyed by path ("/api", "/apis", "/apis/apps/v1", ...).

        A group version listed by /api or /apis but absent here counts as failed.
        """
        types: list[ResourceType] = []
        preferred: dict[str, str] = {}
        failed: list[str] = []
        for group in _groups(documents):
            if group.versions:
                preferred[group.name] = group.versions[0]
            for version in group.versions:
                document = documents.get(group.path(version))
                if not isinstance(document, Mapping):
                    failed.append(_group_version(group.name, version))
                    continue
                types.extend(_resource_types(group.name, version, document))
        return cls(types, preferred, failed)

    def resolve(self, kind: str, api_version: str | None = None) -> ResourceType:
        """The watchable resource ``kind`` names, or ResolveError/NotInstalled saying why not.

        ``kind`` may be a Kind, plural, singular or short name (case-insensitive, as kubectl
        treats them), "name.group" or "name.version.group"; with ``api_version`` it is looked
        up in that group and version only. When several groups serve a name, core wins, then
        the group the server lists first, and within a group the preferred version.
        """
        name = kind.strip().lower()
        if not name:
            raise ResolveError(kind, "empty resource kind")
        if "/" in name:
            raise ResolveError(kind, f"{kind!r} is a subresource: only collections can be watched")
        if api_version:
            group, _, version = api_version.strip().rpartition("/")
            return self._resolve(kind, name, group, version)
        head, _, rest = name.partition(".")
        if not rest:
            return self._resolve(kind, name, None, None)
        version, _, group = rest.partition(".")
        # kubectl reads "a.b.c" as resource.version.group first, as resource.group if that fails.
        as_version = bool(group) and _VERSION.fullmatch(version) is not None
        if as_version and (
            self._lookup(head, group, version) or not self._lookup(head, rest, None)
        ):
            return self._resolve(kind, head, group, version)
        return self._resolve(kind, head, rest, None)

    def _lookup(self, name: str, group: str | None, version: str | None) -> list[ResourceType]:
        """Types answering to ``name``, in priority order; None matches any group or version."""
        return [
            t
            for t, names in zip(self._types, self._names, strict=True)
            if name in names
            and (group is None or t.group == group)
            and (version is None or t.version == version)
        ]

    def _resolve(self, ref: str, name: str, group: str | None, version: str | None) -> ResourceType:
        matches = self._lookup(name, group, version)
        for candidate in matches:
            if candidate.watchable:
                return candidate
        if matches:
            found = matches[0]
            verbs = ", ".join(sorted(found.verbs)) or "none"
            raise ResolveError(
                ref, f"{found.group_resource} cannot be listed and watched (verbs: {verbs})"
            )
        if group is not None and version is not None:
            elsewhere = [t for t in self._lookup(name, group, None) if t.watchable]
            if elsewhere:
                served = ", ".join(dict.fromkeys(t.api_version for t in elsewhere))
                raise ResolveError(
                    ref,
                    f"{elsewhere[0].kind} is not served as {_group_version(group, version)}; "
                    f"served as: {served}",
                )
        raise self._not_found(ref, name, group, version)

    def _not_found(
        self, ref: str, name: str, group: str | None, version: str | None
    ) -> ResolveError:
        """The error for a name nothing serves: NotInstalled when a CRD is the likely cause."""
        served_group = group is not None and group in self._preferred
        if group is None:
            where = ""
        elif version is not None:
            where = f" in {_group_version(group, version)}"
        else:
            where = f" in group {group}" if group else " in the core group"
        if group is not None and not served_group:
            message = f"unknown resource {ref!r}: group {group} is not served by this cluster"
        else:
            message = f"unknown resource {ref!r}{where}"
        failed = [gv for gv in self._failed if group is None or gv.rpartition("/")[0] == group]
        if failed:
            message += f"; discovery failed for {', '.join(failed)}"
        suggestions = self._suggest(name, group, dotted=group is not None and version is None)
        if group is not None and not _is_builtin(group):
            return NotInstalled(
                ref, f"{message}; is its CustomResourceDefinition installed?", suggestions
            )
        return ResolveError(ref, message, suggestions)

    def _suggest(self, name: str, group: str | None, dotted: bool) -> tuple[str, ...]:
        """Up to three watchable resources close to ``name`` (and ``group``), best first.

        Within a served group only names are compared; a group nothing serves may itself be
        misspelled ("deployments.app"), so a dotted reference must be close in both parts.
        Suggestions are written the way the reference was: Kind, or name.group when the
        reference was dotted or the suggestion lies in another group.
        """
        restrict = group is not None and group in self._preferred
        scored: list[tuple[float, int, str]] = []
        seen: set[str] = set()
        for rank, (t, names) in enumerate(zip(self._types, self._names, strict=True)):
            if not t.watchable or t.group_resource in seen or (restrict and t.group != group):
                continue
            seen.add(t.group_resource)
            score = max(_similarity(name, n) for n in names)
            if dotted and not restrict and group is not None:
                score = min(score, _similarity(group, t.group))
            if score >= _SUGGEST_CUTOFF:
                plain = group is None or (t.group == group and not dotted)
                scored.append((-score, rank, t.kind if plain else t.group_resource))
        return tuple(dict.fromkeys(shown for _, _, shown in sorted(scored)))[:_MAX_SUGGESTIONS]


def _groups(documents: Mapping[str, Any]) -> list[_Group]:
    """Core first (kubectl puts "v1" before everything), then /apis in the server's order."""
    core = [str(v) for v in _mapping(documents.get("/api")).get("versions") or ()]
    core.sort(key=lambda v: v != "v1")
    groups = [_Group("", tuple(core))]
    for raw in _mapping(documents.get("/apis")).get("groups") or ():
        entry = _mapping(raw)
        versions = [str(_mapping(v).get("version", "")) for v in entry.get("versions") or ()]
        best = str(_mapping(entry.get("preferredVersion")).get("version", ""))
        ordered = ([best] if best in versions else []) + [v for v in versions if v and v != best]
        groups.append(_Group(str(entry.get("name", "")), tuple(ordered)))
    return groups


def _resource_types(group: str, version: str, document: Mapping[str, Any]) -> list[ResourceType]:
    """The top-level resources of one APIResourceList; subresources ("pods/log") are skipped."""
    types = []
    for raw in document.get("resources") or ():
        resource = _mapping(raw)
        plural = str(resource.get("name", ""))
        kind = str(resource.get("kind", ""))
        if not plural or not kind or "/" in plural:
            continue
        types.append(
            ResourceType(
                group=group,
                version=version,
                kind=kind,
                plural=plural,
                # Built-in resources leave singularName empty (up to 1.26 or so); kubectl
                # falls back to the lowercased kind, and so do we.
                singular=str(resource.get("singularName") or kind.lower()),
                namespaced=bool(resource.get("namespaced", False)),
                short_names=tuple(str(s) for s in resource.get("shortNames") or ()),
                verbs=frozenset(str(v) for v in resource.get("verbs") or ()),
            )
        )
    return types


def _names(t: ResourceType) -> frozenset[str]:
    """Every lowercase name a user may write for ``t`` without a group."""
    return frozenset({t.kind.lower(), t.plural.lower(), t.singular.lower()}) | {
        s.lower() for s in t.short_names
    }


def _similarity(a: str, b: str) -> float:
    return difflib.SequenceMatcher(None, a, b).ratio()


def _is_builtin(group: str) -> bool:
    """Core, dotless legacy groups (apps, batch, ...) and the apiserver's own *.k8s.io groups."""
    return "." not in group or group in _BUILTIN_DOTTED_GROUPS


def _group_version(group: str, version: str) -> str:
    return f"{group}/{version}" if group else version


def _mapping(value: Any) -> Mapping[str, Any]:
    """Discovery JSON as a mapping, or an empty one: a malformed entry is skipped, not fatal."""
    return value if isinstance(value, Mapping) else {}
