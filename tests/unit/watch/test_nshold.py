"""Objects seen before their namespace: held until the Namespace watch reports it, in order."""

from __future__ import annotations

import logging
import random
import sys
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from kubewatch.config import parse_config
from kubewatch.events import Event
from kubewatch.kube import DeletedFinalStateUnknown
from kubewatch.watch.filters import NamespaceLabels, ObjectFilter
from kubewatch.watch.normalize import EventBuilder, ResourceInfo
from kubewatch.watch.nshold import MAX_HELD, MAX_HOLD_SECONDS, NamespaceHold
from kubewatch.watch.pipeline import EntryHandler, Fanout

INFO = ResourceInfo("ConfigMap", "v1", "configmaps")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def cm(ns: str, name: str, rv: int, **data: str) -> dict[str, Any]:
    meta = {"name": name, "namespace": ns, "uid": f"u-{ns}-{name}", "resourceVersion": str(rv)}
    return {"kind": "ConfigMap", "apiVersion": "v1", "metadata": meta, "data": data}


def namespace(name: str, **labels: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}}


def fanout(
    nsl: NamespaceLabels, selector: str = "notify=yes", events: str = "[create, update, delete]"
) -> tuple[Fanout, list[Event]]:
    config = parse_config(
        f"namespaceSelector: {selector}\n"
        f"resources: [{{kind: cm, events: {events}}}]\nsinks: {{c: {{type: stdout}}}}\n"
    )
    rc = config.resources[0]
    entry = EntryHandler(rc, EventBuilder("test", INFO), ObjectFilter.build(config, rc, nsl))
    out: list[Event] = []
    return Fanout([entry], out.append, hold=nsl.hold), out


def brief(events: list[Event]) -> list[tuple[str, str, str]]:
    return [(e.type.value, e.name or "", e.resource_version or "") for e in events]


def test_defaults() -> None:
    assert MAX_HELD == 10_000
    assert MAX_HOLD_SECONDS == 60.0


def test_create_before_its_namespace_is_reported_once_the_namespace_is() -> None:
    """The Deployment's watch wins the race against the Namespace watch: nothing lost."""
    nsl = NamespaceLabels()
    f, events = fanout(nsl)
    f.on_add(cm("shop", "a", 1), False)
    f.on_update(cm("shop", "a", 1, x="1"), cm("shop", "a", 2, x="2"))
    f.on_delete(cm("shop", "a", 3))
    assert events == []
    assert nsl.hold.stats().held == 3
    nsl.on_add(namespace("shop", notify="yes"), False)
    assert brief(events) == [("create", "a", "1"), ("update", "a", "2"), ("delete", "a", "3")]
    stats = nsl.hold.stats()
    assert (stats.held_total, stats.expired_total, stats.held) == (3, 0, 0)


def test_namespace_that_does_not_match_rejects_held_changes_when_known() -> None:
    nsl = NamespaceLabels()
    f, events = fanout(nsl)
    f.on_add(cm("dev", "a", 1), False)
    nsl.on_add(namespace("dev", notify="no"), False)
    assert events == []
    assert nsl.hold.stats().held == 0


def test_later_changes_queue_behind_held_ones_until_released() -> None:
    """Known namespace, but a change of it still held: the next one waits behind it."""
    nsl = NamespaceLabels()
    f, events = fanout(nsl)
    f.on_add(cm("shop", "a", 1), False)
    nsl._labels["shop"] = {"notify": "yes"}  # known, release not run yet (another thread)
    f.on_update(cm("shop", "a", 1, x="1"), cm("shop", "a", 2, x="2"))
    assert events == []
    nsl.hold.release("shop")
    f.on_update(cm("shop", "a", 2, x="2"), cm("shop", "a", 3, x="3"))
    assert [e.resource_version for e in events] == ["1", "2", "3"]


def test_known_namespace_and_cluster_scoped_objects_are_not_held() -> None:
    nsl = NamespaceLabels()
    nsl.on_add(namespace("shop", notify="yes"), True)
    f, events = fanout(nsl)
    f.on_add(cm("shop", "a", 1), False)
    node = {"kind": "Node", "metadata": {"name": "n1", "uid": "n", "resourceVersion": "1"}}
    f.on_add(node, False)
    assert brief(events) == [("create", "a", "1"), ("create", "n1", "1")]
    assert nsl.hold.stats().held_total == 0


def test_without_a_namespace_selector_nothing_is_held() -> None:
    nsl = NamespaceLabels()
    f, events = fanout(nsl, selector="''")
    f.on_add(cm("shop", "a", 1), False)
    assert brief(events) == [("create", "a", "1")]
    assert nsl.hold.stats().held_total == 0


def test_deleted_namespace_does_not_hold_its_objects() -> None:
    """Namespace teardown: object deletes after the namespace's are judged at once."""
    nsl = NamespaceLabels()
    nsl.on_add(namespace("shop", notify="yes"), True)
    f, events = fanout(nsl)
    nsl.on_delete(DeletedFinalStateUnknown("shop", namespace("shop", notify="yes")))
    f.on_delete(cm("shop", "a", 5))
    assert nsl.hold.stats().held == 0
    nsl.on_add(namespace("shop", notify="yes"), False)  # created again
    f.on_add(cm("shop", "b", 6), False)
    assert brief(events) == [("create", "b", "6")]


