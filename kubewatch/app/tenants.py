"""Operator mode in the app (``tenancy.enabled``): the Notifier controller, wired to the
app's informer pool, Namespace watch, durable spool, leadership and EventRecorder.

Tenants' dispatchers are built like the file's (same sinks, policies, journal), so their
events are spooled under their prefixed sink names (``team-a/web-alerts/chat``). Every
replica reconciles (the status it writes is the same, so a second write is a no-op); only
the leader delivers. Kept out of :mod:`.core`, which reads the app's parts for it.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections import defaultdict
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from kubewatch.app.build import build_sinks
from kubewatch.app.informers import new_informer
from kubewatch.app.recovery import resubmit
from kubewatch.config import Config
from kubewatch.delivery import Dispatcher
from kubewatch.delivery.policy import sink_policies
from kubewatch.events import Event
from kubewatch.kube.discovery import ResourceTable
from kubewatch.kube.informer import Transform
from kubewatch.kube.pool import InformerKey
from kubewatch.state import AlertTable
from kubewatch.tenancy.controller import Controller, Informer
from kubewatch.tenancy.tenant import TenantServices

if TYPE_CHECKING:
    from kubewatch.app.core import App

__all__ = ["start_tenancy", "tenancy"]

log = logging.getLogger("kubewatch.app")

SPOOL_SYNC_TIMEOUT = 300.0
"""Seconds to wait for the Notifiers' first list before spooled events of deleted ones are
dropped (without it they stay in the spool for the next start)."""


class Spooled:
    """What the last run spooled for Notifiers' sinks: queued on each Notifier's dispatcher
    when it runs again (if this replica leads), settled when its Notifier is gone."""

    def __init__(self, app: App) -> None:
        self._app = app
        self._lock = threading.Lock()
        self._items: dict[str, list[tuple[str, Event]]] = defaultdict(list)
        for sink, event in app._delivering.tenant_spool:
            self._items[sink.rsplit("/", 1)[0]].append((sink, event))

    def recover(self, key: str, dispatcher: Dispatcher) -> None:
        with self._lock:
            items = self._items.pop(key, [])
        state = self._app.state
        if items and state is not None and self._app._delivering.leading:
            log.info("Notifier %s: %d undelivered event(s) from the last run", key, len(items))
            resubmit(state, dispatcher, items, self._app._stopping)

    def forget_gone(self, notifiers: Informer) -> None:
        """Once the Notifiers are listed: the spooled events of deleted ones leave."""
        if not notifiers.wait_for_sync(SPOOL_SYNC_TIMEOUT):
            return
        known = set(notifiers.store)
        with self._lock:
            gone = {k: v for k, v in self._items.items() if k not in known}
            for key in gone:
                del self._items[key]
        state = self._app.state
        if state is None or not gone:
            return
        for items in gone.values():
            for sink, event in items:
                state.spool.settle(sink, event.id)
        count = sum(len(v) for v in gone.values())
        log.warning("state: %d spooled event(s) of deleted Notifiers dropped", count)


def _services(app: App, spooled: Spooled | None = None) -> TenantServices:
    state = app.state

    def new_dispatcher(
        config: Config,
        on_delivered: Callable[[str, Event], None],
        on_failed: Callable[[str, Event, str, bool], None],
    ) -> Dispatcher:
        def delivered(sink: str, event: Event) -> None:
            app._delivered(sink, event)
            on_delivered(sink, event)

        return Dispatcher(
            build_sinks(config, app._sink_services),
            config.delivery,
            policies=sink_policies(config),
            on_delivered=delivered,
            on_failed=on_failed,
            journal=state.spool if state is not None else None,
        )

    return TenantServices(
        base=app.config,
        cluster=app.cluster,
        pool=app.pool,
        table=ResourceTable.fetch(app.client.get_json),
        namespace_labels=app.namespace_labels,
        started_at=app.started_at,
        new_dispatcher=new_dispatcher,
        hand=app._delivering.hand,
        observe=app.metrics.observe_event,
        recover=spooled.recover if spooled is not None else None,
        health=app.health,
        alert_records=(lambda key: AlertTable(state.db, key)) if state is not None else None,
    )


def start_tenancy(app: App) -> Controller:
    """Start the controller beside the file's watches (after them: they are not delayed)."""
    config = app.config

    def informer(key: InformerKey, transform: Transform | None) -> Informer:
        extra = {} if transform is None else {"transform": transform}
        return new_informer(  # never checkpointed: a restart lists the Notifiers afresh
            app.client,
            app.config.watch,
            key,
            name=f"{key.name} (operator mode)",
            rng=app._rng,
            recorder=app._recorder,
            checkpoint=None,
            **extra,
        )

    app._namespaces.start(app._plan.namespaces)  # ClusterSinks select namespaces by label
    spooled = Spooled(app)
    controller = Controller(
        app.client,
        config.tenancy,
        _services(app, spooled),
        informer,
        recorder=app._recorder,
    )
    namespaces = app._namespaces.informer
    if namespaces is not None:
        namespaces.add_handler(_NamespaceKeys(controller))
    app._delivering.tenant_dispatcher = controller.dispatcher_of
    controller.start()
    threading.Thread(
        target=spooled.forget_gone,
        args=(controller.notifiers,),
        name="kubewatch-notifier-spool",
        daemon=True,
    ).start()
    return controller


def tenancy(app: App, controller: Controller | None) -> Controller | None:
    """The controller ``app.config`` asks for, given the one running (None at a start):
    started, stopped, or told the new settings (every Notifier is reconciled again)."""
    if not app.config.tenancy.enabled:
        if controller is not None:
            controller.stop()
        return None
    if controller is None:
        return start_tenancy(app)
    services = dataclasses.replace(_services(app), recover=controller.services.recover)
    controller.reconfigure(app.config.tenancy, services)
    return controller


class _NamespaceKeys:
    """Namespace changes (labels) queue that namespace's Notifiers."""

    def __init__(self, controller: Controller) -> None:
        self._controller = controller

    def on_add(self, obj: dict[str, Any], is_initial_list: bool) -> None:
        if not is_initial_list:
            self._changed(obj)

    def on_update(self, old: dict[str, Any], new: dict[str, Any]) -> None:
        if (old.get("metadata") or {}).get("labels") != (new.get("metadata") or {}).get("labels"):
            self._changed(new)

    def on_delete(self, obj: Any) -> None:
        pass

    def _changed(self, obj: dict[str, Any]) -> None:
        self._controller.namespace_changed(str((obj.get("metadata") or {}).get("name")))
