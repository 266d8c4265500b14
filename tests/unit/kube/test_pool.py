"""The informer pool: informers shared by owners, started and stopped with their handlers,
joined seamlessly, and counted by the ``kubewatch_informers`` gauge."""

from __future__ import annotations

import random
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

from kubewatch.kube import DeletedFinalStateUnknown, SharedInformer
from kubewatch.kube.discovery import ResourceType
from kubewatch.kube.pool import InformerKey, InformerPool
from kubewatch.observability.metrics import Metrics
from tests.unit.kube.test_informer import (
    FAST,
    FakeListerWatcher,
    Recorder,
    cm,
    ev,
    pages,
)

HANG = 10.0
"""Seconds before a wait counts as hung (never reached when green)."""

CONFIGMAPS = ResourceType(
    "", "v1", "ConfigMap", "configmaps", "configmap", True, ("cm",), frozenset({"list", "watch"})
)
DEPLOYMENTS = ResourceType(
    "apps", "v1", "Deployment", "deployments", "deployment", True, (), frozenset({"list", "watch"})
)
ALL = InformerKey.of(CONFIGMAPS)
IN_A = InformerKey.of(CONFIGMAPS, "a")


class Factory:
    """Builds informers over scripted list/watches (one script per key, used once)."""

    def __init__(self, scripts: dict[InformerKey, FakeListerWatcher] | None = None) -> None:
        self.scripts = scripts or {}
        self.built: list[tuple[InformerKey, SharedInformer]] = []

    def __call__(self, key: InformerKey) -> SharedInformer:
        lw = self.scripts.get(key) or FakeListerWatcher([pages(1)], [])
        informer = SharedInformer(
            key.name, lw, kind=key.resource.kind, api_version="v1", settings=FAST
        )
        self.built.append((key, informer))
        return informer


def alive(informer: SharedInformer) -> bool:
    return informer._thread is not None and informer._thread.is_alive()


def test_an_informer_starts_on_the_first_attach_and_stops_on_the_last_detach() -> None:
    factory = Factory()
    pool = InformerPool(factory)
    assert pool.informers() == []
    pool.attach("file", ALL, Recorder())
    [(key, informer)] = factory.built
    assert key == ALL and pool.informers() == [informer] and alive(informer)
    pool.attach("notifier/a/web", ALL, Recorder())
    assert len(factory.built) == 1, "the second owner got an informer of its own"
    pool.detach("file")
    assert pool.informers() == [informer] and alive(informer)
    pool.detach("notifier/a/web")
    assert pool.informers() == []
    assert not alive(informer)
    assert pool.keys("file") == set()


def test_two_owners_share_one_informer_and_both_hear_every_change() -> None:
    lw = FakeListerWatcher([pages(10, cm("x", 1, ns="a"))], [[ev("MODIFIED", cm("x", 2, ns="a"))]])
    gate = threading.Event()
    watch = lw.watch
    lw.watch = lambda **kw: (gate.wait(HANG), watch(**kw))[1]  # type: ignore[method-assign]
    pool = InformerPool(Factory({ALL: lw}))
    file, notifier = Recorder(), Recorder()
    pool.attach("file", ALL, file)
    pool.attach("notifier/a/web", ALL, notifier)
    gate.set()
    assert lw.done.wait(HANG)
    pool.stop()
    assert lw.list_calls == [None], "listed twice"
    assert file.calls == notifier.calls == [("add", "x", "1", True), ("update", "x", "1", "2")]


def test_replace_keeps_unchanged_informers_running_and_swaps_the_rest() -> None:
    factory = Factory()
    pool = InformerPool(factory)
    kept, dropped, added = Recorder(), Recorder(), Recorder()
    in_b = InformerKey.of(CONFIGMAPS, "b")
    pool.replace("file", {ALL: [kept], IN_A: [dropped]})
    first = dict(factory.built)
    pool.replace("file", {ALL: [kept], in_b: [added]})
    assert pool.informer(ALL) is first[ALL] and alive(first[ALL]), "restarted"
    assert not alive(first[IN_A]) and pool.informer(IN_A) is None
    assert pool.informer(in_b) is not None
    assert pool.keys("file") == {ALL, in_b}
    assert len(factory.built) == 3
    assert first[ALL].handler_count == 1, "the kept handler was attached twice"
    pool.stop()


