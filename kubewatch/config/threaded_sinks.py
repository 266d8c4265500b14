"""Chat sinks whose messages can be threaded per object: the Slack bot, Mattermost (its
REST API) and Discord (a forum channel's webhook). They share the thread keys of
:class:`ThreadedChatBase`; the sinks share one implementation of the bookkeeping
(:mod:`kubewatch.sinks.threads`).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from kubewatch.config.fields import (
    Duration,
    NonBlank,
    Problems,
    Seconds,
    StrictBool,
    StrictInt,
    fail,
    fail_at,
)
from kubewatch.config.sinks import ChatSinkBase, HttpSinkBase, base_path


class ThreadedChatBase(ChatSinkBase):
    """Chat sinks whose messages can be threaded per object (Slack bot, Mattermost API,
    Discord forum)."""

    thread: Literal["none", "object"] = "none"
    """``object``: the first message about an object is a root; its later events (updates,
    its Kubernetes Event alerts, its delete) reply in that thread. ``none``: one message each."""
    update_root: StrictBool = False
    """With ``thread: object``: also edit the root to show the object's latest state and a
    short history, so the channel holds one message per object."""
    thread_cache_size: StrictInt = Field(10_000, ge=1, le=10_000_000)
    """Objects whose thread is remembered (least recently used forgotten first)."""
    thread_max_age: Duration = 86_400.0
    """A thread older than this (default ``24h``) is not replied to: a new root starts."""

    @model_validator(mode="after")
    def _root_needs_thread(self) -> ThreadedChatBase:
        if self.update_root and self.thread == "none":
            fail_at(
                "ChatSinkConfig",
                [(("updateRoot",), True, fail("needs thread: object (the root to update)"))],
            )
        return self


class SlackSinkConfig(ThreadedChatBase):
    """Slack with a bot token (``chat.postMessage``; scope ``chat:write``)."""

    type: Literal["slack"]
    channel: NonBlank
    """Channel name (``#ops``) or ID (``C0123456789``); the bot must be in it (or have
    ``chat:write.public``)."""
    token: str | None = Field(None, repr=False)
    """Bot token (``xoxb-…``, e.g. ``${SLACK_TOKEN}``); exactly one of it and ``tokenFile``."""
    token_file: str | None = None
    """File holding the token (a mounted Secret), read at start."""
    api_url: str = "https://slack.com/api/"
    """Web API base URL: GovSlack, a proxy, or a test server."""
    timeout: Seconds = 10.0
    """Seconds for the connection and for each read of an API call (the Slack SDK's)."""

    @field_validator("token_file")
    @classmethod
    def _anchor_token_file(cls, value: str | None, info: ValidationInfo) -> str | None:
        """Relative to the configuration file, like ``caFile`` (and kubeconfig paths)."""
        return None if value is None else str(base_path(value, info))

    @model_validator(mode="after")
    def _one_token(self) -> SlackSinkConfig:
        """Exactly one way to get the token, so it is never ambiguous which one is used."""
        if (self.token is None) == (self.token_file is None):
            key = "tokenFile" if self.token_file is not None else "token"
            fail_at(
                "SlackSinkConfig",
                [((key,), None, fail("set exactly one of token and tokenFile"))],
            )
        return self


class DiscordSinkConfig(ThreadedChatBase, HttpSinkBase):
    """A Discord channel webhook, as an embed with a colour (``thread: object`` needs the
    webhook of a forum or media channel: each object gets a post)."""

    type: Literal["discord"]
    username: str | None = None
    """Name shown as the sender (default: the webhook's); one Discord refuses fails at start."""


class MattermostSinkConfig(ThreadedChatBase, HttpSinkBase):
    """Mattermost, as an attachment: an incoming webhook (``url``), or the REST API
    (``url`` the server, ``token`` and ``channelId``), which threads need."""

    type: Literal["mattermost"]
    channel: str | None = None
    """Override the webhook's channel (if the webhook allows it)."""
    username: str | None = None
    """Override the sender name shown (if the server lets webhooks override it)."""
    token: str | None = Field(None, repr=False)
    """API mode: a bot or personal access token (``${MM_TOKEN}``), sent as Bearer."""
    channel_id: NonBlank | None = None
    """API mode: the ID of the channel to post in (the bot must be a member)."""

    @model_validator(mode="after")
    def _api_mode(self) -> MattermostSinkConfig:
        """The API needs both keys; webhook-only keys or threads without it are mistakes."""
        api = self.token is not None or self.channel_id is not None
        problems: Problems = []
        if api and not self.token:
            problems.append((("token",), None, fail("is needed with channelId (API mode)")))
        if api and self.channel_id is None:
            problems.append((("channelId",), None, fail("is needed with token (API mode)")))
        for key, value in (("channel", self.channel), ("username", self.username)):
            if api and value is not None:
                problems.append(((key,), value, fail("is for webhooks; use channelId")))
        if not api and self.thread == "object":
            why = "needs the API (token and channelId): a webhook answers no post id"
            problems.append((("thread",), "object", fail(why)))
        fail_at("MattermostSinkConfig", problems)
        return self
