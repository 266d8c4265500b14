"""kubewatch.watch.kevents: Kubernetes Events as alerts — both schemas, filters, the start-time
rule, the repeat window, bounded memory, create/update typing, summary and JSON.

Fixtures are Event objects captured from a real kube-apiserver v1.20.2
(``data/k8s-events.json``; its ``_comment`` says how). Time is a parameter: every
:class:`KubeEventAlerts` gets a :class:`FakeClock`.
"""

from __future__ import annotations

import copy
import itertools
import json
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from kubewatch.config import ResourceConfig
from kubewatch.events import EventType, InvolvedObject, KubeEventInfo
from kubewatch.watch.kevents import MESSAGE_CHARS, KubeEventAlerts, summarize_event
from kubewatch.watch.normalize import ResourceInfo
from tests.stress import hammer

FIXTURES: dict[str, dict[str, Any]] = json.loads(
    (Path(__file__).parents[1] / "data" / "k8s-events.json").read_text(encoding="utf-8")
)["events"]

CORE = ResourceInfo("Event", "v1", "events")
NEW = ResourceInfo("Event", "events.k8s.io/v1", "events.events.k8s.io")


def fx(name: str) -> dict[str, Any]:
    """A fresh copy of one captured Event object."""
    return copy.deepcopy(FIXTURES[name])


