"""One Ready Notifier at work: its entries on the shared informers, its router and its
dispatcher.

A Notifier's compiled spec becomes a configuration of its own (:func:`tenant_config`):
its resources, already limited to its namespace, its sinks under prefixed names
(``team-a/web-alerts/chat``, so the spool and the metrics keep tenants apart) and its
routes. Entries are built with the same :func:`~kubewatch.watch.pipeline.build_entry` and
:class:`~kubewatch.watch.pipeline.Fanout` as the config file's, but each is attached to
the *cluster-wide* informer of its resource: a hundred Notifiers on ConfigMaps in a
hundred namespaces share one ConfigMap watch, and :class:`NamespaceOnly` hands each only
its namespace's objects. A Notifier's events go to its own router and dispatcher, never to
another's.
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from kubewatch.config import Config, NamespacesConfig
from kubewatch.delivery import Dispatcher
from kubewatch.events import Event
from kubewatch.kube import DeletedFinalStateUnknown
from kubewatch.kube.discovery import ResourceTable
from kubewatch.kube.pool import InformerKey, InformerPool
from kubewatch.routing import Router
from kubewatch.state.alerts import AlertTable
from kubewatch.tenancy.results import Compiled
from kubewatch.watch.alerting import HealthAlerts, HealthScope
from kubewatch.watch.filters import NamespaceLabels
from kubewatch.watch.pipeline import EntryHandler, Fanout, build_entry
from kubewatch.watch.plan import resolve_resources, watch_key

__all__ = ["NamespaceOnly", "Tenant", "TenantServices", "owner", "tenant_config"]

log = logging.getLogger("kubewatch.tenancy")

TENANT_WORKERS = 1
"""Sends at once per Notifier sink unless the sink sets ``concurrency``: a team's channel
needs no more, and a hundred Notifiers do not cost four hundred threads."""
RETIRE_TIMEOUT = 2.0
"""Seconds a replaced dispatcher (a Notifier's sinks changed) may drain what it queued."""

Delivered = Callable[[str, Event], None]
Failed = Callable[[str, Event, str, bool], None]
NewDispatcher = Callable[[Config, Delivered, Failed], Dispatcher]
"""Builds the (not started) dispatcher of a tenant's configuration with its callbacks."""


def owner(key: str) -> str:
    """A Notifier's name as an owner of handlers in the informer pool."""
    return f"notifier/{key}"


@dataclass(frozen=True)
class TenantServices:
    """What every tenant shares with the app: the cluster, the pool, the event path."""

    base: Config
    """The file's configuration: its ``delivery``, ``watch``, ``state`` settings apply."""
    cluster: str
    pool: InformerPool
    table: ResourceTable
    namespace_labels: NamespaceLabels
    started_at: datetime
    new_dispatcher: NewDispatcher
    hand: Callable[[Event, tuple[str, ...], Dispatcher], None] = lambda e, sinks, d: d.submit(
        e, sinks
    )
    """Gives a routed event to the Notifier's dispatcher: in a run, spooled first (with
    ``state.path``), and on a standby kept for a takeover instead (the app's handover)."""
    observe: Callable[[str, str], None] | None = None
    recover: Callable[[str, Dispatcher], None] | None = None
    """Queues on a Notifier's first dispatcher what the last run spooled for its sinks."""
    health: HealthAlerts | None = None
    """The app's health alerts: each Notifier with ``health`` entries gets a scope."""
    alert_records: Callable[[str], AlertTable] | None = None
    """A Notifier's stored alert records (with ``state.path``), by its key."""


def tenant_config(base: Config, compiled: Compiled, prefix: str) -> Config:
    """The configuration a Notifier amounts to, its sinks named ``<prefix>/<sink>``; the
    file's global namespace rules and drops are the file's, not the tenant's; its
    ``delivery`` settings apply, with :data:`TENANT_WORKERS` workers per sink."""
    sinks = {f"{prefix}/{name}": sink for name, sink in compiled.sinks.items()}
    routes = tuple(
        route.model_copy(update={"sinks": tuple(f"{prefix}/{s}" for s in route.sinks)})
        for route in compiled.routes
    )
    return base.model_copy(
        update={
            "resources": compiled.resources,
            "sinks": sinks,
            "routes": routes,
            "drop": (),
            "namespaces": NamespacesConfig(),
            "namespace_selector": None,
            "delivery": base.delivery.model_copy(update={"workers": TENANT_WORKERS}),
        }
    )


class NamespaceOnly:
    """A tenant's handler on a cluster-wide informer: only its namespace's objects pass."""

    __slots__ = ("fanout", "namespace")

    def __init__(self, namespace: str, fanout: Fanout) -> None:
        self.namespace = namespace
        self.fanout = fanout

    def on_add(self, obj: dict[str, Any], is_initial_list: bool) -> None:
        if _namespace(obj) == self.namespace:
            self.fanout.on_add(obj, is_initial_list)

    def on_update(self, old: dict[str, Any], new: dict[str, Any]) -> None:
        if _namespace(new) == self.namespace:
            self.fanout.on_update(old, new)

    def on_delete(self, obj: dict[str, Any] | DeletedFinalStateUnknown) -> None:
        last = obj.obj if isinstance(obj, DeletedFinalStateUnknown) else obj
        if _namespace(last) == self.namespace:
            self.fanout.on_delete(obj)


def _namespace(obj: dict[str, Any]) -> Any:
    return (obj.get("metadata") or {}).get("namespace")


class Tenant:
    """The running form of one Ready Notifier ``key`` (``ns/name``); :meth:`apply` a new
    compiled spec in place, :meth:`close` to stop it at once."""

    def __init__(
        self,
        key: str,
        services: TenantServices,
        *,
        on_delivered: Delivered,
        on_failed: Failed,
    ) -> None:
        self.key = key
        self.namespace = key.partition("/")[0]
        self.compiled: Compiled | None = None
        self.config: Config | None = None
        self._services = services
        self._on_delivered, self._on_failed = on_delivered, on_failed
        self._handlers: dict[InformerKey, NamespaceOnly] = {}
        self._lock = threading.Lock()  # apply and close, one at a time
        self._route: tuple[Router, Dispatcher] | None = None  # replaced, never mutated
        self._closed = False
        self._health: HealthScope | None = None  # under _lock; made by the first apply

    def sink_name(self, prefixed: str) -> str:
        """``chat`` for ``team-a/web-alerts/chat``: the name the Notifier's spec uses."""
        return prefixed.removeprefix(f"{self.key}/")

    def apply(self, compiled: Compiled) -> bool:
        """Make the Notifier's watches, routes and sinks ``compiled``'s; False if unchanged.

        Informers whose handlers stay keep running (only their entries are swapped); the
        dispatcher is rebuilt only when the sinks or delivery settings changed (may raise
        ConfigErrors, e.g. a template that does not compile: nothing changed then)."""
        with self._lock:
            if self._closed or compiled == self.compiled:
                return False
            s = self._services
            config = tenant_config(s.base, compiled, self.key)
            groups: dict[InformerKey, list[EntryHandler]] = defaultdict(list)
            health = self._health_scope(config)
            for watch in resolve_resources(config, s.table).watches:
                entry = build_entry(
                    config, watch, s.cluster, s.namespace_labels, s.started_at, health=health
                )
                groups[watch_key(watch, None)].append(entry)
            router = Router.build(config)
            old = self._route
            dispatcher = None
            if (
                old is None
                or self.config is None
                or (config.sinks, config.delivery) != (self.config.sinks, self.config.delivery)
            ):  # the last step that may fail: nothing has changed yet
                dispatcher = s.new_dispatcher(config, self._on_delivered, self._on_failed)
            handlers: dict[InformerKey, NamespaceOnly] = {}
            for informer_key, entries in groups.items():
                handler = self._handlers.get(informer_key)
                if handler is None:
                    fanout = Fanout(entries, self.deliver, hold=s.namespace_labels.hold)
                    handler = NamespaceOnly(self.namespace, fanout)
                else:
                    handler.fanout.set_entries(entries)
                handlers[informer_key] = handler
            if dispatcher is not None:
                dispatcher.start()
                if old is None and s.recover is not None:
                    s.recover(self.key, dispatcher)
            self._route = (router, dispatcher or old[1])  # type: ignore[index]
            s.pool.replace(
                owner(self.key), {k: [h] for k, h in handlers.items()}, namespace=self.namespace
            )
            self._handlers, self.compiled, self.config = handlers, compiled, config
        if dispatcher is not None and old is not None:
            old[1].close(RETIRE_TIMEOUT)
        return True

    def _health_scope(self, config: Config) -> HealthScope | None:
        """The Notifier's alerts, once an entry sets ``health`` (kept while it runs: an
        alert firing is not sent again when the spec changes)."""
        s = self._services
        wanted = any(rc.health is not None for rc in config.resources)
        if self._health is None and s.health is not None and wanted:
            records = s.alert_records(self.key) if s.alert_records is not None else None
            self._health = s.health.scope(self.key, self.deliver, records)
        return self._health

    def rebase(self, services: TenantServices) -> None:
        """New shared settings (a reload): the next :meth:`apply` rebuilds even an
        unchanged spec with them."""
        with self._lock:
            self._services, self.compiled = services, None

    def deliver(self, event: Event) -> None:
        """Route one event of this Notifier's namespace to its sinks (never blocks)."""
        s = self._services
        if s.observe is not None:
            s.observe(event.resource, event.type.value)
        route = self._route
        if route is None:
            return
        router, dispatcher = route
        sinks = router.route(event)
        if not sinks:
            return
        try:
            s.hand(event, sinks, dispatcher)
        except RuntimeError:  # closed meanwhile: the Notifier was deleted or replaced
            log.debug("%s: event after close dropped", self.key)

    def dispatcher(self) -> Dispatcher | None:
        route = self._route
        return None if route is None else route[1]

    def sinks(self) -> Iterable[str]:
        route = self._route
        return () if route is None else route[1].stats()

    def close(self, drain_timeout: float = 0.0, *, forget: bool = True) -> None:
        """Detach every handler and stop delivering: at once (a deleted Notifier: what is
        queued is dropped), or after up to ``drain_timeout`` seconds of draining (a stop,
        with ``forget=False``: its stored alert records stay for the next start)."""
        with self._lock:
            self._closed = True
            route, self._route = self._route, None
            s = self._services
            s.pool.detach(owner(self.key))
            if self._health is not None and s.health is not None:
                s.health.release(self.key)
                if forget and s.alert_records is not None:
                    s.alert_records(self.key).clear()
        if route is not None:
            route[1].close(drain_timeout)
