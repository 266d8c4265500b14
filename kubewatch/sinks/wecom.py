"""The WeCom (WeChat Work) sink: a group robot's webhook, one markdown message per event.

Payload::

    {"msgtype": "markdown",
     "markdown": {"content": "**<font color=\\"warning\\">title</font>**\\n\\n- **Cluster:** …"}}

``content`` may hold 4096 bytes of UTF-8: changes are dropped from the end (and counted)
before that. The title is coloured with WeCom's three named colours (``info`` green for
a create, ``warning`` orange for an update, a delete or a Warning Event, ``comment`` grey
for a Normal Event). WeCom mentions with ``<@userid>``; object text is escaped, so such
text arrives literal.

WeCom answers 200 with ``{"errcode": 0, "errmsg": "ok"}``; ``45009`` (more than 20
messages a minute) waits a minute, ``-1`` (busy) is retried, every other code —
``93000`` (the webhook's key is invalid), ``40058`` (bad content) — is permanent. The
webhook's ``key`` is its credential: it never appears in an error or a preview.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

from kubewatch.events import Event
from kubewatch.render import ChatMessage
from kubewatch.render.chat import COLOURS, NORMAL_EVENT_COLOUR
from kubewatch.sinks.chatapi import BodyCodes
from kubewatch.sinks.robots import MARKDOWN, RobotSink

__all__ = ["CODES", "CONTENT_LIMIT", "WeComSink"]

CODES = BodyCodes(
    code=("errcode",),
    message=("errmsg",),
    rate_limited=frozenset({45009}),
    wait=60.0,  # the limit is 20 messages per minute: the next minute is free again
)

CONTENT_LIMIT = 4096
"""Bytes of ``markdown.content`` WeCom accepts."""

_FONT = {COLOURS[next(iter(COLOURS))]: "info", NORMAL_EVENT_COLOUR: "comment"}
"""WeCom's font colour per message colour; any other (amber, red) is ``warning``."""


class WeComSink(RobotSink):
    """Post each event to a WeCom group robot (``config.url``, with its ``key``).
    ``template`` renders the coloured, bold title."""

    kind = "wecom"
    codes: ClassVar[BodyCodes] = CODES
    limit: ClassVar[int] = CONTENT_LIMIT

    def payload(self, event: Event, message: ChatMessage, text: str | None) -> dict[str, Any]:
        colour = _FONT.get(message.colour, "warning")
        layout = dataclasses.replace(MARKDOWN, title=f'**<font color="{colour}">{{}}</font>**')
        content = self.markdown(message, message.title if text is None else text, layout)
        return {"msgtype": "markdown", "markdown": {"content": content}}
