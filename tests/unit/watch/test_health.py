"""Health alerts: detectors over object dicts, the tracker over time, and the events."""

from __future__ import annotations

import sys
import threading
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from kubewatch.config import DigestConfig, parse_config
from kubewatch.delivery.digest import Digester
from kubewatch.errors import ConfigErrors
from kubewatch.events import AlertState, Event, EventType
from kubewatch.render.chat import FIRING_COLOUR, RESOLVED_COLOUR, chat_message
from kubewatch.routing import Router
from kubewatch.watch.alerting import HealthAlerts, alert_event
from kubewatch.watch.health import OBJECT, assess
from kubewatch.watch.tracker import HealthSettings, HealthTracker, Notice, Subject
from tests.unit.test_schemas import event_errors
from tests.unit.watch.test_plan import plan

REASONS = ("CrashLoopBackOff", "OOMKilled", "ImagePullBackOff", "ErrImagePull", "Error")
T0 = datetime(2026, 11, 26, 22, 0, tzinfo=timezone.utc)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def step(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def container(
    name: str = "app",
    *,
    waiting: str | None = None,
    last: str | None = None,
    exit_code: int = 1,
    restarts: int = 1,
    ready: bool = False,
    finished: str = "2026-11-26T21:59:00Z",
) -> dict[str, Any]:
    state: dict[str, Any] = {"waiting": {"reason": waiting}} if waiting else {"running": {}}
    status: dict[str, Any] = {
        "name": name,
        "state": state,
        "ready": ready,
        "restartCount": restarts,
    }
    if last:
        status["lastState"] = {
            "terminated": {"reason": last, "exitCode": exit_code, "finishedAt": finished}
        }
    return status


def pod(*containers: dict[str, Any], uid: str = "u1", name: str = "web-1") -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": "shop", "uid": uid, "resourceVersion": "7"},
        "status": {"containerStatuses": list(containers)},
    }


def conditions(*items: tuple[str, str, str]) -> dict[str, Any]:
    return {
        "metadata": {"name": "x", "uid": "ux"},
        "status": {
            "conditions": [
                {"type": t, "status": s, "reason": r, "lastTransitionTime": "2026-11-26T21:00:00Z"}
                for t, s, r in items
            ]
        },
    }


# -- detectors ---------------------------------------------------------------------------


def test_a_crash_loop_is_one_finding_of_its_container() -> None:
    a = assess("Pod", pod(container(waiting="CrashLoopBackOff", last="Error")), REASONS)
    [f] = a.findings
    assert (f.subject, f.reason, f.exit_code, f.ongoing, f.previous) == (
        "app",
        "CrashLoopBackOff",
        1,
        True,
        True,
    )
    assert f.since == "2026-11-26T21:59:00.000Z" and a.healthy == frozenset()


def test_an_oom_kill_says_why_the_container_loops() -> None:
    obj = pod(container(waiting="CrashLoopBackOff", last="OOMKilled", exit_code=137))
    [f] = assess("Pod", obj, REASONS).findings
    assert (f.reason, f.exit_code, f.family) == ("OOMKilled", 137, "OOMKilled")


def test_a_past_termination_of_a_ready_container_is_not_ongoing() -> None:
    a = assess("Pod", pod(container(last="OOMKilled", exit_code=137, ready=True)), REASONS)
    assert [f.ongoing for f in a.findings] == [False] and a.healthy == {"app"}


def test_reasons_not_listed_are_not_failures() -> None:
    assert assess("Pod", pod(container(waiting="ContainerCreating")), REASONS).findings == ()
    assert assess("Pod", pod(container(waiting="CrashLoopBackOff")), ["OOMKilled"]).findings == ()


