"""Resources whose CRD is not installed yet: re-checked through discovery every
``watch.discoveryInterval`` on a thread of their own, and watched once they appear."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from kubewatch.config import Config, ResourceConfig
from kubewatch.errors import ApiError, ConfigError, ResolveError
from kubewatch.kube.client import ClusterClient
from kubewatch.kube.discovery import ResourceTable
from kubewatch.kube.failures import ApiUnreachable
from kubewatch.kube.recorder import EventRecorder
from kubewatch.watch.plan import WatchPlan, plan_watch

__all__ = ["PendingDiscovery"]

log = logging.getLogger("kubewatch.app")

StartWatches = Callable[[list[WatchPlan], threading.Event], None]
"""Starts the watches found, unless the event (the pass's :attr:`PendingDiscovery.stop`)
is set by then: a reload or a stop cancels what an old pass found."""


class PendingDiscovery:
    """One discovery pass at a time; :meth:`start` cancels the one before."""

    def __init__(
        self,
        client: ClusterClient,
        start_watches: StartWatches,
        recorder: EventRecorder | None = None,
    ) -> None:
        self._client = client
        self._start_watches = start_watches
        self._recorder = recorder
        self.stop = threading.Event()
        """Set to cancel the current pass (the app sets it under its lock on a reload)."""

    def start(self, config: Config, pending: list[tuple[int, ResourceConfig]]) -> None:
        self.stop.set()
        self.stop = threading.Event()
        if not pending:
            return
        for index, rc in pending:
            if self._recorder is not None:
                self._recorder.warning(
                    "ResourceNotInstalled",
                    f"resources[{index}]: {rc.kind} is not served yet; watching it once it is",
                )
        threading.Thread(
            target=self._run,
            args=(config, list(pending), self.stop),
            name="kubewatch-discovery",
            daemon=True,
        ).start()

    def _run(
        self, config: Config, pending: list[tuple[int, ResourceConfig]], stop: threading.Event
    ) -> None:
        while pending and not stop.wait(config.watch.discovery_interval):
            try:
                table = ResourceTable.fetch(self._client.get_json)
            except (ApiError, ApiUnreachable) as e:
                log.warning("discovery failed: %s; trying again later", e)
                continue
            still: list[tuple[int, ResourceConfig]] = []
            found: list[WatchPlan] = []
            for index, rc in pending:
                try:
                    resource = table.resolve(rc.kind, rc.api_version)
                    found.append(plan_watch(config, index, rc, resource))
                except ResolveError:
                    still.append((index, rc))
                except ConfigError as e:
                    log.error("%s; not watched", e)
                else:
                    log.info("resources[%d]: %s is now served", index, resource.group_resource)
            self._start_watches(found, stop)
            pending = still
