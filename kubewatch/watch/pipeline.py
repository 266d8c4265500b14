"""The per-object path: informer callbacks → filter → event → route → dispatcher.

One :class:`EntryHandler` per configured resource entry decides whether an object
change becomes an event; one :class:`Fanout` per informer asks its entries in config
order and delivers the first event produced, so an object change reaches a given sink
at most once even when entries overlap. Runs on the informer's thread: it never blocks
(the dispatcher's ``submit`` only enqueues).
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from kubewatch.config import Config, ResourceConfig
from kubewatch.events import Event
from kubewatch.kube import DeletedFinalStateUnknown
from kubewatch.timefmt import rfc3339
from kubewatch.watch.alerting import HealthSource, HealthWatch
from kubewatch.watch.filters import NamespaceLabels, ObjectFilter
from kubewatch.watch.kevents import KubeEventAlerts
from kubewatch.watch.normalize import EventBuilder, ResourceInfo, update_trees
from kubewatch.watch.nshold import NamespaceHold
from kubewatch.watch.plan import WatchPlan

log = logging.getLogger(__name__)


class EntryHandler:
    """Turns changes of one resource entry's objects into events, or into nothing.

    An update is considered when the old or the new object passes the entry's filter, so
    an object leaving the selection (a label removed) is reported once. Kubernetes Events
    go through :class:`KubeEventAlerts` instead (their deletes are TTL expiry, never news).
    With ``health``, every add, update and delete is also assessed for health alerts
    (:mod:`kubewatch.watch.alerting`), status-only updates included; those are sent by
    the health runtime, not returned here.
    """

    def __init__(
        self,
        config: ResourceConfig,
        builder: EventBuilder,
        object_filter: ObjectFilter,
        alerts: KubeEventAlerts | None = None,
        health: HealthWatch | None = None,
    ) -> None:
        self._builder = builder
        self._filter = object_filter
        self._alerts = alerts
        self._health = health
        self._create = "create" in config.events
        self._update = "update" in config.events
        self._delete = "delete" in config.events
        self._notify_existing = config.notify_existing
        self.quiet_is_nothing = alerts is None and health is None and builder.quiet_is_unchanged
        """True when an update of equal significant parts is nothing to this entry (no Event
        alerts or health to see it, and a diff that has nothing to report), whatever the
        filter says; so it needs neither the old object nor the diff."""

    @property
    def needs_namespace_labels(self) -> bool:
        """True when a namespace selector judges this entry's objects."""
        return self._filter.needs_namespace_labels

    def health_added(self, obj: dict[str, Any], initial: bool, while_down: bool) -> None:
        if self._health is not None and self._filter.admits(obj):
            self._health.observe(obj, initial=initial, while_down=while_down)

    def health_updated(self, old: dict[str, Any], new: dict[str, Any], while_down: bool) -> None:
        if self._health is None:
            return
        if self._filter.admits(new):
            self._health.observe(new, initial=False, while_down=while_down)
        elif self._filter.admits(old):  # left the selection: its alerts are over
            self._health.gone(new, while_down=while_down)

    def health_deleted(
        self, obj: dict[str, Any] | DeletedFinalStateUnknown, while_down: bool
    ) -> None:
        if self._health is not None:
            last = obj.obj if isinstance(obj, DeletedFinalStateUnknown) else obj
            self._health.gone(last, while_down=while_down)

    def added(self, obj: dict[str, Any], is_initial_list: bool) -> Event | None:
        if not self._filter.admits(obj):
            return None
        if self._alerts is not None:
            return self._alerts.observe(obj)
        if not self._create or (is_initial_list and not self._notify_existing):
            return None
        return self._builder.created(obj)

    def updated(self, old: dict[str, Any], new: dict[str, Any]) -> Event | None:
        if not (self._filter.admits(new) or self._filter.admits(old)):
            return None
        if self._alerts is not None:
            return self._alerts.observe(new)
        if not self._update:
            return None
        return self._builder.updated(old, new)

    def deleted(self, obj: dict[str, Any] | DeletedFinalStateUnknown) -> Event | None:
        unknown = isinstance(obj, DeletedFinalStateUnknown)
        last = obj.obj if isinstance(obj, DeletedFinalStateUnknown) else obj
        if self._alerts is not None:
            self._alerts.forget(last)
            return None
        if not self._delete:
            return None
        if not self._filter.admits(last):
            return None
        return self._builder.deleted(last, final_state_unknown=unknown)


