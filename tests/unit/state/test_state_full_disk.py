"""A full disk under the state: memory from then on, one ERROR, ``kubewatch_state_healthy`` 0.

The disk is made full for real, inside SQLite: ``PRAGMA max_page_count`` caps the database
a few pages above its size when it is opened, so a commit that needs more pages fails with
``SQLITE_FULL`` ("database or disk is full"), exactly as a full filesystem answers.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from kubewatch.app.delivering import Delivering
from kubewatch.observability.metrics import Metrics
from kubewatch.state import State, open_state
from kubewatch.state import db as state_db
from tests.unit.delivery.test_delivery import make_event

SPARE_PAGES = 4
"""Pages the database may grow by before the disk is full."""


@pytest.fixture
def full_disk(monkeypatch: pytest.MonkeyPatch) -> None:
    connect = state_db._connect

    def capped(path: str) -> sqlite3.Connection:
        db = connect(path)
        (pages,) = db.execute("PRAGMA page_count").fetchone()
        db.execute(f"PRAGMA max_page_count = {pages + SPARE_PAGES}")
        return db

    monkeypatch.setattr(state_db, "_connect", capped)


def big_event(i: int) -> Any:
    """An event of about 2 KiB: a few of them fill the spare pages."""
    return make_event(f"default/pod-{i:05d}", rv=i, labels={"blob": "x" * 2000})


def write_failures(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [
        r
        for r in caplog.records
        if r.levelno == logging.ERROR and "state: writing" in r.getMessage()
    ]


def scrape(state: State) -> str:
    """``/metrics`` as the app renders it over this state."""
    app = SimpleNamespace(state=state, recovered={"spool": 0, "while_down": 0})
    metrics = Metrics(state=lambda: Delivering.state_view(app))  # type: ignore[arg-type]
    body, _ = metrics.exposition()
    return body.decode()


@pytest.mark.usefixtures("full_disk")
def test_a_full_disk_falls_back_to_memory_with_one_error_and_no_crash(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="kubewatch.state")
    state = open_state(str(tmp_path))
    assert state is not None
    spool, checkpoint = state.spool, state.checkpoint.collection("/api/v1/pods?")
    assert "kubewatch_state_healthy 1.0" in scrape(state)

    # Watch threads keep writing while the disk fills up (and after): never an exception.
    def produce(offset: int) -> None:
        for i in range(offset, offset + 50):
            event = big_event(i)
            spool.put(event, ["audit", "console"])
            checkpoint.put(event.key, event.uid, event.resource_version, b"{}" * 500)
            spool.settle("console", event.id)

    threads = [threading.Thread(target=produce, args=(n * 50,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert state.db.flush(timeout=10)

    assert not state.db.healthy
    failures = write_failures(caplog)
    assert len(failures) == 1, failures
    assert "database or disk is full" in failures[0].getMessage()
    # the spool goes on in memory: depth and age for /metrics, settle after the failure
    assert spool.depth() == {"audit": 200, "console": 0}
    spool.settle("audit", big_event(0).id)
    assert spool.depth()["audit"] == 199
    assert spool.oldest_age() is not None
    text = scrape(state)
    assert "kubewatch_state_healthy 0.0" in text
    assert 'kubewatch_spool_events{sink="audit"} 199.0' in text

    state.close()  # no exception, and no second ERROR
    assert len(write_failures(caplog)) == 1


@pytest.mark.usefixtures("full_disk")
def test_after_a_full_disk_the_next_start_has_what_was_committed_before(tmp_path: Path) -> None:
    """What reached the disk before it was full is intact: the next start recovers it."""
    state = open_state(str(tmp_path))
    assert state is not None
    first = big_event(0)
    state.spool.put(first, ["audit"])
    assert state.db.flush(timeout=10) and state.db.healthy
    for i in range(1, 100):
        state.spool.put(big_event(i), ["audit"])
    assert state.db.flush(timeout=10)
    assert not state.db.healthy
    state.close()

    again = open_state(str(tmp_path))
    assert again is not None
    recovered = again.spool.recover()
    assert recovered[0] == ("audit", first)
    assert len(recovered) < 100  # the rest never reached the disk
    again.close()
