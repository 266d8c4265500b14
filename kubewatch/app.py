"""The application: wires config → cluster → informers → events → routing → delivery → sinks.

It owns the lifecycle. :func:`~kubewatch.plan.resolve_resources` resolves every resource
and ``App(...)`` compiles sinks, templates and routes before anything starts (a mistake is
a :class:`~kubewatch.errors.ConfigErrors`, nothing runs); ``start`` opens the watches;
``stop`` ends the watches first, then drains what is queued within
``delivery.drainTimeout``. Resources whose CRD is not installed yet are re-checked through
discovery every ``watch.discoveryInterval`` and watched once they appear.
"""

from __future__ import annotations

import logging
import random
import threading
from collections import defaultdict
from datetime import datetime, timezone

from kubewatch.cluster.client import ApiUnreachable, ClusterClient, ListWatch, Query
from kubewatch.cluster.discovery import ResourceTable
from kubewatch.config import Config, ResourceConfig
from kubewatch.delivery import Dispatcher, sink_policies
from kubewatch.errors import ApiError, ConfigError, ConfigErrors, ResolveError
from kubewatch.events import Event
from kubewatch.informer import ReflectorSettings, SharedInformer
from kubewatch.kevents import KubeEventAlerts
from kubewatch.normalize import EventBuilder, ResourceInfo, compact, update_trees
from kubewatch.pipeline import EntryHandler, Fanout
from kubewatch.plan import Plan, WatchPlan, describe_scope, plan_watch, resolve_resources
from kubewatch.routing import NamespaceLabels, ObjectFilter, Router
from kubewatch.sinks import Sink, build_sink

log = logging.getLogger(__name__)

NAMESPACE_SYNC_TIMEOUT = 30.0
"""Seconds to wait for the Namespace watch before the others start: namespace selectors
need the labels, and a resource watch that starts first would misjudge early objects."""

InformerKey = tuple[str, str | None, str | None]
"""(collection path, label selector, field selector): one informer each."""


def build_sinks(config: Config) -> dict[str, Sink]:
    """Every configured sink, templates compiled; ConfigErrors lists every bad one."""
    sinks: dict[str, Sink] = {}
    errors: list[ConfigError] = []
    for name, sink_config in config.sinks.items():
        try:
            sinks[name] = build_sink(name, sink_config)
        except ConfigErrors as e:
            errors.extend(e.errors)
    if errors:
        for sink in sinks.values():
            sink.close()
        raise ConfigErrors(errors)
    return sinks


def check_config(config: Config) -> None:
    """What can be checked without a cluster beyond the model: templates and routes."""
    for sink in build_sinks(config).values():
        sink.close()
    Router.build(config)


