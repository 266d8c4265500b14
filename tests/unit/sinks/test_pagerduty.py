"""The pagerduty sink against a local HTTP receiver standing in for the Events API v2.

Every request is checked against the Events API v2 schema (``vendor_schemas``); then:
the dedup key per object and reason, the health-alert mapping (firing → trigger,
resolved → resolve), ``resolveOnDelete``, severities, text sent as it is, each error
class, and the routing key never shown.
"""

from __future__ import annotations

import dataclasses
import sys
import threading
from typing import Any

import orjson
import pytest

from kubewatch.config import parse_config
from kubewatch.config.incident_sinks import PagerDutySinkConfig
from kubewatch.errors import ConfigErrors, PermanentError, RetryableError
from kubewatch.events import EventType, InvolvedObject, KubeEventInfo
from kubewatch.sinks import build_sink
from kubewatch.sinks.incident import OpenKeys, incident_of
from kubewatch.sinks.pagerduty import PagerDutySink
from tests.unit.sinks.alert_events import alert_event
from tests.unit.sinks.incident_cases import ANSWERS, Answer, assert_error
from tests.unit.sinks.test_sinks import TOKEN, Receiver, Reply, make_event
from tests.unit.sinks.vendor_schemas import PAGERDUTY_EVENT, check

EVIL = "<b>&amp;</b> @everyone *bold* [x](https://evil) <!channel>"
ACCEPTED = Reply(202, {"Content-Type": "application/json"}, b'{"status":"success"}')


def sink(receiver: Receiver, **kw: Any) -> PagerDutySink:
    config = PagerDutySinkConfig(
        type="pagerduty", url=f"{receiver.base}/v2/enqueue", routing_key=TOKEN, **kw
    )
    return PagerDutySink("pd", config)


def sent(receiver: Receiver) -> list[dict[str, Any]]:
    """Each request's body, checked against the Events API v2 schema."""
    for request in receiver.requests:
        assert (request.method, request.target) == ("POST", "/v2/enqueue")
        assert request.header("Content-Type") == "application/json"
    return [check(PAGERDUTY_EVENT, orjson.loads(r.body)) for r in receiver.requests]


def warning_event(reason: str = "BackOff", count: int = 1) -> Any:
    involved = InvolvedObject("Pod", "shop", "web-1", "uid-web-1")
    info = KubeEventInfo("Warning", reason, "Back-off restarting failed container", count, involved)
    return make_event("shop/web-1.17a", kind="Event", k8s_event=info, summary=f"[test] {reason}")


def test_warning_event_triggers_with_a_key_per_object_and_reason(receiver: Receiver) -> None:
    receiver.reply = ACCEPTED
    with sink(receiver) as pd:
        pd.send(warning_event(count=1))
        pd.send(warning_event(count=2))
        pd.send(warning_event("Unhealthy"))
    first, repeat, other = sent(receiver)
    assert first["routing_key"] == TOKEN
    assert first["event_action"] == "trigger"
    assert first["dedup_key"] == "test:uid-web-1:BackOff"
    assert repeat["dedup_key"] == first["dedup_key"]  # the repeat lands on the same alert
    assert other["dedup_key"] == "test:uid-web-1:Unhealthy"
    payload = first["payload"]
    assert payload["severity"] == "warning"
    assert payload["source"] == "test"
    assert payload["component"] == "Pod/shop/web-1"
    assert (payload["group"], payload["class"]) == ("shop", "BackOff")
    assert payload["timestamp"] == "2026-11-26T22:10:51.123Z"
    assert payload["custom_details"]["message"] == "Back-off restarting failed container"


def test_health_alert_firing_triggers_and_resolved_resolves(receiver: Receiver) -> None:
    receiver.reply = ACCEPTED
    with sink(receiver) as pd:
        pd.send(alert_event("firing"))
        pd.send(alert_event("resolved"))
    trigger, resolve = sent(receiver)
    assert trigger["event_action"] == "trigger"
    assert trigger["dedup_key"] == "test:uid-web-1:app/CrashLoopBackOff"
    assert trigger["payload"]["severity"] == "error"
    assert trigger["payload"]["custom_details"]["alert"]["state"] == "firing"
    assert resolve == {
        "routing_key": TOKEN,
        "event_action": "resolve",
        "dedup_key": trigger["dedup_key"],
    }


