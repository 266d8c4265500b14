"""The WeCom sink against a real local HTTP receiver standing in for a group robot."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from kubewatch.config import WeComSinkConfig
from kubewatch.errors import PermanentError, RateLimited, RetryableError
from kubewatch.events import Change, EventType
from kubewatch.render import SAMPLES
from kubewatch.render.escape import ZWSP
from kubewatch.sinks.wecom import CONTENT_LIMIT, WeComSink
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

KEY = "693a91f6-7aaa-4bc4-97a0-0ec2f1fa5aaa"
OK = Reply(200, {"Content-Type": "application/json"}, b'{"errcode": 0, "errmsg": "ok"}')


def url(receiver: Receiver) -> str:
    return f"{receiver.base}/cgi-bin/webhook/send?key={KEY}"


def wecom(receiver: Receiver, **kw: Any) -> WeComSink:
    return WeComSink("chat", WeComSinkConfig(type="wecom", url=url(receiver), **kw))


def test_markdown_message_as_wecom_documents_it(receiver: Receiver) -> None:
    event = make_event()
    doc = send(receiver, wecom(receiver), event, OK)
    assert_valid(doc, "wecom-markdown")
    assert receiver.requests[0].target == f"/cgi-bin/webhook/send?key={KEY}"
    assert doc["markdown"]["content"] == (
        '**<font color="warning">update ConfigMap default/app: data.mode a → b</font>**\n\n'
        "- **Cluster:** test\n- **Kind:** ConfigMap\n- **Namespace:** default\n\n"
        "> data.mode: a → b\n\n"
        f"kubewatch · {event.id}"
    )


@pytest.mark.parametrize(
    ("event", "colour"),
    [(make_event(type=EventType.CREATE), "info"), (SAMPLES[3][1], "warning")],
)
def test_title_colour(receiver: Receiver, event: Any, colour: str) -> None:
    content = send(receiver, wecom(receiver), event, OK)["markdown"]["content"]
    assert content.startswith(f'**<font color="{colour}">')


@pytest.mark.parametrize(("label", "event"), SAMPLES, ids=[label for label, _ in SAMPLES])
def test_every_event_shape_matches_the_schema(receiver: Receiver, label: str, event: Any) -> None:
    assert_valid(send(receiver, wecom(receiver), event, OK), "wecom-markdown")


def test_content_stays_within_4096_bytes(receiver: Receiver) -> None:
    changes = tuple(Change(f"data.k{i}", "值" * 110, "新" * 110) for i in range(20))
    content = send(receiver, wecom(receiver), make_event(changes=changes), OK)["markdown"][
        "content"
    ]
    assert len(content.encode()) <= CONTENT_LIMIT
    assert "more lines" in content


def test_object_text_is_escaped_and_mentions_defused(receiver: Receiver) -> None:
    content = send(receiver, wecom(receiver), evil_event(), OK)["markdown"]["content"]
    assert "<@all>" not in content and f"\\<@{ZWSP}all\\>" in content
    assert r"\[x\]\(https://evil\)" in content and r"\*bold\*" in content
    assert f"@{ZWSP}everyone" in content


@pytest.mark.parametrize(("reply", "error", "retry_after"), STATUS_ERRORS)
def test_error_statuses(
    receiver: Receiver, reply: Reply, error: type[Exception], retry_after: float | None
) -> None:
    assert_error(receiver, lambda: wecom(receiver), reply, error, retry_after)


def coded(code: int, message: str) -> Reply:
    return Reply(200, body=orjson.dumps({"errcode": code, "errmsg": message}))


@pytest.mark.parametrize(
    ("reply", "error", "retry_after"),
    [
        pytest.param(coded(45009, "api freq out of limit"), RateLimited, 60.0, id="45009"),
        pytest.param(coded(-1, "system busy"), RetryableError, None, id="busy"),
        pytest.param(coded(93000, "invalid webhook url"), PermanentError, None, id="93000"),
        pytest.param(
            coded(40058, "markdown.content exceed max length"), PermanentError, None, id="40058"
        ),
    ],
)
def test_errors_coded_in_a_200_answer(
    receiver: Receiver, reply: Reply, error: type[Exception], retry_after: float | None
) -> None:
    found = assert_error(receiver, lambda: wecom(receiver), reply, error, retry_after)
    assert "refused with code" in str(found)


def test_key_never_shown(receiver: Receiver) -> None:
    assert_secrets_never_shown(receiver, lambda: wecom(receiver), (KEY,))


def test_kubewatch_test_sink(
    receiver: Receiver, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    receiver.reply = OK
    yaml = f"    type: wecom\n    url: '{url(receiver)}'\n"
    assert run_test_sink(tmp_path, yaml, capsys) == (0, "delivered to chat (wecom)\n")
    receiver.reply = coded(45009, "api freq out of limit")
    code, out = run_test_sink(tmp_path, yaml, capsys)
    assert code == 1 and "rate limited" in out and KEY not in out