class App:
    """A running kubewatch: informers feeding one router and one dispatcher."""

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
        self.router = Router.build(config)
        self.namespace_labels = NamespaceLabels()
        self.dispatcher = Dispatcher(
            build_sinks(config), config.delivery, policies=sink_policies(config)
        )
        self.started_at = datetime.now(timezone.utc)
        self.informers: dict[InformerKey, SharedInformer] = {}
        self._namespace_informer: SharedInformer | None = None
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
        self._start_watches(self._plan.watches)
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
            if self._namespace_informer is not None:
                informers.append(self._namespace_informer)
        for informer in informers:
            informer.reflector.stop()
        for informer in informers:
            informer.stop(timeout=5.0)
        drained = self.dispatcher.close(self.config.delivery.drain_timeout)
        for name, stats in self.dispatcher.stats().items():
            log.info(
                "sink %s: delivered %d, failed %d, retried %d, dropped %d, digested %d",
                name,
                stats.delivered,
                stats.failed,
                stats.retried,
                stats.dropped,
                stats.digested,
            )
        self.client.close()
        return drained

    # -- the per-event path ---------------------------------------------------------------

    def deliver(self, event: Event) -> None:
        """Route one event and hand it to the dispatcher (never blocks)."""
        sinks = self.router.route(event)
        if sinks:
            self.dispatcher.submit(event, sinks)

    # -- watches --------------------------------------------------------------------------

    def _entry(self, watch: WatchPlan) -> tuple[EntryHandler, bool]:
        """The handler of one resource entry, and whether it needs namespace labels."""
        rc, resource = watch.config, watch.resource
        info = ResourceInfo(resource.kind, resource.api_version, resource.group_resource)
        ignore, only = update_trees(rc.updates)
        builder = EventBuilder(self.cluster, info, ignore=ignore, only=only)
        object_filter = ObjectFilter.build(self.config, rc, self.namespace_labels)
        alerts = (
            KubeEventAlerts(self.cluster, info, rc, started_at=self.started_at)
            if watch.is_kube_event
            else None
        )
        return EntryHandler(
            rc, builder, object_filter, alerts
        ), object_filter.needs_namespace_labels

    def _start_watches(self, watches: list[WatchPlan]) -> None:
        """Group entries by informer (handlers are fixed before an informer starts)."""
        groups: dict[InformerKey, list[EntryHandler]] = defaultdict(list)
        firsts: dict[InformerKey, tuple[WatchPlan, str | None]] = {}
        needs_labels = False
        for watch in watches:
            entry, needs = self._entry(watch)
            needs_labels |= needs
            query = Query(watch.config.label_selector, watch.field_selector)
            for namespace in watch.namespaces:
                key = (watch.resource.path(namespace), query.label_selector, query.field_selector)
                groups[key].append(entry)
                firsts.setdefault(key, (watch, namespace))
        if needs_labels:
            self._start_namespace_watch()
        for key, entries in groups.items():
            watch, namespace = firsts[key]
            with self._lock:
                if self._stopping.is_set():
                    return
                if key in self.informers:
                    log.warning(
                        "resources[%d]: %s is already watched; entries added later are ignored",
                        watch.index,
                        describe_scope(watch, namespace),
                    )
                    continue
                informer = self._informer(key, describe_scope(watch, namespace), watch)
                informer.add_handler(Fanout(entries, self.deliver))
                self.informers[key] = informer
            log.info("watching %s", informer.name)
            informer.start()

    def _informer(self, key: InformerKey, name: str, watch: WatchPlan) -> SharedInformer:
        query = Query(key[1], key[2])
        return SharedInformer(
            name,
            ListWatch(self.client, key[0], query, self._settings.read_timeout),
            kind=watch.resource.kind,
            api_version=watch.resource.api_version,
            settings=self._settings,
            transform=compact,
            rng=self._rng,
        )

    def _start_namespace_watch(self) -> None:
        with self._lock:
            if self._namespace_informer is not None or self._plan.namespaces is None:
                return
            resource = self._plan.namespaces
            informer = SharedInformer(
                "namespaces (for namespace selectors)",
                ListWatch(self.client, resource.path(), Query(), self._settings.read_timeout),
                kind=resource.kind,
                api_version=resource.api_version,
                settings=self._settings,
                transform=compact,
                rng=self._rng,
            )
            informer.add_handler(self.namespace_labels)
            self._namespace_informer = informer
        informer.start()
        if not informer.wait_for_sync(NAMESPACE_SYNC_TIMEOUT):
            log.warning(
                "namespaces not listed within %.0fs; namespace selectors admit nothing until then",
                NAMESPACE_SYNC_TIMEOUT,
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
            found: list[WatchPlan] = []
            for index, rc in pending:
                try:
                    resource = table.resolve(rc.kind, rc.api_version)
                    found.append(plan_watch(self.config, index, rc, resource))
                except ResolveError:
                    still.append((index, rc))
                except ConfigError as e:
                    log.error("%s; not watched", e)
                    continue
                else:
                    log.info("resources[%d]: %s is now served", index, resource.group_resource)
            self._start_watches(found)
            pending = still