def test_delete_triggers_or_resolves_what_the_object_triggered(receiver: Receiver) -> None:
    receiver.reply = ACCEPTED
    pod = make_event("shop/web-1", kind="Pod", uid="uid-web-1")
    delete = dataclasses.replace(pod, type=EventType.DELETE)
    with sink(receiver) as pd:
        pd.send(delete)
    with sink(receiver, resolve_on_delete=True) as pd:
        pd.send(warning_event())
        pd.send(alert_event("firing"))
        pd.send(delete)
        pd.send(delete)  # nothing open any more: nothing sent
    plain, *opened, first_resolve, second_resolve = sent(receiver)
    assert plain["event_action"] == "trigger"
    assert plain["dedup_key"] == "test:uid-web-1:Deleted"
    assert plain["payload"]["severity"] == "info"
    assert {first_resolve["dedup_key"], second_resolve["dedup_key"]} == {
        o["dedup_key"] for o in opened
    }
    assert {first_resolve["event_action"], second_resolve["event_action"]} == {"resolve"}


def test_severity_mapping_is_configurable(receiver: Receiver) -> None:
    receiver.reply = ACCEPTED
    with sink(receiver, severity={"change": "critical", "alert": "warning"}) as pd:
        pd.send(make_event())
        pd.send(alert_event("firing"))
    assert [d["payload"]["severity"] for d in sent(receiver)] == ["critical", "warning"]


def test_object_text_goes_as_it_is_on_one_line(receiver: Receiver) -> None:
    """PagerDuty shows plain text: HTML-escaping would show ``&lt;`` to the responder."""
    receiver.reply = ACCEPTED
    event = make_event(name=EVIL, summary=f"{EVIL}\nforged" + "x" * 2000)
    with sink(receiver) as pd:
        pd.send(event)
    (doc,) = sent(receiver)
    summary = doc["payload"]["summary"]
    assert summary.startswith(f"{EVIL} forged")
    assert len(summary) == 1024 and summary.endswith("…")
    assert doc["payload"]["custom_details"]["name"] == EVIL


def test_long_names_keep_the_dedup_key_within_255(receiver: Receiver) -> None:
    receiver.reply = ACCEPTED
    event = make_event(uid="", name="n" * 253)
    with sink(receiver) as pd:
        pd.send(event)
        pd.send(event)
    first, second = sent(receiver)
    assert len(first["dedup_key"]) == 255
    assert first["dedup_key"] == second["dedup_key"]


@pytest.mark.parametrize("answer", ANSWERS)
def test_answers_map_to_error_classes(receiver: Receiver, answer: Answer) -> None:
    receiver.reply = answer.reply
    with sink(receiver) as pd, pytest.raises(answer.error) as error:
        pd.send(make_event())
    assert_error(error, answer)


def test_refused_connection_is_retryable(receiver: Receiver) -> None:
    pd = sink(receiver)
    receiver.server.shutdown()
    receiver.server.server_close()
    with pd, pytest.raises(RetryableError):
        pd.send(make_event())


def test_routing_key_stays_out_of_errors_preview_and_repr(receiver: Receiver) -> None:
    receiver.reply = Reply(400, body=f'{{"message":"Invalid routing key {TOKEN}"}}'.encode())
    with sink(receiver) as pd:
        with pytest.raises(PermanentError) as error:
            pd.send(make_event())
        preview = pd.preview(make_event())
    assert TOKEN not in str(error.value)
    assert TOKEN not in preview
    assert preview.startswith(f"POST {receiver.base}/v2/enqueue\n")
    assert orjson.loads(preview.split("\n", 1)[1])["routing_key"] == "<redacted>"
    config = PagerDutySinkConfig(type="pagerduty", routing_key=TOKEN)
    assert TOKEN not in repr(config)
    assert config.url == "https://events.pagerduty.com/v2/enqueue"


def test_config_from_yaml() -> None:
    config = parse_config(
        "resources: [{kind: Event}]\n"
        "sinks: {pd: {type: pagerduty, routingKey: R0ut1ngKey, resolveOnDelete: true,"
        " severity: {warning: error}}}\n",
        "c.yaml",
    )
    with build_sink("pd", config.sinks["pd"]) as pd:
        assert isinstance(pd, PagerDutySink)
    with pytest.raises(ConfigErrors, match=r"sinks\.pd\.severity\.warning"):
        parse_config(
            "resources: [{kind: Event}]\n"
            "sinks: {pd: {type: pagerduty, routingKey: k, severity: {warning: loud}}}\n",
            "c.yaml",
        )
    with pytest.raises(ConfigErrors, match=r"sinks\.pd\.routingKey"):
        parse_config("resources: [{kind: Event}]\nsinks: {pd: {type: pagerduty}}\n", "c.yaml")


def test_open_keys_are_safe_for_threads_and_bounded() -> None:
    """Workers trigger and resolve at once: no key lost or left, at most ``limit`` objects."""
    keys = OpenKeys(limit=50)
    switch = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:

        def work(t: int) -> None:
            for i in range(200):
                incident = incident_of(
                    make_event(f"ns/o{t}-{i % 40}", uid=f"u{t}-{i % 40}"), resolve_on_delete=False
                )
                keys.triggered(incident)
                if i % 2:
                    keys.resolved(incident)

        threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(switch)
    assert len(keys) <= 50