class Fanout:
    """The handler registered on one informer: first entry with an event wins.

    With a ``hold`` and an entry whose namespace selector needs namespace labels, a
    change of an object in a namespace the Namespace watch has not reported yet is held
    and judged once it has (see :mod:`kubewatch.watch.nshold`), so a Namespace and its objects
    applied together lose nothing to the race between the two watches.

    ``while_down`` (the informer's ``recovering``) says whether a change comes from the
    first list compared with a checkpoint: its event is then marked ``whileDown``.
    """

    def __init__(
        self,
        entries: Sequence[EntryHandler],
        deliver: Callable[[Event], None],
        *,
        hold: NamespaceHold | None = None,
        while_down: Callable[[], bool] | None = None,
    ) -> None:
        self._deliver = deliver
        self._hold_for = hold
        self._while_down = while_down
        self._state = self._with_hold(entries)

    def _with_hold(
        self, entries: Sequence[EntryHandler]
    ) -> tuple[tuple[EntryHandler, ...], NamespaceHold | None]:
        entries = tuple(entries)
        needs = any(e.needs_namespace_labels for e in entries)
        return entries, self._hold_for if needs else None

    @property
    def entries(self) -> tuple[EntryHandler, ...]:
        return self._state[0]

    def set_entries(self, entries: Sequence[EntryHandler]) -> None:
        """Swap the entries (a config reload) while the informer keeps running: one
        attribute assignment, so a callback sees either the old set or the new one."""
        self._state = self._with_hold(entries)

    def _down(self) -> bool:
        """Asked when the informer reports a change (a held change keeps its answer)."""
        return self._while_down is not None and self._while_down()

    def on_add(self, obj: dict[str, Any], is_initial_list: bool) -> None:
        hold, down = self._state[1], self._down()
        initial = is_initial_list
        if hold is not None and _held(hold, obj, functools.partial(self._add, obj, initial, down)):
            return
        self._add(obj, initial, down)

    def on_update(self, old: dict[str, Any], new: dict[str, Any]) -> None:
        hold, down = self._state[1], self._down()
        if hold is not None and _held(hold, new, functools.partial(self._update, old, new, down)):
            return
        self._update(old, new, down)

    def on_quiet_update(self, old: Callable[[], dict[str, Any]], new: dict[str, Any]) -> None:
        """An update of equal significant parts: nothing unless an entry watches health or
        Events (then as :meth:`on_update`, with the old object decoded)."""
        hold, down = self._state[1], self._down()
        run = functools.partial(self._quiet_update, old, new, down)
        if hold is not None and _held(hold, new, run):
            return
        run()

    def _quiet_update(
        self, old: Callable[[], dict[str, Any]], new: dict[str, Any], while_down: bool
    ) -> None:
        if not all(entry.quiet_is_nothing for entry in self._state[0]):
            self._update(old(), new, while_down)

    def on_delete(self, obj: dict[str, Any] | DeletedFinalStateUnknown) -> None:
        hold, down = self._state[1], self._down()
        last = obj.obj if isinstance(obj, DeletedFinalStateUnknown) else obj
        if hold is not None and _held(hold, last, functools.partial(self._delete, obj, down)):
            return
        self._delete(obj, down)

    def _emit(self, event: Event, while_down: bool) -> None:
        if while_down:
            event = dataclasses.replace(event, while_down=True)
        self._deliver(event)

    def _add(self, obj: dict[str, Any], is_initial_list: bool, while_down: bool = False) -> None:
        for entry in self._state[0]:  # health sees every change, whichever entry reports it
            entry.health_added(obj, is_initial_list, while_down)
        for entry in self._state[0]:
            event = entry.added(obj, is_initial_list)
            if event is not None:
                self._emit(event, while_down)
                return

    def _update(self, old: dict[str, Any], new: dict[str, Any], while_down: bool = False) -> None:
        for entry in self._state[0]:
            entry.health_updated(old, new, while_down)
        for entry in self._state[0]:
            event = entry.updated(old, new)
            if event is not None:
                self._emit(event, while_down)
                return

    def _delete(
        self, obj: dict[str, Any] | DeletedFinalStateUnknown, while_down: bool = False
    ) -> None:
        for entry in self._state[0]:
            entry.health_deleted(obj, while_down)
        for entry in self._state[0]:
            event = entry.deleted(obj)
            if event is not None:
                self._emit(event, while_down)
                return


def _held(hold: NamespaceHold, obj: dict[str, Any], run: Callable[[], None]) -> bool:
    """True when ``hold`` took the change ``run`` of ``obj`` (its namespace is not known)."""
    namespace = (obj.get("metadata") or {}).get("namespace")
    if not namespace:  # cluster-scoped: no namespace condition applies
        return False
    return hold.defer(namespace, obj, run)


def build_entry(
    config: Config,
    watch: WatchPlan,
    cluster: str,
    namespace_labels: NamespaceLabels,
    started_at: datetime,
    *,
    clock: Callable[[], datetime] | None = None,
    health: HealthSource | None = None,
) -> EntryHandler:
    """The handler of one resolved resource entry, as ``kubewatch run`` and replay build it.

    ``clock`` (default: the wall clock) stamps ``observedAt`` and measures Event repeat
    windows; ``started_at`` is when Kubernetes Events start to count; ``health`` tracks
    the entry's objects when it sets ``health`` (without it, ``health`` is not acted on).
    """
    rc, resource = watch.config, watch.resource
    info = ResourceInfo(resource.kind, resource.api_version, resource.group_resource)
    ignore, only = update_trees(rc.updates)
    if clock is None:
        builder = EventBuilder(cluster, info, ignore=ignore, only=only)
    else:
        now = clock
        builder = EventBuilder(
            cluster, info, ignore=ignore, only=only, clock=lambda: rfc3339(now())
        )
    object_filter = ObjectFilter.build(config, rc, namespace_labels)
    alerts = None
    if watch.is_kube_event:
        if clock is None:
            alerts = KubeEventAlerts(cluster, info, rc, started_at=started_at)
        else:
            alerts = KubeEventAlerts(cluster, info, rc, started_at=started_at, clock=clock)
    watch_health = None
    if health is not None and rc.health is not None:
        watch_health = health.entry(info, cluster, rc.health)
    return EntryHandler(rc, builder, object_filter, alerts, watch_health)


def needs_namespace_labels(config: Config, rc: ResourceConfig) -> bool:
    """True when a namespace selector applies to ``rc``'s objects (a Namespace watch is
    needed live; Namespace objects in the input in a replay)."""
    return ObjectFilter.build(config, rc, NamespaceLabels()).needs_namespace_labels