@pytest.mark.parametrize(
    ("kind", "items", "reasons"),
    [
        pytest.param("Job", [("Failed", "True", "BackoffLimitExceeded")], ["BackoffLimitExceeded"]),
        pytest.param("Job", [("Complete", "True", "")], [], id="job-complete"),
        pytest.param(
            "Deployment",
            [("Progressing", "False", "ProgressDeadlineExceeded")],
            ["ProgressDeadlineExceeded"],
        ),
        pytest.param(
            "Deployment",
            [("Progressing", "True", "ReplicaSetUpdated"), ("Available", "False", "X")],
            [],
            id="deployment-rolling-out-is-not-a-failure",
        ),
        pytest.param(
            "Deployment",
            [("Progressing", "True", "NewReplicaSetAvailable"), ("Available", "False", "")],
            ["MinimumReplicasUnavailable"],
            id="deployment-lost-replicas-after-rollout",
        ),
        pytest.param("Node", [("Ready", "False", "KubeletNotReady")], ["NotReady"]),
        pytest.param("Node", [("Ready", "Unknown", "NodeStatusUnknown")], ["NotReady"]),
        pytest.param(
            "Node",
            [("Ready", "True", ""), ("DiskPressure", "True", ""), ("PIDPressure", "False", "")],
            ["DiskPressure"],
        ),
    ],
)
def test_condition_detectors(
    kind: str, items: list[tuple[str, str, str]], reasons: list[str]
) -> None:
    findings = assess(kind, conditions(*items)).findings
    assert [f.reason for f in findings] == reasons
    assert all(f.subject == OBJECT and f.since == "2026-11-26T21:00:00.000Z" for f in findings)


# -- the tracker -------------------------------------------------------------------------

SUBJECT = Subject("prod", "Pod", "v1", "pods", "shop", "web-1", "u1")
SETTINGS = HealthSettings(resolve_after=300, remind_after=3600)


def tracker(**kwargs: Any) -> tuple[HealthTracker, list[Notice], Clock]:
    sent: list[Notice] = []
    clock = Clock()
    return HealthTracker(sent.append, clock=clock, **kwargs), sent, clock


def see(
    t: HealthTracker, obj: dict[str, Any], settings: HealthSettings = SETTINGS, **kw: Any
) -> None:
    t.observe(SUBJECT, assess("Pod", obj, REASONS), settings, **kw)


def test_fires_once_counts_repeats_and_resolves_on_a_tick_after_resolve_after() -> None:
    t, sent, clock = tracker()
    see(t, pod(container(waiting="CrashLoopBackOff", last="Error", restarts=1)))
    for restarts in (2, 3, 4):  # three more restarts, in and out of the back-off
        clock.step(20)
        see(t, pod(container(last="Error", restarts=restarts)))
        see(t, pod(container(waiting="CrashLoopBackOff", last="Error", restarts=restarts)))
    assert [(n.state, n.finding.reason) for n in sent] == [(AlertState.FIRING, "CrashLoopBackOff")]
    see(t, pod(container(last="Error", restarts=4, ready=True)))  # running and ready
    clock.step(299)
    t.tick()
    assert len(sent) == 1
    clock.step(1)
    t.tick()  # no new change of the object: time alone resolves it
    assert [n.state for n in sent] == [AlertState.FIRING, AlertState.RESOLVED]
    assert sent[1].finding.restart_count == 4 and sent[1].since == sent[0].since
    clock.step(3600)
    see(t, pod(container(last="Error", restarts=4, ready=True)))
    t.tick()
    assert len(sent) == 2  # the termination it recovered from is not news


def test_not_ready_again_stops_the_recovery_clock() -> None:
    t, sent, clock = tracker()
    see(t, pod(container(waiting="ImagePullBackOff")))
    see(t, pod(container(ready=True)))
    clock.step(200)
    see(t, pod(container(waiting="ErrImagePull")))  # same failure (one family)
    see(t, pod(container(ready=True)))
    clock.step(200)
    t.tick()
    assert [n.state for n in sent] == [AlertState.FIRING]
    clock.step(100)
    t.tick()
    assert [n.state for n in sent] == [AlertState.FIRING, AlertState.RESOLVED]
    assert sent[1].finding.reason == "ImagePullBackOff"  # the reason it fired with


