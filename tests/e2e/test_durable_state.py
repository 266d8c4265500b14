"""Durable state (``state.path``) on a real API server, with the default delivery config.

- ``kill -9`` with a backlog to a slow receiver: the next start delivers the rest;
- changes made while kubewatch is down: each reported once after the restart, marked
  ``whileDown``; a first start with empty state stays silent;
- SIGTERM with a backlog: what the drain could not send is kept and delivered by the
  next start (exit code 0); the spool and recovery metrics say how much;
- a receiver down 12 s and 3 minutes: everything delivered once afterwards, with
  ``kubewatch_sink_up`` 0 meanwhile and a ``SinkDown`` Event;
- a corrupt or foreign ``state.db``: moved aside, named in an ERROR line, start succeeds.

Each test compares the exact multiset of ``(type, name, resourceVersion)`` (``uid`` for a
delete) received with what the test did. A crash may repeat an event the receiver had
already acknowledged: that is allowed only with the same ``id`` (receivers de-duplicate
by it), so events are compared one per distinct id, and every copy of an id must be the
same change.
"""

from __future__ import annotations

import re
import signal
import sqlite3
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k8s

from tests.e2e.conftest import wait_for
from tests.e2e.test_fault_suite import (
    SETTLE,
    AckReceiver,
    Changes,
    Ident,
    config_for,
    final_stats,
    ident,
)
from tests.e2e.test_operate import Daemon, sample

pytestmark = pytest.mark.e2e

_RECOVERED = re.compile(r"state: (\d+) undelivered event\(s\) from the last run")
_KEPT = re.compile(r"state: (\d+) event\(s\) kept in the spool for the next start")
_SEEDED = re.compile(r": (\d+) object\(s\) from the checkpoint; reporting changes")
_MOVED = re.compile(r"ERROR .*is not a usable kubewatch state database .*; moved it to (\S+) ")


# -- helpers ---------------------------------------------------------------------------------


def once_per_id(events: list[dict[str, Any]]) -> Counter[Ident]:
    """The changes ``events`` stand for, one per distinct ``id``; fails if two copies of
    one id are different changes (a repeat must be the very same event)."""
    by_id: dict[str, set[Ident]] = defaultdict(set)
    for event in events:
        by_id[event["id"]].add(ident(event))
    mixed = {i: changes for i, changes in by_id.items() if len(changes) > 1}
    assert not mixed, f"one id for different changes: {mixed}"
    return Counter(next(iter(changes)) for changes in by_id.values())


def distinct(events: list[dict[str, Any]]) -> int:
    return len({e["id"] for e in events})


def durable_config(namespace: str, url: str, state: Path | None) -> dict[str, Any]:
    """ConfigMaps to stdout and a webhook, the health server on, the default delivery."""
    config = config_for(namespace, {"audit": {"type": "webhook", "url": url}}, server={"port": 0})
    assert "delivery" not in config
    if state is not None:
        config["state"] = {"path": str(state)}
    return config


def checkpointed(state: Path, name: str) -> bool:
    """Whether the object ``name`` is in the committed checkpoint (a reader of its own:
    WAL lets it read while kubewatch writes)."""
    db = sqlite3.connect(state / "state.db")
    try:
        rows = db.execute("SELECT key FROM objects").fetchall()
    finally:
        db.close()
    return any(key.endswith("/" + name) for (key,) in rows)


def kill9(kw: Daemon) -> None:
    kw.proc.send_signal(signal.SIGKILL)
    kw.proc.wait(10)


def metric(kw: Daemon, name: str, **labels: str) -> float | None:
    return sample(kw.metrics(), name, **labels)


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Callable[..., Daemon]]:
    """``daemon(config, name, env=…)``: a kubewatch in ``tmp_path/name``; stopped after."""
    started: list[Daemon] = []

    def start(config: dict[str, Any], name: str, env: dict[str, str] | None = None) -> Daemon:
        d = Daemon(config, tmp_path / name, env)
        started.append(d)
        return d

    yield start
    for d in started:
        d.stop()


@pytest.fixture
def ack_receiver() -> Iterator[AckReceiver]:
    r = AckReceiver()
    r.open()
    yield r
    r.close()


@pytest.fixture
def slow_receiver() -> Iterator[AckReceiver]:
    """One second per request: with the default 4 workers, about 4 events a second."""
    r = AckReceiver(delay=1.0)
    r.open()
    yield r
    r.close()


# -- 1. kill -9 with a backlog ----------------------------------------------------------------


