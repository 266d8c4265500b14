"""The Feishu (Lark) sink against a real local HTTP receiver standing in for a custom bot."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from kubewatch.config import FeishuSinkConfig
from kubewatch.errors import PermanentError, RateLimited, RetryableError
from kubewatch.events import EventType
from kubewatch.render import SAMPLES
from kubewatch.sinks.feishu import FeishuSink
from tests.unit.sinks.chatapi_cases import (
    EVIL,
    STATUS_ERRORS,
    assert_error,
    assert_secrets_never_shown,
    assert_valid,
    evil_event,
    run_test_sink,
    send,
)
from tests.unit.sinks.test_sinks import Receiver, Reply, make_event

HOOK = "8f3c1a2b-4d5e-6f70-8192-a3b4c5d6e7f8"
SECRET = "fs3cr3tSigningKey0123"
NOW = 1_790_000_000.9
OK = Reply(200, {"Content-Type": "application/json"}, b'{"code": 0, "data": {}, "msg": "success"}')


def feishu(receiver: Receiver, **kw: Any) -> FeishuSink:
    config = FeishuSinkConfig(
        type="feishu", url=f"{receiver.base}/open-apis/bot/v2/hook/{HOOK}", **kw
    )
    return FeishuSink("chat", config, clock=lambda: NOW)


def test_interactive_card_as_feishu_documents_it(receiver: Receiver) -> None:
    event = make_event()
    doc = send(receiver, feishu(receiver), event, OK)
    assert_valid(doc, "feishu-interactive")
    assert "sign" not in doc and "timestamp" not in doc
    card = doc["card"]
    assert card["header"] == {
        "title": {"tag": "plain_text", "content": "update ConfigMap default/app: data.mode a → b"},
        "template": "yellow",
    }
    fields, changes, note = card["elements"]
    assert [f["text"]["content"] for f in fields["fields"]] == [
        "Cluster: test",
        "Kind: ConfigMap",
        "Namespace: default",
    ]
    assert changes["text"] == {"tag": "plain_text", "content": "data.mode: a → b"}
    assert note == {
        "tag": "note",
        "elements": [{"tag": "plain_text", "content": f"kubewatch · {event.id}"}],
    }


@pytest.mark.parametrize(
    ("event", "template"),
    [
        (make_event(type=EventType.CREATE), "green"),
        (make_event(type=EventType.DELETE), "red"),
        (SAMPLES[3][1], "red"),
    ],
)
def test_header_colour_follows_the_change(receiver: Receiver, event: Any, template: str) -> None:
    assert send(receiver, feishu(receiver), event, OK)["card"]["header"]["template"] == template


def test_signature_recomputed_by_the_receiver(receiver: Receiver) -> None:
    doc = send(receiver, feishu(receiver, secret=SECRET), make_event(), OK)
    assert_valid(doc, "feishu-interactive")
    assert doc["timestamp"] == str(int(NOW))  # seconds
    key = f"{doc['timestamp']}\n{SECRET}".encode()
    assert doc["sign"] == base64.b64encode(hmac.new(key, b"", hashlib.sha256).digest()).decode()


@pytest.mark.parametrize(("label", "event"), SAMPLES, ids=[label for label, _ in SAMPLES])
def test_every_event_shape_matches_the_schema(receiver: Receiver, label: str, event: Any) -> None:
    assert_valid(send(receiver, feishu(receiver, secret=SECRET), event, OK), "feishu-interactive")


def test_object_text_is_plain_text_never_lark_md(receiver: Receiver) -> None:
    doc = send(receiver, feishu(receiver), evil_event(), OK)
    tags = {t["tag"] for t in _texts(doc["card"])}
    assert tags == {"plain_text"}  # <at id=all></at> is only a mention in lark_md
    assert any(EVIL in t["content"] for t in _texts(doc["card"]))


def _texts(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        if "tag" in node and "content" in node:
            yield node
        for value in node.values():
            yield from _texts(value)
    elif isinstance(node, list):
        for value in node:
            yield from _texts(value)


@pytest.mark.parametrize(("reply", "error", "retry_after"), STATUS_ERRORS)
def test_error_statuses(
    receiver: Receiver, reply: Reply, error: type[Exception], retry_after: float | None
) -> None:
    assert_error(receiver, lambda: feishu(receiver), reply, error, retry_after)


def coded(doc: dict[str, Any]) -> Reply:
    return Reply(200, {"Content-Type": "application/json"}, orjson.dumps(doc))


@pytest.mark.parametrize(
    ("reply", "error", "retry_after"),
    [
        pytest.param(
            coded({"code": 11232, "msg": "frequency limited"}), RateLimited, 10.0, id="11232"
        ),
        pytest.param(
            coded({"code": 19021, "msg": "sign match fail"}), PermanentError, None, id="19021"
        ),
        pytest.param(coded({"code": 9499, "msg": "Bad Request"}), PermanentError, None, id="9499"),
        pytest.param(coded({"code": -1, "msg": "busy"}), RetryableError, None, id="busy"),
        pytest.param(
            coded({"StatusCode": 19024, "StatusMessage": "Key Words Not Found"}),
            PermanentError,
            None,
            id="old-format",
        ),
    ],
)
def test_errors_coded_in_a_200_answer(
    receiver: Receiver, reply: Reply, error: type[Exception], retry_after: float | None
) -> None:
    found = assert_error(receiver, lambda: feishu(receiver), reply, error, retry_after)
    assert "refused with code" in str(found)


def test_old_success_answer_is_delivered(receiver: Receiver) -> None:
    send(
        receiver,
        feishu(receiver),
        make_event(),
        coded({"StatusCode": 0, "StatusMessage": "success"}),
    )


def test_hook_and_secret_never_shown(receiver: Receiver) -> None:
    build = lambda: feishu(receiver, secret=SECRET)  # noqa: E731
    assert_secrets_never_shown(receiver, build, (HOOK, SECRET))
    with build() as sink:
        first, _, body = sink.preview(make_event()).partition("\n")
    assert first == f"POST {receiver.base}/open-apis/bot/v2/hook/<redacted>"
    assert orjson.loads(body)["sign"] == "<redacted>"


def test_kubewatch_test_sink(
    receiver: Receiver, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    receiver.reply = OK
    yaml = f"    type: feishu\n    url: {receiver.base}/open-apis/bot/v2/hook/{HOOK}\n"
    yaml += f"    secret: {SECRET}\n"
    assert run_test_sink(tmp_path, yaml, capsys) == (0, "delivered to chat (feishu)\n")
    receiver.reply = coded({"code": 19021, "msg": "sign match fail"})
    code, out = run_test_sink(tmp_path, yaml, capsys)
    assert code == 1 and "permanent error" in out and "19021" in out
    assert HOOK not in out and SECRET not in out
