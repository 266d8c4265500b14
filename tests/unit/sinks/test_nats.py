"""The nats sink without a server: subjects, config checks, error classes, secrets.

Publishing to a real JetStream (PubAck, duplicates, reconnects, a restart) is proven in
``tests/e2e/test_nats.py`` against ``nats-server -js``.
"""

from __future__ import annotations

import socket
from typing import Any

import nats.errors
import nats.js.errors
import pytest

from kubewatch.config import parse_config
from kubewatch.config.incident_sinks import NatsSinkConfig
from kubewatch.errors import ConfigErrors, PermanentError, RetryableError
from kubewatch.sinks import build_sink
from kubewatch.sinks.nats import NatsSink, render_subject, subject_token
from tests.unit.sinks.test_sinks import TOKEN, make_event


def dead_url(userinfo: str = "") -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"nats://{userinfo}127.0.0.1:{s.getsockname()[1]}"


def sink(**kw: Any) -> NatsSink:
    kw.setdefault("url", dead_url())
    return NatsSink("bus", NatsSinkConfig(type="nats", **kw))


@pytest.mark.parametrize(
    ("value", "token"),
    [
        ("shop", "shop"),
        (None, "_"),
        ("", "_"),
        ("a.b", "a_b"),
        ("x*y>z", "x_y_z"),
        ("prod eu\n1", "prod_eu_1"),
    ],
)
def test_subject_token(value: str | None, token: str) -> None:
    assert subject_token(value) == token


def test_default_subject_is_cluster_kind_namespace() -> None:
    config = NatsSinkConfig(type="nats", url="nats://n:4222")
    assert render_subject(config.subject, make_event("shop/web")) == "kubewatch.test.ConfigMap.shop"
    cluster_scoped = make_event("node-1", kind="Node", namespace=None)
    assert render_subject(config.subject, cluster_scoped) == "kubewatch.test.Node._"
    odd = make_event("a.b/c", cluster="prod.eu *")
    assert render_subject("k.{cluster}.{type}.{resource}.{name}", odd) == (
        "k.prod_eu__.update.configmaps.c"
    )


@pytest.mark.parametrize(
    ("sink_yaml", "message"),
    [
        ("{type: nats}", "sinks.bus.url: set one of url and servers"),
        ("{type: nats, url: 'http://n:4222'}", "must be a nats://, tls://"),
        ("{type: nats, servers: ['nats://a', 'x']}", "sinks.bus.servers"),
        ("{type: nats, url: 'nats://n', subject: 'k.{nam}'}", "unknown field {nam}"),
        ("{type: nats, url: 'nats://n', subject: 'k..{kind}'}", "is not a subject"),
        ("{type: nats, url: 'nats://n', subject: 'k.>'}", "is not a subject"),
        ("{type: nats, url: 'nats://n', user: u}", "sinks.bus.password: user and password"),
        ("{type: nats, url: 'nats://n', token: t, user: u, password: p}", "at most one of"),
        ("{type: nats, url: 'nats://n', certFile: /nonexistent}", "does not exist"),
    ],
)
def test_config_mistakes_name_their_key(sink_yaml: str, message: str) -> None:
    with pytest.raises(ConfigErrors) as error:
        parse_config(f"resources: [{{kind: ConfigMap}}]\nsinks: {{bus: {sink_yaml}}}\n", "c.yaml")
    assert message in str(error.value)


def test_config_from_yaml_builds_the_sink() -> None:
    config = parse_config(
        "resources: [{kind: ConfigMap}]\n"
        "sinks: {bus: {type: nats, servers: ['nats://a:4222', 'tls://b:4222']}}\n",
        "c.yaml",
    )
    with build_sink("bus", config.sinks["bus"]) as bus:
        assert isinstance(bus, NatsSink)


def test_no_server_is_retryable_and_names_no_credential() -> None:
    url = dead_url(f"kubewatch:{TOKEN}@")
    with sink(url=url, timeout=1) as bus, pytest.raises(RetryableError) as error:
        bus.send(make_event())
    assert TOKEN not in str(error.value)
    assert "127.0.0.1" in str(error.value)


@pytest.mark.parametrize(
    ("exc", "error"),
    [
        pytest.param(nats.errors.TimeoutError(), RetryableError, id="timeout"),
        pytest.param(nats.errors.NoServersError(), RetryableError, id="no-servers"),
        pytest.param(nats.errors.ConnectionClosedError(), RetryableError, id="closed"),
        pytest.param(nats.js.errors.NoStreamResponseError(), RetryableError, id="no-stream"),
        pytest.param(nats.js.errors.ServiceUnavailableError(code=503), RetryableError, id="503"),
        pytest.param(nats.js.errors.BadRequestError(code=400), PermanentError, id="400"),
        pytest.param(nats.errors.MaxPayloadError(), PermanentError, id="max-payload"),
        pytest.param(nats.errors.AuthorizationError(), PermanentError, id="auth"),
        pytest.param(OSError("reset"), RetryableError, id="os-error"),
    ],
)
def test_error_classes(exc: Exception, error: type[Exception]) -> None:
    with sink() as bus:
        classified = bus._error(exc, "kubewatch.test.ConfigMap.default")
    assert type(classified) is error


def test_preview_and_repr_hold_no_secret() -> None:
    url = f"nats://kubewatch:{TOKEN}@nats:4222"
    config = NatsSinkConfig(type="nats", url=url)
    with NatsSink("bus", config) as bus:
        preview = bus.preview(make_event("shop/web"))
    event = make_event("shop/web")
    assert preview.startswith(f"PUB kubewatch.test.ConfigMap.shop\nNats-Msg-Id: {event.id}\n")
    assert TOKEN not in preview and TOKEN not in repr(config)
    token_config = NatsSinkConfig(type="nats", url="nats://n:4222", token=TOKEN)
    assert TOKEN not in repr(token_config)


def test_close_is_idempotent_and_final() -> None:
    bus = sink()
    bus.close()
    bus.close()
    assert not bus._thread.is_alive()
    with pytest.raises(PermanentError, match="closed"):
        bus.send(make_event())
