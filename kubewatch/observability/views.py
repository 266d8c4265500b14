"""What the metrics read of live state: protocols for the Reflectors, informers, sinks,
the hold and the workers, plain callables that return them, and their defaults. Nothing
here imports the watch engine or the dispatcher."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol, TypedDict


@dataclass(frozen=True, slots=True)
class WatchState:
    """A snapshot of one watch (one informer) for metrics and readiness."""

    resource: str
    """Group-qualified resource: ``deployments.apps``, ``configmaps``."""
    scope: str
    """Which watch of that resource: ``cluster-wide``, ``in shop``, ``in shop labels app=web``."""
    synced: bool
    """The first LIST has been handed to the handlers."""
    last_activity_age_seconds: float
    """Seconds since the last sign of life: a list page, a watch (re)opened, an event or a
    bookmark. Never negative."""
    relists: int
    """LISTs after the first one (each follows a 410 Gone or a failed first watch)."""
    watch_restarts: int
    """WATCH requests that ended and were reopened (a healthy watch ends every
    ``serverTimeout`` to twice that)."""
    handler_errors: int = 0
    """Exceptions raised by the watch's handlers (each lost one change)."""
    failure: str | None = None
    """Why the latest LIST or WATCH attempt failed, until one succeeds; ``None`` when the
    latest one did."""

    @property
    def name(self) -> str:
        """How logs name the watch: ``deployments.apps in shop``."""
        return f"{self.resource} {self.scope}"

    @classmethod
    def of(cls, informer: InformerView, now: float) -> WatchState:
        """The state of ``informer`` at ``now`` (the clock of its Reflector: monotonic).

        The informer's name is a :func:`~kubewatch.watch.plan.describe_scope` string,
        ``<resource> <scope>``: the first word is the resource, the rest the scope.
        """
        resource, _, scope = informer.name.partition(" ")
        reflector = informer.reflector
        return cls(
            resource=resource,
            scope=scope or "cluster-wide",
            synced=informer.has_synced,
            last_activity_age_seconds=max(0.0, now - reflector.last_activity),
            relists=reflector.relists,
            watch_restarts=reflector.watch_restarts,
            handler_errors=informer.handler_errors,
            failure=reflector.failure,
        )


class ReflectorView(Protocol):
    """What :class:`WatchState` reads of a :class:`~kubewatch.kube.Reflector`."""

    @property
    def last_activity(self) -> float: ...

    @property
    def relists(self) -> int: ...

    @property
    def watch_restarts(self) -> int: ...

    @property
    def failure(self) -> str | None: ...


class InformerView(Protocol):
    """What :class:`WatchState` reads of a :class:`~kubewatch.kube.SharedInformer`."""

    @property
    def name(self) -> str: ...

    @property
    def has_synced(self) -> bool: ...

    @property
    def reflector(self) -> ReflectorView: ...

    @property
    def handler_errors(self) -> int: ...


def watch_states(
    informers: Iterable[InformerView], clock: Callable[[], float] = time.monotonic
) -> list[WatchState]:
    """Snapshots of ``informers``, all aged against one reading of ``clock`` (the clock the
    Reflectors were given)."""
    now = clock()
    return [WatchState.of(informer, now) for informer in informers]


class SinkStatsLike(Protocol):
    """The counters :class:`~kubewatch.delivery.SinkStats` carries (read-only)."""

    @property
    def delivered(self) -> int: ...

    @property
    def failed(self) -> int: ...

    @property
    def retried(self) -> int: ...

    @property
    def dropped(self) -> int: ...

    @property
    def digested(self) -> int: ...

    @property
    def queued(self) -> int: ...

    @property
    def held(self) -> int: ...

    @property
    def expired(self) -> int: ...

    @property
    def up(self) -> bool: ...


@dataclass(frozen=True, slots=True)
class StateView:
    """A snapshot of the durable state (``state.path``) for metrics."""

    spooled: Mapping[str, int]
    """Events owed now, per sink."""
    oldest_age_seconds: float | None
    checkpoint_age_seconds: float | None
    """Seconds since the last commit of the spool and checkpoint; None before the first."""
    recovered: Mapping[str, int]
    """Events recovered at start, by kind: ``spool`` (undelivered), ``while_down``."""
    healthy: bool
    """False once a write failed and the state fell back to memory."""


class HoldStatsLike(Protocol):
    """The counters of :class:`~kubewatch.watch.nshold.HoldStats` (read-only)."""

    @property
    def held_total(self) -> int: ...

    @property
    def expired_total(self) -> int: ...

    @property
    def held(self) -> int: ...


class WorkerStatsLike(Protocol):
    """The counters of :class:`~kubewatch.delivery.supervise.WorkerStats` (read-only)."""

    @property
    def restarts(self) -> int: ...

    @property
    def callback_errors(self) -> int: ...


WatchSource = Callable[[], Iterable[WatchState]]
"""Called at scrape time: the current state of every watch."""
SinkSource = Callable[[], Mapping[str, SinkStatsLike]]
"""Called at scrape time: sink name → counters (``Dispatcher.stats``)."""
StateSource = Callable[[], StateView | None]
"""Called at scrape time: the durable state, or None without ``state.path``."""
LeaderSource = Callable[[], bool | None]
"""Called at scrape time: this replica leads (True), waits (False), or no election (None)."""
CountSource = Callable[[], int]
"""Called at scrape time: a counter kept elsewhere (``HandoverBuffer.dropped``)."""
HoldSource = Callable[[], HoldStatsLike | None]
"""Called at scrape time: the namespace hold's counters (``NamespaceHold.stats``)."""
WorkerSource = Callable[[], Mapping[str, WorkerStatsLike]]
"""Called at scrape time: sink name → its workers' counters (``Dispatcher.worker_stats``)."""
InformerCountSource = Callable[[], Mapping[str, int]]
"""Called at scrape time: resource → informers open for it (``InformerPool.counts``)."""


class Sources(TypedDict, total=False):
    """What the collector reads at scrape time, by keyword; a source left out reads as
    empty (no watches, no sinks, no election, no state, zero, no hold, no workers)."""

    informers: WatchSource
    sinks: SinkSource
    leader: LeaderSource
    state: StateSource
    handover_dropped: CountSource
    namespace_hold: HoldSource
    workers: WorkerSource
    informer_counts: InformerCountSource
    notifiers: InformerCountSource
    """Operator mode: reason of the last reconcile → Notifiers (``Controller.counts``)."""
    version: str
    """The ``version`` label of ``kubewatch_build_info``."""