def when(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


T0 = when(FIXTURES["core-backoff-1"]["firstTimestamp"])
"""When the captured Events began (every fixture was last seen at or after it)."""
LONG_AGO = T0 - timedelta(days=1)
"""A start time before every fixture: nothing is history."""


class FakeClock:
    """Wall-clock time that moves only when told to."""

    def __init__(self, start: datetime = T0) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def at(self, seconds: float) -> FakeClock:
        """Set the time to ``seconds`` after the start of the fixtures."""
        self.now = T0 + timedelta(seconds=seconds)
        return self


def alerts(
    *,
    clock: FakeClock | None = None,
    started_at: datetime = LONG_AGO,
    max_tracked: int = 10_000,
    resource: ResourceInfo = CORE,
    **config: Any,
) -> KubeEventAlerts:
    return KubeEventAlerts(
        "prod",
        resource,
        ResourceConfig(kind="Event", **config),
        started_at=started_at,
        clock=clock or FakeClock(),
        max_tracked=max_tracked,
    )


def check_invariants(a: KubeEventAlerts) -> None:
    """The invariants documented on the fields of KubeEventAlerts."""
    times = list(a._reported_at.values())
    assert times == sorted(times), "repeat keys are in order of report"
    assert len(a._reported_at) <= a._max_tracked
    assert len(a._objects) <= a._max_tracked


def variant(name: str, n: int, *, new_object: bool = True, new_involved: bool = False) -> dict:
    """A captured Event as another Event object (``new_object``) and/or about another
    involved object of the same kind (``new_involved``)."""
    obj = fx(name)
    if new_object:
        obj["metadata"]["uid"] = f"{obj['metadata']['uid'][:-4]}{n:04d}"
        obj["metadata"]["name"] += f"-{n}"
    if new_involved:
        ref = obj.get("involvedObject") or obj["regarding"]
        ref["uid"] = f"{ref['uid'][:-4]}{n:04d}"
        ref["name"] = f"web-{100 + n}"
    return obj


# --------------------------------------------------------------------------- both schemas


def test_core_v1_event_is_read() -> None:
    obj = fx("core-backoff-6")
    event = alerts().observe(obj)
    assert event is not None
    ref = obj["involvedObject"]
    assert event.k8s_event == KubeEventInfo(
        type="Warning",
        reason="BackOff",
        message="Back-off restarting failed container",
        count=6,
        involved=InvolvedObject("Pod", "kw-shop", "web-1", ref["uid"]),
        source="kubelet",
        first_seen=obj["firstTimestamp"].replace("Z", ".000Z"),
        last_seen=obj["lastTimestamp"].replace("Z", ".000Z"),
    )


def test_events_k8s_io_series_is_read() -> None:
    """series.count is the count; series.lastObservedTime the last, eventTime the first."""
    obj = fx("events-failedscheduling-6")
    event = alerts(resource=NEW).observe(obj)
    assert event is not None
    info = event.k8s_event
    assert info is not None
    assert (info.type, info.reason, info.count, info.source) == (
        "Warning",
        "FailedScheduling",
        6,
        "default-scheduler",
    )
    assert info.message == "0/3 nodes are available: 3 Insufficient cpu."
    assert info.involved == InvolvedObject("Pod", "kw-shop", "web-2", obj["regarding"]["uid"])
    assert info.first_seen == obj["eventTime"][:23] + "Z"  # MicroTime cut to milliseconds
    assert info.last_seen == obj["series"]["lastObservedTime"][:23] + "Z"


@pytest.mark.parametrize(
    ("written", "read"),
    [
        pytest.param("core-backoff-6", "core-backoff-6-via-events.k8s.io", id="core-as-new"),
        pytest.param(
            "events-failedscheduling-6", "events-failedscheduling-6-via-core", id="new-as-core"
        ),
    ],
)
def test_both_apis_read_the_same(written: str, read: str) -> None:
    """One Event object read through core/v1 and events.k8s.io/v1 says the same thing."""
    a = alerts(resource=CORE).observe(fx(written))
    b = alerts(resource=NEW).observe(fx(read))
    assert a is not None
    assert b is not None
    assert a.k8s_event == b.k8s_event
    assert (a.uid, a.name, a.namespace) == (b.uid, b.name, b.namespace)


def test_events_k8s_io_single_event() -> None:
    """No series: count 1, first and last seen are the eventTime."""
    obj = fx("events-scheduled")
    event = alerts(resource=NEW).observe(obj)
    assert event is not None
    info = event.k8s_event
    assert info is not None
    assert info.count == 1
    assert info.first_seen == info.last_seen == obj["eventTime"][:23] + "Z"
    assert info.message == "Successfully assigned kw-shop/web-1 to node-1"


def test_cluster_scoped_involved_object() -> None:
    """A Node's Event lives in 'default'; the Node itself has no namespace."""
    event = alerts().observe(fx("core-node-oom"))
    assert event is not None
    assert event.k8s_event is not None
    assert event.k8s_event.involved == InvolvedObject("Node", None, "node-1", "node-1")
    assert event.namespace == "default"
    assert event.labels == {"team": "platform"}


def test_creation_timestamp_is_the_last_resort() -> None:
    obj = fx("core-no-timestamps")
    event = alerts().observe(obj)
    assert event is not None
    assert event.k8s_event is not None
    created = obj["metadata"]["creationTimestamp"].replace("Z", ".000Z")
    assert event.k8s_event.first_seen == event.k8s_event.last_seen == created
    assert event.k8s_event.count == 1
    assert event.k8s_event.source == "my-operator"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param("2026-11-26T23:34:13+01:00", "2026-11-26T22:34:13.000Z", id="offset"),
        pytest.param("2026-11-26T22:34:13.5Z", "2026-11-26T22:34:13.500Z", id="one-digit"),
        pytest.param("2026-11-26T22:34:13.123456789Z", "2026-11-26T22:34:13.123Z", id="nanos"),
        pytest.param("yesterday", "2026-11-26T22:34:13.000Z", id="garbage-falls-through"),
        pytest.param("2026-02-30T00:00:00Z", "2026-11-26T22:34:13.000Z", id="no-such-day"),
    ],
)
def test_time_formats(value: str, expected: str) -> None:
    """Any RFC 3339 time becomes UTC with milliseconds; a bad one yields to the next."""
    obj = fx("core-backoff-1")
    obj["lastTimestamp"] = value
    event = alerts().observe(obj)
    assert event is not None
    assert event.k8s_event is not None
    assert event.k8s_event.last_seen == expected