def test_kill_9_with_a_backlog_delivers_the_rest_after_restart(
    api: k8s.ApiClient,
    namespace: str,
    slow_receiver: AckReceiver,
    daemon: Callable[..., Daemon],
    tmp_path: Path,
) -> None:
    """60 updates queue up for a receiver that takes 1 s per request; ``kill -9`` after
    a few were acknowledged. The next start, on the same state dir, recovers the spool
    and delivers the rest: every update once per id, in order per object."""
    changes = Changes(k8s.CoreV1Api(api), namespace)
    names = [f"slow-{i:02d}" for i in range(20)]
    for name in names:
        changes.create(name, record=False)  # before the first start: silent
    config = durable_config(namespace, slow_receiver.url, tmp_path / "state")
    first = daemon(config, "first")
    first.wait_synced(1)
    for value in ("2", "3", "4"):
        for name in names:
            changes.update(name, value)
    wait_for(lambda: len(first.events) >= 60, what="all 60 updates produced")
    wait_for(lambda: len(slow_receiver.acked_ids) >= 4, what="a few deliveries")
    kill9(first)
    acked_before = distinct(slow_receiver.events)
    assert acked_before < 60, "no backlog was left: the test proves nothing"

    slow_receiver.delay = 0.0
    second = daemon(config, "second")
    second.wait_synced(1)
    recovered = int(wait_for(lambda: _RECOVERED.search(second.stderr)).group(1))
    assert recovered >= 60 - acked_before
    wait_for(
        lambda: distinct(slow_receiver.events) >= 60, timeout=60, what="all 60 at the receiver"
    )
    wait_for(lambda: metric(second, "kubewatch_spool_events", sink="audit") == 0)

    expected = Counter(changes.done)
    assert once_per_id(slow_receiver.events) == expected
    assert once_per_id(first.events + second.events) == expected
    assert metric(second, "kubewatch_events_recovered_total", recovery="spool") == recovered
    assert metric(second, "kubewatch_events_recovered_total", recovery="while_down") == 0
    for name in names:  # one object's updates in order, across the crash too
        versions = [e["resourceVersion"] for e in slow_receiver.events if e["name"] == name]
        assert sorted(set(versions), key=int) == list(dict.fromkeys(versions))
    assert second.stop() == 0
    assert final_stats(second.stderr)["audit"]["failed"] == 0


# -- 2. changes while kubewatch is down ---------------------------------------------------------


def test_changes_while_down_are_reported_once_after_restart(
    api: k8s.ApiClient,
    namespace: str,
    ack_receiver: AckReceiver,
    daemon: Callable[..., Daemon],
    tmp_path: Path,
) -> None:
    """A first start with empty state is silent about the 25 objects that exist. After
    ``kill -9``, 10 creates, 10 updates and 10 deletes are made; the next start reports
    each once with ``whileDown: true`` (updates with their diff, deletes as tombstones),
    the 5 objects left alone not at all, and a live change afterwards without the mark."""
    receiver = ack_receiver
    changes = Changes(k8s.CoreV1Api(api), namespace)
    kept = [f"keep-{i}" for i in range(5)]
    updated = [f"upd-{i}" for i in range(10)]
    deleted = [f"del-{i}" for i in range(10)]
    for name in kept + updated + deleted:
        changes.create(name, record=False)
    config = durable_config(namespace, receiver.url, tmp_path / "state")
    first = daemon(config, "first")
    first.wait_synced(1)
    changes.create("marker")  # the first event: nothing before it was reported
    wait_for(lambda: first.events and receiver.events, what="the marker's event")
    # committed to the checkpoint (else the restart reports it again, with the same id)
    wait_for(lambda: checkpointed(tmp_path / "state", "marker"), what="the marker checkpointed")
    assert once_per_id(first.events) == once_per_id(receiver.events) == Counter(changes.done)
    assert first.events[0]["whileDown"] is False
    kill9(first)

    for i in range(10):
        changes.create(f"new-{i}")
        changes.update(updated[i], "2")
        changes.delete(deleted[i])
    down = changes.done[1:]
    assert len(down) == 30

    second = daemon(config, "second")
    second.wait_synced(1)
    seeded = int(wait_for(lambda: _SEEDED.search(second.stderr)).group(1))
    assert seeded == len(kept + updated + deleted) + 1
    wait_for(lambda: distinct(receiver.events) >= 31, timeout=60, what="the 30 changes")
    changes.update(kept[0], "live")  # the first list is over: a live change again
    wait_for(lambda: distinct(receiver.events) >= 32, what="the live update")
    wait_for(lambda: len(second.events) >= 31, what="the console's events")

    expected = Counter(changes.done)
    assert once_per_id(receiver.events) == expected
    assert once_per_id(first.events + second.events) == expected
    for events in (receiver.events, second.events):
        by_change = {ident(e): e for e in events}
        for change in down:
            assert by_change[change]["whileDown"] is True, change
        assert by_change[changes.done[-1]]["whileDown"] is False  # the live update
        for name in updated:
            update = by_change[("update", name, changes.versions[name])]
            assert update["changes"] == [
                {"path": "data.v", "op": "changed", "old": "1", "new": "2"}
            ]
        for name in deleted:
            assert by_change[("delete", name, changes.uids[name])]["finalStateUnknown"] is True
    while_down = {e["id"] for e in second.events if e["whileDown"]}
    assert metric(second, "kubewatch_events_recovered_total", recovery="while_down") == len(
        while_down
    )
    assert second.stop() == 0


