"""Slack sinks against a local Slack stand-in: layout, outcome mapping, secrets, lifecycle."""

from __future__ import annotations

import logging
import socket
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kubewatch.config import SlackSinkConfig, SlackWebhookSinkConfig
from kubewatch.errors import (
    ConfigError,
    DeliveryError,
    PermanentError,
    RateLimited,
    RetryableError,
)
from kubewatch.events import Change, DigestInfo, Event, EventType
from kubewatch.render import COLOURS, ChatMessage, chat_message
from kubewatch.sinks.slack import (
    FIELD_CHARS,
    MAX_FIELDS,
    SECTION_CHARS,
    SlackSink,
    SlackWebhookSink,
    fit_code_block,
    fit_text,
    slack_attachments,
    slack_blocks,
    slack_payload,
)
from tests.slack_standin import (
    TOKEN,
    WEBHOOK_PATH,
    Reply,
    SlackStandIn,
    api_error,
    ratelimited,
    server_error,
    webhook_error,
)

LOGGER = "kubewatch.sinks.slack"
EVIL = "<!channel> <https://evil|click>"


def make_event(name: str = "web", type: EventType = EventType.UPDATE, **overrides: Any) -> Event:
    fields: dict[str, Any] = {
        "type": type,
        "cluster": "prod",
        "kind": "ConfigMap",
        "api_version": "v1",
        "resource": "configmaps",
        "namespace": "shop",
        "name": name,
        "uid": f"uid-{name}",
        "resource_version": "7",
        "observed_at": "2026-11-26T22:10:51.123Z",
        "changes": (Change("data.mode", "a", "b"),) if type is EventType.UPDATE else (),
        "summary": f"[prod] ConfigMap shop/{name} {type.value}d",
    }
    fields.update(overrides)
    return Event(**fields)


@pytest.fixture
def slack() -> Iterator[SlackStandIn]:
    with SlackStandIn() as standin:
        yield standin


def bot(slack: SlackStandIn, name: str = "ops", **kw: Any) -> SlackSink:
    kw.setdefault("token", TOKEN)
    return SlackSink(
        name, SlackSinkConfig(type="slack", channel="#ops", api_url=slack.api_url, **kw)
    )


def hook(slack: SlackStandIn, name: str = "hook", **kw: Any) -> SlackWebhookSink:
    kw.setdefault("url", slack.webhook_url)
    return SlackWebhookSink(name, SlackWebhookSinkConfig(type="slackWebhook", **kw))


def our_records(caplog: pytest.LogCaptureFixture, level: int = logging.WARNING) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOGGER and r.levelno >= level]


# -- layout, as Slack receives it ----------------------------------------------------------


def test_bot_message_layout_as_slack_receives_it(slack: SlackStandIn) -> None:
    event = make_event(EVIL, summary=f"[prod] ConfigMap shop/{EVIL} updated")
    with bot(slack) as sink:
        sink.send(event)
    (request,) = slack.requests
    assert request.accepted
    assert request.path == "/api/chat.postMessage"
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"
    body = request.body
    assert body["channel"] == "#ops"
    escaped = "&lt;!channel&gt; &lt;https://evil|click&gt;"
    assert body["text"] == f"[prod] ConfigMap shop/{escaped} updated"
    assert body["blocks"] == [
        {
            "type": "section",
            "text": {"type": "mrkdwn", "text": body["text"], "verbatim": True},
        }
    ]
    assert body["unfurl_links"] is False
    assert body["unfurl_media"] is False
    (attachment,) = body["attachments"]
    assert attachment["color"] == COLOURS[EventType.UPDATE]
    fields, changes, context = attachment["blocks"]
    assert [f["text"] for f in fields["fields"]] == [
        "*Cluster*\nprod",
        "*Kind*\nConfigMap",
        "*Namespace*\nshop",
    ]
    assert changes["text"]["text"] == "```\ndata.mode: a → b\n```"
    assert context == {
        "type": "context",
        "elements": [{"type": "mrkdwn", "text": f"kubewatch · {event.id}", "verbatim": True}],
    }
    assert "<!channel>" not in str(body)
    assert "<https://evil" not in str(body)