def test_replace_with_a_new_handler_on_a_kept_key_swaps_only_the_handler() -> None:
    factory = Factory()
    pool = InformerPool(factory)
    old, new = Recorder(), Recorder()
    pool.replace("file", {ALL: [old]})
    pool.replace("file", {ALL: [new]})
    [(_, informer)] = factory.built
    assert alive(informer) and informer._handlers == (new,)
    pool.stop()


def test_a_late_attach_hears_the_store_as_initial_adds_then_live_changes() -> None:
    """Initial adds keep a joining owner as silent as a start would (EntryHandler reports
    an initial add only with notifyExisting); of one namespace when the owner is."""
    lw = FakeListerWatcher(
        [pages(10, cm("x", 1, ns="a"), cm("y", 2, ns="b"), cm("z", 3, ns="a"))],
        [[ev("MODIFIED", cm("y", 4, ns="b"))]],
    )
    gate = threading.Event()
    watch = lw.watch
    lw.watch = lambda **kw: (gate.wait(HANG), watch(**kw))[1]  # type: ignore[method-assign]
    pool = InformerPool(Factory({ALL: lw}))
    pool.attach("file", ALL, Recorder())
    informer = pool.informer(ALL)
    assert informer is not None and informer.wait_for_sync(HANG)
    late, team_a = Recorder(), Recorder()
    pool.attach("notifier/b/web", ALL, late)
    pool.attach("notifier/a/web", ALL, team_a, namespace="a")
    gate.set()
    assert lw.done.wait(HANG)
    pool.stop()
    assert sorted(late.calls) == [
        ("add", "x", "1", True),
        ("add", "y", "2", True),
        ("add", "z", "3", True),
        ("update", "y", "2", "4"),
    ]
    assert sorted(team_a.calls[:2]) == [("add", "x", "1", True), ("add", "z", "3", True)]
    assert team_a.calls[2:] == [("update", "y", "2", "4")], "later changes reach it all"


def test_nothing_starts_after_stop() -> None:
    factory = Factory()
    pool = InformerPool(factory)
    pool.attach("file", ALL, Recorder())
    pool.stop()
    pool.attach("file", IN_A, Recorder())
    pool.replace("notifier/a/web", {IN_A: [Recorder()]})
    assert len(factory.built) == 1 and pool.informers() == []
    pool.stop()


def test_the_informers_gauge_counts_open_informers_per_resource() -> None:
    pool = InformerPool(Factory())
    metrics = Metrics(informer_counts=pool.counts)
    pool.attach("file", IN_A, Recorder())
    pool.attach("file", InformerKey.of(CONFIGMAPS, "b"), Recorder())
    pool.attach("notifier/a/web", IN_A, Recorder())
    pool.attach("file", InformerKey.of(DEPLOYMENTS), Recorder())
    body = metrics.exposition()[0].decode()
    assert 'kubewatch_informers{resource="configmaps"} 2.0' in body
    assert 'kubewatch_informers{resource="deployments.apps"} 1.0' in body
    pool.stop()
    body = metrics.exposition()[0].decode()
    assert "kubewatch_informers{" not in body
    assert "# TYPE kubewatch_informers gauge" in body


# -- many threads -----------------------------------------------------------------------


class Flowing:
    """Lists five ConfigMaps (in namespaces a and b), then streams changes until closed:
    updates, and now and then a delete or a create."""

    def __init__(self, seed: int) -> None:
        self.lock = threading.Lock()
        self.rng = random.Random(seed)
        self.rv = 10
        self.objects = {f"o{i}": (("a", "b")[i % 2], self.rv) for i in range(5)}

    def list_page(self, *, limit: int, continue_token: str | None) -> dict[str, Any]:
        with self.lock:
            items = [cm(name, rv, ns=ns) for name, (ns, rv) in self.objects.items()]
            return {"items": items, "metadata": {"resourceVersion": str(self.rv)}}

    def watch(self, *, resource_version: str, timeout_seconds: int) -> FlowStream:
        return FlowStream(self)

    def next_event(self) -> dict[str, Any]:
        with self.lock:
            self.rv += 1
            name = self.rng.choice(sorted(self.objects))
            ns, _ = self.objects[name]
            roll = self.rng.random()
            if roll < 0.1 and len(self.objects) > 2:
                del self.objects[name]
                return ev("DELETED", cm(name, self.rv, ns=ns))
            if roll < 0.2:
                name = f"n{self.rv}"
                self.objects[name] = (ns, self.rv)
                return ev("ADDED", cm(name, self.rv, ns=ns))
            self.objects[name] = (ns, self.rv)
            return ev("MODIFIED", cm(name, self.rv, ns=ns))


