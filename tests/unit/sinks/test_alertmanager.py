"""The alertmanager sink against local HTTP receivers: the alerts it posts, HA, errors."""

from __future__ import annotations

import dataclasses
import socket
from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from kubewatch.config import parse_config
from kubewatch.config.incident_sinks import AlertmanagerSinkConfig
from kubewatch.errors import ConfigErrors, PermanentError, RateLimited, RetryableError
from kubewatch.events import DigestInfo, EventType, InvolvedObject, KubeEventInfo
from kubewatch.sinks import build_sink
from kubewatch.sinks.alertmanager import AlertmanagerSink
from tests.unit.sinks.alert_events import alert_event
from tests.unit.sinks.incident_cases import ANSWERS, Answer, assert_error
from tests.unit.sinks.test_sinks import TOKEN, Receiver, Reply, make_event, serve
from tests.unit.sinks.vendor_schemas import ALERTMANAGER_ALERTS, check

EVIL = "<b>&amp;</b> @everyone *bold* [x](https://evil) <!channel>"


@pytest.fixture
def second() -> Iterator[Receiver]:
    yield from serve(None)


def sink(*urls: str, **kw: Any) -> AlertmanagerSink:
    return AlertmanagerSink("am", AlertmanagerSinkConfig(type="alertmanager", urls=urls, **kw))


def posted(receiver: Receiver) -> list[list[dict[str, Any]]]:
    """Each request's alerts, checked against the API's ``postableAlerts`` schema."""
    for request in receiver.requests:
        assert request.method == "POST"
        assert request.target == "/api/v2/alerts"
        assert request.header("Content-Type") == "application/json"
    return [check(ALERTMANAGER_ALERTS, orjson.loads(r.body)) for r in receiver.requests]


def dead_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


def test_an_update_is_one_alert_with_the_object_labels(receiver: Receiver) -> None:
    receiver.reply = Reply(200)
    with sink(receiver.base, labels={"severity": "info"}) as am:
        am.send(make_event("shop/web"))
    ((alert,),) = posted(receiver)
    assert alert == {
        "labels": {
            "severity": "info",
            "alertname": "KubewatchEvent",
            "cluster": "test",
            "namespace": "shop",
            "kind": "ConfigMap",
            "name": "web",
            "reason": "Updated",
        },
        "annotations": {
            "summary": "update ConfigMap shop/web: data.mode a → b",
            "diff": "data.mode: a → b",
        },
        "startsAt": "2026-11-26T22:10:51.123Z",
        "generatorURL": "kubewatch://?cluster=test&kind=ConfigMap&name=web&namespace=shop",
    }


def test_url_with_a_path_prefix_and_generator_url(receiver: Receiver) -> None:
    receiver.reply = Reply(200)
    config = AlertmanagerSinkConfig(
        type="alertmanager", url=receiver.base + "/", generator_url="https://dash/k8s"
    )
    with AlertmanagerSink("am", config) as am:
        am.send(make_event(namespace=None, name="node-1", key="node-1"))
    ((alert,),) = posted(receiver)
    assert "namespace" not in alert["labels"]  # an empty label is no label
    assert alert["generatorURL"] == "https://dash/k8s?cluster=test&kind=ConfigMap&name=node-1"


def test_object_text_arrives_verbatim_on_one_line(receiver: Receiver) -> None:
    """Alertmanager shows plain text: escaping would show ``&lt;`` to whoever reads it."""
    receiver.reply = Reply(200)
    event = make_event(name=EVIL, summary=f"{EVIL}\nforged line")
    with sink(receiver.base) as am:
        am.send(event)
    ((alert,),) = posted(receiver)
    assert alert["labels"]["name"] == EVIL
    assert alert["annotations"]["summary"] == f"{EVIL} forged line"


def test_kubernetes_event_is_about_its_involved_object(receiver: Receiver) -> None:
    receiver.reply = Reply(200)
    involved = InvolvedObject("Pod", "shop", "web-1", "uid-pod")
    info = KubeEventInfo("Warning", "BackOff", "Back-off restarting", 3, involved)
    with sink(receiver.base) as am:
        am.send(make_event(kind="Event", name="web-1.17", k8s_event=info))
    ((alert,),) = posted(receiver)
    labels = alert["labels"]
    assert (labels["kind"], labels["name"], labels["reason"]) == ("Pod", "web-1", "BackOff")
    assert "endsAt" not in alert  # Alertmanager's resolve_timeout ends it


def test_health_alert_fires_ahead_and_resolves_with_ends_at(receiver: Receiver) -> None:
    receiver.reply = Reply(200)
    with sink(receiver.base, alert_timeout="1h") as am:
        am.send(alert_event("firing"))
        am.send(alert_event("resolved", observed_at="2026-11-26T23:00:00.000Z"))
    ((firing,), (resolved,)) = posted(receiver)
    assert firing["labels"]["alertname"] == "CrashLoopBackOff"
    assert firing["labels"]["container"] == "app"
    assert firing["startsAt"] == "2026-11-26T22:00:00.000Z"  # the alert's since
    assert firing["endsAt"] == "2026-11-26T23:10:51.123Z"  # observedAt + alertTimeout
    assert resolved["labels"] == firing["labels"]  # the same alert
    assert resolved["endsAt"] == "2026-11-26T23:00:00.000Z"