@pytest.mark.parametrize("kind", list(EventType), ids=lambda t: t.value)
def test_colour_bar_per_change_type(slack: SlackStandIn, kind: EventType) -> None:
    with bot(slack) as sink:
        sink.send(make_event(type=kind))
    (message,) = slack.messages
    assert message["attachments"][0]["color"] == COLOURS[kind]
    assert COLOURS[EventType.CREATE] != COLOURS[EventType.UPDATE] != COLOURS[EventType.DELETE]


def test_create_without_changes_has_no_code_block() -> None:
    (attachment,) = slack_attachments(chat_message(make_event(type=EventType.CREATE), "slack"))
    assert [b["type"] for b in attachment["blocks"]] == ["section", "context"]
    assert "fields" in attachment["blocks"][0]


def test_digest_counts_its_events() -> None:
    event = make_event(
        "", EventType.DELETE, digest=DigestInfo(3, ("a", "b", "c"), ("shop/a", "shop/b", "x"))
    )
    (attachment,) = slack_attachments(chat_message(event, "slack"))
    assert "*Events*\n3" in [f["text"] for f in attachment["blocks"][0]["fields"]]


def test_fields_capped_at_ten() -> None:
    message = ChatMessage(
        title="t",
        fields=tuple((f"L{i}", "v") for i in range(12)),
        changes="",
        colour="#000000",
        footer="f",
        fallback="t",
    )
    (attachment,) = slack_attachments(message)
    assert len(attachment["blocks"][0]["fields"]) == MAX_FIELDS


def test_long_changes_are_cut_at_whole_lines_with_a_marker(slack: SlackStandIn) -> None:
    changes = tuple(Change(f"data.key-{i:02}-{'x' * 150}", "o" * 200, "n" * 200) for i in range(20))
    with bot(slack) as sink:
        sink.send(make_event(changes=changes))
    (message,) = slack.messages  # the stand-in refuses a section over 3000 characters
    text = message["attachments"][0]["blocks"][1]["text"]["text"]
    assert len(text) <= SECTION_CHARS
    assert text.startswith("```\n")
    assert text.endswith(" more lines cut (Slack allows 3000 characters)\n```")
    for line in text.split("\n")[1:-2]:
        assert line.startswith("data.key-")
        assert line.endswith("… (+80 chars)")  # a whole line, as changes_block wrote it


def test_code_block_cuts_one_huge_line_without_splitting_an_escape() -> None:
    block = fit_code_block("&amp;" * 1000)
    assert len(block) <= SECTION_CHARS
    inner = block.removeprefix("```\n").removesuffix("\n```")
    assert inner.endswith("… (cut: Slack allows 2992 characters)")
    assert inner.removesuffix("… (cut: Slack allows 2992 characters)").endswith("&amp;")


def test_fit_text_leaves_short_text_alone_and_cuts_long_text() -> None:
    assert fit_text("short", 10) == "short"
    cut = fit_text("a" * 5000, FIELD_CHARS)
    assert len(cut) <= FIELD_CHARS
    assert cut.endswith("… (cut: Slack allows 2000 characters)")


def test_long_title_fits_a_section(slack: SlackStandIn) -> None:
    with bot(slack) as sink:
        sink.send(make_event(summary="s" * 5000))
    (message,) = slack.messages
    assert len(message["blocks"][0]["text"]["text"]) <= SECTION_CHARS
    assert len(message["text"]) <= SECTION_CHARS


def test_payload_functions_agree() -> None:
    message = chat_message(make_event(), "slack")
    payload = slack_payload(message)
    assert payload["blocks"] == slack_blocks(message)
    assert payload["attachments"] == slack_attachments(message)
    assert payload["text"] == message.fallback


# -- outcomes of chat.postMessage -----------------------------------------------------------


