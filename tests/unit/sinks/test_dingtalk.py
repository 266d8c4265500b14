"""The DingTalk sink against a real local HTTP receiver standing in for a custom robot."""

from __future__ import annotations

import base64
import hashlib
import hmac
import urllib.parse
from pathlib import Path
from typing import Any

import orjson
import pytest

from kubewatch.config import DingTalkSinkConfig
from kubewatch.errors import PermanentError, RateLimited, RetryableError
from kubewatch.render import SAMPLES
from kubewatch.render.escape import ZWSP
from kubewatch.sinks.dingtalk import DingTalkSink
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

ACCESS_TOKEN = "0a1b2c3d4e5f60718293a4b5c6d7e8f9"
SECRET = "SECd4f2e1a0b9c8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a2b1c0"
NOW = 1_790_000_000.123
OK = Reply(200, {"Content-Type": "application/json"}, b'{"errcode": 0, "errmsg": "ok"}')


def dingtalk(receiver: Receiver, **kw: Any) -> DingTalkSink:
    url = f"{receiver.base}/robot/send?access_token={ACCESS_TOKEN}"
    config = DingTalkSinkConfig(type="dingtalk", url=url, **kw)
    return DingTalkSink("chat", config, clock=lambda: NOW)


def query(receiver: Receiver) -> dict[str, list[str]]:
    return urllib.parse.parse_qs(receiver.requests[0].target.partition("?")[2])


def test_markdown_message_as_dingtalk_documents_it(receiver: Receiver) -> None:
    event = make_event()
    doc = send(receiver, dingtalk(receiver), event, OK)
    assert_valid(doc, "dingtalk-markdown")
    assert query(receiver) == {"access_token": [ACCESS_TOKEN]}  # unsigned: no sign
    assert doc["markdown"]["title"] == "update ConfigMap default/app: data.mode a → b"
    assert doc["markdown"]["text"] == (
        "**🟡 update ConfigMap default/app: data.mode a → b**\n\n"
        "- **Cluster:** test\n- **Kind:** ConfigMap\n- **Namespace:** default\n\n"
        "> data.mode: a → b\n\n"
        f"kubewatch · {event.id}"
    )
    assert "at" not in doc  # nobody is mentioned


def test_signature_recomputed_by_the_receiver(receiver: Receiver) -> None:
    send(receiver, dingtalk(receiver, secret=SECRET), make_event(), OK)
    q = query(receiver)
    assert q["access_token"] == [ACCESS_TOKEN]
    (timestamp,) = q["timestamp"]
    assert timestamp == str(int(NOW * 1000))  # milliseconds
    mac = hmac.new(SECRET.encode(), f"{timestamp}\n{SECRET}".encode(), hashlib.sha256)
    assert q["sign"] == [base64.b64encode(mac.digest()).decode()]
    raw = receiver.requests[0].target.partition("&sign=")[2]
    assert "+" not in raw and "/" not in raw and "=" not in raw  # URL-encoded on the wire


@pytest.mark.parametrize(("label", "event"), SAMPLES, ids=[label for label, _ in SAMPLES])
def test_every_event_shape_matches_the_schema(receiver: Receiver, label: str, event: Any) -> None:
    assert_valid(send(receiver, dingtalk(receiver), event, OK), "dingtalk-markdown")


def test_object_text_is_escaped_for_markdown(receiver: Receiver) -> None:
    text = send(receiver, dingtalk(receiver), evil_event(), OK)["markdown"]["text"]
    assert r"\[x\]\(https://evil\)" in text and r"\*bold\* \_it\_" in text
    assert r"\<b\>x\</b\>" in text
    assert f"@{ZWSP}everyone" in text and "@everyone" not in text


@pytest.mark.parametrize(("reply", "error", "retry_after"), STATUS_ERRORS)
def test_error_statuses(
    receiver: Receiver, reply: Reply, error: type[Exception], retry_after: float | None
) -> None:
    assert_error(receiver, lambda: dingtalk(receiver), reply, error, retry_after)


def coded(code: int, message: str) -> Reply:
    return Reply(
        200,
        {"Content-Type": "application/json"},
        orjson.dumps({"errcode": code, "errmsg": message}),
    )


@pytest.mark.parametrize(
    ("reply", "error", "retry_after"),
    [
        pytest.param(coded(130101, "send too fast"), RateLimited, 600.0, id="130101-too-fast"),
        pytest.param(coded(-1, "system busy"), RetryableError, None, id="busy"),
        pytest.param(coded(310000, "sign not match"), PermanentError, None, id="310000"),
        pytest.param(coded(300001, "token is not exist"), PermanentError, None, id="300001"),
    ],
)
def test_errors_coded_in_a_200_answer(
    receiver: Receiver, reply: Reply, error: type[Exception], retry_after: float | None
) -> None:
    found = assert_error(receiver, lambda: dingtalk(receiver), reply, error, retry_after)
    assert "refused with code" in str(found)


def test_token_and_secret_never_shown(receiver: Receiver) -> None:
    build = lambda: dingtalk(receiver, secret=SECRET)  # noqa: E731
    assert_secrets_never_shown(receiver, build, (ACCESS_TOKEN, SECRET))
    with build() as sink:
        first = sink.preview(make_event()).partition("\n")[0]
    assert first == (
        f"POST {receiver.base}/robot/send"
        "?access_token=<redacted>&timestamp=<redacted>&sign=<redacted>"
    )


def test_kubewatch_test_sink(
    receiver: Receiver, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    receiver.reply = OK
    yaml = (
        f"    type: dingtalk\n    url: '{receiver.base}/robot/send?access_token={ACCESS_TOKEN}'\n"
        f"    secret: {SECRET}\n"
    )
    assert run_test_sink(tmp_path, yaml, capsys) == (0, "delivered to chat (dingtalk)\n")
    receiver.reply = coded(310000, "keywords not in content")
    code, out = run_test_sink(tmp_path, yaml, capsys)
    assert code == 1 and "permanent error" in out and "310000" in out
    assert ACCESS_TOKEN not in out and SECRET not in out
