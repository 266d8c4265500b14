"""Health alerts of several owners (the file, Notifiers) through one HealthAlerts: each its
own tracker, deliver and records."""

from __future__ import annotations

from pathlib import Path

from kubewatch.config import HealthConfig
from kubewatch.events import AlertState, Event
from kubewatch.state.alerts import AlertTable
from kubewatch.state.db import StateDB
from kubewatch.watch.alerting import HealthAlerts
from kubewatch.watch.normalize import ResourceInfo

from .test_health import container, pod

POD = ResourceInfo("Pod", "v1", "pods")
CRASH = pod(container(waiting="CrashLoopBackOff"))


def test_each_scope_hears_of_the_same_pod_once_and_only_its_own() -> None:
    to_file: list[Event] = []
    to_a: list[Event] = []
    to_b: list[Event] = []
    alerts = HealthAlerts(to_file.append)
    file_watch = alerts.entry(POD, "prod", HealthConfig())
    a = alerts.scope("team-a/web", to_a.append).entry(POD, "prod", HealthConfig())
    alerts.scope("team-b/web", to_b.append)  # a Notifier that sees nothing
    for watch in (file_watch, a, file_watch, a):
        watch.observe(CRASH, initial=False)
    alerts.stop()
    assert [e.alert.state for e in to_file if e.alert] == [AlertState.FIRING]
    assert [e.alert.state for e in to_a if e.alert] == [AlertState.FIRING]
    assert to_b == []


def test_a_released_scope_starts_afresh() -> None:
    sent: list[Event] = []
    alerts = HealthAlerts(lambda e: None)
    scope = alerts.scope("team-a/web", sent.append)
    assert alerts.scope("team-a/web", sent.append) is scope
    alerts.release("team-a/web")
    assert alerts.scope("team-a/web", sent.append) is not scope
    alerts.stop()


def test_records_of_each_scope_stay_apart_and_clear_alone(tmp_path: Path) -> None:
    db = StateDB.open(str(tmp_path))
    try:
        file, web, web2 = AlertTable(db), AlertTable(db, "a/web"), AlertTable(db, "a/web-2")
        for i, table in enumerate((file, web, web2)):
            table.put(f"u{i}/app/CrashLoopBackOff", {"n": i})
        assert [t.load() for t in (file, web, web2)] == [[{"n": 0}], [{"n": 1}], [{"n": 2}]]
        web.clear()
        assert [t.load() for t in (file, web, web2)] == [[{"n": 0}], [], [{"n": 2}]]
    finally:
        db.close()