@pytest.mark.parametrize(
    ("fields", "count"),
    [
        pytest.param({"count": 0}, 1, id="zero-is-unset"),
        pytest.param({"count": None}, 1, id="null"),
        pytest.param({"count": "7"}, 1, id="not-a-number"),
        pytest.param({"count": 3, "series": {"count": 9}}, 9, id="series-wins"),
    ],
)
def test_count(fields: dict[str, Any], count: int) -> None:
    obj = fx("core-backoff-1")
    obj.update(fields)
    event = alerts().observe(obj)
    assert event is not None
    assert event.k8s_event is not None
    assert event.k8s_event.count == count


# --------------------------------------------------------------------------- filters

FILTERS = [
    pytest.param({}, "core-pulled", True, id="no-filters"),
    pytest.param({"types": ("Warning",)}, "core-backoff-1", True, id="type-warning"),
    pytest.param({"types": ("Warning",)}, "core-pulled", False, id="type-normal-dropped"),
    pytest.param({"types": ("Normal",)}, "events-scheduled", True, id="type-normal-new-api"),
    pytest.param({"reasons": ("BackOff",)}, "core-backoff-1", True, id="reason-name"),
    pytest.param({"reasons": ("BackOff",)}, "core-pulled", False, id="reason-other"),
    pytest.param({"reasons": ("Back",)}, "core-backoff-1", False, id="reason-is-full-match"),
    pytest.param({"reasons": ("backoff",)}, "core-backoff-1", False, id="reason-case"),
    pytest.param({"reasons": ("Back.*",)}, "core-backoff-1", True, id="reason-regex"),
    pytest.param(
        {"reasons": ("Failed.*", "BackOff")},
        "events-failedscheduling-1",
        True,
        id="reasons-any-of",
    ),
    pytest.param({"reasons": ("Failed.*", "BackOff")}, "core-pulled", False, id="reasons-none"),
    pytest.param({"message": "restarting"}, "core-backoff-1", True, id="message-searched"),
    pytest.param({"message": "^restarting"}, "core-backoff-1", False, id="message-anchored"),
    pytest.param(
        {"message": r"Insufficient (cpu|memory)"},
        "events-failedscheduling-1",
        True,
        id="message-is-note",
    ),
    pytest.param({"message": "restarting"}, "core-pulled", False, id="message-other"),
    pytest.param({"involved_kinds": ("pod",)}, "core-backoff-1", True, id="kind-any-case"),
    pytest.param({"involved_kinds": ("Pod",)}, "core-node-oom", False, id="kind-other"),
    pytest.param({"involved_kinds": ("NODE", "pod")}, "core-node-oom", True, id="kinds-any-of"),
    pytest.param(
        {"types": ("Warning",), "involved_kinds": ("Node",)},
        "core-backoff-1",
        False,
        id="all-must-hold",
    ),
    pytest.param(
        {"types": ("Warning",), "reasons": ("SystemOOM",), "involved_kinds": ("Node",)},
        "core-node-oom",
        True,
        id="all-hold",
    ),
]


@pytest.mark.parametrize(("config", "name", "reported"), FILTERS)
def test_filters(config: dict[str, Any], name: str, reported: bool) -> None:
    assert (alerts(**config).observe(fx(name)) is not None) is reported


def test_filtered_out_events_leave_no_trace() -> None:
    a = alerts(message="^never$")
    assert a.observe(fx("core-backoff-1")) is None
    assert not a._reported_at
    assert not a._objects


def test_filters_from_yaml_keys() -> None:
    """The camelCase keys of the configuration file reach the filters."""
    config = ResourceConfig.model_validate(
        {"kind": "Event", "types": ["Warning"], "reasons": ["Back.*"], "involvedKinds": ["pod"]}
    )
    a = KubeEventAlerts("prod", CORE, config, started_at=LONG_AGO, clock=FakeClock())
    assert a.observe(fx("core-backoff-1")) is not None
    assert a.observe(fx("core-node-oom")) is None