PERMANENT = [
    pytest.param(api_error("invalid_auth"), "token is not valid", id="invalid_auth"),
    pytest.param(api_error("not_authed"), "no token reached Slack", id="not_authed"),
    pytest.param(api_error("account_inactive"), "deactivated", id="account_inactive"),
    pytest.param(api_error("token_revoked"), "revoked", id="token_revoked"),
    pytest.param(
        api_error("not_in_channel"), "bot is not a member of channel #ops", id="not_in_channel"
    ),
    pytest.param(api_error("channel_not_found"), "channel #ops not found", id="channel_not_found"),
    pytest.param(api_error("is_archived"), "channel #ops is archived", id="is_archived"),
    pytest.param(
        api_error("missing_scope", needed="chat:write", provided="users:read"),
        "token lacks scope chat:write",
        id="missing_scope",
    ),
]

PERMANENT_REPLIES = [p.values[0] for p in PERMANENT if isinstance(p.values[0], Reply)]


@pytest.mark.parametrize(("reply", "message"), PERMANENT)
def test_permanent_errors_explain_and_log_once(
    slack: SlackStandIn, caplog: pytest.LogCaptureFixture, reply: Reply, message: str
) -> None:
    """Every event fails permanently, but the explanation is logged once, not per event."""
    slack.api_reply = reply
    code = str(reply.body["error"])  # type: ignore[index]
    with bot(slack) as sink:
        for i in range(3):
            with pytest.raises(PermanentError) as info:
                sink.send(make_event(f"obj-{i}"))
            assert message in str(info.value)
            assert f"({code})" in str(info.value)
    logged = our_records(caplog, logging.ERROR)
    assert len(logged) == 1
    assert message in logged[0]
    assert len(slack.requests) == 3  # one request per send: the SDK never retried


def test_not_in_channel_says_to_invite_the_bot(slack: SlackStandIn) -> None:
    slack.api_reply = api_error("not_in_channel")
    with pytest.raises(PermanentError, match=r"invite it .*chat:write\.public"):
        bot(slack).send(make_event())


def test_wrong_token_is_invalid_auth(slack: SlackStandIn) -> None:
    """The stand-in checks the bearer token like Slack does."""
    with pytest.raises(PermanentError, match="invalid_auth"):
        bot(slack, token="xoxb-not-the-right-one").send(make_event())


def test_each_sink_logs_its_own_first_failure(
    slack: SlackStandIn, caplog: pytest.LogCaptureFixture
) -> None:
    slack.api_reply = api_error("channel_not_found")
    for name in ("a", "b"):
        with pytest.raises(PermanentError):
            bot(slack, name).send(make_event())
    assert len(our_records(caplog)) == 2


def test_other_refusals_are_permanent_with_slacks_explanation(
    slack: SlackStandIn, caplog: pytest.LogCaptureFixture
) -> None:
    slack.api_reply = api_error(
        "invalid_blocks", response_metadata={"messages": ["[ERROR] no more than 50 items"]}
    )
    with bot(slack) as sink:
        for _ in range(2):
            with pytest.raises(PermanentError, match=r"invalid_blocks: \[ERROR\] no more than 50"):
                sink.send(make_event())
    (logged,) = our_records(caplog)
    assert "invalid_blocks" in logged


@pytest.mark.parametrize(
    ("reply", "wait"),
    [
        pytest.param(ratelimited(30), 30.0, id="429-retry-after-30"),
        pytest.param(Reply(429, {"ok": False, "error": "ratelimited"}), 1.0, id="429-no-header"),
        pytest.param(api_error("ratelimited"), 1.0, id="ratelimited-code"),
    ],
)
def test_rate_limited_carries_retry_after(slack: SlackStandIn, reply: Reply, wait: float) -> None:
    slack.api_reply = reply
    with pytest.raises(RateLimited) as info:
        bot(slack).send(make_event())
    assert info.value.retry_after == wait
    assert len(slack.requests) == 1  # slack-sdk's own 429 handler is off


@pytest.mark.parametrize(
    "reply",
    [
        pytest.param(server_error(500), id="500-html"),
        pytest.param(server_error(503), id="503-html"),
        pytest.param(api_error("internal_error", 500), id="500-internal_error"),
        pytest.param(api_error("internal_error"), id="internal_error"),
        pytest.param(api_error("fatal_error"), id="fatal_error"),
        pytest.param(api_error("service_unavailable"), id="service_unavailable"),
        pytest.param(api_error("request_timeout"), id="request_timeout"),
    ],
)
def test_slack_failures_are_retryable(slack: SlackStandIn, reply: Reply) -> None:
    slack.api_reply = reply
    with pytest.raises(RetryableError) as info:
        bot(slack).send(make_event())
    assert not isinstance(info.value, RateLimited)
    assert "<html>" not in str(info.value)  # the status says it; the page is noise
    assert len(slack.requests) == 1


