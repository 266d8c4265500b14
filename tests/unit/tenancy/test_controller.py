"""The Notifier controller with fakes: informers whose stores the test fills, an API
client that answers Secret GETs and records status writes, dispatchers that record what
they were given, and the real InformerPool, WorkQueue and reconcile."""

from __future__ import annotations

import copy
import json
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import pytest

from kubewatch.config import Config, TenancyConfig
from kubewatch.errors import ApiError
from kubewatch.events import Event
from kubewatch.kube import DeletedFinalStateUnknown
from kubewatch.kube.discovery import ResourceTable
from kubewatch.kube.pool import InformerKey, InformerPool
from kubewatch.kube.store import Store, object_key
from kubewatch.tenancy.controller import Controller, strip_secret
from kubewatch.tenancy.deliveries import DeliveryReports
from kubewatch.tenancy.tenant import TenantServices, owner
from kubewatch.watch.filters import NamespaceLabels

from .conftest import DISCOVERY, PUBLIC, secret

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)


def _table() -> ResourceTable:
    documents = json.loads(DISCOVERY.read_text())
    documents["/apis"]["groups"].append(
        {
            "name": "kubewatch.io",
            "versions": [{"groupVersion": "kubewatch.io/v1alpha1", "version": "v1alpha1"}],
            "preferredVersion": {"groupVersion": "kubewatch.io/v1alpha1", "version": "v1alpha1"},
        }
    )
    verbs = ["get", "list", "watch"]
    documents["/apis/kubewatch.io/v1alpha1"] = {
        "kind": "APIResourceList",
        "groupVersion": "kubewatch.io/v1alpha1",
        "resources": [
            {"name": "notifiers", "namespaced": True, "kind": "Notifier", "verbs": verbs},
            {"name": "clustersinks", "namespaced": False, "kind": "ClusterSink", "verbs": verbs},
        ],
    }
    return ResourceTable.from_documents(documents)


TABLE = _table()


class FakeInformer:
    """A controller informer: the test puts objects, handlers hear them."""

    def __init__(self, transform: Callable[[dict[str, Any]], dict[str, Any]] | None) -> None:
        self.store = Store()
        self.handlers: list[Any] = []
        self._transform = transform or (lambda obj: obj)

    def add_handler(self, handler: Any) -> None:
        self.handlers.append(handler)

    def start(self) -> None: ...
    def stop(self, timeout: float | None = 5.0) -> None: ...
    def wait_for_sync(self, timeout: float | None = None) -> bool:
        return True

    def put(self, obj: dict[str, Any]) -> None:
        obj = self._transform(copy.deepcopy(obj))
        previous, _ = self.store.put(object_key(obj), obj)
        for h in self.handlers:
            if previous is None:
                h.on_add(obj, False)
            else:
                h.on_update(previous.decode(), obj)

    def delete(self, key: str) -> None:
        gone = self.store.delete(key)
        assert gone is not None
        for h in self.handlers:
            h.on_delete(DeletedFinalStateUnknown(key, gone.decode()))


@dataclass
class PoolInformer:
    """A shared informer in the pool: the test makes its objects change."""

    name: str
    handlers: list[Any] = field(default_factory=list)
    started: bool = False
    recovering: bool = False

    class reflector:  # the pool calls informer.reflector.stop()
        @staticmethod
        def stop() -> None: ...

    def add_handler(self, handler: Any, *, namespace: str | None = None) -> None:
        self.handlers.append(handler)

    def remove_handler(self, handler: Any) -> None:
        self.handlers.remove(handler)

    def start(self) -> None:
        self.started = True

    def stop(self, timeout: float | None = None) -> None:
        self.started = False

    def add(self, obj: dict[str, Any]) -> None:
        for h in list(self.handlers):
            h.on_add(obj, False)


class FakeClient:
    def __init__(self) -> None:
        self.secrets: dict[tuple[str, str], dict[str, Any]] = {}
        self.writes: list[tuple[str, str, dict[str, Any]]] = []
        self.fail: ApiError | None = None
        self.lock = threading.Lock()

    def get_json(self, path: str, params: Any = None) -> dict[str, Any]:
        if self.fail is not None:
            raise self.fail
        parts = path.split("/")  # /api/v1/namespaces/<ns>/secrets/<name>
        found = self.secrets.get((parts[4], parts[6]))
        if found is None:
            raise ApiError(404, "NotFound", "not found")
        return found

    def request_json(self, method: str, path: str, body: Any = None, **kw: Any) -> dict[str, Any]:
        with self.lock:
            self.writes.append((method, path, body))
        return {}


