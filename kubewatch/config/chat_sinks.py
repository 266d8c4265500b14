"""Chat services beyond Slack, Teams, Discord and Mattermost: Google Chat, Telegram,
Matrix, DingTalk, Feishu (Lark) and WeCom. One model per ``type``; every one is a chat sink
(rate limited and digested by default, :class:`~kubewatch.config.sinks.ChatSinkBase`).

Every credential — bot tokens, access tokens, signing secrets, and webhook URLs, which
carry their key — is kept out of ``repr`` and so out of every log line of a config.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from kubewatch.config.fields import NonBlank, Seconds, StrictInt, fail
from kubewatch.config.sinks import (
    ChatSinkBase,
    HttpSinkBase,
    RateLimit,
    RateLimitConfig,
    readable_bundle,
)

ROBOT_RATE_LIMIT = RateLimitConfig(per_second=0.25, burst=5)
"""DingTalk and WeCom robots, and Telegram bots in a group, may post 20 messages a minute
(DingTalk then mutes the robot for 10 minutes): a burst of 5, then one every 4 s, keeps
any minute within 20."""


def _api_url(value: str) -> str:
    """The same check as every sink ``url`` (checked at start, never echoed)."""
    return HttpSinkBase.http_url(value)


class _ApiSinkBase(ChatSinkBase):
    """Keys of a chat API that kubewatch calls with a token, not a webhook URL."""

    timeout: Seconds = 10.0
    """Seconds for one whole attempt: connect, send, response headers and body."""
    ca_file: str | None = None
    """PEM bundle to verify the server (a self-hosted one), relative to the config file."""

    _ca_file = field_validator("ca_file")(readable_bundle)


class GoogleChatSinkConfig(ChatSinkBase, HttpSinkBase):
    """A Google Chat space's incoming webhook, as a card (cardsV2)."""

    type: Literal["googlechat"]
    url: str = Field(repr=False)
    """The webhook URL (``https://chat.googleapis.com/v1/spaces/…?key=…&token=…``)."""
    thread_key: NonBlank | None = None
    """Post every message into the thread with this key (created by the first one)."""


class TelegramSinkConfig(_ApiSinkBase):
    """A Telegram chat, through a bot (Bot API ``sendMessage``, HTML text)."""

    type: Literal["telegram"]
    token: NonBlank = Field(repr=False)
    """The bot's token from @BotFather (``123456:ABC-…``)."""
    chat_id: StrictInt | NonBlank
    """The chat: a numeric ID (``-1001234567890``) or a channel's ``@username``."""
    message_thread_id: StrictInt | None = Field(None, ge=1)
    """A forum topic of the chat to post in (default: the chat's general one)."""
    api_url: str = "https://api.telegram.org"
    """Bot API server: a self-hosted ``telegram-bot-api``, a proxy, or a test server."""
    rate_limit: RateLimit = ROBOT_RATE_LIMIT

    _api_url = field_validator("api_url")(_api_url)

    @field_validator("token")
    @classmethod
    def _one_word(cls, value: str) -> str:
        """The token goes into the URL path: a space or a slash in it cannot be right."""
        if any(c.isspace() or c in "/?#" for c in value):
            raise fail("is not a bot token (it contains a space, '/', '?' or '#')")
        return value


class MatrixSinkConfig(_ApiSinkBase):
    """A Matrix room, through the client-server API (``m.room.message`` with HTML)."""

    type: Literal["matrix"]
    homeserver: str
    """Base URL of the homeserver's client API (``https://matrix.example.org``)."""
    room_id: NonBlank
    """The room's ID (``!abc123:example.org``: Room settings → Advanced), not an alias."""
    access_token: NonBlank = Field(repr=False)
    """Access token of the account that posts (it must have joined the room)."""
    msgtype: Literal["m.notice", "m.text"] = "m.notice"
    """``m.notice``: a bot's message, which other bots do not answer."""

    _homeserver = field_validator("homeserver")(_api_url)

    @field_validator("room_id")
    @classmethod
    def _room_id(cls, value: str) -> str:
        """Messages are sent to a room ID; an alias (``#ops:…``) would fail every event.
        (Since room version 12 an ID may have no ``:server`` part.)"""
        if not value.startswith("!") or len(value) < 2:
            raise fail("must be a room ID (!id:server), not an alias: see Room settings")
        return value


class DingTalkSinkConfig(ChatSinkBase, HttpSinkBase):
    """A DingTalk group's custom robot, as markdown; optionally signed."""

    type: Literal["dingtalk"]
    url: str = Field(repr=False)
    """The robot's webhook (``https://oapi.dingtalk.com/robot/send?access_token=…``)."""
    secret: NonBlank | None = Field(None, repr=False)
    """The robot's signing secret (``SEC…``, security setting "加签" / "Additional
    signature"): adds ``timestamp`` and ``sign`` to each request."""
    rate_limit: RateLimit = ROBOT_RATE_LIMIT


class FeishuSinkConfig(ChatSinkBase, HttpSinkBase):
    """A Feishu (Lark) group's custom bot, as an interactive card; optionally signed."""

    type: Literal["feishu"]
    url: str = Field(repr=False)
    """The bot's webhook (``https://open.feishu.cn/open-apis/bot/v2/hook/…``, or
    ``open.larksuite.com`` for Lark)."""
    secret: NonBlank | None = Field(None, repr=False)
    """The bot's signing secret (security setting "signature verification"): adds
    ``timestamp`` and ``sign`` to each request body."""


class WeComSinkConfig(ChatSinkBase, HttpSinkBase):
    """A WeCom (WeChat Work) group robot, as markdown."""

    type: Literal["wecom"]
    url: str = Field(repr=False)
    """The robot's webhook (``https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=…``);
    its ``key`` is the credential."""
    rate_limit: RateLimit = ROBOT_RATE_LIMIT
