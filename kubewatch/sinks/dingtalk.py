"""The DingTalk sink: a custom group robot's webhook, one markdown message per event.

Payload::

    {"msgtype": "markdown",
     "markdown": {"title": <the summary, plain: shown in notifications>,
                  "text": "**🟡 title**\\n\\n- **Cluster:** prod\\n…\\n\\n> change\\n\\nfooter"}}

With ``secret`` (the robot's "Additional signature" / 加签 setting) every request carries
``timestamp`` (Unix milliseconds) and ``sign`` in its query: the Base64 of
HMAC-SHA256(key = secret, message = ``"<timestamp>\\n<secret>"``), URL-encoded. DingTalk
refuses a timestamp more than an hour off.

DingTalk answers 200 with ``{"errcode": 0, "errmsg": "ok"}``; any other ``errcode`` is a
refusal: ``130101`` (more than 20 messages a minute; the robot is then muted for 10
minutes) waits those 10 minutes, ``-1`` (busy) is retried, everything else — ``310000``
(keyword, signature or IP check failed), ``300001`` (unknown token) — is permanent. The
``access_token`` of the URL and the secret never appear in an error or a preview.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Any, ClassVar

import httpx

from kubewatch.config.chat_sinks import DingTalkSinkConfig
from kubewatch.events import Event
from kubewatch.render import ChatMessage, default_text
from kubewatch.sinks.chatapi import COLOUR_MARKS, BodyCodes
from kubewatch.sinks.robots import RobotSink

__all__ = ["CODES", "DingTalkSink", "dingtalk_sign"]

CODES = BodyCodes(
    code=("errcode",),
    message=("errmsg",),
    rate_limited=frozenset({130101, 410100}),
    wait=600.0,  # DingTalk mutes a robot for 10 minutes after 20 messages in a minute
)

TITLE_CHARS = 100
"""Characters of ``markdown.title``: one line in a notification."""


def dingtalk_sign(secret: str, timestamp: str) -> str:
    """DingTalk's ``sign`` for ``timestamp`` (ms), before URL encoding."""
    mac = hmac.new(secret.encode(), f"{timestamp}\n{secret}".encode(), hashlib.sha256)
    return base64.b64encode(mac.digest()).decode()


class DingTalkSink(RobotSink):
    """Post each event to a DingTalk custom robot (``config.url``), signed with ``secret``
    when set. ``template`` renders the bold title of the text."""

    kind = "dingtalk"
    codes: ClassVar[BodyCodes] = CODES
    limit: ClassVar[int] = 4096
    """Bytes of ``markdown.text``: kept to WeCom's limit (DingTalk documents none lower)."""

    def __init__(
        self,
        name: str,
        config: DingTalkSinkConfig,
        transport: httpx.BaseTransport | None = None,
        **kw: Any,
    ) -> None:
        self._secret = config.secret
        secrets = () if config.secret is None else (config.secret,)
        super().__init__(name, config, transport, secrets=secrets, **kw)

    def target(self, event: Event) -> httpx.URL:
        if self._secret is None:
            return self.endpoint.url
        timestamp = str(int(self.clock() * 1000))
        sign = dingtalk_sign(self._secret, timestamp)
        return self.endpoint.url.copy_merge_params({"timestamp": timestamp, "sign": sign})

    def payload(self, event: Event, message: ChatMessage, text: str | None) -> dict[str, Any]:
        mark = COLOUR_MARKS.get(message.colour, "")
        title = f"{mark} {message.title if text is None else text}".strip()
        notice = default_text(event)
        if len(notice) > TITLE_CHARS:
            notice = notice[: TITLE_CHARS - 1] + "…"
        return {
            "msgtype": "markdown",
            "markdown": {"title": notice, "text": self.markdown(message, title)},
        }
