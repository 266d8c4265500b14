"""The application: wires config → cluster → informers → events → routing → delivery → sinks.

It owns the lifecycle. :func:`~kubewatch.watch.plan.resolve_resources` resolves every resource
and ``App(...)`` compiles sinks, templates and routes before anything starts (a mistake is
a :class:`~kubewatch.errors.ConfigErrors`, nothing runs); ``start`` opens the watches (and
the health server, and the leader election); the watches are the configuration file's
handlers (owner ``"file"``) in the shared :class:`~kubewatch.kube.pool.InformerPool`, and
``reload`` replaces them there, so unchanged watches keep running; ``stop`` ends the
watches first, then drains what is queued within ``delivery.drainTimeout`` (the event path
and its dispatchers are :mod:`.delivering`'s). Resources whose CRD is not installed yet
are re-checked through discovery every ``watch.discoveryInterval`` and watched once they
appear.

High availability: every replica watches (its cache stays warm), only the leader delivers.
A standby keeps the events of the last ``2 * leaseDuration`` seconds and delivers them when
it takes over, so a handover repeats some events (receivers de-duplicate by ``id``) rather
than losing the ones the old leader had not yet sent.
"""

from __future__ import annotations

import functools
import logging
import random
import threading
from collections import defaultdict
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from kubewatch.app.build import build_sinks, default_identity, sink_services
from kubewatch.app.delivering import Delivering, Route
from kubewatch.app.discovery import PendingDiscovery
from kubewatch.app.handover import HandoverBuffer
from kubewatch.app.informers import NamespaceWatch, new_informer
from kubewatch.app.lazy import operator_mode
from kubewatch.config import Config
from kubewatch.delivery import Dispatcher, SinkStats
from kubewatch.delivery.policy import sink_policies
from kubewatch.events import Event
from kubewatch.kube import SharedInformer
from kubewatch.kube.client import ClusterClient
from kubewatch.kube.discovery import ResourceTable
from kubewatch.kube.leader import LeaderElector, lease_namespace
from kubewatch.kube.logs import PodLogs
from kubewatch.kube.pool import InformerKey, InformerPool
from kubewatch.kube.recorder import EventRecorder
from kubewatch.observability.health import HealthServer, Heartbeats, Readiness
from kubewatch.observability.metrics import Metrics, WatchState, seconds_since, watch_states
from kubewatch.routing import Router
from kubewatch.state import AlertTable, State, open_state
from kubewatch.watch.alerting import HealthAlerts
from kubewatch.watch.filters import NamespaceLabels
from kubewatch.watch.pipeline import EntryHandler, Fanout, build_entry, needs_namespace_labels
from kubewatch.watch.plan import Plan, WatchPlan, resolve_resources, watch_keys

if TYPE_CHECKING:  # operator mode is imported only when it is enabled (start-up cost)
    from kubewatch.tenancy.controller import Controller

log = logging.getLogger("kubewatch.app")

FILE_OWNER = "file"
"""The configuration file's name as an owner of handlers in the informer pool."""
NAMESPACE_WATCH = "namespaces (for namespace selectors)"
"""The Namespace watch's name in logs and metrics (its ``watch`` label)."""
LIVENESS_TIMEOUT = 60.0
"""Seconds a registered loop may go without a heartbeat before ``/healthz`` fails."""
ALIVE_INTERVAL = 30.0
"""Seconds between notes of when this run was last up: after a crash, Kubernetes Events
since then count as news (the start-time rule of Event alerts)."""


