"""Chat webhooks (Teams, Discord, Mattermost) against a real local HTTP receiver.

Each test posts through the real sink to an ``http.server`` on 127.0.0.1 and checks what
arrived: the payload shape of each service, its success status, how errors map, that
URL tokens never reach an error message, and that hostile object text arrives inert.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
import pytest

from kubewatch.config import (
    DiscordSinkConfig,
    MattermostSinkConfig,
    TeamsSinkConfig,
    parse_config,
)
from kubewatch.errors import ConfigError, PermanentError, RateLimited, RetryableError
from kubewatch.events import Change, Event, EventType
from kubewatch.render import SAMPLES
from kubewatch.render.escape import ZWSP
from kubewatch.sinks.discord import LIMITS, DiscordSink, discord_retry_after
from kubewatch.sinks.http import ChatSink
from kubewatch.sinks.mattermost import MattermostSink
from kubewatch.sinks.teams import TeamsSink
from tests.unit.sinks.test_sinks import TOKEN, Receiver, Reply, make_event

EVIL = "<!channel> <https://evil|click> @everyone [x](https://evil)"
"""An annotation value written to ping everyone and disguise a link, in every dialect."""

SIG = "sig-0123456789abcdefghij"
"""A Teams Workflows URL carries its signature in the query: a credential too."""


@dataclass(frozen=True)
class Chat:
    """One chat service: how to build its sink and what it answers on success."""

    build: Callable[..., ChatSink]
    ok: Reply


def teams(url: str, **kw: Any) -> TeamsSink:
    return TeamsSink("chat", TeamsSinkConfig(type="teams", url=url, **kw))


def discord(url: str, **kw: Any) -> DiscordSink:
    return DiscordSink("chat", DiscordSinkConfig(type="discord", url=url, **kw))


def mattermost(url: str, **kw: Any) -> MattermostSink:
    return MattermostSink("chat", MattermostSinkConfig(type="mattermost", url=url, **kw))


CHATS = [
    pytest.param(Chat(teams, Reply(202)), id="teams"),
    pytest.param(Chat(discord, Reply(204)), id="discord"),
    pytest.param(
        Chat(mattermost, Reply(200, {"Content-Type": "text/plain"}, b"ok")), id="mattermost"
    ),
]


def evil_event(**overrides: Any) -> Event:
    """An update whose annotation value (and so its summary) is :data:`EVIL`."""
    fields: dict[str, Any] = {
        "changes": (Change('metadata.annotations["note"]', "calm", EVIL),),
        "summary": f'[test] ConfigMap default/app updated: annotations["note"] calm → {EVIL}',
    }
    return make_event(**{**fields, **overrides})


def post(receiver: Receiver, chat: Chat, event: Event, **kw: Any) -> dict[str, Any]:
    """Send ``event`` through a fresh sink of ``chat``; the one JSON document that arrived."""
    receiver.reply = chat.ok
    with chat.build(receiver.url, **kw) as sink:
        sink.send(event)
    (request,) = receiver.requests
    assert request.method == "POST"
    assert request.header("Content-Type") == "application/json"
    doc: dict[str, Any] = orjson.loads(request.body)
    return doc


def strings(value: Any) -> Iterator[str]:
    """Every string in a JSON document, keys included."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield k
            yield from strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from strings(v)


_CODE_BLOCK = re.compile(r"```\n(.*?)\n```", re.S)


def assert_defused(doc: dict[str, Any]) -> None:
    """No text of ``doc`` can ping, link or format: escaped, or inside a closed code block.

    Code blocks render their content literally (Discord, Mattermost) and Mattermost looks
    for mentions only outside code; a block must therefore be well-formed, with no fence
    inside that a value could have smuggled in.
    """
    for text in strings(doc):
        for block in _CODE_BLOCK.findall(text):
            assert "```" not in block
        prose = _CODE_BLOCK.sub("", text)
        assert "```" not in prose
        for raw in ("@everyone", "<!channel>", "<https://evil|click>", "[x](https://evil)"):
            assert raw not in prose, (raw, prose)


# -- payload shapes ----------------------------------------------------------------------