# --------------------------------------------------------------------------- start time


def test_events_last_seen_before_start_are_history() -> None:
    """The initial list and late updates of old Events: not reported. The first
    occurrence after the start is, as this Event object's first report."""
    started = when(FIXTURES["core-backoff-3"]["lastTimestamp"]) + timedelta(seconds=1)
    a = alerts(started_at=started)
    for n in (1, 2, 3):
        assert a.observe(fx(f"core-backoff-{n}")) is None
    assert not a._objects, "history is not tracked"
    event = a.observe(fx("core-backoff-4"))
    assert event is not None
    assert event.type is EventType.CREATE
    assert event.k8s_event is not None
    assert event.k8s_event.count == 4


def test_series_before_start() -> None:
    started = T0 + timedelta(seconds=1)
    a = alerts(resource=NEW, started_at=started)
    assert a.observe(fx("events-failedscheduling-1")) is None  # eventTime T0 + 0.123 s
    event = a.observe(fx("events-failedscheduling-2"))  # lastObservedTime T0 + 30.654 s
    assert event is not None
    assert event.k8s_event is not None
    assert event.k8s_event.count == 2


def test_last_seen_at_the_start_is_reported() -> None:
    started = when(FIXTURES["core-backoff-1"]["lastTimestamp"])
    assert alerts(started_at=started).observe(fx("core-backoff-1")) is not None


def test_creation_timestamp_gates_an_event_without_times() -> None:
    obj = fx("core-no-timestamps")
    created = when(obj["metadata"]["creationTimestamp"])
    assert alerts(started_at=created + timedelta(seconds=1)).observe(obj) is None
    assert alerts(started_at=created).observe(obj) is not None


def test_no_timestamps_at_all_is_reported() -> None:
    obj = fx("core-no-timestamps")
    del obj["metadata"]["creationTimestamp"]
    event = alerts(started_at=T0 + timedelta(days=365)).observe(obj)
    assert event is not None
    assert event.k8s_event is not None
    assert event.k8s_event.first_seen is None
    assert event.k8s_event.last_seen is None


def test_start_time_must_be_aware() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        alerts(started_at=datetime(2026, 1, 1))


def test_clock_must_be_aware() -> None:
    a = alerts(clock=FakeClock(datetime(2026, 11, 26, 22, 34)))
    with pytest.raises(ValueError, match="timezone-aware"):
        a.observe(fx("core-backoff-1"))


# --------------------------------------------------------------------------- repeat window


@pytest.mark.parametrize(
    ("prefix", "resource"),
    [
        pytest.param("core-backoff", CORE, id="core-count"),
        pytest.param("events-failedscheduling", NEW, id="events-series"),
    ],
)
def test_repeats_within_the_window_are_suppressed(prefix: str, resource: ResourceInfo) -> None:
    """Count 1 reported; 2..5 within the window since that report suppressed; 6, once the
    window has passed, reported with count 6 as an update of the same Event object."""
    clock = FakeClock()
    a = alerts(clock=clock, resource=resource, repeat_window=600)

    first = a.observe(fx(f"{prefix}-1"))
    assert first is not None
    assert first.type is EventType.CREATE
    assert first.k8s_event is not None
    assert first.k8s_event.count == 1

    for n, t in zip((2, 3, 4, 5), (100, 200, 300, 599.999), strict=True):
        clock.at(t)
        assert a.observe(fx(f"{prefix}-{n}")) is None, f"count {n} at {t} s"
        check_invariants(a)

    clock.at(600)
    later = a.observe(fx(f"{prefix}-6"))
    assert later is not None, "the window is measured from the last report"
    assert later.type is EventType.UPDATE
    assert later.uid == first.uid
    assert later.k8s_event is not None
    assert later.k8s_event.count == 6
    assert later.id != first.id
    check_invariants(a)


