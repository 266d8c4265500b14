"""A password in a sink URL never shows, in any form; userinfo and an explicit
``Authorization`` header together are a configuration error."""

from __future__ import annotations

import base64
import urllib.parse
from collections.abc import Iterator

import pytest

from kubewatch.cli import register_config_secrets
from kubewatch.config import WebhookSinkConfig, parse_config
from kubewatch.errors import ConfigErrors, PermanentError
from kubewatch.observability.logs import default_redactor
from kubewatch.scrub import Scrubber, secret_forms
from kubewatch.sinks.webhook import WebhookSink
from tests.unit.sinks.test_sinks import Received, Receiver, Reply, make_event, serve


@pytest.fixture
def echo() -> Iterator[Receiver]:
    """A receiver that refuses with 400 and quotes the request's Authorization header
    back, as some do in their error bodies."""
    for receiver in serve(None):

        def respond(request: Received) -> Reply:
            auth = request.header("Authorization") or ""
            _, _, b64 = auth.partition(" ")
            decoded = base64.b64decode(b64).decode() if b64 else ""
            body = f"bad request: auth={auth} token={b64.rstrip('=')} pair={decoded}"
            return Reply(400, body=body.encode())

        receiver.respond = respond
        yield receiver


def forms(user: str, password: str) -> list[str]:
    pair = f"{user}:{password}"
    b64 = base64.b64encode(pair.encode()).decode()
    return [password, urllib.parse.quote(password, safe=""), pair, b64, b64.rstrip("=")]


@pytest.mark.parametrize(
    ("userinfo", "user", "password"),
    [("user:pw-in-url", "user", "pw-in-url"), ("user:p%40ss%2Fw0rd", "user", "p@ss/w0rd")],
)
def test_url_password_never_in_an_error(
    echo: Receiver, userinfo: str, user: str, password: str
) -> None:
    host = echo.base.split("://", 1)[1]
    sink = WebhookSink("hook", WebhookSinkConfig(type="webhook", url=f"http://{userinfo}@{host}/h"))
    with sink, pytest.raises(PermanentError) as caught:
        sink.send(make_event())
    message = str(caught.value)
    assert "HTTP 400" in message and "<redacted>" in message
    for form in forms(user, password):
        assert form not in message, (form, message)


def test_url_password_never_in_a_log_line() -> None:
    config = parse_config(
        "resources: [{kind: Pod}]\n"
        "sinks: {hook: {type: webhook, url: 'https://user:pw-in-url@hooks.example/x'}}\n",
        env={},
    )
    register_config_secrets(config)
    line = "failed: auth=Basic dXNlcjpwdy1pbi11cmw= pw=pw-in-url pw%3Dpw-in-url user:pw-in-url"
    redacted = default_redactor().redact(line)
    for form in forms("user", "pw-in-url"):
        assert form not in redacted, (form, redacted)


def test_secret_forms_cover_basic_and_encodings() -> None:
    scrub = Scrubber(secret_forms("https://u:s%20cret-1@h.example/"))
    text = "s cret-1 s%20cret-1 s+cret-1 " + base64.b64encode(b"u:s cret-1").decode()
    assert "cret" not in scrub(text)


def test_userinfo_and_authorization_header_is_an_error() -> None:
    text = (
        "resources: [{kind: Pod}]\n"
        "sinks:\n"
        "  hook:\n"
        "    type: webhook\n"
        "    url: https://user:pw@hooks.example/x\n"
        "    headers: {Authorization: Bearer abc}\n"
    )
    with pytest.raises(ConfigErrors) as caught:
        parse_config(text, env={})
    (error,) = caught.value.errors
    assert error.path == "sinks.hook.headers.Authorization"
    assert "credentials in the URL" in error.message