def test_teams_posts_an_adaptive_card(receiver: Receiver) -> None:
    event = make_event()
    doc = post(receiver, Chat(teams, Reply(202)), event)
    assert doc["type"] == "message"
    (attachment,) = doc["attachments"]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    assert attachment["contentUrl"] is None
    card = attachment["content"]
    assert card["$schema"] == "http://adaptivecards.io/schemas/adaptive-card.json"
    assert card["type"] == "AdaptiveCard"
    assert card["version"] == "1.4"
    title, facts, changes, footer = card["body"]
    assert title == {
        "type": "TextBlock",
        "text": "update ConfigMap default/app: data.mode a → b",
        "weight": "Bolder",
        "size": "Medium",
        "wrap": True,
        "color": "Warning",
    }
    assert facts == {
        "type": "FactSet",
        "facts": [
            {"title": "Cluster", "value": "test"},
            {"title": "Kind", "value": "ConfigMap"},
            {"title": "Namespace", "value": "default"},
        ],
    }
    assert changes["type"] == "Container"
    (line,) = changes["items"]
    assert line["type"] == "TextBlock"
    assert line["fontType"] == "Monospace"
    assert line["text"] == "data.mode: a → b"
    assert footer["type"] == "TextBlock"
    assert footer["isSubtle"] is True
    assert footer["text"] == f"kubewatch · {event.id}"


@pytest.mark.parametrize(
    ("event", "colour"),
    [
        pytest.param(make_event(type=EventType.CREATE), "Good", id="create"),
        pytest.param(make_event(type=EventType.UPDATE), "Warning", id="update"),
        pytest.param(make_event(type=EventType.DELETE), "Attention", id="delete"),
        pytest.param(SAMPLES[3][1], "Attention", id="k8s-warning"),
    ],
)
def test_teams_title_colour_follows_the_change(
    receiver: Receiver, event: Event, colour: str
) -> None:
    doc = post(receiver, Chat(teams, Reply(202)), event)
    assert doc["attachments"][0]["content"]["body"][0]["color"] == colour


def test_teams_one_monospace_line_per_change(receiver: Receiver) -> None:
    changes = (Change("spec.replicas", 1, 3), Change("data.*x*", "a_b", "c"))
    doc = post(receiver, Chat(teams, Reply(202)), make_event(changes=changes))
    body = doc["attachments"][0]["content"]["body"]
    texts = [item["text"] for item in body[2]["items"]]
    assert texts == ["spec.replicas: 1 → 3", r"data.\*x\*: a\_b → c"]


def test_teams_without_changes_has_no_change_block(receiver: Receiver) -> None:
    doc = post(receiver, Chat(teams, Reply(202)), make_event(type=EventType.CREATE, changes=()))
    types = [block["type"] for block in doc["attachments"][0]["content"]["body"]]
    assert types == ["TextBlock", "FactSet", "TextBlock"]


def test_discord_posts_an_embed_that_pings_nobody(receiver: Receiver) -> None:
    event = make_event()
    doc = post(receiver, Chat(discord, Reply(204)), event, username="kubewatch")
    assert doc["username"] == "kubewatch"
    assert doc["content"] == ""
    assert doc["allowed_mentions"] == {"parse": []}
    (embed,) = doc["embeds"]
    assert embed == {
        "title": "update ConfigMap default/app: data.mode a → b",
        "description": "```\ndata.mode: a → b\n```",
        "color": 0xECB22E,
        "fields": [
            {"name": "Cluster", "value": "test", "inline": True},
            {"name": "Kind", "value": "ConfigMap", "inline": True},
            {"name": "Namespace", "value": "default", "inline": True},
        ],
        "footer": {"text": f"kubewatch · {event.id}"},
    }


def test_discord_without_username_leaves_the_webhooks_own(receiver: Receiver) -> None:
    doc = post(receiver, Chat(discord, Reply(204)), make_event(changes=()))
    assert "username" not in doc
    assert "description" not in doc["embeds"][0]  # Discord refuses an empty one


