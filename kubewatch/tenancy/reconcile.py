"""Reconcile one Notifier: its spec, Secrets and ClusterSinks → compiled entries, or why not.

Pure: nothing here talks to the API server. What a reconcile needs from the cluster comes
in through small lookups (:class:`SecretLookup`, :class:`NamespaceLabels`,
:class:`KindResolver` — a :class:`~kubewatch.kube.discovery.ResourceTable` is one — and a
host :data:`~kubewatch.tenancy.addresses.Resolver`), so a controller can call it from its
informers' stores, idempotently, as often as it likes, and tests can call it with dicts.

The checks, in order; the first that fails is the reason (``Ready=False``):

1. ``TooManyNotifiers``: beyond ``tenancy.maxNotifiersPerNamespace`` (oldest first);
2. ``Invalid``: the spec breaks the config file's rules (same messages, ``spec.`` key paths);
3. ``Suspended``: ``spec.suspend`` is true;
4. ``KindNotAllowed``: a kind outside ``allowedKinds``, in ``deniedKinds`` (which wins), a
   custom resource not listed as ``kind.group``, or a cluster-scoped kind;
5. ``SinkNotAllowed`` / ``SecretNotFound``: a ClusterSink that is missing or does not select
   the namespace (one message for both: a tenant learns nothing about other ClusterSinks),
   or a Secret or key that is missing;
6. ``Invalid``: a value from a Secret breaks the rules (the key path is the ``*From`` key;
   the value is never shown);
7. ``SinkNotAllowed``: a tenant sink pointing at a private or cluster-internal host.

Otherwise the result is :class:`Compiled` (reason ``Ready``): every resource entry limited to
the Notifier's namespace, sinks in the config file's form with Secret values filled in
(ClusterSinks under their own name), and the routes.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

from pydantic import ValidationError

from kubewatch.config import Config, TenancyConfig, validation_errors
from kubewatch.errors import ResolveError
from kubewatch.kube.discovery import ResourceType
from kubewatch.tenancy.addresses import Resolver, host_problem, system_resolver
from kubewatch.tenancy.models import ClusterSinkSpec, NotifierSpec
from kubewatch.tenancy.results import (
    INVALID,
    KIND_NOT_ALLOWED,
    REASONS,
    SINK_NOT_ALLOWED,
    SUSPENDED,
    TOO_MANY,
    Compiled,
    Failure,
    Reading,
    Result,
    SecretLookup,
    Stop,
    shown,
)
from kubewatch.tenancy.status import desired_status

__all__ = [
    "REASONS",
    "ClusterSinkLookup",
    "Compiled",
    "Failure",
    "KindResolver",
    "NamespaceLabels",
    "Result",
    "SecretLookup",
    "desired_status",
    "reconcile",
]


class NamespaceLabels(Protocol):
    def __call__(self, namespace: str) -> Mapping[str, str] | None:
        """The namespace's labels, or None when it is not known."""


class ClusterSinkLookup(Protocol):
    def __call__(self, name: str) -> Mapping[str, Any] | None:
        """The ClusterSink object, or None."""


class KindResolver(Protocol):
    def resolve(self, kind: str, api_version: str | None = None) -> ResourceType:
        """The resource a reference names; raises ResolveError (discovery's rules)."""


def reconcile(
    notifier: Mapping[str, Any],
    settings: TenancyConfig,
    *,
    cluster_sinks: ClusterSinkLookup,
    secrets: SecretLookup,
    namespace_labels: NamespaceLabels,
    kinds: KindResolver,
    resolve: Resolver = system_resolver,
    own_namespace: str | None = None,
    peers: Sequence[Mapping[str, Any]] = (),
) -> Result:
    """Check and compile one Notifier object (see the module docstring for the order).

    ``peers``: the Notifier objects of its namespace (itself included), for
    ``maxNotifiersPerNamespace``; ``own_namespace``: where ClusterSinks' Secrets live
    (default: ``settings.own_namespace()``).
    """
    metadata = notifier.get("metadata") or {}
    run = Reading(
        namespace=str(metadata.get("namespace") or ""),
        settings=settings,
        secret_lookup=secrets,
        own_namespace=own_namespace or settings.own_namespace(),
    )
    try:
        if not run.namespace:
            raise Stop(INVALID, ["metadata.namespace: a Notifier is namespaced"])
        _check_limit(metadata, peers, settings.max_notifiers_per_namespace)
        spec_data = notifier.get("spec")
        try:
            spec = NotifierSpec.model_validate(spec_data if spec_data is not None else {})
        except ValidationError as e:
            raise Stop(INVALID, shown(validation_errors(e, NotifierSpec))) from None
        if spec.suspend:
            raise Stop(SUSPENDED, ["spec.suspend is true: deliveries are paused"])
        _check_kinds(spec, settings, kinds)
        raw = spec_data if isinstance(spec_data, Mapping) else {}
        sinks = {
            name: run.fill(name, sink, run.namespace, f"spec.sinks.{name}")
            for name, sink in (raw.get("sinks") or {}).items()
        }
        for i, ref in enumerate(spec.sink_refs):
            found = _cluster_sink(run, ref.name, f"spec.sinkRefs[{i}]", cluster_sinks)
            labels = namespace_labels(run.namespace) or {}
            if found is None or not found.allowed_namespaces.selects(labels):
                message = (
                    f"spec.sinkRefs[{i}].name: ClusterSink {ref.name!r} does not exist "
                    f"or does not admit namespace {run.namespace!r}"
                )
                raise Stop(SINK_NOT_ALLOWED, [message])
            raw_sink = cluster_sinks(ref.name) or {}
            sink = (raw_sink.get("spec") or {}).get("sink") or {}
            where = f"spec.sinkRefs[{i}]: ClusterSink {ref.name!r}"
            sinks[ref.name] = run.fill(ref.name, sink, run.own_namespace, where)
        config = _compile(run, raw, sinks, set(spec.sinks))
        _check_addresses(run, config, set(spec.sinks), resolve)
    except Stop as stop:
        return run.failure(stop.reason, stop.messages)
    return Compiled(
        resources=config.resources,
        sinks=config.sinks,
        routes=config.routes,
        secrets=frozenset(run.secrets),
        cluster_sinks=frozenset(run.cluster_sinks),
        values=frozenset(run.values),
    )


