"""The application: wires config → cluster → informers → events → delivery → sinks.

It owns the lifecycle. ``App.plan`` resolves every configured resource before anything
starts (a mistake is a :class:`~kubewatch.errors.ConfigErrors`, nothing runs); ``start``
opens the sinks and the watches; ``stop`` ends the watches first, then drains what is
queued within ``delivery.drainTimeout``. Resources whose CRD is not installed yet are
re-checked through discovery every ``watch.discoveryInterval`` and watched once they appear.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from kubewatch.cluster.client import ApiUnreachable, ClusterClient, ListWatch, Query
from kubewatch.cluster.discovery import NotInstalled, ResourceTable, ResourceType
from kubewatch.config import Config, EventName, ResourceConfig
from kubewatch.delivery import Dispatcher
from kubewatch.errors import ApiError, ConfigError, ConfigErrors, ResolveError
from kubewatch.events import Event
from kubewatch.informer import (
    DeletedFinalStateUnknown,
    ReflectorSettings,
    SharedInformer,
)
from kubewatch.normalize import EventBuilder, ResourceInfo, compact
from kubewatch.sinks import build_sink

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class WatchPlan:
    """One configured resource, resolved: what to watch and how to report it."""

    index: int
    config: ResourceConfig
    resource: ResourceType
    namespaces: tuple[str | None, ...]
    """``(None,)`` for one cluster-wide watch, else one watch per included namespace."""
    field_selector: str | None
    """The user's field selector plus ``metadata.namespace!=X`` for each excluded namespace."""


@dataclass(slots=True)
class Plan:
    """Every configured resource, resolved or waiting for its CRD."""

    watches: list[WatchPlan] = field(default_factory=list)
    pending: list[tuple[int, ResourceConfig]] = field(default_factory=list)


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
        plan.watches.append(plan_watch(config, index, rc, resource))
    if errors:
        raise ConfigErrors(errors)
    return plan


def plan_watch(config: Config, index: int, rc: ResourceConfig, resource: ResourceType) -> WatchPlan:
    ns = config.namespaces
    selectors = [rc.field_selector] if rc.field_selector else []
    namespaces: tuple[str | None, ...] = (None,)
    if resource.namespaced:
        if ns.include:
            namespaces = tuple(ns.include)
        else:
            # Excluded namespaces are filtered by the server: their objects never arrive.
            selectors += [f"metadata.namespace!={name}" for name in ns.exclude]
    return WatchPlan(index, rc, resource, namespaces, ",".join(selectors) or None)


class ResourceHandler:
    """Informer callbacks for one configured resource → events → the dispatcher."""

    def __init__(
        self,
        builder: EventBuilder,
        events: Iterable[EventName],
        notify_existing: bool,
        dispatcher: Dispatcher,
    ) -> None:
        self._builder = builder
        self._events = frozenset(events)
        self._notify_existing = notify_existing
        self._dispatcher = dispatcher

    def _submit(self, event: Event | None) -> None:
        if event is not None:
            self._dispatcher.submit(event)

    def on_add(self, obj: dict[str, Any], is_initial_list: bool) -> None:
        if "create" in self._events and (self._notify_existing or not is_initial_list):
            self._submit(self._builder.created(obj))

    def on_update(self, old: dict[str, Any], new: dict[str, Any]) -> None:
        if "update" in self._events:
            self._submit(self._builder.updated(old, new))

    def on_delete(self, obj: dict[str, Any] | DeletedFinalStateUnknown) -> None:
        if "delete" not in self._events:
            return
        if isinstance(obj, DeletedFinalStateUnknown):
            self._submit(self._builder.deleted(obj.obj, final_state_unknown=True))
        else:
            self._submit(self._builder.deleted(obj))


def describe_scope(plan: WatchPlan, namespace: str | None) -> str:
    where = f"in {namespace}" if namespace else "cluster-wide"
    parts = [plan.resource.group_resource, where]
    if plan.config.label_selector:
        parts.append(f"labels {plan.config.label_selector}")
    if plan.field_selector:
        parts.append(f"fields {plan.field_selector}")
    return " ".join(parts)