def test_discord_embed_stays_within_every_limit() -> None:
    """Discord refuses the whole message when one limit is passed: cut, never refuse."""
    bodies: list[bytes] = []

    def handler(request: httpx.Request) -> httpx.Response:
        bodies.append(request.content)
        return httpx.Response(204)

    changes = tuple(Change(f"data.key{i}", "o" * 200, "n" * 200) for i in range(40))
    event = make_event(cluster="c" * 3000, summary="s" * 1000, changes=changes)
    config = DiscordSinkConfig(type="discord", url="https://discord.example/api/webhooks/1/t")
    with DiscordSink("chat", config, httpx.MockTransport(handler)) as sink:
        sink.send(event)
    (embed,) = orjson.loads(bodies[0])["embeds"]
    assert len(embed["title"]) == LIMITS["title"]
    assert embed["title"].endswith("…")
    assert len(embed["fields"]) <= LIMITS["fields"]
    assert all(len(f["value"]) <= LIMITS["field.value"] for f in embed["fields"])
    assert all(len(f["name"]) <= LIMITS["field.name"] for f in embed["fields"])
    description = embed["description"]
    assert len(description) <= LIMITS["description"]
    total = len(embed["title"]) + len(description) + len(embed["footer"]["text"])
    total += sum(len(f["name"]) + len(f["value"]) for f in embed["fields"])
    assert total <= LIMITS["total"]
    assert description.startswith("```\ndata.key0: ")
    assert description.endswith(" not shown\n```")
    assert "more lines not shown" in description.splitlines()[-2]


def test_mattermost_posts_an_attachment(receiver: Receiver) -> None:
    event = make_event()
    ok = Reply(200, {"Content-Type": "text/plain"}, b"ok")
    doc = post(receiver, Chat(mattermost, ok), event, channel="ops", username="kubewatch")
    assert doc == {
        "channel": "ops",
        "username": "kubewatch",
        "attachments": [
            {
                "fallback": "update ConfigMap default/app: data.mode a → b",
                "color": "#ECB22E",
                "title": "update ConfigMap default/app: data.mode a → b",
                "text": "```\ndata.mode: a → b\n```",
                "fields": [
                    {"short": True, "title": "Cluster", "value": "test"},
                    {"short": True, "title": "Kind", "value": "ConfigMap"},
                    {"short": True, "title": "Namespace", "value": "default"},
                ],
                "footer": f"kubewatch · {event.id}",
            }
        ],
    }


@pytest.mark.parametrize("chat", CHATS)
@pytest.mark.parametrize(("label", "event"), SAMPLES, ids=[label for label, _ in SAMPLES])
def test_every_event_shape_is_delivered(
    receiver: Receiver, chat: Chat, label: str, event: Event
) -> None:
    """Creates, cluster-scoped deletes, Kubernetes Event alerts, digests: all lay out."""
    doc = post(receiver, chat, event)
    assert_defused(doc)
    assert event.id in orjson.dumps(doc).decode()  # the footer traces it back


# -- escaping ----------------------------------------------------------------------------


@pytest.mark.parametrize("chat", CHATS)
def test_hostile_annotation_arrives_defused(receiver: Receiver, chat: Chat) -> None:
    doc = post(receiver, chat, evil_event())
    assert_defused(doc)
    texts = list(strings(doc))  # it arrived: escaped, not dropped
    assert any(r"\[x\]\(https://evil\)" in t for t in texts)
    assert any(f"@{ZWSP}everyone" in t for t in texts)


@pytest.mark.parametrize("chat", CHATS)
def test_json_is_built_as_data_not_text(receiver: Receiver, chat: Chat) -> None:
    """Quotes, backslashes and line breaks in object text never break the JSON."""
    nasty = 'a "quoted" \\ back\nslash\u2028} ]'
    doc = post(receiver, chat, make_event(summary=nasty, changes=(Change("data.x", nasty, "y"),)))
    assert any("quoted" in s for s in strings(doc))


# -- outcomes against the real receiver ---------------------------------------------------


@pytest.mark.parametrize("chat", CHATS)
def test_success_status_of_each_service(receiver: Receiver, chat: Chat) -> None:
    post(receiver, chat, make_event())  # raises on anything but its 2xx


