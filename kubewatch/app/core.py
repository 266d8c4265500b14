"""The application: wires config → cluster → informers → events → routing → delivery → sinks.

It owns the lifecycle. :func:`~kubewatch.watch.plan.resolve_resources` resolves every resource
and ``App(...)`` compiles sinks, templates and routes before anything starts (a mistake is
a :class:`~kubewatch.errors.ConfigErrors`, nothing runs); ``start`` opens the watches (and
the health server, and the leader election); ``reload`` applies a new configuration while
unchanged watches keep running; ``stop`` ends the watches first, then drains what is
queued within ``delivery.drainTimeout``. Resources whose CRD is not installed yet are
re-checked through discovery every ``watch.discoveryInterval`` and watched once they appear.

High availability: every replica watches (its cache stays warm), only the leader delivers.
A standby keeps the events of the last ``2 * leaseDuration`` seconds and delivers them when
it takes over, so a handover repeats some events (receivers de-duplicate by ``id``) rather
than losing the ones the old leader had not yet sent.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone

from kubewatch.app.build import build_sinks, default_identity, sink_services, sum_stats
from kubewatch.app.discovery import PendingDiscovery
from kubewatch.app.handover import HandoverBuffer
from kubewatch.app.recovery import resubmit, take_over
from kubewatch.config import Config
from kubewatch.delivery import Dispatcher, SinkStats
from kubewatch.delivery.policy import sink_policies
from kubewatch.delivery.supervise import WorkerStats
from kubewatch.errors import ApiError
from kubewatch.events import Event
from kubewatch.kube import ReflectorSettings, SharedInformer
from kubewatch.kube.client import ClusterClient, ListWatch, Query
from kubewatch.kube.discovery import ResourceTable, ResourceType
from kubewatch.kube.leader import LeaderElector, lease_namespace
from kubewatch.kube.logs import PodLogs
from kubewatch.kube.recorder import EventRecorder
from kubewatch.observability.health import HealthServer, Heartbeats, Readiness
from kubewatch.observability.metrics import (
    Metrics,
    StateView,
    WatchState,
    seconds_since,
    watch_states,
)
from kubewatch.routing import Router
from kubewatch.state import AlertTable, State, open_state
from kubewatch.watch.alerting import HealthAlerts
from kubewatch.watch.filters import NamespaceLabels
from kubewatch.watch.normalize import compact
from kubewatch.watch.pipeline import EntryHandler, Fanout, build_entry, needs_namespace_labels
from kubewatch.watch.plan import Plan, WatchPlan, describe_scope, resolve_resources

log = logging.getLogger("kubewatch.app")

NAMESPACE_SYNC_TIMEOUT = 30.0
"""Seconds to wait for the Namespace watch before the others start: namespace selectors
need the labels, and a resource watch that starts first would misjudge early objects."""
STOP_POLL_INTERVAL = 0.1
"""Seconds between looks at a stop request while a start step waits: a SIGTERM ends the
wait within this, not after the step's timeout."""
LIVENESS_TIMEOUT = 60.0
"""Seconds a registered loop may go without a heartbeat before ``/healthz`` fails."""
ALIVE_INTERVAL = 30.0
"""Seconds between two notes in the state of when this run was last up: after a crash,
Kubernetes Events since then count as news (the start-time rule of Event alerts)."""

InformerKey = tuple[str, str | None, str | None]
"""(collection path, label selector, field selector): one informer each."""
Groups = dict[InformerKey, list[EntryHandler]]
Origin = tuple[WatchPlan, str | None]


def _recovering(informer: SharedInformer) -> Callable[[], bool]:
    return lambda: informer.recovering


