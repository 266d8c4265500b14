"""The Matrix sink: one ``m.room.message`` per event, through the client-server API.

Request: ``PUT <homeserver>/_matrix/client/v3/rooms/<roomId>/send/m.room.message/<txnId>``
with ``Authorization: Bearer <accessToken>`` and::

    {"msgtype": "m.notice", "body": <plain text>,
     "format": "org.matrix.custom.html", "formatted_body": <the same in HTML>,
     "m.mentions": {}}

The transaction id is the event's id: a retried request (a timeout after the server took
it) is recognised by the homeserver and not posted twice. ``formatted_body`` is
HTML-escaped wherever text comes from cluster objects; ``body`` is the plain text.
``"m.mentions": {}`` declares that the message mentions nobody, which turns off the
older push rules that look for a display name or ``@room`` in ``body`` — no object text
can notify anyone. ``m.notice`` is the message type of bots (other bots do not answer
it); ``msgtype: m.text`` changes it.

Answers: ``{"event_id": "$…"}``. ``429 M_LIMIT_EXCEEDED`` carries ``retry_after_ms`` in
its body (and, since v1.10, ``Retry-After``), honoured; ``403 M_FORBIDDEN`` (not in the
room) and ``401 M_UNKNOWN_TOKEN`` are permanent. The access token never appears in an
error or a preview.
"""

from __future__ import annotations

import dataclasses
import html
import re
import time
import urllib.parse
from collections.abc import Callable
from typing import Any, ClassVar

import httpx

from kubewatch.config.chat_sinks import MatrixSinkConfig
from kubewatch.events import Event
from kubewatch.render import ChatMessage, Markup
from kubewatch.sinks.chatapi import COLOUR_MARKS, ApiSettings, ChatApiSink, Layout, compose
from kubewatch.sinks.chatapi import json_object as _json

__all__ = ["BODY_LIMIT", "HTML", "PLAIN", "MatrixSink", "matrix_retry_after"]

BODY_LIMIT = 16_000
"""Bytes of ``formatted_body`` (and of ``body``) at most: a Matrix event may have 64 KiB
in all, and the two together stay well within that."""

HTML = Layout(
    title="<b>{}</b>",
    field="<b>{label}:</b> {value}",
    field_separator="<br>",
    changes=lambda lines: "<pre><code>" + "\n".join(lines) + "</code></pre>",
    footer="<sub>{}</sub>",
    separator="<br>",
    cut_tail=re.compile(r"&[#\w]*$"),
)
PLAIN = Layout(
    title="{}",
    field="{label}: {value}",
    field_separator="\n",
    changes="\n".join,
    footer="{}",
    separator="\n",
    cut_tail=re.compile(r"$^"),
)


def _plain(message: ChatMessage) -> ChatMessage:
    """``message`` (HTML-escaped) as the plain text it stands for."""
    return dataclasses.replace(
        message,
        title=html.unescape(message.title),
        fields=tuple((label, html.unescape(value)) for label, value in message.fields),
        changes=html.unescape(message.changes),
    )


def matrix_retry_after(body: str) -> float | None:
    """``retry_after_ms`` of an ``M_LIMIT_EXCEEDED`` answer, in seconds, or None."""
    wait = (_json(body) or {}).get("retry_after_ms")
    if isinstance(wait, bool) or not isinstance(wait, int | float) or wait < 0:
        return None
    return wait / 1000


class MatrixSink(ChatApiSink):
    """Post each event to one Matrix room (``roomId``) as the account of ``accessToken``.

    ``template`` renders the bold title (and the first line of the plain ``body``).
    """

    kind = "matrix"
    method = "PUT"
    markup: ClassVar[Markup] = "html"

    def __init__(
        self,
        name: str,
        config: MatrixSinkConfig,
        transport: httpx.BaseTransport | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        room = urllib.parse.quote(config.room_id, safe="")
        api = ApiSettings(
            url=f"{config.homeserver.rstrip('/')}/_matrix/client/v3/rooms/{room}"
            "/send/m.room.message/",
            timeout=config.timeout,
            ca_file=config.ca_file,
            template=config.template,
            headers={"Authorization": f"Bearer {config.access_token}"},
        )
        self._msgtype = config.msgtype
        super().__init__(
            name, api, transport, clock=clock, retry_after_from_body=matrix_retry_after
        )

    def target(self, event: Event) -> httpx.URL:
        """The send URL with the event id as transaction id: a retry is recognised."""
        return self.endpoint.url.join(event.id)

    def payload(self, event: Event, message: ChatMessage, text: str | None) -> dict[str, Any]:
        mark = COLOUR_MARKS.get(message.colour, "")
        title = f"{mark} {message.title if text is None else text}".strip()
        plain = _plain(message)
        return {
            "msgtype": self._msgtype,
            "body": compose(plain, html.unescape(title), PLAIN, limit=BODY_LIMIT),
            "format": "org.matrix.custom.html",
            "formatted_body": compose(message, title, HTML, limit=BODY_LIMIT),
            "m.mentions": {},
        }