def test_a_change_held_too_long_is_judged_with_what_is_known_and_said(
    caplog: pytest.LogCaptureFixture,
) -> None:
    nsl = NamespaceLabels()
    clock = Clock()
    nsl.hold = NamespaceHold(nsl._labels, clock=clock)
    f, events = fanout(nsl, selector="'!frozen'")
    f.on_add(cm("ghost", "a", 1), False)
    clock.now += MAX_HOLD_SECONDS - 1
    nsl.hold.expire()
    assert nsl.hold.stats().held == 1
    clock.now += 1
    with caplog.at_level(logging.WARNING, "kubewatch.watch.nshold"):
        nsl.hold.expire()
    assert events == []  # unknown namespace: the selector rejects it, as before, but said
    stats = nsl.hold.stats()
    assert (stats.held_total, stats.expired_total, stats.held) == (1, 1, 0)
    assert "namespace 'ghost' not seen within 60s" in caplog.text
    assert "ConfigMap ghost/a" in caplog.text


def test_the_hold_is_bounded_oldest_judged_first(caplog: pytest.LogCaptureFixture) -> None:
    nsl = NamespaceLabels()
    nsl.hold = NamespaceHold(nsl._labels, max_held=3)
    f, events = fanout(nsl, selector="'!frozen'")
    with caplog.at_level(logging.DEBUG, "kubewatch.watch.nshold"):
        for i in range(5):
            f.on_add(cm(f"ns-{i % 2}", f"o{i}", i), False)
    stats = nsl.hold.stats()
    assert (stats.held_total, stats.expired_total, stats.held) == (5, 2, 3)
    assert "ConfigMap ns-0/o0" in caplog.text and "ConfigMap ns-1/o1" in caplog.text
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1  # rate limited: the second went to DEBUG
    nsl.on_add(namespace("ns-0"), False)
    nsl.on_add(namespace("ns-1"), False)
    assert sorted(e.name or "" for e in events) == ["o2", "o3", "o4"]


def test_expiry_thread_runs_without_being_asked() -> None:
    nsl = NamespaceLabels()
    nsl.hold = NamespaceHold(nsl._labels, max_age=0.0)
    f, _ = fanout(nsl, selector="'!frozen'")
    done = threading.Event()
    f.on_add(cm("ghost", "a", 1), False)
    for _ in range(500):
        if nsl.hold.stats().expired_total == 1:
            done.set()
            break
        threading.Event().wait(0.01)
    assert done.is_set()


@pytest.fixture
def fast_switching() -> Iterator[None]:
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(old)


def test_stress_many_watches_and_the_namespace_watch(fast_switching: None) -> None:
    """Resource watches on several threads race the Namespace watch: every change of every
    object is reported once, and each object's in the order it happened."""
    nsl = NamespaceLabels()
    namespaces = [f"ns-{i}" for i in range(40)]
    threads_n, objects, changes = 6, 15, 4
    outputs: list[list[Event]] = []
    fanouts = []
    for _ in range(threads_n):
        f, out = fanout(nsl)
        fanouts.append(f)
        outputs.append(out)
    start = threading.Barrier(threads_n + 1)

    def watch(k: int) -> None:
        rng = random.Random(k)
        f = fanouts[k]
        start.wait()
        for o in range(objects):
            ns = rng.choice(namespaces)
            name = f"w{k}-o{o}"
            f.on_add(cm(ns, name, 1), False)
            for rv in range(2, changes + 1):
                f.on_update(cm(ns, name, rv - 1, v=str(rv - 1)), cm(ns, name, rv, v=str(rv)))

    def namespace_watch() -> None:
        start.wait()
        for ns in random.Random(99).sample(namespaces, len(namespaces)):
            nsl.on_add(namespace(ns, notify="yes"), False)

    threads = [threading.Thread(target=watch, args=(k,)) for k in range(threads_n)]
    threads.append(threading.Thread(target=namespace_watch))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for k, out in enumerate(outputs):
        for o in range(objects):
            rvs = [e.resource_version for e in out if e.name == f"w{k}-o{o}"]
            assert rvs == [str(rv) for rv in range(1, changes + 1)], (k, o)
    stats = nsl.hold.stats()
    assert stats.held == 0 and stats.expired_total == 0


def test_a_namespace_known_while_a_change_is_being_held_releases_it() -> None:
    """The Namespace watch reports the namespace (and releases it) right between a resource
    watch's look at it (unknown) and its holding the change: the release must wait for
    the hold and run the change, not find nothing held and leave it to expire."""
    known: set[str] = set()
    ran: list[str] = []

    class BecomesKnown:
        """``known``, where the namespace becomes known during the hold's look under its lock
        (the second look: the first is the lock-free fast path)."""

        looks = 0

        def __contains__(self, name: object) -> bool:
            self.looks += 1
            found = name in known
            if self.looks == 2:
                watch = threading.Thread(target=lambda: (known.add("ns"), hold.release("ns")))
                watch.start()
                watch.join(0.2)  # it finishes here unless the release waits for the hold
                self.release = watch
            return found

    contains = BecomesKnown()
    hold = NamespaceHold(contains)
    assert hold.defer("ns", cm("ns", "a", 1), lambda: ran.append("a"))
    contains.release.join()
    assert ran == ["a"]
    assert hold.stats().held == 0