def test_window_restarts_at_each_report() -> None:
    clock = FakeClock()
    a = alerts(clock=clock, repeat_window=60)
    assert a.observe(fx("core-backoff-1")) is not None
    clock.at(60)
    assert a.observe(fx("core-backoff-2")) is not None
    clock.at(119)
    assert a.observe(fx("core-backoff-3")) is None
    clock.at(120)
    assert a.observe(fx("core-backoff-4")) is not None


def test_another_reason_is_another_key() -> None:
    clock = FakeClock()
    a = alerts(clock=clock)
    assert a.observe(fx("core-backoff-1")) is not None
    clock.at(10)
    assert a.observe(fx("core-pulled")) is not None, "same Pod, reason Pulled"
    assert a.observe(fx("core-no-timestamps")) is not None, "same Pod, reason Custom"
    assert a.observe(fx("core-backoff-2")) is None


def test_another_involved_object_is_another_key() -> None:
    clock = FakeClock()
    a = alerts(clock=clock)
    assert a.observe(fx("core-backoff-1")) is not None
    clock.at(10)
    assert a.observe(fx("core-backoff-web-2")) is not None, "same reason, Pod web-2"
    assert a.observe(variant("core-backoff-1", 1, new_involved=True)) is not None


def test_involved_object_without_uid_is_keyed_by_name() -> None:
    a = alerts()
    one = fx("core-backoff-1")
    del one["involvedObject"]["uid"]
    two = variant("core-backoff-1", 2)
    del two["involvedObject"]["uid"]
    assert a.observe(one) is not None
    assert a.observe(two) is None, "same kind/namespace/name and reason"
    three = variant("core-backoff-1", 3)
    del three["involvedObject"]["uid"]
    three["involvedObject"]["namespace"] = "other"
    assert a.observe(three) is not None


def test_new_event_object_with_the_same_key() -> None:
    """A new Event object (the recorder aggregating, or a new message) is an occurrence of
    the same key: suppressed within the window, and typed create when first reported."""
    clock = FakeClock()
    a = alerts(clock=clock, repeat_window=600)
    assert a.observe(fx("core-backoff-1")) is not None
    clock.at(30)
    second = variant("core-backoff-1", 2)
    assert a.observe(second) is None
    clock.at(700)
    second["count"] = 2
    second["lastTimestamp"] = "2026-11-26T22:46:00Z"
    event = a.observe(second)
    assert event is not None
    assert event.type is EventType.CREATE, "its first report"
    assert event.uid == second["metadata"]["uid"]
    assert event.k8s_event is not None
    assert event.k8s_event.count == 2


def test_an_edit_that_is_no_occurrence_is_not_reported() -> None:
    """Labels change, count and times do not: even after the window, nothing to say."""
    clock = FakeClock()
    a = alerts(clock=clock, repeat_window=60)
    assert a.observe(fx("core-backoff-1")) is not None
    clock.at(3600)
    edited = fx("core-backoff-1")
    edited["metadata"]["labels"] = {"triaged": "yes"}
    edited["metadata"]["resourceVersion"] = "9999"
    assert a.observe(edited) is None


def test_last_seen_moving_forward_is_an_occurrence() -> None:
    clock = FakeClock()
    a = alerts(clock=clock, repeat_window=60)
    assert a.observe(fx("core-backoff-1")) is not None
    clock.at(3600)
    again = fx("core-backoff-1")
    again["lastTimestamp"] = "2026-11-26T23:34:13Z"
    event = a.observe(again)
    assert event is not None
    assert event.type is EventType.UPDATE


def test_forget_drops_a_deleted_event_object() -> None:
    clock = FakeClock()
    a = alerts(clock=clock, repeat_window=60)
    assert a.observe(fx("core-backoff-1")) is not None
    a.forget(fx("core-backoff-1"))
    assert not a._objects
    assert a._reported_at, "the repeat key outlives the Event object"
    clock.at(30)
    assert a.observe(fx("core-backoff-2")) is None
    clock.at(90)
    event = a.observe(fx("core-backoff-3"))
    assert event is not None
    assert event.type is EventType.CREATE, "forgotten: a first report again"


