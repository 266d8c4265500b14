"""The opsgenie sink against a local HTTP receiver standing in for the Alert API v2.

Creates and closes are checked against the Alert API's schemas (``vendor_schemas``);
then the alias per object and reason, the health-alert mapping, ``resolveOnDelete``,
priorities, limits, text sent as it is, each error class, and the key never shown.
"""

from __future__ import annotations

import dataclasses
import urllib.parse
from typing import Any

import orjson
import pytest

from kubewatch.config import parse_config
from kubewatch.config.incident_sinks import OpsgenieSinkConfig
from kubewatch.errors import PermanentError, RetryableError
from kubewatch.events import EventType, InvolvedObject, KubeEventInfo
from kubewatch.sinks import build_sink
from kubewatch.sinks.opsgenie import OpsgenieSink
from tests.unit.sinks.alert_events import alert_event
from tests.unit.sinks.incident_cases import ANSWERS, Answer, assert_error
from tests.unit.sinks.test_sinks import TOKEN, Receiver, Reply, make_event
from tests.unit.sinks.vendor_schemas import OPSGENIE_CLOSE, OPSGENIE_CREATE, check

EVIL = "<b>&amp;</b> @everyone *bold* [x](https://evil) <!channel>"
ACCEPTED = Reply(
    202, {"Content-Type": "application/json"}, b'{"result":"Request will be processed"}'
)


def sink(receiver: Receiver, **kw: Any) -> OpsgenieSink:
    config = OpsgenieSinkConfig(type="opsgenie", url=receiver.base, api_key=TOKEN, **kw)
    return OpsgenieSink("og", config)


def sent(receiver: Receiver) -> list[tuple[str, dict[str, Any]]]:
    """(target, body) of each request; creates and closes checked against their schemas."""
    out = []
    for request in receiver.requests:
        assert request.method == "POST"
        assert request.header("Authorization") == f"GenieKey {TOKEN}"
        body = orjson.loads(request.body)
        check(OPSGENIE_CREATE if request.target == "/v2/alerts" else OPSGENIE_CLOSE, body)
        out.append((request.target, body))
    return out


def close_target(alias: str) -> str:
    return f"/v2/alerts/{urllib.parse.quote(alias, safe='')}/close?identifierType=alias"


def test_warning_event_creates_an_alert_with_an_alias(receiver: Receiver) -> None:
    receiver.reply = ACCEPTED
    involved = InvolvedObject("Pod", "shop", "web-1", "uid-web-1")
    info = KubeEventInfo("Warning", "BackOff", "Back-off restarting", 2, involved)
    with sink(receiver, tags=("team-shop",)) as og:
        og.send(make_event("shop/web-1.17", kind="Event", k8s_event=info, summary="BackOff"))
    ((target, body),) = sent(receiver)
    assert target == "/v2/alerts"
    assert body["alias"] == "test:uid-web-1:BackOff"
    assert body["priority"] == "P3"
    assert body["tags"] == ["kubewatch", "test", "Pod", "BackOff", "team-shop"]
    assert body["entity"] == "Pod/shop/web-1"
    assert body["source"] == "kubewatch"
    assert body["details"]["reason"] == "BackOff"
    assert "Back-off restarting" in body["description"]


def test_health_alert_creates_then_closes_by_alias(receiver: Receiver) -> None:
    receiver.reply = ACCEPTED
    with sink(receiver) as og:
        og.send(alert_event("firing"))
        og.send(alert_event("resolved"))
    (create_target, create), (target, close) = sent(receiver)
    assert create_target == "/v2/alerts"
    assert create["priority"] == "P2"
    assert target == close_target("test:uid-web-1:app/CrashLoopBackOff")
    assert close["source"] == "kubewatch"


def test_delete_closes_with_resolve_on_delete_only(receiver: Receiver) -> None:
    receiver.reply = ACCEPTED
    update = make_event("shop/web")
    delete = dataclasses.replace(update, type=EventType.DELETE)
    with sink(receiver) as og:
        og.send(delete)
    with sink(receiver, resolve_on_delete=True) as og:
        og.send(update)
        og.send(delete)
    (_, plain), (_, created), (target, _) = sent(receiver)
    assert (plain["alias"], plain["priority"]) == ("test:uid-shop/web:Deleted", "P4")
    assert target == close_target(created["alias"])


def test_limits_and_text_as_it_is(receiver: Receiver) -> None:
    receiver.reply = ACCEPTED
    long_tag = "t" * 80
    event = make_event(name=EVIL, uid="", summary=f"{EVIL}\nforged " + "x" * 300)
    with sink(receiver, tags=(*(f"tag{i}" for i in range(30)), long_tag)) as og:
        og.send(event)
    ((_, body),) = sent(receiver)  # the schema checks message ≤ 130, at most 20 tags of 50 chars
    assert body["message"].startswith(f"{EVIL} forged")
    assert body["message"].endswith("…")
    assert body["details"]["name"] == EVIL


@pytest.mark.parametrize("answer", ANSWERS)
def test_answers_map_to_error_classes(receiver: Receiver, answer: Answer) -> None:
    receiver.reply = answer.reply
    with sink(receiver) as og, pytest.raises(answer.error) as error:
        og.send(make_event())
    assert_error(error, answer)


def test_refused_connection_is_retryable(receiver: Receiver) -> None:
    og = sink(receiver)
    receiver.server.shutdown()
    receiver.server.server_close()
    with og, pytest.raises(RetryableError):
        og.send(make_event())


def test_api_key_stays_out_of_errors_preview_and_repr(receiver: Receiver) -> None:
    receiver.reply = Reply(401, body=f"Key {TOKEN} is invalid (GenieKey {TOKEN})".encode())
    with sink(receiver) as og:
        with pytest.raises(PermanentError) as error:
            og.send(make_event())
        preview = og.preview(make_event())
    assert TOKEN not in str(error.value)
    assert TOKEN not in preview
    assert preview.startswith(f"POST {receiver.base}/v2/alerts\n")
    config = OpsgenieSinkConfig(type="opsgenie", api_key=TOKEN)
    assert TOKEN not in repr(config)
    assert config.url == "https://api.opsgenie.com"


def test_eu_api_url_from_yaml() -> None:
    config = parse_config(
        "resources: [{kind: Event}]\n"
        "sinks: {og: {type: opsgenie, apiKey: k3y-value, apiUrl: 'https://api.eu.opsgenie.com',"
        " priority: {warning: P1}}}\n",
        "c.yaml",
    )
    with build_sink("og", config.sinks["og"]) as og:
        assert isinstance(og, OpsgenieSink)
        assert str(og.endpoint.url) == "https://api.eu.opsgenie.com/"
