"""Durable state: the SQLite database, the spool and the checkpoint (informer recovery)."""

from __future__ import annotations

import logging
import os
import random
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from kubewatch.events import Change, DigestInfo, Event, EventType, InvolvedObject, KubeEventInfo
from kubewatch.kube import DeletedFinalStateUnknown, SharedInformer
from kubewatch.state import DB_FILE, Checkpoint, StateDB, open_state
from kubewatch.state import db as state_db
from tests.stress import hammer
from tests.unit.kube.test_informer import FAST, FakeListerWatcher, Recorder, cm, ev, pages


def make_event(name: str = "app", rv: int = 1, **overrides: Any) -> Event:
    fields: dict[str, Any] = {
        "type": EventType.UPDATE,
        "cluster": "test",
        "kind": "ConfigMap",
        "api_version": "v1",
        "resource": "configmaps",
        "namespace": "default",
        "name": name,
        "uid": f"uid-{name}",
        "resource_version": str(rv),
        "observed_at": "2026-11-26T22:10:51.123Z",
        "summary": f"update ConfigMap default/{name}",
    }
    fields.update(overrides)
    return Event(**fields)


# -- Event JSON round trip ------------------------------------------------------------------


def test_every_event_shape_survives_the_spool_form() -> None:
    events = [
        make_event(changes=(Change("data.a", "1", None, "removed"),), labels={"x": "y"}),
        make_event(type=EventType.DELETE, final_state_unknown=True, while_down=True),
        make_event(
            k8s_event=KubeEventInfo(
                "Warning", "BackOff", "m", 3, InvolvedObject("Pod", "ns", "p", "u"), "kubelet"
            )
        ),
        make_event(name="", uid="", digest=DigestInfo(2, ("a", "b"), ("ns/x", "ns/y"))),
    ]
    for event in events:
        again = Event.from_dict(event.to_dict())
        assert again == event
        assert again.id == event.id


# -- the database ---------------------------------------------------------------------------


def test_a_corrupt_file_is_moved_aside_and_state_starts_empty(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / DB_FILE).write_bytes(b"this is not a database" * 100)
    db = StateDB.open(str(tmp_path))
    try:
        assert db.query("SELECT count(*) FROM spool") == [(0,)]
    finally:
        db.close()
    aside = [p for p in os.listdir(tmp_path) if p.startswith(f"{DB_FILE}.bad-")]
    assert len(aside) == 1
    (record,) = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert aside[0] in record.getMessage()


def test_another_programs_database_is_moved_aside(tmp_path: Path) -> None:
    other = sqlite3.connect(tmp_path / DB_FILE)
    other.execute("CREATE TABLE customers (id INTEGER)")
    other.commit()
    other.close()
    db = StateDB.open(str(tmp_path))
    db.close()
    assert any(p.startswith(f"{DB_FILE}.bad-") for p in os.listdir(tmp_path))
    check = sqlite3.connect(tmp_path / DB_FILE)
    assert [r[0] for r in check.execute("SELECT name FROM sqlite_master WHERE type='table'")] == [
        "meta",
        "spool",
        "collections",
        "objects",
        "memo",
    ]


def test_our_own_database_is_reopened_not_moved(tmp_path: Path) -> None:
    StateDB.open(str(tmp_path)).close()
    StateDB.open(str(tmp_path)).close()
    assert not any(".bad-" in p for p in os.listdir(tmp_path))