# --------------------------------------------------------------------------- bounded memory


def test_at_most_max_tracked_keys_oldest_evicted() -> None:
    """Three keys, room for two: the oldest report is forgotten, so its next occurrence is
    reported again (eviction errs towards reporting)."""
    clock = FakeClock()
    a = alerts(clock=clock, max_tracked=2, repeat_window=600)
    objs = [variant("core-backoff-1", n, new_involved=True) for n in range(3)]
    for t, obj in enumerate(objs):
        clock.at(t)
        assert a.observe(obj) is not None
        check_invariants(a)
    assert len(a._reported_at) == 2
    assert len(a._objects) == 2
    clock.at(10)
    again = variant("core-backoff-2", 0, new_involved=True)  # key 0, count 2
    assert a.observe(again) is not None, "key 0 was evicted"
    still = variant("core-backoff-2", 2, new_involved=True)  # key 2, count 2
    assert a.observe(still) is None, "key 2 is still within its window"
    check_invariants(a)


def test_expired_keys_are_pruned() -> None:
    clock = FakeClock()
    a = alerts(clock=clock, repeat_window=60)
    for n in range(50):
        clock.at(n)
        assert a.observe(variant("core-backoff-1", n, new_involved=True)) is not None
    assert len(a._reported_at) == 50
    clock.at(48 + 60)  # key 48 reported a window ago: expired; key 49 not yet
    assert a.observe(fx("core-node-oom")) is not None
    assert len(a._reported_at) == 2, "only keys reported less than a window ago remain"
    check_invariants(a)


def test_max_tracked_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_tracked"):
        alerts(max_tracked=0)


# --------------------------------------------------------------------------- summary and JSON


def test_summary_as_documented() -> None:
    info = KubeEventInfo(
        type="Warning",
        reason="BackOff",
        message="Back-off restarting failed container",
        count=5,
        involved=InvolvedObject("Pod", "shop", "web-1", "u"),
    )
    assert summarize_event("prod", info) == (
        "[prod] Warning BackOff Pod shop/web-1: Back-off restarting failed container (×5)"  # noqa: RUF001
    )


@pytest.mark.parametrize(
    ("name", "summary"),
    [
        pytest.param(
            "core-backoff-1",
            "[prod] Warning BackOff Pod kw-shop/web-1: Back-off restarting failed container",
            id="count-1-not-shown",
        ),
        pytest.param(
            "core-backoff-5",
            "[prod] Warning BackOff Pod kw-shop/web-1: Back-off restarting failed container (×5)",  # noqa: RUF001
            id="count-shown",
        ),
        pytest.param(
            "core-node-oom",
            "[prod] Warning SystemOOM Node node-1: System OOM encountered, victim process: java, "
            "pid: 4242",
            id="cluster-scoped",
        ),
        pytest.param(
            "events-failedscheduling-6",
            "[prod] Warning FailedScheduling Pod kw-shop/web-2: "
            "0/3 nodes are available: 3 Insufficient cpu. (×6)",  # noqa: RUF001
            id="series",
        ),
    ],
)
def test_summary_of_captured_events(name: str, summary: str) -> None:
    event = alerts().observe(fx(name))
    assert event is not None
    assert event.summary == summary


def test_long_message_is_cut_in_the_summary_only() -> None:
    obj = fx("core-backoff-1")
    obj["message"] = "x" * 150 + "\n  " + "y" * 150
    event = alerts().observe(obj)
    assert event is not None
    head, _, message = event.summary.partition(": ")
    assert head == "[prod] Warning BackOff Pod kw-shop/web-1"
    assert len(message) == MESSAGE_CHARS
    assert message == "x" * 150 + " " + "y" * 48 + "…"
    assert event.k8s_event is not None
    assert event.k8s_event.message == obj["message"], "the alert keeps the whole message"


