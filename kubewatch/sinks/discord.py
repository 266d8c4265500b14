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

**Threads** (``thread: object``) need the webhook of a forum or media channel: a webhook
may create a thread only there. Posts are sent with ``?wait=true``, so Discord answers
with the message (``id``, ``channel_id``). An object's first event creates a forum post
(``thread_name``: the object, at most 100 characters), whose ``channel_id`` is the
thread; later events reply in it (``?thread_id=``). ``updateRoot`` edits the post's first
message (``PATCH …/messages/{id}?thread_id=``), its history in the ``content``. A deleted
post or message answers 404 (10003 Unknown Channel, 10008 Unknown Message): a new post
starts. A digest is one post of its own. In a text channel Discord answers 400 to
``thread_name``: a permanent error naming ``thread``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import httpx
import orjson

from kubewatch.config import DiscordSinkConfig, format_path
from kubewatch.errors import ConfigError, PermanentError
from kubewatch.events import Event
from kubewatch.render import ChatMessage
from kubewatch.sinks.http import encode_json
from kubewatch.sinks.threaded_chat import ThreadedChatSink
from kubewatch.sinks.threads import ThreadBooks, ThreadRoot

__all__ = [
    "LIMITS",
    "THREAD_NAME_CHARS",
    "USERNAME_CHARS",
    "DiscordSink",
    "discord_retry_after",
    "embed",
    "thread_name",
]

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


THREAD_NAME_CHARS = 100
"""Discord's limit on a forum post's name (``thread_name``)."""
CONTENT_CHARS = 2000
"""Discord's limit on a message's ``content``."""


def thread_name(event: Event, title: str) -> str:
    """The forum post of ``event``'s object: ``Deployment shop/web`` (a digest: its title)."""
    if event.digest is not None:
        name = title
    elif event.k8s_event is not None:
        obj = event.k8s_event.involved
        name = f"{obj.kind} {obj.namespace + '/' if obj.namespace else ''}{obj.name}"
    else:
        name = f"{event.kind} {event.namespace + '/' if event.namespace else ''}{event.name}"
    return _cut(" ".join(name.split()), THREAD_NAME_CHARS)


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


class DiscordSink(ThreadedChatSink):
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
        books: ThreadBooks | None = None,
    ) -> None:
        self._username = config.username
        if self._username is not None:
            _check_username(name, self._username)
        super().__init__(
            name,
            config,
            transport,
            clock=clock,
            books=books,
            retry_after_from_body=discord_retry_after,
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
        if self.threads is not None:
            doc["thread_name"] = thread_name(event, doc["embeds"][0]["title"])
        return doc

    def post(self, payload: dict[str, Any], root: ThreadRoot | None) -> tuple[str, str]:
        if self.threads is None:  # no answer needed: Discord's 204
            self.endpoint.send(encode_json(payload, f"{self.endpoint.label} message"))
            return "", ""
        if root is None:
            url = self.endpoint.url.copy_merge_params({"wait": "true"})
            try:
                answer = self.call("POST", url, payload)
            except PermanentError as exc:
                if exc.status != 400 or "thread" not in str(exc).lower():
                    raise
                path = format_path(("sinks", self.name, "thread"))
                hint = f"{path}: object needs the webhook of a forum or media channel"
                raise PermanentError(f"{exc} ({hint})") from None
        else:
            doc = {k: v for k, v in payload.items() if k != "thread_name"}
            url = self.endpoint.url.copy_merge_params({"wait": "true", "thread_id": root.channel})
            answer = self.call("POST", url, doc, root=root)
        return str(answer.get("channel_id") or ""), str(answer.get("id") or "")

    def update(self, root: ThreadRoot, payload: dict[str, Any]) -> None:
        doc = {k: v for k, v in payload.items() if k not in ("thread_name", "username")}
        url = self.endpoint.url.copy_with(path=f"{self.endpoint.url.path}/messages/{root.ts}")
        self.call("PATCH", url.copy_merge_params({"thread_id": root.channel}), doc, root=root)

    def with_history(self, payload: dict[str, Any], history: tuple[str, ...]) -> dict[str, Any]:
        return {**payload, "content": _cut("History: " + " · ".join(history), CONTENT_CHARS)}