def test_server_down_is_retryable_then_delivers(slack: SlackStandIn) -> None:
    with bot(slack) as sink:
        slack.down()
        with pytest.raises(RetryableError, match=r"cannot reach http://127\.0\.0\.1"):
            sink.send(make_event())
        slack.up()
        sink.send(make_event())
    assert len(slack.messages) == 1


def test_read_timeout_is_retryable() -> None:
    """A server that accepts the connection and never answers."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        port = silent.getsockname()[1]
        config = SlackSinkConfig(
            type="slack",
            channel="#ops",
            token=TOKEN,
            api_url=f"http://127.0.0.1:{port}/api",
            timeout=0.01,
        )
        with pytest.raises(RetryableError, match="timed out"):
            SlackSink("ops", config).send(make_event())


def test_api_url_without_trailing_slash(slack: SlackStandIn) -> None:
    SlackSink(
        "ops",
        SlackSinkConfig(
            type="slack", channel="#ops", token=TOKEN, api_url=slack.api_url.rstrip("/")
        ),
    ).send(make_event())
    assert slack.requests[0].path == "/api/chat.postMessage"


@pytest.mark.parametrize("url", ["ftp://slack.example/api/", "slack.com/api", "http://h:99999/"])
def test_bad_api_url_is_a_config_error(url: str) -> None:
    config = SlackSinkConfig(type="slack", channel="#ops", token=TOKEN, api_url=url)
    with pytest.raises(ConfigError) as info:
        SlackSink("ops", config)
    assert info.value.path == "sinks.ops.apiUrl"


# -- token ----------------------------------------------------------------------------------


def test_token_file_is_read_once_and_stripped(slack: SlackStandIn, tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text(f"  {TOKEN}\n")
    sink = bot(slack, token=None, token_file=str(path))
    path.write_text("xoxb-rotated-later")  # read at construction, not per event
    sink.send(make_event())
    assert slack.requests[0].headers["Authorization"] == f"Bearer {TOKEN}"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        pytest.param(None, "does not exist", id="missing"),
        pytest.param("", "is empty", id="empty"),
        pytest.param(" \n", "is empty", id="blank"),
        pytest.param("xoxb-a b", "contains whitespace", id="two-words"),
        pytest.param(b"\xff\xfe", "not UTF-8", id="binary"),
    ],
)
def test_token_file_mistakes_are_config_errors(
    tmp_path: Path, content: str | bytes | None, message: str
) -> None:
    path = tmp_path / "token"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    config = SlackSinkConfig(type="slack", channel="#ops", token_file=str(path))
    with pytest.raises(ConfigError, match=message) as info:
        SlackSink("ops", config)
    assert info.value.path == "sinks.ops.tokenFile"


def test_token_file_that_is_a_directory(tmp_path: Path) -> None:
    config = SlackSinkConfig(type="slack", channel="#ops", token_file=str(tmp_path))
    with pytest.raises(ConfigError, match="directory"):
        SlackSink("ops", config)


def _all_text(exc: BaseException) -> str:
    """Everything a log line could show of an exception: message, chain, traceback."""
    return "".join(traceback.format_exception(exc))


def test_token_never_in_logs_or_errors(
    slack: SlackStandIn, caplog: pytest.LogCaptureFixture
) -> None:
    """At DEBUG, through every outcome, even when the server echoes the token."""
    caplog.set_level(logging.DEBUG)
    replies = [
        Reply(),
        *PERMANENT_REPLIES,
        ratelimited(3),
        server_error(),
        api_error(f"weird_{TOKEN.replace('-', '_').lower()}"),
        api_error("invalid_blocks", response_metadata={"messages": [f"token was {TOKEN}"]}),
        api_error("missing_scope", needed=f"chat:write {TOKEN}"),
        Reply(400, f"not json, token {TOKEN}"),
    ]
    errors: list[DeliveryError] = []
    with bot(slack) as sink:
        for reply in replies:
            slack.queue_api(reply)
            try:
                sink.send(make_event())
            except DeliveryError as exc:
                errors.append(exc)
        slack.down()
        with pytest.raises(RetryableError) as down:
            sink.send(make_event())
        errors.append(down.value)
    assert len(errors) == len(replies)
    assert caplog.records  # the check below looked at something
    assert TOKEN not in caplog.text
    for error in errors:
        assert TOKEN not in _all_text(error)
        assert "StandInTokenValue" not in _all_text(error)
    assert "StandInTokenValue" not in caplog.text


def test_token_never_in_config_errors(tmp_path: Path) -> None:
    config = SlackSinkConfig(type="slack", channel="#ops", token=f"{TOKEN} extra")
    with pytest.raises(ConfigError) as info:
        SlackSink("ops", config)
    assert TOKEN not in str(info.value)
    assert "token" in str(info.value)


# -- template -------------------------------------------------------------------------------


TEMPLATE = ":rotating_light: *{{ kind }}* `{{ name }}` in {{ namespace }}"


def test_template_replaces_title_and_changes(slack: SlackStandIn) -> None:
    with bot(slack, template=TEMPLATE) as sink:
        sink.send(make_event(EVIL))
    (message,) = slack.messages
    expected = ":rotating_light: *ConfigMap* `&lt;!channel&gt; &lt;https://evil|click&gt;` in shop"
    assert message["text"] == expected
    assert message["blocks"][0]["text"] == {"type": "mrkdwn", "text": expected, "verbatim": False}
    blocks = message["attachments"][0]["blocks"]
    assert [b["type"] for b in blocks] == ["section", "context"]  # fields, footer; no changes


def test_template_failing_for_one_event_sends_the_default(
    slack: SlackStandIn, caplog: pytest.LogCaptureFixture
) -> None:
    with bot(slack, template="team {{ labels.team }}") as sink:
        sink.send(make_event(labels={"team": "blue"}))
        sink.send(make_event())  # no such label: the template fails for this event
    first, second = slack.messages
    assert first["text"] == "team blue"
    assert second["text"] == "[prod] ConfigMap shop/web updated"
    assert second["attachments"][0]["blocks"][1]["text"]["text"].startswith("```")
    assert any("sinks.ops.template" in r.getMessage() for r in caplog.records)


def test_bad_template_is_a_config_error(slack: SlackStandIn) -> None:
    with pytest.raises(ConfigError, match="unknown field 'nmae'") as info:
        bot(slack, template="{{ nmae }}")
    assert info.value.path == "sinks.ops.template"


# -- lifecycle ------------------------------------------------------------------------------


def test_close_is_idempotent_and_final(slack: SlackStandIn) -> None:
    for sink in (bot(slack), hook(slack)):
        with sink:
            pass
        sink.close()
        with pytest.raises(PermanentError, match="closed"):
            sink.send(make_event())
    assert slack.requests == []


# -- incoming webhook -----------------------------------------------------------------------


def test_webhook_posts_the_same_layout(slack: SlackStandIn) -> None:
    event = make_event(EVIL, summary=f"[prod] ConfigMap shop/{EVIL} updated")
    with hook(slack) as sink:
        sink.send(event)
    (request,) = slack.requests
    assert request.accepted
    assert request.path == WEBHOOK_PATH
    assert "Authorization" not in request.headers
    expected = slack_payload(chat_message(event, "slack"))
    for key in ("text", "blocks", "attachments", "unfurl_links", "unfurl_media"):
        assert request.body[key] == expected[key]
    assert "&lt;!channel&gt;" in request.body["text"]


def test_webhook_template(slack: SlackStandIn) -> None:
    with hook(slack, template=TEMPLATE) as sink:
        sink.send(make_event())
    assert slack.messages[0]["text"] == ":rotating_light: *ConfigMap* `web` in shop"


WEBHOOK_PERMANENT = [
    pytest.param(webhook_error(404, "no_service"), "removed or disabled", id="404-no_service"),
    pytest.param(webhook_error(403, "invalid_token"), "not valid", id="403-invalid_token"),
    pytest.param(
        webhook_error(410, "channel_is_archived"), "channel is archived", id="410-archived"
    ),
    pytest.param(webhook_error(400, "invalid_payload"), "HTTP 400 invalid_payload", id="400"),
]

WEBHOOK_PERMANENT_REPLIES = [
    p.values[0] for p in WEBHOOK_PERMANENT if isinstance(p.values[0], Reply)
]


@pytest.mark.parametrize(("reply", "message"), WEBHOOK_PERMANENT)
def test_webhook_permanent_errors_explain_and_log_once(
    slack: SlackStandIn, caplog: pytest.LogCaptureFixture, reply: Reply, message: str
) -> None:
    slack.webhook_reply = reply
    with hook(slack) as sink:
        for _ in range(3):
            with pytest.raises(PermanentError) as info:
                sink.send(make_event())
            assert message in str(info.value)
            assert f"HTTP {reply.status} {reply.body}" in str(info.value)
    logged = our_records(caplog)
    assert len(logged) == 1
    assert message in logged[0]
    assert len(slack.requests) == 3


def test_webhook_unknown_path_is_no_service(slack: SlackStandIn) -> None:
    """The stand-in answers an unknown hook as Slack does."""
    url = slack.webhook_url.replace("StandIn", "Other")
    with pytest.raises(PermanentError, match="404 no_service"):
        hook(slack, url=url).send(make_event())


def test_webhook_rate_limited(slack: SlackStandIn) -> None:
    slack.webhook_reply = Reply(429, "rate_limited", {"Retry-After": "12"})
    with pytest.raises(RateLimited) as info:
        hook(slack).send(make_event())
    assert info.value.retry_after == 12.0
    slack.webhook_reply = Reply(429, "rate_limited")
    with pytest.raises(RateLimited) as info:
        hook(slack).send(make_event())
    assert info.value.retry_after == 1.0
    assert len(slack.requests) == 2


@pytest.mark.parametrize("status", [500, 502, 503, 408])
def test_webhook_server_errors_are_retryable(slack: SlackStandIn, status: int) -> None:
    slack.webhook_reply = webhook_error(status, "oops")
    with pytest.raises(RetryableError) as info:
        hook(slack).send(make_event())
    assert not isinstance(info.value, RateLimited)


def test_webhook_server_down_is_retryable(slack: SlackStandIn) -> None:
    sink = hook(slack)
    slack.down()
    with pytest.raises(RetryableError, match="cannot reach"):
        sink.send(make_event())


def test_webhook_url_never_in_logs_or_errors(
    slack: SlackStandIn, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    secret = WEBHOOK_PATH.rsplit("/", 1)[1]
    replies = [
        Reply(200, "ok"),
        *WEBHOOK_PERMANENT_REPLIES,
        Reply(429, "rate_limited"),
        webhook_error(500, f"failed for {slack.webhook_url}"),
        webhook_error(400, f"bad hook {secret}"),
    ]
    errors: list[DeliveryError] = []
    with hook(slack) as sink:
        for reply in replies:
            slack.queue_webhook(reply)
            try:
                sink.send(make_event())
            except DeliveryError as exc:
                errors.append(exc)
        slack.down()
        with pytest.raises(RetryableError) as down:
            sink.send(make_event())
        errors.append(down.value)
    assert len(errors) == len(replies)
    for error in errors:
        text = _all_text(error)
        assert secret not in text
        assert "T0STANDIN" not in text
    assert caplog.records
    assert secret not in caplog.text
    assert "/services/" not in caplog.text


@pytest.mark.parametrize("url", ["ftp://hooks.example/x", "not a url", "https:///path"])
def test_bad_webhook_url_is_a_config_error_that_hides_it(url: str) -> None:
    with pytest.raises(ConfigError) as info:
        SlackWebhookSink("hook", SlackWebhookSinkConfig(type="slackWebhook", url=url))
    assert info.value.path == "sinks.hook.url"
    assert url not in str(info.value)
