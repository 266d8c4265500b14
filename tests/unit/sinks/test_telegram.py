"""The Telegram sink against a real local HTTP receiver standing in for the Bot API."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from kubewatch.config import TelegramSinkConfig, parse_config
from kubewatch.errors import ConfigErrors, PermanentError, RateLimited, RetryableError
from kubewatch.events import Change
from kubewatch.render import SAMPLES
from kubewatch.render.escape import ZWSP
from kubewatch.sinks.telegram import TEXT_LIMIT, TelegramSink, utf16_len
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

TOKEN = "123456789:AAH-s3cr3t-b0t-t0ken-value"
OK = Reply(200, {"Content-Type": "application/json"}, b'{"ok": true, "result": {}}')


def telegram(receiver: Receiver, **kw: Any) -> TelegramSink:
    fields: dict[str, Any] = {"token": TOKEN, "chatId": -1001234567890, "apiUrl": receiver.base}
    return TelegramSink(
        "chat", TelegramSinkConfig.model_validate({"type": "telegram", **fields, **kw})
    )


def test_send_message_as_the_bot_api_documents_it(receiver: Receiver) -> None:
    event = make_event()
    doc = send(receiver, telegram(receiver, messageThreadId=42), event, OK)
    assert receiver.requests[0].method == "POST"
    assert receiver.requests[0].target == f"/bot{TOKEN}/sendMessage"
    assert_valid(doc, "telegram-sendMessage")
    assert doc["chat_id"] == -1001234567890
    assert doc["message_thread_id"] == 42
    assert doc["parse_mode"] == "HTML"
    assert doc["link_preview_options"] == {"is_disabled": True}
    assert doc["text"] == (
        "<b>🟡 update ConfigMap default/app: data.mode a → b</b>\n\n"
        "<b>Cluster:</b> test\n<b>Kind:</b> ConfigMap\n<b>Namespace:</b> default\n\n"
        "<pre>data.mode: a → b</pre>\n\n"
        f"<i>kubewatch · {event.id}</i>"
    )


def test_channel_username_and_no_topic(receiver: Receiver) -> None:
    doc = send(receiver, telegram(receiver, chatId="@ops_alerts"), make_event(), OK)
    assert doc["chat_id"] == "@ops_alerts"
    assert "message_thread_id" not in doc


@pytest.mark.parametrize(("label", "event"), SAMPLES, ids=[label for label, _ in SAMPLES])
def test_every_event_shape_matches_the_schema(receiver: Receiver, label: str, event: Any) -> None:
    assert_valid(send(receiver, telegram(receiver), event, OK), "telegram-sendMessage")


def test_object_text_is_escaped_for_html_and_pings_nobody(receiver: Receiver) -> None:
    text = send(receiver, telegram(receiver), evil_event(), OK)["text"]
    assert "<b>x</b>" not in text and "&lt;b&gt;x&lt;/b&gt;" in text
    assert " & " not in text and " &amp; " in text
    assert "&lt;at id=all&gt;" in text
    assert f"@{ZWSP}everyone" in text and f"@{ZWSP}alice" in text
    assert "@everyone" not in text and "@alice" not in text


def test_template_values_are_escaped_and_defused(receiver: Receiver) -> None:
    template = "{{ kind }}: {{ changes[0].new }}"
    text = send(receiver, telegram(receiver, template=template), evil_event(), OK)["text"]
    assert text.startswith("<b>🟡 ConfigMap: &lt;b&gt;x&lt;/b&gt; &amp; ")
    assert f"@{ZWSP}everyone" in text


def test_text_stays_within_4096_characters(receiver: Receiver) -> None:
    changes = tuple(Change(f"data.k{i}", "é" * 110, "😀" * 110) for i in range(20))
    text = send(receiver, telegram(receiver), make_event(changes=changes), OK)["text"]
    assert utf16_len(text) <= TEXT_LIMIT
    assert "more lines</pre>" in text or "more line</pre>" in text
    assert text.count("<pre>") == text.count("</pre>") == 1


def test_a_huge_template_title_is_cut_not_refused(receiver: Receiver) -> None:
    template = "{% for i in range(3000) %}&lt;{% endfor %}"
    text = send(receiver, telegram(receiver, template=template), make_event(), OK)["text"]
    assert utf16_len(text) <= TEXT_LIMIT
    assert "…</b>" in text
    assert "&…" not in text and "&l…" not in text and "&lt…" not in text  # no half entity


@pytest.mark.parametrize(("reply", "error", "retry_after"), STATUS_ERRORS)
def test_error_statuses(
    receiver: Receiver, reply: Reply, error: type[Exception], retry_after: float | None
) -> None:
    assert_error(receiver, lambda: telegram(receiver), reply, error, retry_after)


FLOOD = {
    "ok": False,
    "error_code": 429,
    "description": "Too Many Requests: retry after 5",
    "parameters": {"retry_after": 5},
}


@pytest.mark.parametrize(
    ("reply", "error", "retry_after"),
    [
        pytest.param(Reply(429, body=orjson.dumps(FLOOD)), RateLimited, 5.0, id="429-body"),
        pytest.param(Reply(200, body=orjson.dumps(FLOOD)), RateLimited, 5.0, id="200-ok-false-429"),
        pytest.param(
            Reply(
                200,
                body=b'{"ok": false, "error_code": 400, "description": "chat not found"}',
            ),
            PermanentError,
            None,
            id="200-ok-false-400",
        ),
        pytest.param(
            Reply(200, body=b'{"ok": false, "error_code": 502, "description": "Bad Gateway"}'),
            RetryableError,
            None,
            id="200-ok-false-502",
        ),
        pytest.param(
            Reply(
                403,
                body=b'{"ok": false, "error_code": 403, "description": "Forbidden"}',
            ),
            PermanentError,
            None,
            id="403-kicked",
        ),
    ],
)
def test_answers_coded_in_the_body(
    receiver: Receiver, reply: Reply, error: type[Exception], retry_after: float | None
) -> None:
    found = assert_error(receiver, lambda: telegram(receiver), reply, error, retry_after)
    assert "'chat'" in str(found)


def test_connection_refused_is_retryable_without_the_token() -> None:
    config = TelegramSinkConfig(
        type="telegram", token=TOKEN, chat_id=1, api_url="http://127.0.0.1:9"
    )
    with TelegramSink("chat", config) as sink, pytest.raises(RetryableError) as info:
        sink.send(make_event())
    assert TOKEN not in str(info.value)


def test_token_never_shown(receiver: Receiver) -> None:
    assert_secrets_never_shown(receiver, lambda: telegram(receiver), (TOKEN, TOKEN.split(":")[1]))
    config = parse_config(
        "resources: [{kind: Pod}]\n"
        f"sinks: {{t: {{type: telegram, token: '{TOKEN}', chatId: 1}}}}\n",
        {},
    )
    assert TOKEN not in repr(config)


def test_preview_shows_the_request_without_the_token(receiver: Receiver) -> None:
    with telegram(receiver) as sink:
        preview = sink.preview(make_event())
    first, _, body = preview.partition("\n")
    assert first == f"POST {receiver.base}/<redacted>/sendMessage"
    assert orjson.loads(body)["chat_id"] == -1001234567890


def test_kubewatch_test_sink(
    receiver: Receiver, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    receiver.reply = OK
    yaml = (
        f"    type: telegram\n    token: '{TOKEN}'\n    chatId: 42\n    apiUrl: {receiver.base}\n"
    )
    assert run_test_sink(tmp_path, yaml, capsys) == (0, "delivered to chat (telegram)\n")
    receiver.reply = Reply(
        200, body=b'{"ok": false, "error_code": 400, "description": "chat not found"}'
    )
    code, out = run_test_sink(tmp_path, yaml, capsys)
    assert code == 1 and "permanent error" in out and "chat not found" in out
    assert TOKEN not in out


@pytest.mark.parametrize(
    ("fields", "key"),
    [
        ({"chatId": 1}, "token"),
        ({"token": TOKEN}, "chatId"),
        ({"token": "a b", "chatId": 1}, "token"),
        ({"token": TOKEN, "chatId": 1, "messageThreadId": 0}, "messageThreadId"),
        ({"token": TOKEN, "chatId": 1, "apiUrl": "ftp://x"}, "apiUrl"),
    ],
)
def test_config_mistakes_name_their_key(fields: dict[str, Any], key: str) -> None:
    text = orjson.dumps(
        {"resources": [{"kind": "Pod"}], "sinks": {"t": {"type": "telegram", **fields}}}
    )
    with pytest.raises(ConfigErrors) as info:
        parse_config(text.decode(), {})
    assert [e.path for e in info.value.errors] == [f"sinks.t.{key}"]
