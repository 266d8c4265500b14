"""The Feishu (Lark) sink: a custom group bot's webhook, one interactive card per event.

Payload::

    {"msg_type": "interactive",
     "card": {"config": {"wide_screen_mode": true},
              "header": {"title": {"tag": "plain_text", "content": <title>},
                         "template": "green" | "yellow" | "red" | "blue"},
              "elements": [
                {"tag": "div", "fields": [{"is_short": true,
                    "text": {"tag": "plain_text", "content": "Cluster: prod"}}, …]},
                {"tag": "div", "text": {"tag": "plain_text", "content": <changes>}},
                {"tag": "note", "elements": [{"tag": "plain_text", "content": <footer>}]}]},
     "timestamp": "<Unix seconds>", "sign": "<signature>"}   (with ``secret``)

Every text is a ``plain_text`` element, shown exactly as written: Feishu's ``lark_md``
would read markdown and ``<at id=all></at>`` mentions in object text, ``plain_text``
reads nothing. With ``secret`` (the bot's "signature verification"), ``sign`` is the
Base64 of HMAC-SHA256 keyed with ``"<timestamp>\\n<secret>"`` over an empty message, as
Feishu specifies; Feishu refuses a timestamp more than an hour off.

Feishu answers 200 with ``{"code": 0, "msg": "success"}`` (older deployments:
``{"StatusCode": 0, …}``); ``11232`` (frequency limited: 100 a minute, 5 a second) is
retried after 10 s, every other code — ``19021`` (bad signature or clock),
``19024`` (keyword missing), ``9499`` (bad request) — is permanent. The hook id of the
URL and the secret never appear in an error or a preview.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Any, ClassVar

import httpx

from kubewatch.config.chat_sinks import FeishuSinkConfig
from kubewatch.errors import DeliveryError
from kubewatch.events import Event, EventType
from kubewatch.render import ChatMessage, Markup
from kubewatch.render.chat import COLOURS, NORMAL_EVENT_COLOUR
from kubewatch.sinks.chatapi import REDACTED, BodyCodes, ChatApiSink, json_object

__all__ = ["CODES", "FeishuSink", "feishu_card", "feishu_sign"]

CODES = BodyCodes(
    code=("code", "StatusCode"),
    message=("msg", "StatusMessage"),
    rate_limited=frozenset({11232}),
    wait=10.0,  # 100 messages a minute: a short pause, then the window has moved on
)

_TEMPLATE = {
    COLOURS[EventType.CREATE]: "green",
    COLOURS[EventType.UPDATE]: "yellow",
    COLOURS[EventType.DELETE]: "red",
    NORMAL_EVENT_COLOUR: "blue",
}
"""Feishu's header colour (named templates) per message colour."""


def _plain(content: str) -> dict[str, str]:
    return {"tag": "plain_text", "content": content}


def feishu_sign(secret: str, timestamp: str) -> str:
    """Feishu's ``sign`` for ``timestamp`` (s): the key is the string, the message empty."""
    mac = hmac.new(f"{timestamp}\n{secret}".encode(), b"", hashlib.sha256)
    return base64.b64encode(mac.digest()).decode()


def feishu_card(message: ChatMessage, title: str) -> dict[str, Any]:
    """The interactive card of ``message`` (plain text) with ``title`` in its header."""
    elements: list[dict[str, Any]] = [
        {
            "tag": "div",
            "fields": [
                {"is_short": True, "text": _plain(f"{label}: {value}")}
                for label, value in message.fields
            ],
        }
    ]
    if message.changes:
        elements.append({"tag": "div", "text": _plain(message.changes)})
    elements.append({"tag": "note", "elements": [_plain(message.footer)]})
    return {
        "config": {"wide_screen_mode": True},
        "header": {
            "title": _plain(title),
            "template": _TEMPLATE.get(message.colour, "red"),
        },
        "elements": elements,
    }


class FeishuSink(ChatApiSink):
    """Post each event as a card to a Feishu/Lark custom bot (``config.url``), signed
    with ``secret`` when set. ``template`` renders the header title."""

    kind = "feishu"
    markup: ClassVar[Markup] = "none"

    def __init__(
        self,
        name: str,
        config: FeishuSinkConfig,
        transport: httpx.BaseTransport | None = None,
        **kw: Any,
    ) -> None:
        self._secret = config.secret
        secrets = () if config.secret is None else (config.secret,)
        super().__init__(name, config, transport, secrets=secrets, **kw)

    def payload(self, event: Event, message: ChatMessage, text: str | None) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "msg_type": "interactive",
            "card": feishu_card(message, message.title if text is None else text),
        }
        if self._secret is not None:
            timestamp = str(int(self.clock()))
            doc |= {"timestamp": timestamp, "sign": feishu_sign(self._secret, timestamp)}
        return doc

    def redact(self, doc: dict[str, Any]) -> dict[str, Any]:
        return {**doc, "sign": REDACTED} if "sign" in doc else doc

    def verdict(self, body: str) -> DeliveryError | None:
        doc = json_object(body)
        if doc is None:
            return None
        return CODES.verdict(self.endpoint.label, doc, self.endpoint.scrub)