# -- 3. SIGTERM with a backlog ----------------------------------------------------------------


def test_sigterm_with_a_backlog_keeps_the_rest_for_the_next_start(
    api: k8s.ApiClient,
    namespace: str,
    slow_receiver: AckReceiver,
    daemon: Callable[..., Daemon],
    tmp_path: Path,
) -> None:
    """64 creates for a receiver that takes 1 s per request; SIGTERM. The drain
    (``drainTimeout``, 10 s) sends what it can; the rest stays in the spool (the log says
    how many), the exit code is 0. The next start recovers exactly that many
    (``kubewatch_events_recovered_total{recovery="spool"}``), delivers them, and the
    spool gauge goes from the backlog to 0."""
    changes = Changes(k8s.CoreV1Api(api), namespace)
    config = durable_config(namespace, slow_receiver.url, tmp_path / "state")
    first = daemon(config, "first")
    first.wait_synced(1)
    for i in range(64):
        changes.create(f"term-{i:02d}")
    wait_for(lambda: len(first.events) >= 64, what="all 64 creates produced")
    wait_for(slow_receiver.started.is_set, what="the first delivery in flight")
    backlog = metric(first, "kubewatch_spool_events", sink="audit")
    assert backlog is not None and backlog > 0
    assert (metric(first, "kubewatch_spool_oldest_event_age_seconds") or 0) > 0
    assert metric(first, "kubewatch_state_healthy") == 1

    code = first.stop(timeout=40)  # SIGTERM
    assert code == 0, first.stderr[-3000:]
    kept = int(wait_for(lambda: _KEPT.search(first.stderr)).group(1))
    audit = final_stats(first.stderr)["audit"]
    assert kept > 0, "the drain sent everything: the test proves nothing"
    assert audit["delivered"] + kept == 64 == audit["delivered"] + audit["failed"]
    assert "are lost" not in first.stderr

    slow_receiver.delay = 0.0
    second = daemon(config, "second")
    second.wait_synced(1)
    assert metric(second, "kubewatch_events_recovered_total", recovery="spool") == kept
    wait_for(lambda: distinct(slow_receiver.events) >= 64, timeout=60, what="all 64 delivered")
    wait_for(lambda: metric(second, "kubewatch_spool_events", sink="audit") == 0)
    assert metric(second, "kubewatch_spool_oldest_event_age_seconds") is None

    expected = Counter(changes.done)
    assert once_per_id(slow_receiver.events) == expected
    assert once_per_id(first.events) == expected
    assert second.events == []  # the console had them all: nothing owed to it
    assert second.stop() == 0
    again = final_stats(second.stderr)["audit"]
    assert (again["delivered"], again["failed"]) == (kept, 0)


# -- 4. a receiver down 12 s and 3 minutes -------------------------------------------------------


