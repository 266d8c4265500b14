"""The Google Chat sink against a real local HTTP receiver standing in for a webhook."""

from __future__ import annotations

import urllib.parse
from pathlib import Path
from typing import Any

import orjson
import pytest

from kubewatch.config import GoogleChatSinkConfig, parse_config
from kubewatch.errors import RateLimited, RetryableError
from kubewatch.render import SAMPLES
from kubewatch.sinks.googlechat import GoogleChatSink
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

KEY = "AIzaSyDdI0hCZtE6vySjMm-WEfRq3CPzqKqqsHI"
TOKEN = "s3cr3t-w3bh00k-t0ken-value-0123456789"
OK = Reply(200, {"Content-Type": "application/json"}, b'{"name": "spaces/AAAA/messages/1"}')


def url(receiver: Receiver) -> str:
    return f"{receiver.base}/v1/spaces/AAAAtest/messages?key={KEY}&token={TOKEN}"


def googlechat(receiver: Receiver, **kw: Any) -> GoogleChatSink:
    return GoogleChatSink("chat", GoogleChatSinkConfig(type="googlechat", url=url(receiver), **kw))


def test_card_as_the_chat_api_documents_it(receiver: Receiver) -> None:
    event = make_event()
    doc = send(receiver, googlechat(receiver), event, OK)
    assert_valid(doc, "googlechat-message")
    assert receiver.requests[0].target == f"/v1/spaces/AAAAtest/messages?key={KEY}&token={TOKEN}"
    assert doc == {
        "fallbackText": "update ConfigMap default/app: data.mode a → b",
        "cardsV2": [
            {
                "cardId": "kubewatch",
                "card": {
                    "header": {
                        "title": "🟡 update ConfigMap default/app: data.mode a → b",
                        "subtitle": f"kubewatch · {event.id}",
                    },
                    "sections": [
                        {
                            "widgets": [
                                {"decoratedText": {"topLabel": "Cluster", "text": "test"}},
                                {"decoratedText": {"topLabel": "Kind", "text": "ConfigMap"}},
                                {"decoratedText": {"topLabel": "Namespace", "text": "default"}},
                            ]
                        },
                        {
                            "header": "Changes",
                            "widgets": [{"textParagraph": {"text": "data.mode: a → b"}}],
                        },
                    ],
                },
            }
        ],
    }


def test_thread_key_replies_in_one_thread(receiver: Receiver) -> None:
    doc = send(receiver, googlechat(receiver, thread_key="kubewatch-prod"), make_event(), OK)
    assert_valid(doc, "googlechat-message")
    assert doc["thread"] == {"threadKey": "kubewatch-prod"}
    query = urllib.parse.parse_qs(receiver.requests[0].target.partition("?")[2])
    assert query == {
        "key": [KEY],
        "token": [TOKEN],
        "messageReplyOption": ["REPLY_MESSAGE_FALLBACK_TO_NEW_THREAD"],
    }


@pytest.mark.parametrize(("label", "event"), SAMPLES, ids=[label for label, _ in SAMPLES])
def test_every_event_shape_matches_the_schema(receiver: Receiver, label: str, event: Any) -> None:
    assert_valid(send(receiver, googlechat(receiver), event, OK), "googlechat-message")


def test_card_text_is_html_escaped_plain_texts_are_plain(receiver: Receiver) -> None:
    doc = send(receiver, googlechat(receiver), evil_event(), OK)
    card = doc["cardsV2"][0]["card"]
    changes = card["sections"][1]["widgets"][0]["textParagraph"]["text"]
    assert "<b>x</b>" not in changes and "&lt;b&gt;x&lt;/b&gt; &amp; " in changes
    assert "&lt;at id=all&gt;" in changes
    # header and fallbackText are not HTML: the text itself, no entity shown literally
    assert "<b>x</b> & " in card["header"]["title"]
    assert "&amp;" not in doc["fallbackText"]
    assert "text" not in doc  # the only field where <users/all> would mention everyone


def test_template_renders_the_header(receiver: Receiver) -> None:
    doc = send(
        receiver, googlechat(receiver, template="{{ kind }} {{ name }} & co"), make_event(), OK
    )
    assert doc["cardsV2"][0]["card"]["header"]["title"] == "🟡 ConfigMap app & co"
    assert doc["fallbackText"] == "ConfigMap app & co"


@pytest.mark.parametrize(("reply", "error", "retry_after"), STATUS_ERRORS)
def test_error_statuses(
    receiver: Receiver, reply: Reply, error: type[Exception], retry_after: float | None
) -> None:
    found = assert_error(receiver, lambda: googlechat(receiver), reply, error, retry_after)
    assert f"HTTP {reply.status}" in str(found)


def test_resource_exhausted_without_retry_after_waits_a_second(receiver: Receiver) -> None:
    body = b'{"error": {"code": 429, "status": "RESOURCE_EXHAUSTED"}}'
    assert_error(receiver, lambda: googlechat(receiver), Reply(429, body=body), RateLimited, 1.0)


def test_connection_refused_is_retryable() -> None:
    config = GoogleChatSinkConfig(type="googlechat", url=f"http://127.0.0.1:9/v1/x?key={KEY}")
    with GoogleChatSink("chat", config) as sink, pytest.raises(RetryableError) as info:
        sink.send(make_event())
    assert KEY not in str(info.value)


def test_key_and_token_never_shown(receiver: Receiver) -> None:
    assert_secrets_never_shown(receiver, lambda: googlechat(receiver), (KEY, TOKEN))
    text = (
        f"resources: [{{kind: Pod}}]\nsinks: {{g: {{type: googlechat, url: '{url(receiver)}'}}}}\n"
    )
    assert TOKEN not in repr(parse_config(text, {}))


def test_preview_shows_the_request_without_secrets(receiver: Receiver) -> None:
    with googlechat(receiver) as sink:
        first, _, body = sink.preview(make_event()).partition("\n")
    assert (
        first == f"POST {receiver.base}/v1/spaces/AAAAtest/messages?key=<redacted>&token=<redacted>"
    )
    assert_valid(orjson.loads(body), "googlechat-message")


def test_kubewatch_test_sink(
    receiver: Receiver, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    receiver.reply = OK
    yaml = f"    type: googlechat\n    url: '{url(receiver)}'\n"
    assert run_test_sink(tmp_path, yaml, capsys) == (0, "delivered to chat (googlechat)\n")
    receiver.reply = Reply(429, {"Retry-After": "30"})
    code, out = run_test_sink(tmp_path, yaml, capsys)
    assert code == 1 and "rate limited" in out
    assert TOKEN not in out and KEY not in out