class FakeDispatcher:
    def __init__(self, config: Config, delivered: Any, failed: Any) -> None:
        self.sinks = list(config.sinks)
        self.config = config
        self.submitted: list[tuple[Event, tuple[str, ...]]] = []
        self.delivered, self.failed = delivered, failed
        self.closed = False
        self.drained: float | None = None

    def start(self) -> None: ...

    def submit(self, event: Event, sinks: tuple[str, ...]) -> None:
        if self.closed:
            raise RuntimeError("closed")
        self.submitted.append((event, sinks))

    def stats(self) -> dict[str, Any]:
        return dict.fromkeys(self.sinks)

    def close(self, timeout: float | None = None) -> bool:
        self.closed, self.drained = True, timeout
        return True


@dataclass
class Rig:
    controller: Controller
    client: FakeClient
    pool: InformerPool
    informers: dict[InformerKey, PoolInformer]
    dispatchers: list[FakeDispatcher]

    @property
    def notifiers(self) -> FakeInformer:
        return self.controller.notifiers  # type: ignore[return-value]

    @property
    def secrets(self) -> FakeInformer:
        return self.controller.secrets  # type: ignore[return-value]

    def drain(self) -> list[str]:
        """Run the queued keys (as the workers would); the keys run, in order."""
        ran: list[str] = []
        sync = self.controller.sync

        def recorded(key: str) -> Any:
            ran.append(key)
            return sync(key)

        self.controller.sync = recorded  # type: ignore[method-assign]
        try:
            while self.controller.queue.len():
                assert self.controller.step()
        finally:
            del self.controller.sync
        return ran

    def informer(self, plural: str) -> PoolInformer:
        (found,) = [i for k, i in self.informers.items() if k.resource.plural == plural]
        return found

    def statuses(self) -> list[dict[str, Any]]:
        return [body["status"] for _, _, body in self.client.writes]


@pytest.fixture
def rig() -> Iterator[Rig]:
    informers: dict[InformerKey, PoolInformer] = {}

    def new(key: InformerKey) -> Any:
        informers[key] = PoolInformer(key.name)
        return informers[key]

    pool = InformerPool(new)
    dispatchers: list[FakeDispatcher] = []

    def new_dispatcher(config: Config, delivered: Any, failed: Any) -> Any:
        dispatchers.append(FakeDispatcher(config, delivered, failed))
        return dispatchers[-1]

    labels = NamespaceLabels()
    for ns in ("team-a", "team-b"):
        labels.on_add({"metadata": {"name": ns, "labels": {"team": ns[-1]}}}, True)
    base = Config.model_validate(
        {"resources": [{"kind": "Pod"}], "sinks": {"out": {"type": "stdout"}}}
    )
    services = TenantServices(
        base=base,
        cluster="test",
        pool=pool,
        table=TABLE,
        namespace_labels=labels,
        started_at=NOW,
        new_dispatcher=new_dispatcher,
    )
    client = FakeClient()
    reports = DeliveryReports(lambda key, status: None, background=False)
    controller = Controller(
        client,  # type: ignore[arg-type]
        TenancyConfig(enabled=True),
        services,
        lambda key, transform: FakeInformer(transform),
        own_namespace="kubewatch",
        resolve=lambda host: PUBLIC[host],
        reports=reports,
        wall=lambda: NOW,
    )
    yield Rig(controller, client, pool, informers, dispatchers)
    controller.stop()


HOOK = "https://hooks.example.com/a"


def notifier(
    namespace: str = "team-a", name: str = "web", generation: int = 1, **spec: Any
) -> dict[str, Any]:
    return {
        "apiVersion": "kubewatch.io/v1alpha1",
        "kind": "Notifier",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": f"uid-{namespace}-{name}",
            "generation": generation,
            "creationTimestamp": "2024-05-01T12:00:00Z",
        },
        "spec": {
            "resources": [{"kind": "ConfigMap"}],
            "sinks": {"hook": {"type": "webhook", "url": HOOK}},
            **spec,
        },
    }


def configmap(namespace: str, name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace, "uid": f"u-{name}",
                     "resourceVersion": "7", "creationTimestamp": "2024-05-01T12:00:00Z"},
        "data": {"a": "1"},
    }  # fmt: skip