def test_delete_resolves_only_with_resolve_on_delete(receiver: Receiver) -> None:
    receiver.reply = Reply(200)
    update = make_event("shop/web")
    delete = dataclasses.replace(update, type=EventType.DELETE)
    with sink(receiver.base) as am:
        am.send(update)
        am.send(delete)
    with sink(receiver.base, resolve_on_delete=True) as am:
        am.send(delete)  # nothing open yet: nothing to resolve
        am.send(update)
        am.send(delete)
    reasons = [(a["labels"]["reason"], "endsAt" in a) for (a,) in posted(receiver)]
    assert reasons == [
        ("Updated", False),
        ("Deleted", False),
        ("Updated", False),
        ("Updated", True),
    ]


def test_digest_is_about_the_kind(receiver: Receiver) -> None:
    receiver.reply = Reply(200)
    digest = DigestInfo(3, ("a", "b", "c"), ("shop/a", "shop/b", "shop/c"))
    with sink(receiver.base) as am:
        am.send(make_event(name="", digest=digest, summary="3 ConfigMaps updated"))
    ((alert,),) = posted(receiver)
    assert (alert["labels"]["name"], alert["labels"]["reason"]) == ("*", "DigestUpdate")


def test_ha_every_replica_is_sent_and_one_acceptance_delivers(
    receiver: Receiver, second: Receiver
) -> None:
    receiver.reply = Reply(200)
    second.reply = Reply(500)
    with sink(receiver.base, second.base, dead_url()) as am:
        am.send(make_event())
    assert len(posted(receiver)) == len(posted(second)) == 1


def test_ha_all_failing_raises_the_most_hopeful(receiver: Receiver, second: Receiver) -> None:
    receiver.reply = Reply(400)
    second.reply = Reply(429, {"Retry-After": "9"})
    with sink(receiver.base, second.base) as am, pytest.raises(RateLimited) as error:
        am.send(make_event())
    assert error.value.retry_after == 9
    assert "HTTP 400" in str(error.value) and "HTTP 429" in str(error.value)
    second.reply = Reply(503)
    with sink(receiver.base, second.base) as am, pytest.raises(RetryableError):
        am.send(make_event())
    second.reply = Reply(404)
    with sink(receiver.base, second.base) as am, pytest.raises(PermanentError):
        am.send(make_event())


@pytest.mark.parametrize("answer", ANSWERS)
def test_answers_map_to_error_classes(receiver: Receiver, answer: Answer) -> None:
    receiver.reply = answer.reply
    with sink(receiver.base) as am, pytest.raises(answer.error) as error:
        am.send(make_event())
    assert_error(error, answer)


def test_refused_connection_is_retryable() -> None:
    with sink(dead_url()) as am, pytest.raises(RetryableError):
        am.send(make_event())


def test_credentials_stay_out_of_errors_preview_and_repr(receiver: Receiver) -> None:
    receiver.reply = Reply(401, body=f"bad token Bearer {TOKEN}".encode())
    config = AlertmanagerSinkConfig(
        type="alertmanager", url=receiver.base, headers={"Authorization": f"Bearer {TOKEN}"}
    )
    with AlertmanagerSink("am", config) as am:
        with pytest.raises(PermanentError) as error:
            am.send(make_event())
        preview = am.preview(make_event())
    assert TOKEN not in str(error.value)
    assert TOKEN not in preview and TOKEN not in repr(config)
    assert preview.startswith(f"POST {receiver.base}/api/v2/alerts\n")
    check(ALERTMANAGER_ALERTS, orjson.loads(preview.split("\n", 1)[1]))


def test_closed_sink_fails_permanently(receiver: Receiver) -> None:
    am = sink(receiver.base)
    am.close()
    am.close()
    with pytest.raises(PermanentError):
        am.send(make_event())


def test_config_from_yaml_builds_the_sink() -> None:
    config = parse_config(
        "resources: [{kind: ConfigMap}]\n"
        "sinks: {am: {type: alertmanager, urls: ['http://a:9093', 'http://b:9093']}}\n",
        "c.yaml",
    )
    with build_sink("am", config.sinks["am"]) as am:
        assert isinstance(am, AlertmanagerSink)


@pytest.mark.parametrize(
    ("sink_yaml", "message"),
    [
        ("{type: alertmanager}", "sinks.am.url: set one of url and urls"),
        ("{type: alertmanager, url: 'http://a', urls: ['http://b']}", "set one of url and urls"),
        ("{type: alertmanager, urls: ['ftp://b']}", "sinks.am.urls: must be an http://"),
        ("{type: alertmanager, url: 'http://a', labels: {a-b: x}}", "is not a label name"),
    ],
)
def test_config_mistakes_name_their_key(sink_yaml: str, message: str) -> None:
    with pytest.raises(ConfigErrors) as error:
        parse_config(f"resources: [{{kind: ConfigMap}}]\nsinks: {{am: {sink_yaml}}}\n", "c.yaml")
    assert message in str(error.value)
