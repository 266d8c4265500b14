"""The Discord sink: one embed per event, posted to a channel webhook.

Payload::

    {"username": <config.username, when set>, "content": "",
     "embeds": [{"title": <title or template>, "description": "```\\n<changes>\\n```",
                 "color": <0xRRGGBB>, "fields": [{"name", "value", "inline": true}, ...],
                 "footer": {"text": "kubewatch · <event id>"}}],
     "allowed_mentions": {"parse": []}}

``allowed_mentions: {"parse": []}`` tells Discord to resolve no mention at all, whatever
the text holds; on top of that every text is escaped for markdown with its mentions
defused (:mod:`kubewatch.render.escape`), and the changes sit in a code block whose
fence no value can close (``` in a value is shown as ''').

Discord refuses an embed beyond its limits with a 400, so they are enforced here
(:data:`LIMITS`): texts are cut with ``…``, the changes block keeps whole lines and says
how many it left out. Discord answers ``204 No Content``; a 429 carries ``Retry-After``
and a JSON body with ``retry_after`` (seconds, fractional), used when the header is
missing.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import httpx
import orjson

from kubewatch.config import DiscordSinkConfig, format_path
from kubewatch.errors import ConfigError
from kubewatch.events import Event
from kubewatch.render import ChatMessage
from kubewatch.sinks.http import ChatSink

__all__ = ["LIMITS", "USERNAME_CHARS", "DiscordSink", "discord_retry_after", "embed"]

LIMITS = {
    "title": 256,
    "description": 4096,
    "fields": 25,
    "field.name": 256,
    "field.value": 1024,
    "footer.text": 2048,
    "total": 6000,
}
"""Discord's embed limits in characters (``total``: title, description, field names and
values, footer and author together); a payload over any of them is refused."""

_ELLIPSIS = "…"
_FENCE_OPEN = "```\n"
_FENCE_CLOSE = "\n```"


def _cut(text: str, limit: int) -> str:
    """``text`` in at most ``limit`` characters, ending in ``…`` when cut."""
    return text if len(text) <= limit else text[: max(0, limit - 1)] + _ELLIPSIS


def _code_block(changes: str, limit: int) -> str:
    """``changes`` as a code block of at most ``limit`` characters; "" when none fits.

    Whole lines only, then a line counting the rest: a line cut in the middle could end
    inside an escape, and a reader should know that something is missing.
    """
    room = limit - len(_FENCE_OPEN) - len(_FENCE_CLOSE)
    lines = changes.splitlines()
    if not lines or room <= 0:
        return ""
    for n in range(len(lines), -1, -1):  # at most CHANGE_LINES + 1 lines: cheap
        rest = len(lines) - n
        shown = lines[:n]
        if rest:
            shown.append(f"… {rest} more line{'' if rest == 1 else 's'} not shown")
        text = "\n".join(shown)
        if len(text) <= room:
            return _FENCE_OPEN + text + _FENCE_CLOSE
    return ""


def embed(message: ChatMessage, title: str) -> dict[str, Any]:
    """The embed of ``message`` with ``title``, within :data:`LIMITS`."""
    title = _cut(" ".join(title.split()), LIMITS["title"])  # a title is one line
    footer = _cut(message.footer, LIMITS["footer.text"])
    pairs = [
        (_cut(label, LIMITS["field.name"]), _cut(value, LIMITS["field.value"]) or "—")
        for label, value in message.fields[: LIMITS["fields"]]
    ]  # "—" for an empty value: Discord refuses an empty one
    used = len(title) + len(footer) + sum(len(name) + len(value) for name, value in pairs)
    room = min(LIMITS["description"], LIMITS["total"] - used)
    fields = [{"name": name, "value": value, "inline": True} for name, value in pairs]
    out: dict[str, Any] = {
        "title": title,
        "color": int(message.colour.removeprefix("#"), 16),
        "fields": fields,
        "footer": {"text": footer},
    }
    description = _code_block(message.changes, room)
    if description:  # Discord refuses an empty description: leave it out
        out["description"] = description
    return out


def discord_retry_after(body: str) -> float | None:
    """``retry_after`` (seconds) from a Discord 429 body, or None when it has none."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    value = doc.get("retry_after") if isinstance(doc, dict) else None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return max(0.0, float(value))


USERNAME_CHARS = 80
"""Discord's limit on a webhook message's ``username``."""
_FORBIDDEN_IN_USERNAME = ("discord", "clyde")
"""Discord refuses a webhook ``username`` containing these in any case (400
``USERNAME_INVALID_CONTAINS``), and one that is "everyone" or "here"."""


def _check_username(name: str, username: str) -> None:
    """Discord would refuse every message with this username: say so at start instead."""
    path = format_path(("sinks", name, "username"))
    text = username.strip()
    if not 1 <= len(text) <= USERNAME_CHARS:
        raise ConfigError(path, f"must be 1 to {USERNAME_CHARS} characters")
    bad = [s for s in _FORBIDDEN_IN_USERNAME if s in text.lower()]
    if bad or text.lower() in ("everyone", "here"):
        what = bad[0] if bad else text
        raise ConfigError(path, f"Discord refuses usernames containing {what!r}")


class DiscordSink(ChatSink):
    """Post each event as an embed to a Discord channel webhook (``config.url``).

    The URL's last path segment is the webhook's token: it never appears in a message.
    ``template`` renders the embed title (one line, at most 256 characters). A
    ``username`` Discord would refuse raises :class:`ConfigError` here.
    """

    kind = "discord"

    def __init__(
        self,
        name: str,
        config: DiscordSinkConfig,
        transport: httpx.BaseTransport | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._username = config.username
        if self._username is not None:
            _check_username(name, self._username)
        super().__init__(
            name, config, transport, clock=clock, retry_after_from_body=discord_retry_after
        )

    def payload(self, event: Event, message: ChatMessage, text: str | None) -> dict[str, Any]:
        doc: dict[str, Any] = {}
        if self._username:
            doc["username"] = self._username
        doc |= {
            "content": "",
            "embeds": [embed(message, message.title if text is None else text)],
            "allowed_mentions": {"parse": []},
        }
        return doc