def _check_limit(
    metadata: Mapping[str, Any], peers: Sequence[Mapping[str, Any]], limit: int
) -> None:
    """The oldest ``limit`` Notifiers of a namespace are served (ties: by name)."""
    order = sorted(
        (str(p.get("metadata", {}).get("creationTimestamp") or ""), str(p["metadata"]["name"]))
        for p in peers
        if p.get("metadata", {}).get("name")
    )
    mine = (str(metadata.get("creationTimestamp") or ""), str(metadata.get("name") or ""))
    if mine in order[limit:]:
        message = (
            f"namespace {metadata.get('namespace')!r} has {len(order)} Notifiers; "
            f"tenancy.maxNotifiersPerNamespace allows {limit} (the oldest are served)"
        )
        raise Stop(TOO_MANY, [message])


def _names(entries: Iterable[str]) -> tuple[set[str], set[str]]:
    """Listed kinds: bare names (built-in kinds only), and ``kind.group`` forms."""
    bare: set[str] = set()
    dotted: set[str] = set()
    for entry in entries:
        (dotted if "." in entry else bare).add(entry.strip().lower())
    return bare, dotted


def _builtin(group: str) -> bool:
    """Kubernetes' own groups; a custom resource's group always has a dot (and is not k8s.io)."""
    return "." not in group or group.endswith(".k8s.io")


def _listed(t: ResourceType, bare: set[str], dotted: set[str]) -> bool:
    names = {t.kind.lower(), t.plural.lower(), t.singular.lower()}
    if t.group and {f"{n}.{t.group}" for n in names} & dotted:
        return True
    return _builtin(t.group) and bool(names & bare)


def _check_kinds(spec: NotifierSpec, settings: TenancyConfig, kinds: KindResolver) -> None:
    allowed, denied = _names(settings.allowed_kinds), _names(settings.denied_kinds)
    problems: list[str] = []
    invalid: list[str] = []
    for i, rc in enumerate(spec.resources):
        where = f"spec.resources[{i}].kind"
        try:
            t = kinds.resolve(rc.kind, rc.api_version)
        except ResolveError as e:
            invalid.append(f"{where}: {e}")
            continue
        name = t.kind if _builtin(t.group) else f"{t.kind} ({t.group})"
        if _listed(t, *denied) or not _listed(t, *allowed):
            problems.append(f"{where}: {name} is not allowed")
        elif not t.namespaced:
            problems.append(
                f"{where}: {name} is cluster-scoped; a Notifier sees its namespace only"
            )
    if problems:
        raise Stop(KIND_NOT_ALLOWED, problems)
    if invalid:
        raise Stop(INVALID, invalid)


def _cluster_sink(
    run: Reading, name: str, where: str, lookup: ClusterSinkLookup
) -> ClusterSinkSpec | None:
    run.cluster_sinks.add(name)
    found = lookup(name)
    if found is None:
        return None
    try:
        return ClusterSinkSpec.model_validate(found.get("spec") or {})
    except ValidationError:
        raise Stop(SINK_NOT_ALLOWED, [f"{where} is invalid (its status says why)"]) from None


def _compile(run: Reading, raw: Mapping[str, Any], sinks: dict[str, Any], own: set[str]) -> Config:
    """The config file's rules over the filled-in document: values from Secrets included."""
    resources = [
        {**entry, "namespaces": {"include": [run.namespace]}}
        for entry in raw.get("resources") or ()
    ]
    document = {"resources": resources, "sinks": sinks, "routes": raw.get("routes") or []}
    try:
        return Config.model_validate(document)
    except ValidationError as e:
        errors = validation_errors(e)
    messages = []
    for error in errors:
        sink = error.path.split(".")[1] if error.path.startswith("sinks.") else None
        if sink is not None and sink not in own:
            messages.append(f"spec.sinkRefs: ClusterSink {sink!r} is invalid (its status says why)")
            continue
        sourced = run.from_secret(error)
        messages.extend([sourced] if sourced else shown([error]))
    raise Stop(INVALID, list(dict.fromkeys(messages)))


def _check_addresses(run: Reading, config: Config, own: set[str], resolve: Resolver) -> None:
    """Tenant sinks only: a ClusterSink is the admin's."""
    if run.settings.allow_private_addresses:
        return
    problems = []
    for name in sorted(own):
        sink = config.sinks[name]
        for key in ("url", "api_url", "host"):
            value = getattr(sink, key, None)
            if not isinstance(value, str):
                continue
            alias = {"api_url": "apiUrl"}.get(key, key)
            host = value if key == "host" else (urllib.parse.urlsplit(value).hostname or "")
            problem = host_problem(host, resolve)
            if problem is None:
                continue
            path = f"sinks.{name}.{alias}"
            at = run.sourced[path][0] if path in run.sourced else f"spec.{path}"
            what = "the host" if path in run.sourced else f"host {host!r}"
            problems.append(f"{at}: {what} {problem}; tenancy.allowPrivateAddresses is false")
    if problems:
        raise Stop(SINK_NOT_ALLOWED, problems)