@pytest.mark.parametrize("chat", CHATS)
@pytest.mark.parametrize(
    ("reply", "error", "retry_after"),
    [
        pytest.param(Reply(429, {"Retry-After": "7"}), RateLimited, 7.0, id="429-retry-after"),
        pytest.param(Reply(429), RateLimited, 1.0, id="429-default"),
        pytest.param(Reply(503, {"Retry-After": "3"}), RateLimited, 3.0, id="503-retry-after"),
        pytest.param(Reply(500, body=b"boom"), RetryableError, None, id="500"),
        pytest.param(Reply(400, body=b'{"error": "bad card"}'), PermanentError, None, id="400"),
        pytest.param(Reply(404), PermanentError, None, id="404-webhook-deleted"),
    ],
)
def test_error_statuses(
    receiver: Receiver,
    chat: Chat,
    reply: Reply,
    error: type[Exception],
    retry_after: float | None,
) -> None:
    receiver.reply = reply
    with chat.build(receiver.url) as sink, pytest.raises(error) as info:
        sink.send(make_event())
    assert type(info.value) is error
    assert f"HTTP {reply.status}" in str(info.value)
    assert "'chat'" in str(info.value)
    if retry_after is not None:
        assert isinstance(info.value, RateLimited)
        assert info.value.retry_after == pytest.approx(retry_after)


DISCORD_429 = b'{"message": "You are being rate limited.", "retry_after": 0.75, "global": false}'


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        pytest.param(
            Reply(429, {"Content-Type": "application/json"}, DISCORD_429), 0.75, id="body"
        ),
        pytest.param(Reply(429, {"Retry-After": "2"}, DISCORD_429), 2.0, id="header-wins"),
        pytest.param(Reply(429, body=b"<html>slow down</html>"), 1.0, id="no-json"),
        pytest.param(Reply(429, body=b'{"retry_after": "soon"}'), 1.0, id="not-a-number"),
    ],
)
def test_discord_429_honours_retry_after_in_the_body(
    receiver: Receiver, reply: Reply, expected: float
) -> None:
    receiver.reply = reply
    with discord(receiver.url) as sink, pytest.raises(RateLimited) as info:
        sink.send(make_event())
    assert info.value.retry_after == pytest.approx(expected)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ('{"retry_after": 1.5}', 1.5),
        ('{"retry_after": 3}', 3.0),
        ('{"retry_after": -1}', 0.0),
        ('{"retry_after": true}', None),
        ('{"retry_after": null}', None),
        ("[1]", None),
        ("", None),
    ],
)
def test_discord_retry_after(body: str, expected: float | None) -> None:
    assert discord_retry_after(body) == expected


@pytest.mark.parametrize("chat", CHATS)
def test_url_tokens_never_appear_in_errors(receiver: Receiver, chat: Chat) -> None:
    """The receiver echoes the request target, then only the token: both are scrubbed."""
    url = f"{receiver.base}/api/webhooks/123456/{TOKEN}?api-version=1&sig={SIG}"
    receiver.respond = lambda r: Reply(400, body=f"unknown webhook {r.target}".encode())
    with chat.build(url) as sink, pytest.raises(PermanentError) as info:
        sink.send(make_event())
    receiver.respond = lambda r: Reply(401, body=f"token {TOKEN} sig {SIG} revoked".encode())
    with chat.build(url) as sink, pytest.raises(PermanentError) as info2:
        sink.send(make_event())
    for message in (str(info.value), str(info2.value)):
        assert TOKEN not in message
        assert SIG not in message
        assert "webhooks" not in message
        assert receiver.base in message  # the origin names the receiver
        assert "<redacted>" in message


@pytest.mark.parametrize("chat", CHATS)
def test_unreachable_receiver_is_retryable_without_the_token(chat: Chat) -> None:
    url = f"http://127.0.0.1:9/api/webhooks/1/{TOKEN}"  # discard port: nobody listens
    with chat.build(url, timeout=5) as sink, pytest.raises(RetryableError) as info:
        sink.send(make_event())
    assert TOKEN not in str(info.value)
    assert "http://127.0.0.1:9" in str(info.value)


