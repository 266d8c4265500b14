"""Threads on Mattermost (REST API mode) and Discord (forum webhooks) against local
stand-ins over real HTTP (:mod:`tests.chat_standins`)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kubewatch.app.build import sink_services
from kubewatch.config import DiscordSinkConfig, MattermostSinkConfig, parse_config
from kubewatch.errors import ConfigErrors, PermanentError, RateLimited, RetryableError
from kubewatch.events import DigestInfo, EventType, InvolvedObject, KubeEventInfo
from kubewatch.sinks import SinkServices, build_sink
from kubewatch.sinks.discord import DiscordSink
from kubewatch.sinks.mattermost import MattermostSink
from kubewatch.state import open_state
from tests.chat_standins import MM_CHANNEL, MM_TOKEN, DiscordStandIn, MattermostStandIn
from tests.unit.sinks.test_slack import make_event
from tests.unit.sinks.test_slack_threads import life

ROOT = f"{1:026d}"  # the stand-ins number their messages from 1: the root is the first


@pytest.fixture
def mm() -> Iterator[MattermostStandIn]:
    with MattermostStandIn() as standin:
        yield standin


@pytest.fixture
def discord() -> Iterator[DiscordStandIn]:
    with DiscordStandIn() as standin:
        yield standin


def mattermost(mm: MattermostStandIn, services: SinkServices | None = None, **kw: Any) -> Any:
    config = MattermostSinkConfig(
        type="mattermost", url=mm.url, token=MM_TOKEN, channel_id=MM_CHANNEL, **kw
    )
    return build_sink("chat", config, services or SinkServices())


def forum(discord: DiscordStandIn, services: SinkServices | None = None, **kw: Any) -> Any:
    config = DiscordSinkConfig(type="discord", url=discord.url, **kw)
    return build_sink("chat", config, services or SinkServices())


# -- Mattermost


def test_mattermost_one_root_and_three_replies(mm: MattermostStandIn) -> None:
    sink = mattermost(mm, thread="object")
    assert isinstance(sink, MattermostSink)
    for event in life():
        sink.send(event)
    root, *replies = [s.body for s in mm.accepted("POST")]
    assert "root_id" not in root and root["channel_id"] == MM_CHANNEL
    assert root["props"]["attachments"][0]["title"]  # the attachment as in webhook mode
    assert [r["root_id"] for r in replies] == [ROOT] * 3
    assert mm.accepted("PUT") == []


def test_mattermost_update_root_patches_the_root(mm: MattermostStandIn) -> None:
    sink = mattermost(mm, thread="object", update_root=True)
    for event in life():
        sink.send(event)
    patches = mm.accepted("PUT")
    assert [p.path for p in patches] == [f"/api/v4/posts/{ROOT}/patch"] * 3
    fields = mm.messages[ROOT]["props"]["attachments"][0]["fields"]
    assert fields[-1]["title"] == "History"
    assert fields[-1]["value"].count("updated") == 2 and "deleted" in fields[-1]["value"]
    assert len(mm.accepted("POST")) == 4


@pytest.mark.parametrize("update_root", [False, True])
def test_mattermost_deleted_root_starts_a_new_one(mm: MattermostStandIn, update_root: bool) -> None:
    sink = mattermost(mm, thread="object", update_root=update_root)
    create, update, again, _ = life()
    sink.send(create)
    mm.delete(ROOT)
    sink.send(update)  # 404 on the patch, or 400 on the reply and 404 on the root: new root
    assert "root_id" not in mm.accepted("POST")[-1].body
    sink.send(again)
    assert mm.accepted("POST")[-1].body["root_id"] == f"{2:026d}"


def test_mattermost_restart_with_state_keeps_the_thread(
    mm: MattermostStandIn, tmp_path: Path
) -> None:
    create, update, again, _ = life()
    state = open_state(str(tmp_path))
    assert state is not None
    mattermost(mm, sink_services(state), thread="object").send(create)
    state.close()
    state = open_state(str(tmp_path))  # the next process
    assert state is not None
    sink = mattermost(mm, sink_services(state), thread="object")
    sink.send(update)
    sink.send(again)
    state.close()
    assert [s.body.get("root_id") for s in mm.accepted("POST")] == [None, ROOT, ROOT]


def test_mattermost_digest_is_one_post(mm: MattermostStandIn) -> None:
    sink = mattermost(mm, thread="object")
    digest = make_event("", EventType.UPDATE, digest=DigestInfo(300, ("a", "b"), ("x", "y")))
    sink.send(digest)
    sink.send(digest)
    assert [s.body.get("root_id") for s in mm.accepted("POST")] == [None, None]


def test_mattermost_api_without_threads_posts_each_event(mm: MattermostStandIn) -> None:
    sink = mattermost(mm)
    for event in life():
        sink.send(event)
    assert [s.body.get("root_id") for s in mm.accepted("POST")] == [None] * 4


def test_mattermost_refused_token_is_permanent_and_never_shown(mm: MattermostStandIn) -> None:
    config = MattermostSinkConfig(
        type="mattermost", url=mm.url, token="wrong-token-0123456789", channel_id=MM_CHANNEL
    )
    with pytest.raises(PermanentError) as info:
        MattermostSink("chat", config).send(life()[0])
    assert "HTTP 401" in str(info.value) and "sinks.chat.token" in str(info.value)
    assert "wrong-token-0123456789" not in str(info.value)
    config = MattermostSinkConfig(type="mattermost", url=mm.url, token=MM_TOKEN, channel_id="x")
    with pytest.raises(PermanentError, match=r"HTTP 403.*sinks\.chat\.channelId"):
        MattermostSink("chat", config).send(life()[0])


def test_mattermost_api_rate_limit_and_server_errors(mm: MattermostStandIn) -> None:
    sink = mattermost(mm, thread="object")
    mm.queue((429, {"id": "api.context.rate_limited"}), (502, None))
    mm.answers_headers = {"Retry-After": "7", "X-RateLimit-Reset": "7"}
    with pytest.raises(RateLimited) as info:
        sink.send(life()[0])
    assert info.value.retry_after == 7.0
    with pytest.raises(RetryableError):
        sink.send(life()[0])
    sink.send(life()[0])  # then it passes: one root
    assert [s.status for s in mm.seen] == [429, 502, 201]


def test_mattermost_api_preview_shows_the_request_without_the_token(mm: MattermostStandIn) -> None:
    shown = mattermost(mm).preview(life()[0])
    assert shown.startswith(f"POST {mm.url}/api/v4/posts\n")
    assert MM_TOKEN not in shown and f'"channel_id": "{MM_CHANNEL}"' in shown


@pytest.mark.parametrize(
    ("keys", "path", "said"),
    [
        ("token: t", "sinks.chat.channelId", "needed with token"),
        ("channelId: c", "sinks.chat.token", "needed with channelId"),
        ("token: t, channelId: c, channel: town", "sinks.chat.channel", "use channelId"),
        ("thread: object", "sinks.chat.thread", "needs the API"),
        ("updateRoot: true", "sinks.chat.updateRoot", "needs thread: object"),
    ],
)
def test_mattermost_config_errors_name_the_key(keys: str, path: str, said: str) -> None:
    with pytest.raises(ConfigErrors) as info:
        parse_config(
            f"sinks:\n  chat: {{type: mattermost, url: 'https://mm.example.com', {keys}}}\n"
            "resources: [{kind: ConfigMap}]\n"
        )
    assert path in str(info.value) and said in str(info.value)


# -- Discord


def test_discord_one_forum_post_and_three_replies(discord: DiscordStandIn) -> None:
    sink = forum(discord, thread="object")
    assert isinstance(sink, DiscordSink)
    for event in life():
        sink.send(event)
    root, *replies = discord.accepted("POST")
    assert root.query == {"wait": "true"} and root.body["thread_name"] == "Deployment shop/web"
    assert [r.query.get("thread_id") for r in replies] == [ROOT] * 3
    assert all("thread_name" not in r.body for r in replies)
    assert discord.accepted("PATCH") == []


def test_discord_update_root_edits_the_first_message(discord: DiscordStandIn) -> None:
    sink = forum(discord, thread="object", update_root=True, username="kubewatch")
    for event in life():
        sink.send(event)
    edits = discord.accepted("PATCH")
    assert [e.path.rsplit("/", 1)[-1] for e in edits] == [ROOT] * 3
    assert {e.query["thread_id"] for e in edits} == {ROOT}
    assert all("username" not in e.body for e in edits)  # PATCH takes no username
    history = discord.messages[ROOT]["content"]
    assert history.startswith("History: ") and history.count("updated") == 2
    assert len(discord.accepted("POST")) == 4


@pytest.mark.parametrize("update_root", [False, True])
def test_discord_deleted_post_starts_a_new_one(discord: DiscordStandIn, update_root: bool) -> None:
    sink = forum(discord, thread="object", update_root=update_root)
    create, update, again, _ = life()
    sink.send(create)
    discord.delete(ROOT)  # 10003 / 10008: a new forum post, no error
    sink.send(update)
    assert "thread_name" in discord.accepted("POST")[-1].body
    sink.send(again)
    assert discord.accepted("POST")[-1].query["thread_id"] == f"{2:026d}"


def test_discord_restart_with_state_keeps_the_thread(
    discord: DiscordStandIn, tmp_path: Path
) -> None:
    create, update, again, _ = life()
    state = open_state(str(tmp_path))
    assert state is not None
    forum(discord, sink_services(state), thread="object").send(create)
    state.close()
    state = open_state(str(tmp_path))
    assert state is not None
    sink = forum(discord, sink_services(state), thread="object")
    sink.send(update)
    sink.send(again)
    state.close()
    assert [s.query.get("thread_id") for s in discord.accepted("POST")] == [None, ROOT, ROOT]


def test_discord_digest_is_one_post_and_alerts_join_their_object(discord: DiscordStandIn) -> None:
    sink = forum(discord, thread="object")
    digest = make_event("", EventType.UPDATE, digest=DigestInfo(300, ("a", "b"), ("x", "y")))
    create = life()[0]
    involved = InvolvedObject("Deployment", "shop", "web", create.uid)
    alert = make_event(
        "web.1781",
        EventType.CREATE,
        kind="Event",
        resource="events",
        uid="event-uid",
        k8s_event=KubeEventInfo("Warning", "FailedCreate", "quota", 1, involved),
    )
    sink.send(digest)
    sink.send(create)
    sink.send(alert)
    posts = discord.accepted("POST")
    assert len(posts) == 3 and "thread_name" in posts[0].body  # the digest: its own post
    assert posts[2].query["thread_id"] == posts[1].body.get("id", f"{2:026d}")


def test_discord_text_channel_says_thread_needs_a_forum() -> None:
    with DiscordStandIn(forum=False) as text:
        with pytest.raises(PermanentError, match=r"HTTP 400.*sinks\.chat\.thread.*forum"):
            forum(text, thread="object").send(life()[0])
        forum(text).send(life()[0])  # without threads: as before, no wait, 204
        assert [s.status for s in text.seen] == [400, 204]
        assert text.seen[-1].query == {}
