"""``resolveOnDelete`` after a restart and a reload: the open alerts of incident sinks are
kept per sink (and, with ``state.path``, in the state database)."""

from __future__ import annotations

import dataclasses
import urllib.parse
from pathlib import Path
from typing import Any

import orjson
import pytest

from kubewatch.app.build import sink_services
from kubewatch.config.incident_sinks import (
    AlertmanagerSinkConfig,
    OpsgenieSinkConfig,
    PagerDutySinkConfig,
)
from kubewatch.events import EventType
from kubewatch.sinks import SinkServices, build_sink
from kubewatch.sinks.incident import OpenKeys, incident_of
from kubewatch.state import open_state
from tests.stress import hammer
from tests.unit.sinks.test_pagerduty import ACCEPTED, warning_event
from tests.unit.sinks.test_sinks import TOKEN, Receiver, make_event


def configs(receiver: Receiver) -> dict[str, Any]:
    return {
        "pagerduty": PagerDutySinkConfig(
            type="pagerduty",
            url=f"{receiver.base}/v2/enqueue",
            routing_key=TOKEN,
            resolve_on_delete=True,
        ),
        "opsgenie": OpsgenieSinkConfig(
            type="opsgenie", url=receiver.base, api_key=TOKEN, resolve_on_delete=True
        ),
        "alertmanager": AlertmanagerSinkConfig(
            type="alertmanager", urls=(receiver.base,), resolve_on_delete=True
        ),
    }


def bodies(receiver: Receiver) -> list[str]:
    return [urllib.parse.unquote(r.target) + " " + r.body.decode() for r in receiver.requests]


@pytest.mark.parametrize("kind", ["pagerduty", "opsgenie", "alertmanager"])
def test_a_delete_after_a_restart_resolves_what_was_triggered_before(
    receiver: Receiver, tmp_path: Path, kind: str
) -> None:
    receiver.reply = ACCEPTED
    config = configs(receiver)[kind]
    pod = make_event("shop/web-1", kind="Pod", uid="uid-web-1")
    delete = dataclasses.replace(pod, type=EventType.DELETE)
    state = open_state(str(tmp_path))
    assert state is not None
    with build_sink("inc", config, sink_services(state)) as sink:
        sink.send(warning_event())  # BackOff of uid-web-1: an alert opens
    state.close()
    triggered = len(receiver.requests)

    state = open_state(str(tmp_path))  # the next process
    assert state is not None
    with build_sink("inc", config, sink_services(state)) as sink:
        sink.send(delete)
        sink.send(delete)  # resolved already: nothing more is sent
    state.db.flush()
    assert state.memo("incidents/inc").load() == {}  # nothing open is left on record
    state.close()
    resolves = bodies(receiver)[triggered:]
    assert len(resolves) == 1
    assert "BackOff" in resolves[0] and "web-1" in resolves[0]  # the alert opened before
    assert any(w in resolves[0] for w in ('"resolve"', "/close", "endsAt"))


def test_a_reload_keeps_the_open_alerts(receiver: Receiver) -> None:
    receiver.reply = ACCEPTED
    services = SinkServices()  # no state: the process's memory only
    config = configs(receiver)["pagerduty"]
    pod = make_event("shop/web-1", kind="Pod", uid="uid-web-1")
    build_sink("pd", config, services).send(warning_event())
    build_sink("pd", config, services).send(dataclasses.replace(pod, type=EventType.DELETE))
    last = orjson.loads(receiver.requests[-1].body)
    assert (last["event_action"], last["dedup_key"]) == ("resolve", "test:uid-web-1:BackOff")


class DictMemory:
    """A Memo stand-in: what the state database would hold."""

    def __init__(self) -> None:
        self.records: dict[str, bytes] = {}

    def load(self) -> dict[str, bytes]:
        return dict(self.records)

    def put(self, key: str, value: bytes) -> None:
        self.records[key] = value

    def delete(self, key: str) -> None:
        self.records.pop(key, None)


def test_open_keys_on_record_match_memory_under_many_threads() -> None:
    memory = DictMemory()
    keys = OpenKeys(limit=30, memory=memory)

    def work(t: int) -> None:
        for i in range(300):
            event = make_event(f"ns/o{t}-{i % 25}", uid=f"u{t}-{i % 25}")
            incident = incident_of(event, resolve_on_delete=False)
            keys.triggered(incident)
            if i % 3 == 0:
                keys.resolved(incident)

    hammer(work)
    assert len(keys) <= 30
    again = OpenKeys(limit=30, memory=memory)  # what a restart reads back
    assert len(again) == len(keys) == len(memory.records)
    for ref in memory.records:
        probe = incident_of(make_event("x/y", uid=ref), resolve_on_delete=False)
        assert again.of_object(probe) == keys.of_object(probe)


def test_unreadable_and_surplus_records_are_dropped() -> None:
    memory = DictMemory()
    memory.put("bad", b"not json")
    memory.put("empty", orjson.dumps({"at": 1.0, "open": []}))
    now = [0.0]
    writer = OpenKeys(limit=10, memory=memory, clock=lambda: now[0])
    for n in range(3):
        now[0] = float(n)
        writer.triggered(incident_of(make_event(f"ns/p{n}", uid=f"p{n}"), resolve_on_delete=False))
    kept = OpenKeys(limit=2, memory=memory)  # a smaller limit: the most recent two stay
    assert len(kept) == 2 and sorted(memory.records) == ["p1", "p2"]