class App:
    """A running kubewatch: informers feeding one router and one dispatcher."""

    def __init__(
        self,
        config: Config,
        client: ClusterClient,
        plan: Plan,
        *,
        recorder: EventRecorder | None = None,
    ) -> None:
        self.config = config
        self.client = client
        self.cluster = config.cluster or client.context_name
        self._plan = plan
        self._recorder = recorder
        self.state: State | None = open_state(config.state.path)
        self._sink_services = sink_services(self.state)
        self.lost = 0
        """Events the last ``stop`` could neither deliver nor keep (no durable state)."""
        self.namespace_labels = NamespaceLabels()
        self.metrics = Metrics(
            informers=self.watch_states,
            sinks=self._sink_stats,
            leader=lambda: None if self._elector is None else self._elector.is_leader,
            state=lambda: self._delivering.state_view(),  # noqa: PLW0108 (built below)
            handover_dropped=lambda: self._delivering.handover.dropped,
            namespace_hold=self.namespace_labels.hold.stats,
            workers=lambda: self.dispatcher.worker_stats(),  # noqa: PLW0108 (reloads)
            informer_counts=self._informer_counts,
            notifiers=lambda: self.tenancy.counts() if self.tenancy is not None else {},
        )
        self._delivering = Delivering(
            Route(Router.build(config), self._dispatcher(config)),
            self.state,
            HandoverBuffer(2 * config.leader_election.lease_duration),
            leading=not config.leader_election.enabled,
            observe=self.metrics.observe_event,
        )
        self.deliver = self._delivering.deliver
        """Count, route, spool and hand one event to the dispatcher (never blocks)."""
        self.started_at = datetime.now(timezone.utc)
        previous = self.state.checkpoint.previous_run() if self.state is not None else None
        if previous is not None:  # Events since the last run was seen up are news
            self.started_at = min(self.started_at, datetime.fromtimestamp(previous, timezone.utc))
        self.heartbeats = Heartbeats(LIVENESS_TIMEOUT)
        self.heartbeats.add_check(lambda: self.dispatcher.workers_alive())  # noqa: PLW0108
        self._rng = random.Random()
        self.pool = InformerPool(self._informer)
        """The shared informers; this app's file configuration is one owner."""
        self._fanouts: dict[InformerKey, Fanout] = {}  # the file's handlers, under _watch_lock
        self._entries: dict[tuple[str, str, str], EntryHandler] = {}
        self._previous_entries: dict[tuple[str, str, str], EntryHandler] = {}
        # Makes a change of the watches one step with its look at _stopping and at the
        # discovery pass's stop: a reload's cancel is never overtaken by an old pass.
        self._watch_lock = threading.Lock()
        self._stopping = threading.Event()
        self._namespaces = NamespaceWatch(
            self.namespace_labels,
            lambda key: self._informer(key, name=NAMESPACE_WATCH, checkpoint=False),
            self._stopping,
        )
        self._discovery = PendingDiscovery(
            client,
            lambda found, stop: self._start_watches(found, cancelled=stop),
            recorder,
        )
        self._server: HealthServer | None = None
        self._elector: LeaderElector | None = None
        self.tenancy: Controller | None = None  # the Notifier controller (operator mode)
        alerts = AlertTable(self.state.db) if self.state is not None else None
        self.health = HealthAlerts(self.deliver, store=alerts, logs=PodLogs(client))

    @staticmethod
    def plan(config: Config, client: ClusterClient) -> Plan:
        """Resolve the configured resources through discovery (raises ConfigErrors)."""
        return resolve_resources(config, ResourceTable.fetch(client.get_json))

    @property
    def router(self) -> Router:
        return self._delivering.route.router

    @property
    def dispatcher(self) -> Dispatcher:
        return self._delivering.route.dispatcher

    def _dispatcher(self, config: Config) -> Dispatcher:
        return Dispatcher(
            build_sinks(config, self._sink_services),
            config.delivery,
            policies=sink_policies(config),
            on_delivered=self._delivered,
            on_failed=self._failed,
            on_sink_state=self._sink_state,
            journal=self.state.spool if self.state is not None else None,
        )

    # -- lifecycle ----------------------------------------------------------------------

    def start(self) -> None:
        self.dispatcher.start()  # before recovery: recovered events wait for room
        server = self.config.server
        if server.port is not None:
            self._server = HealthServer(
                server.address,
                server.port,
                metrics=self.metrics,
                readiness=Readiness(self.watch_states, server.stall_threshold),
                liveness=self.heartbeats,
            )
            self._server.start()
            log.info("serving /metrics, /healthz, /readyz on port %d", self._server.port)
        if self.state is not None:
            self._recover()
        election = self.config.leader_election
        if election.enabled:
            self._elector = LeaderElector(
                self.client,
                election,
                identity=default_identity(),
                namespace=lease_namespace(election),
                on_started_leading=lambda: self._delivering.start_leading(
                    2 * election.lease_duration, self._stopping
                ),
                on_stopped_leading=self._delivering.stop_leading,
                recorder=self._recorder,
            )
            self._elector.start()
        self._start_watches(self._plan.watches)
        self._discovery.start(self.config, self._plan.pending)
        self.tenancy = operator_mode(self, None)
        if self.state is not None:
            threading.Thread(target=self._note_alive, name="kubewatch-alive", daemon=True).start()

    def _recover(self) -> None:
        """Queue what the last run left undelivered; forget checkpoints no longer watched."""
        assert self.state is not None
        gone = self.state.checkpoint.prune(
            key.collection for watch in self._plan.watches for key in watch_keys(watch)
        )
        if gone:
            log.info("state: forgot the checkpoint of %d unwatched collection(s)", len(gone))
        self._delivering.recover(self.state.spool.recover(), self._stopping)

    def _note_alive(self) -> None:
        while not self._stopping.wait(ALIVE_INTERVAL):
            if self.state is not None:
                self.state.checkpoint.mark_alive()

    @property
    def health_port(self) -> int | None:
        return self._server.port if self._server is not None else None

    def wait_for_sync(self, timeout: float | None = None) -> bool:
        """True when every started watch has listed once (informational, for tests/CLI)."""
        return all(inf.wait_for_sync(timeout) for inf in self.pool.informers())

    def request_stop(self) -> None:
        """Make every wait of ``start`` end now (any thread; a signal handler too): a
        SIGTERM while namespaces are being listed is not held up by that wait."""
        self._stopping.set()

    def stop(self) -> bool:
        """Stop watching, then drain deliveries; True if everything queued was handled."""
        self._stopping.set()
        if self.tenancy is not None:  # first: the Notifiers' deliveries stop with them
            self.tenancy.stop()
        self._discovery.stop.set()
        namespaces = self._namespaces.informer
        if namespaces is not None:
            namespaces.reflector.stop()
        self.pool.stop()
        if namespaces is not None:
            namespaces.stop(timeout=5.0)
        self.health.stop()
        drained, self.lost = self._delivering.close(self.config.delivery.drain_timeout)
        if self._elector is not None:
            self._elector.stop(release=True, timeout=5.0)
        if self._recorder is not None:
            self._recorder.close()
        if self._server is not None:
            self._server.stop()
        self.client.close()
        return drained

    # -- callbacks and views --------------------------------------------------------------

    def _sink_stats(self) -> dict[str, SinkStats]:
        return self._delivering.sink_stats()

    def _sink_state(self, sink: str, up: bool, reason: str) -> None:
        if self._recorder is None:
            return
        if up:
            self._recorder.normal("SinkUp", f"sink {sink} is delivering again")
        else:
            self._recorder.warning("SinkDown", f"sink {sink} is down: {reason}")

    def _delivered(self, sink: str, event: Event) -> None:
        self.metrics.observe_delivery(sink, seconds_since(event.observed_at))

    def _failed(self, sink: str, event: Event, reason: str, permanent: bool) -> None:
        if permanent and self._recorder is not None:
            self._recorder.warning("SinkFailed", f"sink {sink}: {reason}")

    # -- health ---------------------------------------------------------------------------

    def _all_informers(self) -> list[SharedInformer]:
        """Every watch: the pool's, the Namespace watch, operator mode's own three."""
        namespaces = self._namespaces.informer
        own = self.tenancy.informers() if self.tenancy is not None else ()
        return [*self.pool.informers(), *([namespaces] if namespaces is not None else []), *own]

    def watch_states(self) -> list[WatchState]:
        return watch_states(self._all_informers())

    def _informer_counts(self) -> dict[str, int]:
        counts: dict[str, int] = defaultdict(int)
        for informer in self._all_informers():
            counts[informer.name.partition(" ")[0]] += 1
        return counts

    # -- watches --------------------------------------------------------------------------

    def _entry(self, watch: WatchPlan) -> EntryHandler:
        """The handler of one resource entry; reused across reloads while its config,
        resource and cluster are the same (Event repeat windows survive a reload)."""
        key = (watch.config.model_dump_json(), watch.resource.group_resource, self.cluster)
        entry = self._entries.get(key) or self._previous_entries.pop(key, None)
        if entry is None:
            entry = build_entry(
                self.config,
                watch,
                self.cluster,
                self.namespace_labels,
                self.started_at,
                health=self.health,
            )
        self._entries[key] = entry
        return entry

    def _start_watches(
        self,
        watches: list[WatchPlan],
        *,
        replace: bool = False,
        cancelled: threading.Event | None = None,
    ) -> None:
        """Group entries by informer key (one Fanout each) and make them the file's handlers
        in the pool, which starts the informers that do not run yet. ``replace`` (a reload)
        swaps all of them; otherwise these entries join (a CRD that appeared later).
        ``cancelled`` (a discovery pass's stop, which a reload sets under ``_watch_lock``)
        stops it from adding watches a newer configuration no longer wants."""
        groups: dict[InformerKey, list[EntryHandler]] = defaultdict(list)
        for watch in watches:
            entry = self._entry(watch)
            for key in watch_keys(watch):
                groups[key].append(entry)
        if any(needs_namespace_labels(self.config, w.config) for w in watches):
            self._namespaces.start(self._plan.namespaces)
        with self._watch_lock:
            if self._stopping.is_set() or (cancelled is not None and cancelled.is_set()):
                return
            fanouts = {} if replace else dict(self._fanouts)
            for key, entries in groups.items():
                fanout = self._fanouts.get(key)
                if fanout is None:
                    fanout = Fanout(
                        entries,
                        self.deliver,
                        hold=self.namespace_labels.hold,
                        while_down=functools.partial(self.pool.recovering, key),
                    )
                else:
                    fanout.set_entries(entries if replace else [*fanout.entries, *entries])
                fanouts[key] = fanout
            self._fanouts = fanouts
            self.pool.replace(FILE_OWNER, {key: [fanout] for key, fanout in fanouts.items()})

    def _informer(
        self, key: InformerKey, *, name: str | None = None, checkpoint: bool = True
    ) -> SharedInformer:
        """The informer of ``key`` with the current ``watch`` settings; checkpointed in the
        durable state (when there is one) unless ``checkpoint`` is False."""
        return new_informer(
            self.client,
            self.config.watch,
            key,
            name=name,
            rng=self._rng,
            recorder=self._recorder,
            checkpoint=(
                self.state.checkpoint.collection(key.collection)
                if checkpoint and self.state is not None
                else None
            ),
        )

    # -- reload ---------------------------------------------------------------------------

    def reload(self, config: Config, plan: Plan) -> None:
        """Apply a new, already validated configuration and its plan.

        Watches whose collection and selectors did not change keep running (no relist, no
        repeated events); their handlers are swapped. Watches no longer configured stop,
        new ones start. Sinks and routes are rebuilt; a new dispatcher takes over and the old
        one drains in the background. ``watch``, ``server`` and ``leaderElection`` settings
        apply to watches started from now on and at the next start, respectively.
        """
        with self._watch_lock:  # no discovery pass of the old configuration adds watches now
            self._discovery.stop.set()
        router = Router.build(config)
        new_dispatcher = None
        if config.sinks != self.config.sinks or config.delivery != self.config.delivery:
            new_dispatcher = self._dispatcher(config)  # may raise ConfigErrors: nothing changed
        self._delivering.swap(router, new_dispatcher, config.delivery.drain_timeout)
        self.config = config
        self.cluster = config.cluster or self.client.context_name
        self._plan = plan
        self._previous_entries, self._entries = self._entries, {}
        self._start_watches(plan.watches, replace=True)
        self._previous_entries = {}  # entries of resources no longer configured: pruned
        self._discovery.start(self.config, plan.pending)
        self.tenancy = operator_mode(self, self.tenancy)
        log.info("configuration reloaded: %d watch(es)", len(self._fanouts))
