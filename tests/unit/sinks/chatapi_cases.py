"""What the tests of the chat API sinks (Google Chat, Telegram, Matrix, DingTalk, Feishu,
WeCom) share: the vendors' schemas, a hostile event, one send against the real local
receiver, the error statuses every one of them maps alike, and ``kubewatch test-sink``."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import orjson
import pytest

from kubewatch.cli.test_sink import sink_test
from kubewatch.errors import PermanentError, RateLimited, RetryableError
from kubewatch.events import Change, Event
from kubewatch.sinks.base import Sink
from tests.unit.sinks.test_sinks import Receiver, Reply, make_event

DATA = Path(__file__).with_name("data")

EVIL = "<b>x</b> & <at id=all></at> <@all> @everyone @alice [x](https://evil) *bold* _it_"
"""An annotation value that tries HTML, Feishu's and WeCom's mentions, plain mentions,
a disguised link and emphasis: it must arrive as literal text in every dialect."""


def validator(name: str) -> jsonschema.Draft202012Validator:
    """The JSON Schema ``data/<name>.schema.json``, written from the vendor's docs."""
    schema = json.loads((DATA / f"{name}.schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def assert_valid(doc: Any, name: str) -> None:
    errors = [e.message for e in validator(name).iter_errors(doc)]
    assert errors == [], errors


def evil_event(**overrides: Any) -> Event:
    fields: dict[str, Any] = {
        "changes": (Change('metadata.annotations["note"]', "calm", EVIL),),
        "summary": f"[test] ConfigMap default/app updated: note calm → {EVIL}",
    }
    return make_event(**{**fields, **overrides})


def send(receiver: Receiver, sink: Sink, event: Event, reply: Reply) -> dict[str, Any]:
    """``event`` through ``sink`` (closed after); the JSON document that arrived."""
    receiver.reply = reply
    with sink:
        sink.send(event)
    (request,) = receiver.requests
    assert request.header("Content-Type") == "application/json"
    doc: dict[str, Any] = orjson.loads(request.body)
    return doc


STATUS_ERRORS = [
    pytest.param(Reply(429, {"Retry-After": "7"}), RateLimited, 7.0, id="429-retry-after"),
    pytest.param(Reply(500, body=b"boom"), RetryableError, None, id="500"),
    pytest.param(Reply(503), RetryableError, None, id="503"),
    pytest.param(Reply(400, body=b'{"error": "bad"}'), PermanentError, None, id="400"),
    pytest.param(Reply(404), PermanentError, None, id="404"),
]
"""The answers every chat API sink classifies by status alone (:mod:`kubewatch.sinks.http`)."""


def assert_error(
    receiver: Receiver,
    build: Callable[[], Sink],
    reply: Reply,
    error: type[Exception],
    retry_after: float | None,
) -> Exception:
    receiver.reply = reply
    with build() as sink, pytest.raises(error) as info:
        sink.send(make_event())
    assert type(info.value) is error
    if retry_after is not None:
        assert isinstance(info.value, RateLimited)
        assert info.value.retry_after == pytest.approx(retry_after)
    return info.value


def assert_secrets_never_shown(
    receiver: Receiver, build: Callable[[], Sink], secrets: tuple[str, ...]
) -> None:
    """The receiver echoes the credential header, the request target and the body: nothing
    secret survives into the error, the preview, or the repr of the sink."""

    def echo(request: Any) -> Reply:
        text = f"{request.header('Authorization')} {request.target} {request.body.decode()}"
        return Reply(400, body=text.encode())

    receiver.respond = echo
    with build() as sink, pytest.raises(PermanentError) as info:
        sink.send(make_event())
    with build() as sink:
        preview = sink.preview(make_event())
        shown = [str(info.value), preview, repr(sink)]
    for text in shown:
        for secret in secrets:
            assert secret not in text, (secret, text)
    assert "<redacted>" in str(info.value)
    assert "<redacted>" in preview


def run_test_sink(
    tmp_path: Path, sink_yaml: str, capsys: pytest.CaptureFixture[str]
) -> tuple[int, str]:
    """``kubewatch test-sink chat`` with ``sink_yaml`` as sink ``chat``: exit code, output."""
    config = tmp_path / "config.yaml"
    config.write_text(f"resources: [{{kind: Deployment}}]\nsinks:\n  chat:\n{sink_yaml}")
    code = sink_test(argparse.Namespace(config=str(config), sink="chat"))
    out = capsys.readouterr()
    return code, out.out + out.err
