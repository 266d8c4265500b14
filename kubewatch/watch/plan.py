"""Planning: configured resources, resolved through discovery, into concrete watches.

Everything here runs before anything starts: a mistake is collected into
:class:`~kubewatch.errors.ConfigErrors` with its key path, so nothing half-starts.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from kubewatch.config import Config, NamespacesConfig, ResourceConfig
from kubewatch.errors import ConfigError, ConfigErrors, ResolveError
from kubewatch.kube.discovery import NotInstalled, ResourceTable, ResourceType
from kubewatch.kube.pool import InformerKey
from kubewatch.match.patterns import compile_name

log = logging.getLogger(__name__)

EVENT_ONLY_KEYS = ("types", "reasons", "message", "involved_kinds", "repeat_window")
"""ResourceConfig fields that only make sense for Kubernetes Events."""
EVENT_GROUPS = ("", "events.k8s.io")
HEALTH_KINDS = frozenset({("Pod", ""), ("Job", "batch"), ("Deployment", "apps"), ("Node", "")})
"""(kind, group) of the resources ``health`` has detectors for."""


@dataclass(frozen=True, slots=True)
class WatchPlan:
    """One configured resource, resolved: what to watch and how to report it."""

    index: int
    config: ResourceConfig
    resource: ResourceType
    namespaces: tuple[str | None, ...]
    """``(None,)`` for one cluster-wide watch, else one watch per namespace."""
    field_selector: str | None
    """The user's field selector plus ``metadata.namespace!=X`` per excluded name."""

    @property
    def is_kube_event(self) -> bool:
        return self.resource.kind == "Event" and self.resource.group in EVENT_GROUPS


@dataclass(slots=True)
class Plan:
    """Every configured resource, resolved or waiting for its CRD."""

    watches: list[WatchPlan] = field(default_factory=list)
    pending: list[tuple[int, ResourceConfig]] = field(default_factory=list)
    namespaces: ResourceType | None = None
    """The Namespace resource, for namespace selectors (resolved once, always present)."""


def resolve_resources(config: Config, table: ResourceTable) -> Plan:
    """Resolve every ``resources[i]``; collect all mistakes into one ConfigErrors."""
    plan = Plan()
    errors: list[ConfigError] = []
    for index, rc in enumerate(config.resources):
        try:
            resource = table.resolve(rc.kind, rc.api_version)
        except NotInstalled as e:
            log.warning("resources[%d]: %s; watching it once it is installed", index, e)
            plan.pending.append((index, rc))
            continue
        except ResolveError as e:
            errors.append(ConfigError(f"resources[{index}].kind", str(e)))
            continue
        try:
            plan.watches.append(plan_watch(config, index, rc, resource))
        except ConfigError as e:
            errors.append(e)
    if errors:
        raise ConfigErrors(errors)
    plan.namespaces = table.resolve("namespaces", "v1")
    return plan


def _plain(patterns: tuple[str, ...]) -> bool:
    return all(isinstance(compile_name(p), str) for p in patterns)


def plan_watch(config: Config, index: int, rc: ResourceConfig, resource: ResourceType) -> WatchPlan:
    """Decide the watches of one resource; raise ConfigError for a contradiction.

    Plain namespace names in ``include`` mean one watch per namespace (the global list
    and the resource's intersected); any glob or regex means one cluster-wide watch that
    the routing stage filters. Plain names in ``exclude`` become field selectors, so the
    API server never sends those objects.
    """
    path = f"resources[{index}]"
    is_event = resource.kind == "Event" and resource.group in EVENT_GROUPS
    if not is_event:
        for key in EVENT_ONLY_KEYS:
            if key in rc.model_fields_set:
                alias = ResourceConfig.model_fields[key].alias or key
                raise ConfigError(
                    f"{path}.{alias}", f"applies only to kind Event, not {resource.kind}"
                )
    if rc.health is not None and (resource.kind, resource.group) not in HEALTH_KINDS:
        raise ConfigError(
            f"{path}.health",
            f"applies only to Pod, Job, Deployment and Node, not {resource.group_resource}",
        )
    own = rc.namespaces or NamespacesConfig()
    g = config.namespaces
    selectors = [rc.field_selector] if rc.field_selector else []
    namespaces: tuple[str | None, ...] = (None,)
    if resource.namespaced:
        excluded = [n for n in (*g.exclude, *own.exclude) if isinstance(compile_name(n), str)]
        if (g.include or own.include) and _plain(g.include) and _plain(own.include):
            names = list(own.include or g.include)
            if g.include and own.include:
                names = [n for n in own.include if n in g.include]
                if not names:
                    raise ConfigError(
                        f"{path}.namespaces.include",
                        "none of these namespaces is in the global namespaces.include",
                    )
            namespaces = tuple(n for n in dict.fromkeys(names) if n not in excluded)
        else:
            selectors += [f"metadata.namespace!={name}" for name in dict.fromkeys(excluded)]
    return WatchPlan(index, rc, resource, namespaces, ",".join(selectors) or None)


def describe_scope(plan: WatchPlan, namespace: str | None) -> str:
    """How a watch is named in logs: ``deployments.apps in shop labels app=web``."""
    return watch_key(plan, namespace).name


def watch_key(plan: WatchPlan, namespace: str | None) -> InformerKey:
    """The shared informer ``plan`` needs in ``namespace`` (None: cluster-wide)."""
    return InformerKey.of(plan.resource, namespace, plan.config.label_selector, plan.field_selector)


def watch_keys(plan: WatchPlan) -> list[InformerKey]:
    """Every informer ``plan`` needs: one per namespace, or one cluster-wide."""
    return [watch_key(plan, namespace) for namespace in plan.namespaces]
