"""The CloudEvents sink, checked by the CloudEvents SDK parsing what a real receiver got.

Two parsers read every request: the SDK's long-standing ``from_http(headers, body)`` and
its newer spec-strict HTTP binding (``cloudevents.core``), which also percent-decodes
``ce-*`` headers as the HTTP binding requires.
"""

from __future__ import annotations

import urllib.parse
from datetime import datetime, timezone
from typing import Any, Literal

import orjson
import pytest
from cloudevents.core.bindings.http import HTTPMessage
from cloudevents.core.bindings.http import from_http as strict_from_http
from cloudevents.core.formats.json import JSONFormat
from cloudevents.v1.http import from_http

from kubewatch.config import CloudEventsSinkConfig, parse_config
from kubewatch.errors import ConfigError, PermanentError, RateLimited, RetryableError
from kubewatch.events import Change, Event, EventType
from kubewatch.render import SAMPLES
from kubewatch.sinks.cloudevents import (
    STRUCTURED_CONTENT_TYPE,
    CloudEventsSink,
    header_value,
)
from tests.unit.sinks.test_sinks import TOKEN, Received, Receiver, Reply, make_event

Mode = Literal["structured", "binary"]
MODES: tuple[Mode, ...] = ("structured", "binary")


def sink(url: str, **kw: Any) -> CloudEventsSink:
    return CloudEventsSink("ce", CloudEventsSinkConfig(type="cloudevents", url=url, **kw))


def deliver(receiver: Receiver, event: Event, **kw: Any) -> Received:
    receiver.reply = Reply(202)
    with sink(receiver.url, **kw) as s:
        s.send(event)
    (request,) = receiver.requests
    return request


def parse(request: Received) -> dict[str, Any]:
    """Attributes and data as both SDK parsers read them; they must agree.

    The older parser does not percent-decode ``ce-*`` headers (HTTP binding 3.1.3.2),
    so its binary-mode values are decoded here before comparing.
    """
    loose = from_http(request.headers, request.body)
    strict = strict_from_http(HTTPMessage(request.headers, request.body), JSONFormat())
    attributes = dict(strict.get_attributes())
    time = attributes.pop("time")
    assert isinstance(time, datetime)
    binary = request.header("ce-id") is not None
    loose_attributes = {
        k: urllib.parse.unquote(v) if binary and isinstance(v, str) else v
        for k, v in loose.get_attributes().items()
    }
    assert {**attributes, "time": loose["time"]} == loose_attributes
    assert strict.get_data() == loose.data
    return {**attributes, "time": time, "data": strict.get_data()}


OBSERVED = datetime(2026, 11, 26, 22, 10, 51, 123000, tzinfo=timezone.utc)


# -- both modes --------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_every_attribute_as_the_sdk_reads_it(receiver: Receiver, mode: Mode) -> None:
    event = make_event()
    got = parse(deliver(receiver, event, mode=mode))
    assert got == {
        "specversion": "1.0",
        "id": event.id,
        "source": "kubewatch/test",
        "type": "io.kubewatch.resource.updated",
        "subject": "ConfigMap/default/app",
        "time": OBSERVED,
        "datacontenttype": "application/json",
        "data": event.to_dict(),
    }


def test_structured_mode_wire_format(receiver: Receiver) -> None:
    event = make_event()
    request = deliver(receiver, event)
    assert request.method == "POST"
    assert request.header("Content-Type") == STRUCTURED_CONTENT_TYPE
    assert STRUCTURED_CONTENT_TYPE == "application/cloudevents+json; charset=utf-8"
    assert not [k for k in request.headers if k.lower().startswith("ce-")]
    doc = orjson.loads(request.body)
    assert doc["specversion"] == "1.0"
    assert doc["time"] == "2026-11-26T22:10:51.123Z"
    assert doc["data"] == event.to_dict()


def test_binary_mode_wire_format(receiver: Receiver) -> None:
    event = make_event()
    request = deliver(receiver, event, mode="binary")
    assert request.header("Content-Type") == "application/json"
    assert request.header("ce-datacontenttype") is None  # the binding forbids it
    assert {k.lower(): v for k, v in request.headers.items() if k.lower().startswith("ce-")} == {
        "ce-specversion": "1.0",
        "ce-id": event.id,
        "ce-source": "kubewatch/test",
        "ce-type": "io.kubewatch.resource.updated",
        "ce-subject": "ConfigMap/default/app",
        "ce-time": "2026-11-26T22:10:51.123Z",
    }
    assert orjson.loads(request.body) == event.to_dict()


# -- types and subjects ------------------------------------------------------------------