@pytest.mark.parametrize("outage", [12.0, 180.0], ids=["12s", "3min"])
def test_receiver_down_gets_every_change_exactly_once_after(
    api: k8s.ApiClient,
    namespace: str,
    daemon: Callable[..., Daemon],
    outage: float,
) -> None:
    """The receiver refuses connections for half the outage, then answers 503 (at least
    until a probe met it: the outage may run longer than planned), while 10
    ConfigMaps are created, updated and deleted across it. With the default config (no
    attempt limit, backoff up to 30 s, events kept for ``maxAge`` 1 h) every change is
    acknowledged exactly once afterwards and nothing is given up; meanwhile the sink is
    down in ``/metrics`` and a ``SinkDown`` Warning Event is recorded."""
    receiver = AckReceiver()
    core = k8s.CoreV1Api(api)
    changes = Changes(core, namespace)
    env = {"POD_NAME": "kubewatch-e2e", "POD_NAMESPACE": namespace}
    kw = daemon(durable_config(namespace, receiver.url, None), "kubewatch", env)  # refused
    try:
        kw.wait_synced(1)
        names = [f"cm-{i:02d}" for i in range(10)]
        down = time.monotonic()

        def at(fraction: float) -> None:
            time.sleep(max(0.0, down + fraction * outage - time.monotonic()))

        for name in names:
            changes.create(name)
        wait_for(lambda: len(kw.events) >= 10, what="kubewatch to see the creates")
        wait_for(lambda: metric(kw, "kubewatch_sink_up", sink="audit") == 0, what="the sink down")
        assert metric(kw, "kubewatch_sink_up", sink="console") == 1
        at(0.25)
        for name in names:
            changes.update(name, "2")
        at(0.5)
        receiver.status = 503
        receiver.open()
        wait_for(receiver.started.is_set, timeout=40, what="a probe to meet the 503s")
        at(0.75)
        for name in names:
            changes.delete(name)
        at(1.0)
        assert receiver.acked_ids == []
        assert "not delivered after" not in kw.stderr
        receiver.status = 200
        wait_for(lambda: len(receiver.acked_ids) >= 30, timeout=60, what="all 30 after")
        wait_for(lambda: metric(kw, "kubewatch_sink_up", sink="audit") == 1)
        time.sleep(SETTLE)  # a duplicate would have arrived by now
    finally:
        receiver.close()
    assert kw.stop() == 0

    acked = Counter(receiver.acked_ids)
    assert [i for i, n in acked.items() if n > 1] == []
    expected = Counter(changes.done)
    assert Counter(ident(e) for e in receiver.events) == expected
    assert Counter(ident(e) for e in kw.events) == expected
    stats = final_stats(kw.stderr)["audit"]
    assert (stats["delivered"], stats["failed"], stats["dropped"]) == (30, 0, 0)
    assert "sink 'audit' is down" in kw.stderr
    retried = [line for line in kw.stderr.splitlines() if "retry in" in line]
    assert any("ConnectError" in line for line in retried)
    assert any("HTTP 503" in line for line in retried)
    events = core.list_namespaced_event(namespace).items
    assert any(e.reason == "SinkDown" and e.type == "Warning" for e in events)


# -- 5. a bad state file ----------------------------------------------------------------------


def _garbage(path: Path) -> None:
    path.write_bytes(b"this is not a database\n" * 200)


def _foreign(path: Path) -> None:
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)")
        db.execute("INSERT INTO users (name) VALUES ('someone')")
    db.close()


@pytest.mark.parametrize("make", [_garbage, _foreign], ids=["corrupt", "foreign"])
def test_a_bad_state_file_is_moved_aside_and_kubewatch_works(
    api: k8s.ApiClient,
    namespace: str,
    *,
    ack_receiver: AckReceiver,
    daemon: Callable[..., Daemon],
    tmp_path: Path,
    make: Callable[[Path], None],
) -> None:
    """A ``state.db`` that is garbage, or another program's SQLite database: the start
    succeeds, an ERROR names where the file went (its content intact there), and the
    fresh state works: events are delivered and a restart recovers the checkpoint."""
    state = tmp_path / "state"
    state.mkdir()
    bad = state / "state.db"
    make(bad)
    original = bad.read_bytes()
    receiver = ack_receiver
    changes = Changes(k8s.CoreV1Api(api), namespace)
    config = durable_config(namespace, receiver.url, state)
    first = daemon(config, "first")
    first.wait_synced(1)
    aside = Path(wait_for(lambda: _MOVED.search(first.stderr)).group(1))
    assert aside.parent == state and aside != bad
    assert aside.read_bytes() == original
    assert metric(first, "kubewatch_state_healthy") == 1
    changes.create("works")
    wait_for(lambda: receiver.events, what="an event through the fresh state")
    assert first.stop() == 0

    second = daemon(config, "second")
    second.wait_synced(1)
    assert "not a usable kubewatch state database" not in second.stderr
    assert _SEEDED.search(second.stderr)
    changes.update("works", "2")
    wait_for(lambda: distinct(receiver.events) >= 2, what="the update")
    assert second.stop() == 0
    assert once_per_id(receiver.events) == Counter(changes.done)
