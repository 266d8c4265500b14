"""The Mattermost sink: one message attachment per event, posted to an incoming webhook.

Payload::

    {"channel": <config.channel, when set>, "username": <config.username, when set>,
     "attachments": [{"fallback": <one plain line, for notifications>,
                      "color": "#RRGGBB",
                      "title": <title>   or, with ``template``, "pretext": <its text>,
                      "text": "```\\n<changes>\\n```",
                      "fields": [{"short": true, "title": label, "value": value}, ...],
                      "footer": "kubewatch · <event id>"}]}

Mattermost renders markdown and turns ``@channel``, ``@all``, ``@here`` and
``@username`` into mentions: every text is escaped for markdown with mentions defused
(:mod:`kubewatch.render.escape`). The changes sit in a code block whose fence no value
can close (``` in a value is shown as '''); Mattermost neither renders nor looks for
mentions inside code. Without ``template`` the summary is the attachment's bold
``title``; a template's text, which may span lines, goes to ``pretext`` above the
attachment instead. Mattermost answers ``200`` with the body ``ok``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx

from kubewatch.config import MattermostSinkConfig
from kubewatch.events import Event
from kubewatch.render import ChatMessage
from kubewatch.sinks.http import ChatSink

__all__ = ["MattermostSink", "attachment"]


def attachment(message: ChatMessage, text: str | None) -> dict[str, Any]:
    """The message attachment of ``message``; ``text`` (a template's output) as pretext."""
    out: dict[str, Any] = {"fallback": message.fallback, "color": message.colour}
    if text is None:
        out["title"] = message.title
    else:
        out["pretext"] = text
    if message.changes:
        out["text"] = f"```\n{message.changes}\n```"
    out["fields"] = [
        {"short": True, "title": label, "value": value} for label, value in message.fields
    ]
    out["footer"] = message.footer
    return out


class MattermostSink(ChatSink):
    """Post each event as an attachment to a Mattermost incoming webhook (``config.url``).

    The URL's last path segment is the webhook's key: it never appears in a message.
    ``channel`` and ``username`` override the webhook's own when the webhook allows it.
    """

    kind = "mattermost"

    def __init__(
        self,
        name: str,
        config: MattermostSinkConfig,
        transport: httpx.BaseTransport | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(name, config, transport, clock=clock)
        self._overrides = {
            key: value
            for key, value in (("channel", config.channel), ("username", config.username))
            if value
        }

    def payload(self, event: Event, message: ChatMessage, text: str | None) -> dict[str, Any]:
        return {**self._overrides, "attachments": [attachment(message, text)]}