def test_summary_without_message() -> None:
    obj = fx("core-backoff-1")
    obj["message"] = ""
    event = alerts().observe(obj)
    assert event is not None
    assert event.summary == "[prod] Warning BackOff Pod kw-shop/web-1"


def test_alert_json() -> None:
    obj = fx("core-backoff-6")
    clock = FakeClock(datetime(2026, 11, 26, 22, 40, 1, 234567, tzinfo=timezone.utc))
    event = alerts(clock=clock).observe(obj)
    assert event is not None
    data = json.loads(json.dumps(event.to_dict()))
    meta = obj["metadata"]
    assert data["k8sEvent"] == {
        "type": "Warning",
        "reason": "BackOff",
        "message": "Back-off restarting failed container",
        "count": 6,
        "involvedObject": {
            "kind": "Pod",
            "namespace": "kw-shop",
            "name": "web-1",
            "uid": obj["involvedObject"]["uid"],
        },
        "source": "kubelet",
        "firstSeen": "2026-11-26T22:34:13.000Z",
        "lastSeen": "2026-11-26T22:35:53.000Z",
    }
    assert {k: data[k] for k in ("type", "kind", "apiVersion", "resource")} == {
        "type": "create",
        "kind": "Event",
        "apiVersion": "v1",
        "resource": "events",
    }
    assert (data["namespace"], data["name"], data["uid"], data["resourceVersion"]) == (
        meta["namespace"],
        meta["name"],
        meta["uid"],
        meta["resourceVersion"],
    )
    assert data["observedAt"] == "2026-11-26T22:40:01.234Z"
    assert data["labels"] == {}
    assert data["changes"] == []
    assert data["cluster"] == "prod"
    assert data["summary"].startswith("[prod] Warning BackOff Pod kw-shop/web-1: ")


def test_alert_json_events_k8s_io() -> None:
    obj = fx("events-failedscheduling-6")
    event = alerts(resource=NEW).observe(obj)
    assert event is not None
    data = event.to_dict()
    assert (data["apiVersion"], data["resource"]) == ("events.k8s.io/v1", "events.events.k8s.io")
    assert data["k8sEvent"]["involvedObject"]["name"] == "web-2"
    assert data["k8sEvent"]["firstSeen"] == "2026-11-26T22:34:13.123Z"
    assert data["k8sEvent"]["lastSeen"] == "2026-11-26T22:36:43.654Z"
    assert data["k8sEvent"]["count"] == 6


# --------------------------------------------------------------------------- threads


def test_shared_by_informer_threads_loses_no_alert() -> None:
    """``namespaces.include: [a, b]`` runs one informer per namespace, all feeding one
    KubeEventAlerts: under heavy thread switching every new occurrence is still exactly
    one alert, nothing raises, and the documented invariants hold afterwards."""
    ticks = itertools.count()
    # One second per observation: repeat keys keep expiring (the window is 600 s), so
    # _expire, eviction (max_tracked) and inserts all race.
    a = alerts(clock=lambda: T0 + timedelta(seconds=next(ticks)), max_tracked=64, repeat_window=600)
    threads, per_thread = 8, 1500
    results: list[int] = []
    barrier = threading.Barrier(threads)

    def feed(t: int) -> None:
        made = 0
        barrier.wait()
        for i in range(per_thread):
            n = t * per_thread + i
            obj = variant("core-backoff-1", n, new_involved=True)
            obj["metadata"]["uid"] = f"uid-{n}"
            obj["involvedObject"]["uid"] = f"pod-{n}"
            if a.observe(obj) is not None:
                made += 1
            if i % 3 == 0:
                a.forget(obj)
        results.append(made)

    hammer(feed, threads)
    assert sum(results) == threads * per_thread
    check_invariants(a)