def test_reminders_after_remind_after_and_none_when_off() -> None:
    t, sent, clock = tracker()
    see(t, pod(container(waiting="CrashLoopBackOff")))
    clock.step(3599)
    t.tick()
    clock.step(1)
    t.tick()
    assert [(n.state, n.reminder) for n in sent] == [(AlertState.FIRING, 0), (AlertState.FIRING, 1)]
    first, reminder = (alert_event(n, T0) for n in sent)
    assert first.id != reminder.id

    t, sent, clock = tracker()
    see(t, pod(container(waiting="CrashLoopBackOff")), HealthSettings(remind_after=0))
    clock.step(10 * 3600)
    t.tick()
    assert len(sent) == 1


def test_a_deleted_object_resolves_at_once() -> None:
    t, sent, _ = tracker()
    see(t, pod(container("a", waiting="CrashLoopBackOff"), container("b", waiting="OOMKilled")))
    t.gone("u1")
    assert sorted((n.state.value, n.finding.subject) for n in sent) == [
        ("firing", "a"),
        ("firing", "b"),
        ("resolved", "a"),
        ("resolved", "b"),
    ]
    t.gone("u1")
    assert len(sent) == 4


def test_existing_failures_are_silent_unless_notify_existing() -> None:
    t, sent, clock = tracker()
    see(t, pod(container(waiting="CrashLoopBackOff")), initial=True)
    see(t, pod(container(waiting="CrashLoopBackOff", restarts=5)))
    see(t, pod(container(ready=True)))
    clock.step(300)
    t.tick()
    assert sent == []  # neither the failure nor its recovery
    t, sent, _ = tracker()
    loud = HealthSettings(notify_existing=True)
    see(t, pod(container(waiting="CrashLoopBackOff")), loud, initial=True)
    assert len(sent) == 1


class MemoryStore:
    def __init__(self) -> None:
        self.docs: dict[str, dict[str, Any]] = {}

    def load(self) -> list[dict[str, Any]]:
        return list(self.docs.values())

    def put(self, key: str, doc: dict[str, Any]) -> None:
        self.docs[key] = doc

    def delete(self, key: str) -> None:
        self.docs.pop(key, None)


def test_a_restart_with_the_store_does_not_send_firing_alerts_again() -> None:
    store = MemoryStore()
    alerts = HealthAlerts(lambda e: None, store=store)  # saves after delivering
    t = alerts.tracker
    t.observe(SUBJECT, assess("Pod", pod(container(waiting="CrashLoopBackOff")), REASONS), SETTINGS)
    alerts.stop()  # delivers what waits, then keeps the record
    assert len(store.docs) == 1

    t2, sent, clock = tracker(store=store)
    see(t2, pod(container(waiting="CrashLoopBackOff", restarts=9)), initial=True)
    assert sent == []
    see(t2, pod(container(ready=True)))
    clock.step(300)
    t2.tick()
    assert [(n.state, n.finding.restart_count) for n in sent] == [(AlertState.RESOLVED, 9)]


def test_many_threads_fire_and_resolve_each_key_exactly_once() -> None:
    """Informers of several namespaces and the ticker call in at once."""
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        t, sent, clock = tracker()
        lock = threading.Lock()
        settings = HealthSettings(resolve_after=0.001, remind_after=0)

        def informer(n: int) -> None:
            for i in range(50):
                subject = Subject("prod", "Pod", "v1", "pods", "ns", f"p{n}-{i}", f"u{n}-{i}")
                for restarts in range(3):
                    obj = pod(container(waiting="CrashLoopBackOff", restarts=restarts))
                    t.observe(subject, assess("Pod", obj, REASONS), settings)
                t.observe(subject, assess("Pod", pod(container(ready=True)), REASONS), settings)
                with lock:
                    clock.step(0.01)

        stop = threading.Event()

        def ticker() -> None:
            while not stop.is_set():
                t.tick()

        threads = [threading.Thread(target=informer, args=(n,)) for n in range(8)]
        tick = threading.Thread(target=ticker)
        tick.start()
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        clock.step(1)
        stop.set()
        tick.join()
        t.tick()
    finally:
        sys.setswitchinterval(old)
    by_key: dict[str, list[str]] = {}
    for n in sent:
        by_key.setdefault(n.subject.uid, []).append(n.state.value)
    assert len(by_key) == 400
    assert all(states == ["firing", "resolved"] for states in by_key.values())
    assert t.firing == 0