def test_a_key_added_twice_runs_once(rig: Rig) -> None:
    rig.notifiers.put(notifier())
    rig.notifiers.put(notifier(generation=2))
    assert rig.drain() == ["team-a/web"]
    assert rig.controller.reasons == {"team-a/web": "Ready"}


def test_a_ready_notifier_shares_the_cluster_wide_informer(rig: Rig) -> None:
    for ns in ("team-a", "team-b"):
        rig.notifiers.put(notifier(ns))
    rig.drain()
    configmaps = rig.informer("configmaps")
    assert configmaps.started and len(configmaps.handlers) == 2
    assert rig.pool.counts() == {"configmaps": 1}
    (key,) = rig.pool.keys(owner("team-a/web"))
    assert key.namespace is None  # cluster-wide: one informer for every namespace


def test_each_notifier_hears_only_its_namespace(rig: Rig) -> None:
    for ns in ("team-a", "team-b"):
        rig.notifiers.put(notifier(ns))
    rig.drain()
    a, b = rig.dispatchers
    rig.informer("configmaps").add(configmap("team-a", "one"))
    rig.informer("configmaps").add(configmap("team-b", "two"))
    rig.informer("configmaps").add(configmap("team-c", "three"))
    assert [(e.name, sinks) for e, sinks in a.submitted] == [("one", ("team-a/web/hook",))]
    assert [(e.name, sinks) for e, sinks in b.submitted] == [("two", ("team-b/web/hook",))]


def test_a_changed_secret_queues_the_notifiers_that_read_it(rig: Rig) -> None:
    sinks = {"hook": {"type": "webhook", "urlFrom": {"secretKeyRef": {"name": "h", "key": "url"}}}}
    rig.notifiers.put(notifier(sinks=sinks))
    rig.notifiers.put(notifier(name="other"))
    rig.drain()
    assert rig.controller.reasons["team-a/web"] == "SecretNotFound"
    assert not rig.pool.keys(owner("team-a/web"))
    rig.client.secrets[("team-a", "h")] = secret(url=HOOK)
    rig.secrets.put({"metadata": {"name": "h", "namespace": "team-a"}, **secret(url=HOOK)})
    rig.secrets.put({"metadata": {"name": "unrelated", "namespace": "team-a"}})
    assert rig.drain() == ["team-a/web"]
    assert rig.controller.reasons["team-a/web"] == "Ready"
    assert rig.pool.keys(owner("team-a/web"))


def test_the_secret_informer_keeps_no_values(rig: Rig) -> None:
    obj = {"metadata": {"name": "h", "namespace": "a", "managedFields": []}, **secret(url=HOOK)}
    assert strip_secret(obj) == {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "h", "namespace": "a"},
    }


def test_deleting_a_notifier_detaches_it_and_closes_its_dispatcher(rig: Rig) -> None:
    rig.notifiers.put(notifier())
    rig.drain()
    (dispatcher,) = rig.dispatchers
    rig.notifiers.delete("team-a/web")
    rig.drain()
    assert not rig.pool.keys(owner("team-a/web"))
    assert dispatcher.closed
    assert rig.pool.counts() == {}
    assert rig.controller.reasons == {}


def test_suspend_and_failures_detach_too(rig: Rig) -> None:
    rig.notifiers.put(notifier())
    rig.drain()
    rig.notifiers.put(notifier(generation=2, suspend=True))
    rig.drain()
    assert rig.controller.reasons["team-a/web"] == "Suspended"
    assert not rig.pool.keys(owner("team-a/web"))
    assert rig.dispatchers[0].closed


def test_status_is_written_only_when_it_changes(rig: Rig) -> None:
    rig.notifiers.put(notifier())
    rig.drain()
    rig.notifiers.put(notifier())  # the store has not caught up with the write yet
    rig.drain()
    assert len(rig.client.writes) == 1
    method, path, body = rig.client.writes[0]
    assert (method, path) == (
        "PATCH",
        "/apis/kubewatch.io/v1alpha1/namespaces/team-a/notifiers/web/status",
    )
    ready = body["status"]["conditions"][0]
    assert (ready["status"], ready["reason"], body["status"]["observedGeneration"]) == (
        "True",
        "Ready",
        1,
    )
    caught_up = {**notifier(), "status": body["status"]}
    rig.notifiers.put(caught_up)
    rig.drain()
    assert len(rig.client.writes) == 1
    rig.notifiers.put({**caught_up, "metadata": {**caught_up["metadata"], "generation": 2}})
    rig.drain()
    assert len(rig.client.writes) == 2
    assert rig.statuses()[1]["observedGeneration"] == 2