class FlowStream:
    def __init__(self, source: Flowing) -> None:
        self.source = source
        self.closed = threading.Event()

    def __iter__(self) -> Iterator[dict[str, Any]]:
        while not self.closed.is_set():
            yield self.source.next_event()
            time.sleep(0.0002)

    def close(self) -> None:
        self.closed.set()


class Checker:
    """Records what would break an owner's picture of the objects: a change of an object
    it never heard of, an update whose old state is not what it last heard, an add of one
    it already has, any call after its detach returned."""

    def __init__(self, namespace: str | None) -> None:
        self.namespace = namespace
        """Objects elsewhere are ignored, as an owner of one namespace filters them."""
        self.objects: dict[str, str] = {}
        self.errors: list[Any] = []
        self.detached = False

    def _ignores(self, obj: dict[str, Any]) -> bool:
        time.sleep(0)  # widen the window in which an attach or detach may cut in
        return self.namespace is not None and obj["metadata"]["namespace"] != self.namespace

    def on_add(self, obj: dict[str, Any], is_initial_list: bool) -> None:
        if self._ignores(obj) and not self.detached:
            return
        name, rv = obj["metadata"]["name"], obj["metadata"]["resourceVersion"]
        if self.detached or name in self.objects:
            self.errors.append(("add", name, rv, self.detached))
        self.objects[name] = rv

    def on_update(self, old: dict[str, Any], new: dict[str, Any]) -> None:
        if self._ignores(new) and not self.detached:
            return
        name = new["metadata"]["name"]
        if self.detached or self.objects.get(name) != old["metadata"]["resourceVersion"]:
            self.errors.append(("update", name, self.objects.get(name), self.detached))
        self.objects[name] = new["metadata"]["resourceVersion"]

    def on_delete(self, obj: dict[str, Any] | DeletedFinalStateUnknown) -> None:
        last = obj.obj if isinstance(obj, DeletedFinalStateUnknown) else obj
        if self._ignores(last) and not self.detached:
            return
        name = last["metadata"]["name"]
        if self.detached or self.objects.pop(name, None) is None:
            self.errors.append(("delete", name, self.detached))


def test_stress_owners_attach_and_detach_from_many_threads_while_events_flow() -> None:
    keys = [ALL, InformerKey.of(CONFIGMAPS, None, None, "metadata.name!=x"), IN_A]
    seeds = iter(range(10**6))
    lock = threading.Lock()

    def new_informer(key: InformerKey) -> SharedInformer:
        with lock:
            seed = next(seeds)
        return SharedInformer(key.name, Flowing(seed), kind="ConfigMap", api_version="v1")

    pool = InformerPool(new_informer)
    checkers: list[Checker] = []
    failures: list[BaseException] = []

    def owner(t: int) -> None:
        rng = random.Random(t)
        name = f"notifier/ns{t}/web"
        attached: dict[InformerKey, Checker] = {}
        try:
            namespace = "a" if t % 3 == 0 else None
            for _ in range(25):
                picked = rng.sample(keys, 2)
                if rng.random() < 0.3:  # all anew: detach, then attach one by one
                    wanted = {k: Checker(namespace) for k in picked}
                    pool.detach(name)
                    gone = list(attached.values())
                    for key, checker in wanted.items():
                        pool.attach(name, key, checker, namespace=namespace)
                else:  # handlers of a key kept stay, the others are swapped
                    wanted = {k: attached.get(k) or Checker(namespace) for k in picked}
                    pool.replace(name, {k: [c] for k, c in wanted.items()}, namespace=namespace)
                    gone = [c for k, c in attached.items() if wanted.get(k) is not c]
                for checker in gone:
                    checker.detached = True
                with lock:
                    checkers.extend(c for c in wanted.values() if c not in checkers)
                attached = wanted
                time.sleep(rng.random() * 0.002)
            pool.detach(name)
            for checker in attached.values():
                checker.detached = True
        except BaseException as e:
            failures.append(e)

    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        threads = [threading.Thread(target=owner, args=(t,)) for t in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    finally:
        sys.setswitchinterval(old)
    assert failures == []
    assert not any(thread.is_alive() for thread in threads)
    assert pool.informers() == [] and pool.counts() == {}
    errors = [error for checker in checkers for error in checker.errors]
    assert errors == []
    assert any(checker.objects for checker in checkers), "no events flowed"
    pool.stop()