# -- events, routes, digests, chat -------------------------------------------------------


def notices() -> list[Notice]:
    t, sent, clock = tracker()
    see(t, pod(container(waiting="CrashLoopBackOff", last="OOMKilled", exit_code=137)))
    see(t, pod(container(ready=True)))
    clock.step(300)
    t.tick()
    return sent


def test_alert_events_validate_and_have_stable_ids() -> None:
    firing, resolved = (alert_event(n, T0, logs="boom") for n in notices())
    for event in (firing, resolved):
        assert event_errors(event.to_dict()) == []
        assert Event.from_dict(event.to_dict()) == event
    assert firing.type is EventType.ALERT and firing.alert is not None
    assert (firing.alert.reason, firing.alert.exit_code, firing.alert.container) == (
        "OOMKilled",
        137,
        "app",
    )
    assert firing.summary == (
        "[prod] FIRING OOMKilled Pod shop/web-1 container app: exit code 137, 1 restart"
    )
    again = alert_event(notices()[0], T0 + timedelta(hours=1))
    assert again.id == firing.id and again.observed_at != firing.observed_at
    assert resolved.id != firing.id


def test_routes_match_alert_state_and_reason() -> None:
    config = parse_config(
        "resources: [{kind: Pod, health: {}}]\n"
        "sinks: {pager: {type: stdout}, chat: {type: stdout}}\n"
        "routes:\n"
        "  - {match: {types: [alert], states: [firing], reasons: [OOMKilled]}, sinks: [pager]}\n"
        "  - {match: {states: [resolved]}, sinks: [chat]}\n"
    )
    router = Router.build(config)
    firing, resolved = (alert_event(n, T0) for n in notices())
    assert router.route(firing) == ("pager",)
    assert router.route(resolved) == ("chat",)


def test_a_burst_of_crash_loops_is_one_digest_naming_reason_and_count() -> None:
    out: list[Event] = []
    digester = Digester(
        "chat", DigestConfig(threshold=5, window=10), clock=lambda: 0.0, emit=out.append
    )
    t, sent, _ = tracker()
    for i in range(300):
        subject = Subject("prod", "Pod", "v1", "pods", "shop", f"web-{i}", f"u{i}")
        t.observe(
            subject, assess("Pod", pod(container(waiting="CrashLoopBackOff")), REASONS), SETTINGS
        )
    for notice in sent:
        digester.add(alert_event(notice, T0))
    digester.flush(force=True)
    assert len(out) == 6
    digest = out[-1]
    assert digest.digest is not None and digest.digest.count == 295
    assert digest.summary.startswith("[prod] 295 Pods CrashLoopBackOff firing in namespace shop")
    assert event_errors(digest.to_dict()) == []


def test_chat_colours_firing_red_and_resolved_green_with_logs_as_code() -> None:
    firing, resolved = (alert_event(n, T0, logs="line 1\nline 2") for n in notices())
    message = chat_message(firing, "slack")
    assert message.colour == FIRING_COLOUR and "line 2" in message.changes
    assert ("Reason", "OOMKilled") in message.fields and ("Exit code", "137") in message.fields
    assert chat_message(resolved, "markdown").colour == RESOLVED_COLOUR


# -- config ------------------------------------------------------------------------------


def test_health_alone_reports_only_alerts_and_other_kinds_are_refused() -> None:
    [rc] = parse_config(
        "resources: [{kind: Pod, health: {}}]\nsinks: {c: {type: stdout}}\n"
    ).resources
    assert rc.events == () and rc.health is not None and rc.health.log_lines == 0
    assert rc.health.resolve_after == 300 and rc.health.remind_after == 3600
    with pytest.raises(ConfigErrors) as e:
        plan("resources: [{kind: Pod}, {kind: ConfigMap, health: {}}]\n")
    assert "resources[1].health" in str(e.value)
    assert plan("resources: [{kind: deploy, health: {}}, {kind: nodes, health: {}}]\n").watches