def test_an_api_failure_is_retried_with_backoff(rig: Rig) -> None:
    sinks = {"hook": {"type": "webhook", "urlFrom": {"secretKeyRef": {"name": "h", "key": "url"}}}}
    rig.notifiers.put(notifier(sinks=sinks))
    rig.client.fail = ApiError(500, "InternalError", "etcd is sad")
    rig.drain()
    assert rig.controller.queue.num_requeues("team-a/web") == 1
    assert rig.controller.reasons == {}
    rig.client.fail = None
    rig.controller.queue.add("team-a/web")
    rig.drain()
    assert rig.controller.queue.num_requeues("team-a/web") == 0  # forgotten on success


def test_deliveries_are_written_at_most_once_per_interval() -> None:
    now = [0.0]
    writes: list[tuple[str, dict[str, Any]]] = []
    reports = DeliveryReports(
        lambda key, status: writes.append((key, status)),
        interval=10.0,
        clock=lambda: now[0],
        wall=lambda: NOW,
        background=False,
    )
    for _ in range(100):
        reports.delivered("team-a/web", "hook")
    assert reports.flush() is None
    assert writes == [
        ("team-a/web", {"lastDelivery": {"time": "2024-05-01T12:00:00Z", "sink": "hook"}})
    ]
    reports.delivered("team-a/web", "hook")
    reports.failed("team-a/web", "hook", "HTTP 500")
    now[0] = 5.0
    assert reports.flush() == 10.0
    assert len(writes) == 1
    now[0] = 10.0
    reports.flush()
    assert len(writes) == 2
    assert set(writes[1][1]) == {"lastDelivery", "lastError"}
    assert writes[1][1]["lastError"]["message"] == "HTTP 500"


