"""The Matrix sink against a real local HTTP receiver standing in for a homeserver."""

from __future__ import annotations

import urllib.parse
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from kubewatch.config import MatrixSinkConfig
from kubewatch.errors import PermanentError, RateLimited
from kubewatch.render import SAMPLES
from kubewatch.sinks.matrix import MatrixSink
from tests.unit.sinks.chatapi_cases import (
    STATUS_ERRORS,
    assert_error,
    assert_secrets_never_shown,
    assert_valid,
    evil_event,
    run_test_sink,
    send,
)
from tests.unit.sinks.test_sinks import Receiver, Reply, make_event

TOKEN = "syt_a3ViZXdhdGNo_s3cr3tAccessT0ken_0abc12"
ROOM = "!OpsRoom:example.org"
OK = Reply(200, {"Content-Type": "application/json"}, b'{"event_id": "$abc"}')


def matrix(receiver: Receiver, **kw: Any) -> MatrixSink:
    config = MatrixSinkConfig(
        type="matrix", homeserver=receiver.base, room_id=ROOM, access_token=TOKEN, **kw
    )
    return MatrixSink("chat", config)


def test_put_with_the_event_id_as_transaction(receiver: Receiver) -> None:
    event = make_event()
    doc = send(receiver, matrix(receiver), event, OK)
    request = receiver.requests[0]
    assert request.method == "PUT"
    room = urllib.parse.quote(ROOM, safe="")
    assert request.target == f"/_matrix/client/v3/rooms/{room}/send/m.room.message/{event.id}"
    assert request.header("Authorization") == f"Bearer {TOKEN}"
    assert_valid(doc, "matrix-room-message")
    assert doc["msgtype"] == "m.notice"
    assert doc["format"] == "org.matrix.custom.html"
    assert doc["m.mentions"] == {}
    assert doc["body"].startswith("🟡 update ConfigMap default/app: data.mode a → b\nCluster: test")
    assert doc["formatted_body"].startswith("<b>🟡 update ConfigMap default/app")
    assert "<pre><code>data.mode: a → b</code></pre>" in doc["formatted_body"]


def test_a_retry_uses_the_same_transaction(receiver: Receiver) -> None:
    event = make_event()
    receiver.reply = OK
    with matrix(receiver) as sink:
        sink.send(event)
        sink.send(event)
    first, second = receiver.requests
    assert first.target == second.target  # the homeserver answers the retry idempotently


@pytest.mark.parametrize(("label", "event"), SAMPLES, ids=[label for label, _ in SAMPLES])
def test_every_event_shape_matches_the_schema(receiver: Receiver, label: str, event: Any) -> None:
    assert_valid(
        send(receiver, matrix(receiver, msgtype="m.text"), event, OK), "matrix-room-message"
    )


def test_html_is_escaped_body_is_plain_and_nobody_is_mentioned(receiver: Receiver) -> None:
    doc = send(receiver, matrix(receiver), evil_event(), OK)
    html = doc["formatted_body"]
    assert "<b>x</b>" not in html and "&lt;b&gt;x&lt;/b&gt; &amp; " in html
    assert "<b>x</b> & <at id=all></at>" in doc["body"]  # plain text is shown as text
    assert doc["m.mentions"] == {}  # no push rule looks at body for names or @room


@pytest.mark.parametrize(("reply", "error", "retry_after"), STATUS_ERRORS)
def test_error_statuses(
    receiver: Receiver, reply: Reply, error: type[Exception], retry_after: float | None
) -> None:
    assert_error(receiver, lambda: matrix(receiver), reply, error, retry_after)


@pytest.mark.parametrize(
    ("reply", "error", "retry_after"),
    [
        pytest.param(
            Reply(429, body=b'{"errcode": "M_LIMIT_EXCEEDED", "retry_after_ms": 2500}'),
            RateLimited,
            2.5,
            id="limit-exceeded",
        ),
        pytest.param(
            Reply(403, body=b'{"errcode": "M_FORBIDDEN", "error": "not in room"}'),
            PermanentError,
            None,
            id="forbidden",
        ),
        pytest.param(
            Reply(401, body=b'{"errcode": "M_UNKNOWN_TOKEN"}'), PermanentError, None, id="token"
        ),
    ],
)
def test_matrix_error_codes(
    receiver: Receiver, reply: Reply, error: type[Exception], retry_after: float | None
) -> None:
    assert_error(receiver, lambda: matrix(receiver), reply, error, retry_after)


def test_access_token_never_shown(receiver: Receiver) -> None:
    assert_secrets_never_shown(receiver, lambda: matrix(receiver), (TOKEN,))


def test_room_alias_is_refused_at_load() -> None:
    with pytest.raises(ValidationError, match="room ID"):
        MatrixSinkConfig(
            type="matrix", homeserver="https://m.example", room_id="#ops:x", access_token="t"
        )


def test_kubewatch_test_sink(
    receiver: Receiver, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    receiver.reply = OK
    yaml = (
        f"    type: matrix\n    homeserver: {receiver.base}\n    roomId: '{ROOM}'\n"
        f"    accessToken: {TOKEN}\n"
    )
    assert run_test_sink(tmp_path, yaml, capsys) == (0, "delivered to chat (matrix)\n")
    receiver.reply = Reply(403, body=b'{"errcode": "M_FORBIDDEN"}')
    code, out = run_test_sink(tmp_path, yaml, capsys)
    assert code == 1 and "permanent error" in out and TOKEN not in out