class App:
    """A running kubewatch: informers feeding one dispatcher."""

    def __init__(self, config: Config, client: ClusterClient, plan: Plan) -> None:
        self.config = config
        self.client = client
        self.cluster = config.cluster or client.context_name
        self._plan = plan
        self._settings = ReflectorSettings(
            page_size=config.watch.page_size,
            server_timeout=config.watch.server_timeout,
            read_timeout=config.watch.read_timeout,
        )
        self.dispatcher = Dispatcher(
            {name: build_sink(name, sc) for name, sc in config.sinks.items()}, config.delivery
        )
        # One informer per (resource, namespace scope, selectors), shared by handlers.
        self.informers: dict[tuple[str, str | None, str | None], SharedInformer] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._discovery_thread: threading.Thread | None = None
        self._rng = random.Random()

    @staticmethod
    def plan(config: Config, client: ClusterClient) -> Plan:
        """Resolve the configured resources through discovery (raises ConfigErrors)."""
        return resolve_resources(config, ResourceTable.fetch(client.get_json))

    # -- lifecycle ----------------------------------------------------------------------

    def start(self) -> None:
        self.dispatcher.start()
        for watch in self._plan.watches:
            self._start_watch(watch)
        if self._plan.pending:
            self._discovery_thread = threading.Thread(
                target=self._discover_pending, name="kubewatch-discovery", daemon=True
            )
            self._discovery_thread.start()

    def wait_for_sync(self, timeout: float | None = None) -> bool:
        """True when every started watch has listed once (informational, for tests/CLI)."""
        with self._lock:
            informers = list(self.informers.values())
        return all(inf.wait_for_sync(timeout) for inf in informers)

    def stop(self) -> bool:
        """Stop watching, then drain deliveries; True if everything queued was handled."""
        self._stopping.set()
        with self._lock:
            informers = list(self.informers.values())
        for informer in informers:
            informer.reflector.stop()
        for informer in informers:
            informer.stop(timeout=5.0)
        drained = self.dispatcher.close(self.config.delivery.drain_timeout)
        for name, stats in self.dispatcher.stats().items():
            log.info(
                "sink %s: delivered %d, failed %d, retried %d, dropped %d",
                name,
                stats.delivered,
                stats.failed,
                stats.retried,
                stats.dropped,
            )
        self.client.close()
        return drained

    # -- watches --------------------------------------------------------------------------

    def _start_watch(self, watch: WatchPlan) -> None:
        rc, resource = watch.config, watch.resource
        info = ResourceInfo(resource.kind, resource.api_version, resource.group_resource)
        handler = ResourceHandler(
            EventBuilder(self.cluster, info), rc.events, rc.notify_existing, self.dispatcher
        )
        query = Query(rc.label_selector, watch.field_selector)
        for namespace in watch.namespaces:
            key = (resource.path(namespace), query.label_selector, query.field_selector)
            with self._lock:
                if self._stopping.is_set():
                    return
                informer = self.informers.get(key)
                if informer is None:
                    informer = SharedInformer(
                        describe_scope(watch, namespace),
                        ListWatch(self.client, key[0], query, self._settings.read_timeout),
                        kind=resource.kind,
                        api_version=resource.api_version,
                        settings=self._settings,
                        transform=compact,
                        rng=self._rng,
                    )
                    self.informers[key] = informer
                    informer.add_handler(handler)
                    log.info("watching %s", informer.name)
                    informer.start()
                else:
                    log.warning(
                        "resources[%d] repeats %s after it started; ignored", watch.index, key
                    )

    def _discover_pending(self) -> None:
        pending = list(self._plan.pending)
        while pending and not self._stopping.wait(self.config.watch.discovery_interval):
            try:
                table = ResourceTable.fetch(self.client.get_json)
            except (ApiError, ApiUnreachable) as e:
                log.warning("discovery failed: %s; trying again later", e)
                continue
            still: list[tuple[int, ResourceConfig]] = []
            for index, rc in pending:
                try:
                    resource = table.resolve(rc.kind, rc.api_version)
                except ResolveError:
                    still.append((index, rc))
                    continue
                log.info("resources[%d]: %s is now served", index, resource.group_resource)
                self._start_watch(plan_watch(self.config, index, rc, resource))
            pending = still