def test_a_failed_write_falls_back_to_memory_with_one_error(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db = StateDB.open(str(tmp_path))
    db.query("PRAGMA max_page_count = 1")  # the database cannot grow: "database or disk is full"
    big = b"x" * 100_000
    for i in range(5):
        db.write("INSERT INTO spool (seq, sink, event) VALUES (?, ?, ?)", (i, "s", big))
    assert db.flush(5.0)
    assert not db.healthy
    db.write("INSERT INTO spool (seq, sink, event) VALUES (?, ?, ?)", (9, "s", big))  # ignored
    db.close()
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "memory only" in errors[0].getMessage()


def test_an_unusable_directory_means_memory_state_not_a_crash(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    assert open_state(str(blocker / "state")) is None
    assert any("memory only" in r.getMessage() for r in caplog.records)


def test_without_a_state_dir_the_start_says_what_a_restart_loses(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING)
    assert open_state(None) is None
    (record,) = caplog.records
    assert "lost on restart" in record.getMessage()


# -- the spool ------------------------------------------------------------------------------


def test_spooled_events_come_back_in_order_with_their_ids(tmp_path: Path) -> None:
    state = open_state(str(tmp_path))
    assert state is not None
    events = [make_event(f"o{i % 3}", rv=i) for i in range(10)]
    for event in events:
        state.spool.put(event, ("a", "b"))
    state.spool.put(events[0], ("a",))  # owed already: not twice
    for event in events[:4]:
        state.spool.settle("a", event.id)
    assert state.spool.depth() == {"a": 6, "b": 10}
    state.close()

    again = open_state(str(tmp_path))
    assert again is not None
    recovered = again.spool.recover()
    assert [(sink, e.id) for sink, e in recovered] == [
        (sink, e.id) for e in events for sink in ("a", "b") if sink == "b" or e not in events[:4]
    ]
    assert again.spool.depth() == {"a": 6, "b": 10}
    again.spool.put(make_event("new", rv=99), ("a",))  # numbering continues after the old rows
    again.close()
    third = open_state(str(tmp_path))
    assert third is not None
    assert len(third.spool.recover()) == 17
    third.close()


def test_spool_is_safe_for_many_threads(tmp_path: Path) -> None:
    state = open_state(str(tmp_path))
    assert state is not None

    def work(t: int) -> None:
        for i in range(300):
            event = make_event(f"t{t}-{i}", rv=i)
            state.spool.put(event, ("s",))
            if i % 2:
                state.spool.settle("s", event.id)
            state.spool.depth()
            state.spool.oldest_age()

    hammer(work, 8)
    assert state.spool.depth() == {"s": 8 * 150}
    state.close()
    again = open_state(str(tmp_path))
    assert again is not None
    assert len(again.spool.recover()) == 8 * 150
    again.close()


# -- the checkpoint and the informer ---------------------------------------------------------


def informer(lw: FakeListerWatcher, checkpoint: Checkpoint) -> tuple[SharedInformer, Recorder]:
    inf = SharedInformer(
        "configmaps",
        lw,
        kind="ConfigMap",
        api_version="v1",
        settings=FAST,
        rng=random.Random(1),
        checkpoint=checkpoint.collection("/api/v1/configmaps"),
    )
    recorder = Recorder()
    inf.add_handler(recorder)
    return inf, recorder


def run(lw: FakeListerWatcher, directory: Path) -> tuple[Recorder, list[bool]]:
    """One run of an informer over ``directory``'s state; the handler also notes, for each
    call, whether the informer said it was recovering."""
    state = open_state(str(directory))
    assert state is not None
    inf, recorder = informer(lw, state.checkpoint)
    recovering: list[bool] = []

    class Probe:
        def on_add(self, obj: dict[str, Any], is_initial_list: bool) -> None:
            recovering.append(inf.recovering)

        def on_update(self, old: dict[str, Any], new: dict[str, Any]) -> None:
            recovering.append(inf.recovering)

        def on_delete(self, obj: dict[str, Any] | DeletedFinalStateUnknown) -> None:
            recovering.append(inf.recovering)

    inf.add_handler(Probe())
    inf.start()
    assert lw.done.wait(5)
    inf.stop()
    state.close()
    return recorder, recovering


def test_changes_made_while_down_are_reported_once_and_unchanged_objects_not(
    tmp_path: Path,
) -> None:
    first = FakeListerWatcher(
        [pages(10, cm("keep", 1), cm("edit", 2), cm("gone", 3), cm("swap", 4, uid="u1"))],
        [[ev("MODIFIED", cm("edit", 5, a="live"))]],
    )
    rec, _ = run(first, tmp_path)
    assert rec.calls == [
        ("add", "keep", "1", True),
        ("add", "edit", "2", True),
        ("add", "gone", "3", True),
        ("add", "swap", "4", True),
        ("update", "edit", "2", "5"),
    ]
    # Down meanwhile: edit changed again, gone deleted, swap recreated, new created.
    second = FakeListerWatcher(
        [
            pages(
                20, cm("keep", 1), cm("edit", 12, a="down"), cm("swap", 14, uid="u2"), cm("new", 15)
            )
        ],
        [[ev("MODIFIED", cm("new", 21))]],
    )
    rec, recovering = run(second, tmp_path)
    assert rec.calls == [
        ("update", "edit", "5", "12"),
        ("delete-unknown", "swap", "4"),
        ("add", "swap", "14", False),
        ("add", "new", "15", False),
        ("delete-unknown", "gone", "3"),
        ("update", "new", "15", "21"),  # after the first list: live again
    ]
    assert recovering == [True, True, True, True, True, False]
    # A third start with nothing changed reports nothing.
    third = FakeListerWatcher(
        [pages(30, cm("keep", 1), cm("edit", 12), cm("swap", 14, uid="u2"), cm("new", 21))], []
    )
    rec, _ = run(third, tmp_path)
    assert rec.calls == []


def test_an_empty_collection_is_known_empty_after_its_first_list(tmp_path: Path) -> None:
    rec, _ = run(FakeListerWatcher([pages(1)], []), tmp_path)
    assert rec.calls == []
    rec, recovering = run(FakeListerWatcher([pages(2, cm("born", 2))], []), tmp_path)
    assert rec.calls == [("add", "born", "2", False)]  # created while down: news
    assert recovering == [True]


def test_a_checkpoint_row_follows_what_the_handlers_queued(tmp_path: Path) -> None:
    """The informer writes an object's checkpoint only after its handlers ran, so in the
    database's op order the spool rows of its event always come first."""
    state = open_state(str(tmp_path))
    assert state is not None
    order: list[str] = []
    real_write = state.db.write

    def write(sql: str, params: Any = (), key: Any = None) -> None:
        order.append("spool" if "spool" in sql else "checkpoint" if "objects" in sql else "other")
        real_write(sql, params, key)

    state.db.write = write  # type: ignore[method-assign]
    lw = FakeListerWatcher([pages(1, cm("a", 1))], [[ev("MODIFIED", cm("a", 2))]])
    inf, _ = informer(lw, state.checkpoint)

    class Spooler:
        def on_add(self, obj: dict[str, Any], is_initial_list: bool) -> None:
            state.spool.put(make_event(obj["metadata"]["name"], 1), ("s",))

        def on_update(self, old: dict[str, Any], new: dict[str, Any]) -> None:
            state.spool.put(make_event(new["metadata"]["name"], 2), ("s",))

        def on_delete(self, obj: Any) -> None:  # pragma: no cover - none scripted
            pass

    inf.add_handler(Spooler())
    inf.start()
    assert lw.done.wait(5)
    inf.stop()
    state.close()
    objects = [o for o in order if o != "other"]
    assert objects == ["spool", "checkpoint", "spool", "checkpoint"]


# -- coalesced writes ---------------------------------------------------------------------


def test_a_commit_writes_each_keyed_row_once_the_last_write_winning() -> None:
    put, delete, other = "INSERT row", "DELETE row", "UPDATE meta"
    ops = [
        (put, (1, "a"), 1),
        (other, (), None),
        (put, (1, "b"), 1),  # replaces the first
        (put, (2, "x"), 2),
        (delete, (2,), 2),  # spooled and settled before the commit: never written
        (other, (), None),
    ]
    assert state_db._coalesce(ops) == [ops[1], ops[2], ops[4], ops[5]]
    distinct = [(put, (i,), i) for i in range(3)]
    assert state_db._coalesce(distinct) is distinct  # nothing to drop: no copy


def test_coalesced_writes_leave_what_uncoalesced_ones_would(tmp_path: Path) -> None:
    state = open_state(str(tmp_path))
    assert state is not None
    collection = state.checkpoint.collection("/api/v1/configmaps")
    for rv in range(1, 200):  # one burst: these land in a handful of commits
        collection.put("default/a", "u1", str(rv), b'{"rv": %d}' % rv)
        event = make_event("a", rv)
        state.spool.put(event, ("s",))
        if rv % 2:
            state.spool.settle("s", event.id)
    collection.put("default/b", "u2", "7", b"{}")
    collection.delete("default/b")
    collection.synced()
    state.close()
    again = open_state(str(tmp_path))
    assert again is not None
    assert again.checkpoint.collection("/api/v1/configmaps").load() == [
        ("default/a", "u1", "199", b'{"rv": 199}')
    ]
    assert [int(e.resource_version) for _, e in again.spool.recover()] == list(range(2, 200, 2))
    again.close()