def sample(label: str) -> Event:
    return dict(SAMPLES)[label]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    ("event", "type_", "subject"),
    [
        pytest.param(
            make_event(type=EventType.CREATE),
            "io.kubewatch.resource.created",
            "ConfigMap/default/app",
            id="create",
        ),
        pytest.param(
            make_event(type=EventType.DELETE),
            "io.kubewatch.resource.deleted",
            "ConfigMap/default/app",
            id="delete",
        ),
        pytest.param(
            sample("delete (final state unknown)"),
            "io.kubewatch.resource.deleted",
            "Namespace/team-old",
            id="cluster-scoped",
        ),
        pytest.param(
            sample("Kubernetes Event"),
            "io.kubewatch.k8sevent.warning",
            "Pod/shop/web-7d4b9c-x2k4p",
            id="k8s-event-warning",
        ),
        pytest.param(sample("digest"), "io.kubewatch.digest", None, id="digest"),
    ],
)
def test_type_and_subject(
    receiver: Receiver, mode: Mode, event: Event, type_: str, subject: str | None
) -> None:
    got = parse(deliver(receiver, event, mode=mode))
    assert got["type"] == type_
    assert got.get("subject") == subject
    assert got["id"] == event.id
    assert got["data"] == event.to_dict()


def test_normal_kubernetes_event_type(receiver: Receiver) -> None:
    warning = sample("Kubernetes Event")
    assert warning.k8s_event is not None
    event = make_event(
        kind="Event",
        k8s_event=type(warning.k8s_event)(**{**_fields(warning.k8s_event), "type": "Normal"}),
    )
    assert parse(deliver(receiver, event))["type"] == "io.kubewatch.k8sevent.normal"


def _fields(obj: Any) -> dict[str, Any]:
    return {name: getattr(obj, name) for name in obj.__slots__}


# -- source ------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_configured_source(receiver: Receiver, mode: Mode) -> None:
    got = parse(deliver(receiver, make_event(), mode=mode, source="https://k8s.example/prod"))
    assert got["source"] == "https://k8s.example/prod"


@pytest.mark.parametrize("mode", MODES)
def test_default_source_is_a_uri_reference_for_any_cluster_name(
    receiver: Receiver, mode: Mode
) -> None:
    got = parse(deliver(receiver, make_event(cluster="prod eu/zürich"), mode=mode))
    assert got["source"] == "kubewatch/prod%20eu/z%C3%BCrich"


def test_binary_headers_are_percent_encoded_and_decoded_by_the_sdk(receiver: Receiver) -> None:
    """HTTP binding 3.1.3.2: '"', '%' and non-ASCII (and space) are percent-encoded."""
    request = deliver(receiver, make_event(), mode="binary", source='urn:kw:"Zürich"/100%')
    assert request.header("ce-source") == "urn:kw:%22Z%C3%BCrich%22/100%25"
    strict = strict_from_http(HTTPMessage(request.headers, request.body), JSONFormat())
    assert strict.get_attributes()["source"] == 'urn:kw:"Zürich"/100%'


def test_header_value_matches_the_spec_example() -> None:
    assert header_value("Euro \u20ac \U0001f600") == "Euro%20%E2%82%AC%20%F0%9F%98%80"
    assert header_value("Pod/shop/web-1") == "Pod/shop/web-1"


@pytest.mark.parametrize("source", ["", "two words", "tab\there"])
def test_source_that_is_no_uri_reference_fails_at_build(source: str) -> None:
    with pytest.raises(ConfigError) as info:
        sink("http://127.0.0.1:9/", source=source)
    assert info.value.path == "sinks.ce.source"


# -- outcomes ----------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    ("reply", "error"),
    [
        pytest.param(Reply(200), None, id="200"),
        pytest.param(Reply(202), None, id="202"),
        pytest.param(Reply(429, {"Retry-After": "5"}), RateLimited, id="429"),
        pytest.param(Reply(500), RetryableError, id="500"),
        pytest.param(Reply(400, body=b"invalid cloudevent"), PermanentError, id="400"),
        pytest.param(Reply(415), PermanentError, id="415-mode-not-supported"),
    ],
)
def test_outcomes(
    receiver: Receiver, mode: Mode, reply: Reply, error: type[Exception] | None
) -> None:
    receiver.reply = reply
    url = f"{receiver.base}/events/{TOKEN}"
    with sink(url, mode=mode) as s:
        if error is None:
            s.send(make_event())
            return
        with pytest.raises(error) as info:
            s.send(make_event())
    assert type(info.value) is error
    assert "cloudevents sink 'ce'" in str(info.value)
    assert TOKEN not in str(info.value)
    if isinstance(info.value, RateLimited):
        assert info.value.retry_after == 5.0


def test_unencodable_event_is_permanent(receiver: Receiver) -> None:
    event = make_event(changes=(Change("spec.huge", 1, 2**70),))
    with sink(receiver.url) as s, pytest.raises(PermanentError, match="JSON"):
        s.send(event)
    assert receiver.requests == []


def test_readme_config_validates() -> None:
    config = parse_config(
        """
resources:
  - kind: Deployment
sinks:
  events:
    type: cloudevents
    url: https://broker.example.com/default
    mode: binary
    source: https://k8s.example.com/prod
"""
    )
    assert isinstance(config.sinks["events"], CloudEventsSinkConfig)