def test_reports_from_many_threads_lose_nothing() -> None:
    writes: list[dict[str, Any]] = []
    reports = DeliveryReports(lambda key, status: writes.append(status), background=False)
    sys_interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        threads = [
            threading.Thread(
                target=lambda i=i: [reports.delivered(f"ns/{i}", "s") for _ in range(200)]
            )
            for i in range(8)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(sys_interval)
    reports.flush()
    assert len(writes) == 8


def test_events_on_the_notifier_when_its_condition_changes(rig: Rig) -> None:
    recorded: list[tuple[str, str, str, dict[str, str] | None]] = []

    class Recorder:
        def normal(self, reason: str, message: str, about: Any = None) -> None:
            recorded.append(("Normal", reason, message, about))

        def warning(self, reason: str, message: str, about: Any = None) -> None:
            recorded.append(("Warning", reason, message, about))

    rig.controller.notices._recorder = Recorder()  # type: ignore[assignment]
    bad = notifier(resources=[{"kind": "ConfigMap", "updates": {"watch": ["data.["]}}])
    rig.notifiers.put(bad)
    rig.drain()
    kind, reason, message, about = recorded[-1]
    assert (kind, reason) == ("Warning", "Invalid")
    assert "spec.resources[0].updates" in message
    assert about is not None and (about["kind"], about["name"], about["namespace"]) == (
        "Notifier",
        "web",
        "team-a",
    )
    rig.notifiers.put({**notifier(generation=2), "status": rig.statuses()[-1]})
    rig.drain()
    assert recorded[-1][:2] == ("Normal", "Ready")
    (dispatcher,) = rig.dispatchers
    dispatcher.failed("team-a/web/hook", None, "HTTP 404", True)
    assert recorded[-1][:3] == ("Warning", "SinkFailed", "sink hook: HTTP 404")


def test_workers_and_informer_threads_converge(rig: Rig) -> None:
    """Two workers reconcile while many threads change Secrets and Notifiers: in the end
    every Notifier runs once, with its Secret's last value, on one shared informer."""
    ref = {"secretKeyRef": {"name": "h", "key": "url"}}
    namespaces = [f"ns-{i}" for i in range(12)]
    labels = rig.controller._services.namespace_labels
    for ns in namespaces:
        labels.on_add({"metadata": {"name": ns}}, True)
        rig.client.secrets[(ns, "h")] = secret(url=HOOK)
    rig.controller.start()
    switch = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:

        def churn(ns: str) -> None:
            for i in range(20):
                url = f"https://hooks.example.com/{i % 3}"
                rig.client.secrets[(ns, "h")] = secret(url=url)
                rig.secrets.put({"metadata": {"name": "h", "namespace": ns}, "data": {}})
                sinks = {"hook": {"type": "webhook", "urlFrom": ref}}
                rig.notifiers.put(notifier(ns, generation=i + 1, sinks=sinks))

        threads = [threading.Thread(target=churn, args=(ns,)) for ns in namespaces]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(switch)
    final = "https://hooks.example.com/1"  # i = 19

    def converged() -> bool:
        live = [d for d in rig.dispatchers if not d.closed]
        return (
            rig.controller.queue.len() == 0
            and len(live) == len(namespaces)
            and all(d.config.sinks[d.sinks[0]].url == final for d in live)  # type: ignore[union-attr]
        )

    deadline = time.monotonic() + 20  # a hang guard, not a timing assertion
    while not converged():
        assert time.monotonic() < deadline, "the controller did not converge"
        time.sleep(0.01)
    assert rig.pool.counts() == {"configmaps": 1}
    assert len(rig.informer("configmaps").handlers) == len(namespaces)
    assert set(rig.controller.reasons.values()) == {"Ready"}


def test_a_secret_changed_while_it_was_read_runs_the_notifier_again(rig: Rig) -> None:
    """The first check of a Notifier has not indexed its Secret yet when the Secret
    changes: without another run the old value would stay."""
    sinks = {"hook": {"type": "webhook", "urlFrom": {"secretKeyRef": {"name": "h", "key": "url"}}}}
    rig.client.secrets[("team-a", "h")] = secret(url=HOOK)
    get = rig.client.get_json

    def changing(path: str, params: Any = None) -> dict[str, Any]:
        found = get(path, params)
        rig.client.get_json = get  # type: ignore[method-assign]
        rig.client.secrets[("team-a", "h")] = secret(url=HOOK + "/new")
        rig.secrets.put({"metadata": {"name": "h", "namespace": "team-a"}})
        return found

    rig.client.get_json = changing  # type: ignore[method-assign]
    rig.notifiers.put(notifier(sinks=sinks))
    assert rig.drain() == ["team-a/web", "team-a/web"]
    (live,) = [d for d in rig.dispatchers if not d.closed]
    assert live.config.sinks["team-a/web/hook"].url == HOOK + "/new"  # type: ignore[union-attr]


def test_new_tenancy_settings_apply_to_every_notifier(rig: Rig) -> None:
    for ns in ("team-a", "team-b"):
        rig.notifiers.put(notifier(ns))
    rig.drain()
    pods_only = TenancyConfig.model_validate({"enabled": True, "allowedKinds": ["Pod"]})
    rig.controller.reconfigure(pods_only, rig.controller._services)
    assert sorted(rig.drain()) == ["team-a/web", "team-b/web"]
    assert set(rig.controller.reasons.values()) == {"KindNotAllowed"}
    assert rig.pool.counts() == {}


def test_a_stop_drains_the_notifiers_deliveries_a_delete_does_not(rig: Rig) -> None:
    for ns in ("team-a", "team-b"):
        rig.notifiers.put(notifier(ns))
    rig.drain()
    rig.notifiers.delete("team-b/web")
    rig.drain()
    rig.controller.stop()
    a, b = rig.dispatchers
    assert b.drained == 0.0
    assert a.drained == rig.controller._services.base.delivery.drain_timeout


def test_what_only_the_plan_knows_is_invalid_too(rig: Rig) -> None:
    """``health`` applies to Pods, Jobs, Deployments and Nodes: found when the Notifier's
    watches are planned, reported like any other mistake, nothing attached."""
    bad = notifier(resources=[{"kind": "ConfigMap", "health": {}}])
    rig.notifiers.put(bad)
    rig.drain()
    assert rig.controller.reasons["team-a/web"] == "Invalid"
    ready = rig.statuses()[-1]["conditions"][0]
    assert ready["message"].startswith("spec.resources[0].health: applies only to Pod")
    assert not rig.pool.keys(owner("team-a/web"))
    assert rig.dispatchers == []  # none built, none leaked
