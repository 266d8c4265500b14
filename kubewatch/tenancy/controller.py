"""The Notifier controller: informers feed a work queue, workers reconcile, tenants run.

Three informers (Notifiers in every namespace, ClusterSinks, Secrets) and the app's
Namespace watch only *queue keys* (``ns/name`` of a Notifier): a Notifier's change queues
itself (and, when one is added or deleted, its namespace's others, for
``maxNotifiersPerNamespace``); a ClusterSink's or a Secret's change queues the Notifiers
whose last reconcile read it (and the ClusterSink itself, whose status says whether it
can be used); a namespace's labels queue the Notifiers of that namespace (ClusterSinks
select namespaces by label). Workers take keys from a
:class:`~kubewatch.kube.workqueue.WorkQueue` (one worker per key, backoff on failure) and
run the pure :func:`~kubewatch.tenancy.reconcile.reconcile` on the stores.

Secret values stay out of long-lived caches: the Secret informer's objects are stripped
of ``data`` (it only says *which* Secret changed), and reconcile GETs the Secrets a
Notifier references. A Ready result is a :class:`~kubewatch.tenancy.tenant.Tenant`
(attached or replaced in place); any other result, a deletion, or ``suspend`` detaches it
and closes its dispatcher at once. The status is written through the status subresource
only when :func:`~kubewatch.tenancy.status.desired_status` says it changed, Events go to
the Notifier through the app's EventRecorder.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections import defaultdict
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from typing import Any

from kubewatch.config import TenancyConfig
from kubewatch.delivery import Dispatcher
from kubewatch.errors import ApiError, ConfigErrors
from kubewatch.events import Event
from kubewatch.kube.client import JsonApi
from kubewatch.kube.failures import ApiUnreachable
from kubewatch.kube.pool import InformerKey
from kubewatch.kube.recorder import EventRecorder
from kubewatch.kube.workqueue import WorkQueue
from kubewatch.tenancy.addresses import Resolver, system_resolver
from kubewatch.tenancy.clustersinks import check_cluster_sink, cluster_sink_key, cluster_sink_name
from kubewatch.tenancy.deliveries import DeliveryReports
from kubewatch.tenancy.notices import GROUP_VERSION, Notices
from kubewatch.tenancy.readers import Readers
from kubewatch.tenancy.reconcile import Compiled, Failure, Result, reconcile
from kubewatch.tenancy.tenant import Tenant, TenantServices, owner
from kubewatch.tenancy.watches import Informer, Keys, NewInformer, strip_secret

__all__ = ["GROUP_VERSION", "Controller", "Informer", "strip_secret"]

log = logging.getLogger("kubewatch.tenancy")

WORKERS = 2
"""Reconciling threads: a slow Secret GET of one Notifier does not hold up the others."""


def _meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return obj.get("metadata") or {}


def _shown(key: str) -> str:
    sink = cluster_sink_name(key)
    return f"ClusterSink {sink}" if sink is not None else f"Notifier {key}"


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


class Controller:
    """Runs every Notifier of the cluster as a tenant beside the config file."""

    def __init__(
        self,
        client: JsonApi,
        settings: TenancyConfig,
        services: TenantServices,
        new_informer: NewInformer,
        *,
        recorder: EventRecorder | None = None,
        own_namespace: str | None = None,
        resolve: Resolver = system_resolver,
        workers: int = WORKERS,
        reports: DeliveryReports | None = None,
        wall: Callable[[], datetime] = _utc_now,
    ) -> None:
        self.settings = settings
        self._client = client
        self._services = services
        self._own_namespace = own_namespace or settings.own_namespace()
        self._resolve = resolve
        self.notices = Notices(client, recorder, wall=wall)
        self._workers = workers
        self.queue: WorkQueue[str] = WorkQueue()
        table = services.table
        self.notifiers = new_informer(
            InformerKey.of(table.resolve("notifiers", GROUP_VERSION)), None
        )
        self.cluster_sinks = new_informer(
            InformerKey.of(table.resolve("clustersinks", GROUP_VERSION)), None
        )
        self.secrets = new_informer(InformerKey.of(table.resolve("secrets", "v1")), strip_secret)
        self.notifiers.add_handler(Keys(self._notifier_changed, spec_only=True))
        self.cluster_sinks.add_handler(Keys(self._cluster_sink_changed, spec_only=True))
        self.secrets.add_handler(Keys(self._secret_changed))
        self.reports = reports or DeliveryReports(self.notices.write)
        self._lock = threading.Lock()
        self.readers = Readers()
        # Under _lock: the running tenants and the last reason of each Notifier.
        self.tenants: dict[str, Tenant] = {}
        self.reasons: dict[str, str] = {}
        """The last reason of each Notifier (``kubewatch_notifiers{reason}``)."""
        self._threads: list[threading.Thread] = []

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        """Start the informers and the workers (the first list queues every Notifier)."""
        for informer in (self.cluster_sinks, self.secrets, self.notifiers):
            informer.start()
        for i in range(self._workers):
            thread = threading.Thread(
                target=self._work, name=f"kubewatch-notifiers-{i}", daemon=True
            )
            thread.start()
            self._threads.append(thread)
        log.info("operator mode: reconciling Notifiers with %d worker(s)", self._workers)

    def stop(self) -> None:
        """Stop reconciling, then every tenant: each drains what it queued within the
        file's ``delivery.drainTimeout``, all at the same time."""
        self.queue.shut_down()
        for informer in (self.notifiers, self.cluster_sinks, self.secrets):
            informer.stop(timeout=5.0)
        for thread in self._threads:
            thread.join(10.0)
        self.reports.close()
        with self._lock:
            tenants, self.tenants = list(self.tenants.values()), {}
        for tenant in tenants:  # no more events, then the drains side by side
            self._services.pool.detach(owner(tenant.key))
        timeout = self._services.base.delivery.drain_timeout
        closing = [
            threading.Thread(
                target=t.close,
                args=(timeout,),
                kwargs={"forget": False},
                name="kubewatch-notifier-drain",
            )
            for t in tenants
        ]
        for thread in closing:
            thread.start()
        for thread in closing:
            thread.join(timeout + 5.0)

    def reconfigure(self, settings: TenancyConfig, services: TenantServices) -> None:
        """New tenancy settings or file config: reconcile every Notifier again."""
        self.settings, self._services = settings, services
        with self._lock:
            tenants = list(self.tenants.values())
        for tenant in tenants:
            tenant.rebase(services)
        for key in self.notifiers.store:
            self.queue.add(key)

    @property
    def services(self) -> TenantServices:
        return self._services

    def informers(self) -> tuple[Any, ...]:
        """Its own watches (SharedInformers in a run): readiness and the watch metrics
        cover them like the file's."""
        return (self.notifiers, self.cluster_sinks, self.secrets)

    def wait_for_sync(self, timeout: float | None = None) -> bool:
        return all(
            i.wait_for_sync(timeout) for i in (self.notifiers, self.cluster_sinks, self.secrets)
        )

    # -- what queues keys -----------------------------------------------------------------

    def _notifier_changed(self, obj: dict[str, Any], peers: bool) -> None:
        namespace, name = _meta(obj).get("namespace"), _meta(obj).get("name")
        if not namespace or not name:
            return
        self.queue.add(f"{namespace}/{name}")
        if peers:  # one more or one fewer: maxNotifiersPerNamespace may select others
            for key in self.notifiers.store.keys(namespace):
                self.queue.add(key)

    def _cluster_sink_changed(self, obj: dict[str, Any], _: bool) -> None:
        name = str(_meta(obj).get("name"))
        keys = self.readers.cluster_sink_changed(name)
        self.queue.add(cluster_sink_key(name))  # its own status
        for key in keys:
            self.queue.add(key)

    def _secret_changed(self, obj: dict[str, Any], _: bool) -> None:
        ref = (str(_meta(obj).get("namespace")), str(_meta(obj).get("name")))
        for key in self.readers.secret_changed(ref):
            self.queue.add(key)

    def namespace_changed(self, name: str) -> None:
        """A namespace's labels changed (or it appeared): its Notifiers run again."""
        for key in self.notifiers.store.keys(name):
            self.queue.add(key)

    # -- workers --------------------------------------------------------------------------

    def _work(self) -> None:
        while self.step():
            pass

    def step(self) -> bool:
        """Take one key and reconcile it: forget its backoff on success, retry it with
        backoff on failure. False once the queue is shut down."""
        key = self.queue.get()
        if key is None:
            return False
        try:
            self.sync(key)
            self.queue.forget(key)
        except (ApiError, ApiUnreachable) as e:
            log.info("%s: %s; retried", _shown(key), e)
            self.queue.add_rate_limited(key)
        except Exception:
            log.exception("%s: check failed; retried", _shown(key))
            self.queue.add_rate_limited(key)
        finally:
            self.queue.done(key)
        return True

    def sync(self, key: str) -> Result | None:
        """Reconcile one Notifier or check one ClusterSink (a worker's step; tests call it
        directly). None: it is gone."""
        sink = cluster_sink_name(key)
        if sink is not None:
            return self._check_cluster_sink(key, sink)
        stored = self.notifiers.store.get(key)
        if stored is None:
            self._forget(key)
            return None
        obj = stored.decode()
        namespace = str(_meta(obj).get("namespace"))
        store = self.notifiers.store
        peers = [p.decode() for k in store.keys(namespace) if (p := store.get(k)) is not None]
        changes = self.readers.changes()
        s = self._services
        labels = s.namespace_labels
        result: Result = reconcile(
            obj,
            self.settings,
            cluster_sinks=self._cluster_sink,
            secrets=self._secret,
            namespace_labels=lambda namespace: labels.labels(namespace),  # noqa: PLW0108
            kinds=s.table,
            resolve=self._resolve,
            own_namespace=self._own_namespace,
            peers=peers,
        )
        if self.readers.remember(key, result, changes):
            self.queue.add(key)  # what it read may have changed while it ran: once more
        if isinstance(result, Compiled):
            result = self._run(key, result)
        else:
            self._stop_tenant(key)
        with self._lock:
            self.reasons[key] = result.reason
        self.notices.reconciled(key, obj, result)
        return result

    def _check_cluster_sink(self, key: str, name: str) -> Result | None:
        stored = self.cluster_sinks.store.get(name)
        if stored is None:
            self.readers.remember(key, None)
            self.notices.forget(key)
            return None
        obj = stored.decode()
        changes = self.readers.changes()
        result = check_cluster_sink(
            obj, self.settings, secrets=self._secret, own_namespace=self._own_namespace
        )
        if self.readers.remember(key, result, changes):
            self.queue.add(key)
        self.notices.reconciled(key, obj, result)
        return result

    def _run(self, key: str, compiled: Compiled) -> Result:
        with self._lock:
            tenant = self.tenants.get(key)
            if tenant is None:
                tenant = self.tenants[key] = Tenant(
                    key,
                    self._services,
                    on_delivered=lambda sink, event: self._delivered(key, sink, event),
                    on_failed=lambda sink, event, why, permanent: self._failed(
                        key, sink, why, permanent
                    ),
                )
        try:
            if tenant.apply(compiled):
                log.info("Notifier %s: ready, %d sink(s)", key, len(compiled.sinks))
        except ConfigErrors as e:  # e.g. a template the sink cannot compile
            self._stop_tenant(key)
            message = "; ".join(
                f"spec.{err.path.replace(f'sinks.{key}/', 'sinks.')}: {err.message}"
                for err in e.errors
            )
            return Failure("Invalid", message, compiled.secrets, compiled.cluster_sinks)
        # A condition's message is never empty (the API server refuses "")
        what = f"watching {len(compiled.resources)} resource(s), {len(compiled.sinks)} sink(s)"
        return dataclasses.replace(compiled, message=what)

    def _stop_tenant(self, key: str) -> None:
        with self._lock:
            tenant = self.tenants.pop(key, None)
        if tenant is not None:
            tenant.close()
            log.info("Notifier %s: stopped", key)

    def _forget(self, key: str) -> None:
        """A deleted Notifier: stop it now and forget what it read."""
        self._stop_tenant(key)
        self.readers.remember(key, None)
        self.reports.forget(key)
        with self._lock:
            self.reasons.pop(key, None)
        self.notices.forget(key)

    # -- lookups --------------------------------------------------------------------------

    def _cluster_sink(self, name: str) -> Mapping[str, Any] | None:
        stored = self.cluster_sinks.store.get(name)
        return stored.decode() if stored is not None else None

    def _secret(self, namespace: str, name: str) -> Mapping[str, Any] | None:
        """GET the Secret (its values are not cached); None when it does not exist."""
        try:
            return self._client.get_json(f"/api/v1/namespaces/{namespace}/secrets/{name}")
        except ApiError as e:
            if e.status == 404:
                return None
            raise

    def _delivered(self, key: str, sink: str, event: Event) -> None:
        tenant = self.tenants.get(key)
        self.reports.delivered(key, tenant.sink_name(sink) if tenant else sink)

    def _failed(self, key: str, sink: str, reason: str, permanent: bool) -> None:
        tenant = self.tenants.get(key)
        name = tenant.sink_name(sink) if tenant else sink
        self.reports.failed(key, name, reason)
        stored = self.notifiers.store.get(key)
        if permanent and stored is not None:
            self.notices.sink_failed(stored.decode(), name, reason)

    def dispatcher_of(self, key: str) -> Dispatcher | None:
        """The dispatcher of Notifier ``key`` while it runs."""
        with self._lock:
            tenant = self.tenants.get(key)
        return None if tenant is None else tenant.dispatcher()

    def counts(self) -> dict[str, int]:
        """Notifiers per reason of their last reconcile (``kubewatch_notifiers``)."""
        with self._lock:
            reasons = list(self.reasons.values())
        counts: dict[str, int] = defaultdict(int)
        for reason in reasons:
            counts[reason] += 1
        return dict(counts)