@dataclass(frozen=True, slots=True)
class _Route:
    """The router and the dispatcher that go with it: swapped together by a reload, so an
    event is never routed by one configuration and delivered by another's sinks."""

    router: Router
    dispatcher: Dispatcher


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
        self._recovered = {"spool": 0, "while_down": 0}
        self.lost = 0
        """Events the last ``stop`` could neither deliver nor keep (no durable state)."""
        self._unspooled: list[tuple[str, Event]] = []  # recovered, for when we lead
        self.namespace_labels = NamespaceLabels()
        self.metrics = Metrics(
            informers=self.watch_states,
            sinks=self._sink_stats,
            leader=self._leader,
            state=self._state_view,
            handover_dropped=self._handover_dropped,
            namespace_hold=self.namespace_labels.hold.stats,
            workers=self._worker_stats,
        )
        self._route = _Route(Router.build(config), self._dispatcher(config))
        # Dispatchers a reload replaced: final counters of the finished ones, and the ones
        # still draining (so /metrics counters stay cumulative across reloads).
        self._retired: dict[str, SinkStats] = {}
        self._retiring: list[Dispatcher] = []
        self._retire_threads: list[threading.Thread] = []
        self.started_at = datetime.now(timezone.utc)
        previous = self.state.checkpoint.previous_run() if self.state is not None else None
        if previous is not None:  # Events since the last run was seen up are news
            self.started_at = min(self.started_at, datetime.fromtimestamp(previous, timezone.utc))
        self.heartbeats = Heartbeats(LIVENESS_TIMEOUT)
        self.heartbeats.add_check(self._workers_alive)
        self.informers: dict[InformerKey, SharedInformer] = {}
        self._fanouts: dict[InformerKey, Fanout] = {}
        self._entries: dict[tuple[str, str, str], EntryHandler] = {}
        self._previous_entries: dict[tuple[str, str, str], EntryHandler] = {}
        self._namespace_informer: SharedInformer | None = None
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._discovery = PendingDiscovery(
            client,
            lambda found, stop: self._start_watches(found, cancelled=stop),
            recorder,
        )
        self._rng = random.Random()
        self._server: HealthServer | None = None
        self._elector: LeaderElector | None = None
        self._leading = not config.leader_election.enabled
        self._handover = HandoverBuffer(2 * config.leader_election.lease_duration)
        # Makes deliver's look at _leading and _route and its submit one step, and
        # _start_leading's switch, drain and submit another, and a reload's swap and hand
        # over a third: otherwise an event added just after a drain would wait in the
        # buffer until the next takeover (lost), a new event could overtake drained or
        # handed-over ones, or reach a dispatcher that no longer takes events.
        self._leading_lock = threading.Lock()
        alerts = AlertTable(self.state.db) if self.state is not None else None
        self.health = HealthAlerts(self.deliver, store=alerts, logs=PodLogs(client))

    @staticmethod
    def plan(config: Config, client: ClusterClient) -> Plan:
        """Resolve the configured resources through discovery (raises ConfigErrors)."""
        return resolve_resources(config, ResourceTable.fetch(client.get_json))

    @property
    def router(self) -> Router:
        return self._route.router

    @property
    def dispatcher(self) -> Dispatcher:
        return self._route.dispatcher

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
        if self.state is not None:
            self._recover()
        self.dispatcher.start()
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
        election = self.config.leader_election
        if election.enabled:
            self._elector = LeaderElector(
                self.client,
                election,
                identity=default_identity(),
                namespace=lease_namespace(election),
                on_started_leading=self._start_leading,
                on_stopped_leading=self._stop_leading,
                recorder=self._recorder,
            )
            self._elector.start()
        self._start_watches(self._plan.watches)
        self._discovery.start(self.config, self._plan.pending)
        if self.state is not None:
            threading.Thread(target=self._note_alive, name="kubewatch-alive", daemon=True).start()

    def _recover(self) -> None:
        """Queue what the last run left undelivered; forget checkpoints no longer watched."""
        assert self.state is not None
        gone = self.state.checkpoint.prune(
            self._collection(key) for watch in self._plan.watches for key in self._keys(watch)
        )
        if gone:
            log.info("state: forgot the checkpoint of %d unwatched collection(s)", len(gone))
        recovered = self.state.spool.recover()
        self._recovered["spool"] = len(recovered)
        if not recovered:
            return
        log.info(
            "state: %d undelivered event(s) from the last run%s",
            len(recovered),
            "" if self._leading else "; delivered if this replica leads",
        )
        with self._leading_lock:
            if self._leading:
                resubmit(self.state, self.dispatcher, recovered)
            else:
                self._unspooled = recovered

    def _note_alive(self) -> None:
        while not self._stopping.wait(ALIVE_INTERVAL):
            if self.state is not None:
                self.state.checkpoint.mark_alive()

    @property
    def health_port(self) -> int | None:
        return self._server.port if self._server is not None else None

    def wait_for_sync(self, timeout: float | None = None) -> bool:
        """True when every started watch has listed once (informational, for tests/CLI)."""
        with self._lock:
            informers = list(self.informers.values())
        return all(inf.wait_for_sync(timeout) for inf in informers)

    def request_stop(self) -> None:
        """Make every wait of ``start`` end now (any thread; a signal handler too): a
        SIGTERM while namespaces are being listed is not held up by that wait."""
        self._stopping.set()

    def stop(self) -> bool:
        """Stop watching, then drain deliveries; True if everything queued was handled."""
        self._stopping.set()
        self._discovery.stop.set()
        with self._lock:
            informers = list(self.informers.values())
            if self._namespace_informer is not None:
                informers.append(self._namespace_informer)
        for informer in informers:
            informer.reflector.stop()
        for informer in informers:
            informer.stop(timeout=5.0)
        self.health.stop()
        with self._lock:
            retiring = list(self._retire_threads)
        for thread in retiring:  # a reload's old dispatcher drains, then the new one starts
            thread.join(self.config.delivery.drain_timeout + 5.0)
        dispatcher = self.dispatcher
        drained = dispatcher.close(self.config.delivery.drain_timeout)
        self._log_stats(dispatcher)
        self.lost = 0
        if self.state is not None:
            kept = sum(self.state.spool.depth().values())
            if not self.state.db.healthy:
                self.lost = dispatcher.abandoned
            elif kept:
                log.info("state: %d event(s) kept in the spool for the next start", kept)
            self.state.close()
        else:
            self.lost = dispatcher.abandoned
        if self.lost:
            log.error(
                "%d event(s) were not delivered and are lost (no durable state: set "
                "state.path or --state-dir to keep them)",
                self.lost,
            )
        if self._elector is not None:
            self._elector.stop(release=True, timeout=5.0)
        if self._recorder is not None:
            self._recorder.close()
        if self._server is not None:
            self._server.stop()
        self.client.close()
        return drained

    @staticmethod
    def _log_stats(dispatcher: Dispatcher) -> None:
        for name, stats in dispatcher.stats().items():
            log.info(
                "sink %s: delivered %d, failed %d, retried %d, dropped %d, digested %d",
                name,
                stats.delivered,
                stats.failed,
                stats.retried,
                stats.dropped,
                stats.digested,
            )

    # -- the per-event path ---------------------------------------------------------------

    def deliver(self, event: Event) -> None:
        """Count, route, spool and hand one event to the dispatcher (never blocks)."""
        self.metrics.observe_event(event.resource, event.type.value)
        if event.while_down:
            self._recovered["while_down"] += 1  # informer threads: a GIL-atomic-enough count
        route = self._route
        sinks = route.router.route(event)
        if not sinks:
            return
        with self._leading_lock:
            if self._route is not route:  # a reload swapped them since: route again
                route = self._route
                sinks = route.router.route(event)
                if not sinks:
                    return
            if not self._leading:
                self._handover.add(event, sinks)
                return
            if self.state is not None:
                self.state.spool.put(event, sinks)
            route.dispatcher.submit(event, sinks)

    def _sink_stats(self) -> dict[str, SinkStats]:
        with self._lock:
            retiring = [d.stats() for d in self._retiring]
            retired = dict(self._retired)
        return sum_stats([retired, *retiring, self.dispatcher.stats()])

    def _state_view(self) -> StateView | None:
        state = self.state
        if state is None:
            return None
        committed = state.db.last_commit
        return StateView(
            spooled=state.spool.depth(),
            oldest_age_seconds=state.spool.oldest_age(),
            checkpoint_age_seconds=None if committed is None else max(0.0, time.time() - committed),
            recovered=dict(self._recovered),
            healthy=state.db.healthy,
        )

    def _sink_state(self, sink: str, up: bool, reason: str) -> None:
        if self._recorder is None:
            return
        if up:
            self._recorder.normal("SinkUp", f"sink {sink} is delivering again")
        else:
            self._recorder.warning("SinkDown", f"sink {sink} is down: {reason}")

    def _worker_stats(self) -> dict[str, WorkerStats]:
        return self.dispatcher.worker_stats()

    def _workers_alive(self) -> tuple[bool, list[str]]:
        return self.dispatcher.workers_alive()

    def _handover_dropped(self) -> int:
        return self._handover.dropped

    def _delivered(self, sink: str, event: Event) -> None:
        self.metrics.observe_delivery(sink, seconds_since(event.observed_at))

    def _failed(self, sink: str, event: Event, reason: str, permanent: bool) -> None:
        if permanent and self._recorder is not None:
            self._recorder.warning("SinkFailed", f"sink {sink}: {reason}")

    # -- leadership -----------------------------------------------------------------------

    def _leader(self) -> bool | None:
        return None if self._elector is None else self._elector.is_leader

    def _start_leading(self) -> None:
        with self._leading_lock:
            self._leading = True
            pending = self._handover.drain()
            if pending:
                log.info(
                    "leading: delivering %d event(s) seen in the last %.0fs as a standby "
                    "(receivers may get some twice: de-duplicate by id)",
                    len(pending),
                    2 * self.config.leader_election.lease_duration,
                )
            if self._unspooled:
                assert self.state is not None  # only a state's spool fills it
                resubmit(self.state, self.dispatcher, self._unspooled)
                self._unspooled = []
            known = set(self.dispatcher.stats())  # a reload may have removed a sink since
            for event, sinks in pending:
                names = tuple(name for name in sinks if name in known)
                if names:
                    if self.state is not None:
                        self.state.spool.put(event, names)
                    self.dispatcher.submit(event, names)  # never blocks

    def _stop_leading(self) -> None:
        with self._leading_lock:
            self._leading = False

    # -- health ---------------------------------------------------------------------------

    def watch_states(self) -> list[WatchState]:
        with self._lock:
            informers = list(self.informers.values())
            if self._namespace_informer is not None:
                informers.append(self._namespace_informer)
        return watch_states(informers)

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

    def _groups(
        self, watches: list[WatchPlan]
    ) -> tuple[
        dict[InformerKey, list[EntryHandler]], dict[InformerKey, tuple[WatchPlan, str | None]]
    ]:
        groups: Groups = defaultdict(list)
        firsts: dict[InformerKey, Origin] = {}
        for watch in watches:
            entry = self._entry(watch)
            query = Query(watch.config.label_selector, watch.field_selector)
            for namespace in watch.namespaces:
                key = (watch.resource.path(namespace), query.label_selector, query.field_selector)
                groups[key].append(entry)
                firsts.setdefault(key, (watch, namespace))
        return groups, firsts

    def _start_watches(
        self,
        watches: list[WatchPlan],
        *,
        replace: bool = False,
        cancelled: threading.Event | None = None,
    ) -> None:
        """Group entries by informer (one informer per collection and selectors) and start
        the informers that do not run yet. For one that runs, ``replace`` swaps its
        entries (a reload); otherwise these entries join it (a CRD that appeared later).
        ``cancelled`` (a discovery pass's stop, which a reload sets under ``_lock``) stops
        it from adding watches a newer configuration no longer wants."""
        groups, firsts = self._groups(watches)
        if any(needs_namespace_labels(self.config, w.config) for w in watches):
            self._start_namespace_watch()
        for key, entries in groups.items():
            watch, namespace = firsts[key]
            with self._lock:
                if self._stopping.is_set() or (cancelled is not None and cancelled.is_set()):
                    return
                fanout = self._fanouts.get(key)
                if fanout is not None:
                    fanout.set_entries(entries if replace else [*fanout.entries, *entries])
                    continue
                informer = self._informer(
                    key,
                    describe_scope(watch, namespace),
                    watch.resource,
                    checkpoint=self.state is not None,
                )
                fanout = Fanout(
                    entries,
                    self.deliver,
                    hold=self.namespace_labels.hold,
                    while_down=_recovering(informer),
                )
                informer.add_handler(fanout)
                self.informers[key] = informer
                self._fanouts[key] = fanout
            log.info("watching %s", informer.name)
            informer.start()

    @staticmethod
    def _collection(key: InformerKey) -> str:
        """The checkpoint's name of the collection ``key``."""
        path, labels, fields = key
        return f"{path}?labelSelector={labels or ''}&fieldSelector={fields or ''}"

    def _informer(
        self, key: InformerKey, name: str, resource: ResourceType, *, checkpoint: bool = False
    ) -> SharedInformer:
        """One informer on the collection ``key``, with the current ``watch`` settings;
        ``checkpoint``: kept in the durable state (a restart reports what changed)."""
        watch_config = self.config.watch
        settings = ReflectorSettings(
            page_size=watch_config.page_size,
            server_timeout=watch_config.server_timeout,
            read_timeout=watch_config.read_timeout,
        )
        return SharedInformer(
            name,
            ListWatch(self.client, key[0], Query(key[1], key[2]), settings.read_timeout),
            kind=resource.kind,
            api_version=resource.api_version,
            settings=settings,
            transform=compact,
            rng=self._rng,
            on_api_error=lambda error: self._api_error(name, error),
            checkpoint=(
                self.state.checkpoint.collection(self._collection(key))
                if checkpoint and self.state is not None
                else None
            ),
        )

    def _api_error(self, watch: str, error: ApiError) -> None:
        if self._recorder is None:
            return
        if error.status == 403:
            self._recorder.warning("WatchForbidden", f"{watch}: forbidden ({error.message})")
        elif error.status == 404:
            self._recorder.warning("ResourceMissing", f"{watch}: not found ({error.message})")

    def _start_namespace_watch(self) -> None:
        with self._lock:
            if self._stopping.is_set():
                return
            if self._namespace_informer is not None or self._plan.namespaces is None:
                return
            resource = self._plan.namespaces
            informer = self._informer(
                (resource.path(), None, None), "namespaces (for namespace selectors)", resource
            )
            informer.add_handler(self.namespace_labels)
            self._namespace_informer = informer
        informer.start()
        deadline = time.monotonic() + NAMESPACE_SYNC_TIMEOUT
        while not informer.wait_for_sync(STOP_POLL_INTERVAL):
            if self._stopping.is_set():
                return
            if time.monotonic() >= deadline:
                break
        else:
            return
        log.warning(
            "namespaces not listed within %.0fs; namespace selectors admit nothing until then",
            NAMESPACE_SYNC_TIMEOUT,
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
        with self._lock:  # no discovery pass of the old configuration starts watches now
            self._discovery.stop.set()
        router = Router.build(config)
        old_dispatcher = None
        new_dispatcher = None
        if config.sinks != self.config.sinks or config.delivery != self.config.delivery:
            new_dispatcher = self._dispatcher(config)  # may raise ConfigErrors: nothing changed
        with self._leading_lock:
            old = self._route
            self._route = _Route(router, new_dispatcher or old.dispatcher)
            if new_dispatcher is not None:
                old_dispatcher = old.dispatcher
                with self._lock:
                    self._retiring.append(old_dispatcher)
                take_over(self.state, old_dispatcher, new_dispatcher)
        self.config = config
        self.cluster = config.cluster or self.client.context_name
        self._plan = plan
        self._previous_entries, self._entries = self._entries, {}
        wanted = {key for watch in plan.watches for key in self._keys(watch)}
        with self._lock:
            stopped = [self.informers.pop(key) for key in list(self.informers) if key not in wanted]
            for key in list(self._fanouts):
                if key not in wanted:
                    del self._fanouts[key]
        for informer in stopped:
            log.info("no longer watching %s", informer.name)
            informer.stop(timeout=5.0)
        self._start_watches(plan.watches, replace=True)
        self._previous_entries = {}  # entries of resources no longer configured: pruned
        self._discovery.start(self.config, plan.pending)
        if old_dispatcher is not None:
            with self._lock:
                before = self._retire_threads[-1] if self._retire_threads else None
                retire = threading.Thread(
                    target=self._retire,
                    args=(old_dispatcher, new_dispatcher, before),
                    name="kubewatch-retire",
                    daemon=True,
                )
                self._retire_threads.append(retire)
            retire.start()
        log.info("configuration reloaded: %d watch(es)", len(self.informers))

    @staticmethod
    def _keys(watch: WatchPlan) -> list[InformerKey]:
        query = Query(watch.config.label_selector, watch.field_selector)
        return [
            (watch.resource.path(ns), query.label_selector, query.field_selector)
            for ns in watch.namespaces
        ]

    def _retire(
        self, old: Dispatcher, new: Dispatcher | None, before: threading.Thread | None
    ) -> None:
        """Let ``old`` finish its sends in flight, then start ``new``: no newer event of
        an object overtakes one still being sent by the old configuration's sinks.

        Retirements run in reload order (``before`` is the previous one): after two quick
        reloads the second's ``old`` never started, and only waiting for the first makes
        sure the oldest dispatcher's sends are done before the newest one starts."""
        if before is not None:
            before.join()
        old.close(self.config.delivery.drain_timeout)
        self._log_stats(old)
        if new is not None:
            try:
                new.start()
            except RuntimeError:  # a later reload already handed its queue over: closed
                log.debug("reload: a newer configuration replaced this one before it started")
        with self._lock:
            self._retired = sum_stats([self._retired, old.stats()])
            self._retiring.remove(old)
            self._retire_threads.remove(threading.current_thread())