@pytest.mark.parametrize("chat", CHATS)
def test_closed_sink_fails_permanently(chat: Chat) -> None:
    sink = chat.build("http://127.0.0.1:9/hook")
    sink.close()
    sink.close()
    with pytest.raises(PermanentError, match="closed"):
        sink.send(make_event())


# -- templates ----------------------------------------------------------------------------


def title_of(doc: dict[str, Any]) -> str:
    """The main text of any of the three payloads."""
    if "embeds" in doc:
        return str(doc["embeds"][0]["title"])
    if doc.get("type") == "message":
        return str(doc["attachments"][0]["content"]["body"][0]["text"])
    attachment = doc["attachments"][0]
    return str(attachment.get("pretext", attachment.get("title")))


@pytest.mark.parametrize("chat", CHATS)
def test_template_renders_the_main_text_escaped(receiver: Receiver, chat: Chat) -> None:
    template = "{{ type | upper }} {{ kind }} {{ name }}: {{ changes[0].new }}"
    doc = post(receiver, chat, evil_event(), template=template)
    assert title_of(doc) == (
        r"UPDATE ConfigMap app: \<!channel\> \<https://evil\|click\> "
        f"@{ZWSP}everyone " + r"\[x\]\(https://evil\)"
    )
    assert_defused(doc)


@pytest.mark.parametrize("chat", CHATS)
def test_template_failure_falls_back_to_the_default_title(
    receiver: Receiver, chat: Chat, caplog: pytest.LogCaptureFixture
) -> None:
    """A missing value for one event never stops delivery; it is logged once."""
    with caplog.at_level(logging.WARNING):
        doc = post(receiver, chat, make_event(), template="team {{ labels.team }}")
    assert title_of(doc) == "update ConfigMap default/app: data.mode a → b"
    assert [r.levelname for r in caplog.records] == ["WARNING"]
    assert "sinks.chat.template" in caplog.records[0].getMessage()


@pytest.mark.parametrize("chat", CHATS)
def test_empty_template_output_falls_back_to_the_default_title(
    receiver: Receiver, chat: Chat
) -> None:
    doc = post(receiver, chat, make_event(), template="{% if false %}x{% endif %}")
    assert title_of(doc) == "update ConfigMap default/app: data.mode a → b"


@pytest.mark.parametrize("chat", CHATS)
def test_bad_template_fails_at_build(chat: Chat) -> None:
    with pytest.raises(ConfigError) as info:
        chat.build("http://127.0.0.1:9/hook", template="{{ evnt.kind }}")
    assert info.value.path == "sinks.chat.template"
    assert "unknown field 'evnt'" in info.value.message


@pytest.mark.parametrize("username", ["My Discord bot", "CLYDE", "everyone", "Here", "", "x" * 81])
def test_discord_username_it_would_refuse_fails_at_build(username: str) -> None:
    with pytest.raises(ConfigError) as info:
        discord("http://127.0.0.1:9/hook", username=username)
    assert info.value.path == "sinks.chat.username"


# -- configuration -----------------------------------------------------------------------


def test_readme_configs_validate() -> None:
    """The minimal configurations the README shows for the chat sinks."""
    config = parse_config(
        """
resources:
  - kind: Deployment
sinks:
  teams:
    type: teams
    url: ${TEAMS_WEBHOOK_URL}
  discord:
    type: discord
    url: ${DISCORD_WEBHOOK_URL}
    username: kubewatch
  mattermost:
    type: mattermost
    url: ${MATTERMOST_WEBHOOK_URL}
    channel: ops-alerts
""",
        env={
            "TEAMS_WEBHOOK_URL": f"https://prod-01.westeurope.logic.azure.com/workflows/x/triggers/manual/paths/invoke?sig={SIG}",
            "DISCORD_WEBHOOK_URL": f"https://discord.com/api/webhooks/123/{TOKEN}",
            "MATTERMOST_WEBHOOK_URL": f"https://chat.example.com/hooks/{TOKEN}",
        },
    )
    assert isinstance(config.sinks["teams"], TeamsSinkConfig)
    assert isinstance(config.sinks["discord"], DiscordSinkConfig)
    assert isinstance(config.sinks["mattermost"], MattermostSinkConfig)
