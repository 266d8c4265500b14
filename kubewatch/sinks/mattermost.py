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

**API mode** (``token`` and ``channelId``; ``url`` is the server): each event is
``POST /api/v4/posts`` ``{"channel_id", "message": "", "props": {"attachments": [...]}}``
with ``Authorization: Bearer <token>``; the answer is the post, whose ``id`` a reply names
in ``root_id`` (``thread: object``). ``updateRoot`` edits the root with
``PUT /api/v4/posts/{id}/patch``, its history a last field of the attachment. A root
deleted in the channel answers 404 to the edit, and 400 to a reply (``root_id`` invalid):
then ``GET /api/v4/posts/{root}`` tells, and a 404 there starts a new root. 401 and 403
are permanent, naming ``token`` and ``channelId``; the token is never logged.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
import orjson

from kubewatch.config import MattermostSinkConfig, format_path
from kubewatch.errors import DeliveryError, PermanentError
from kubewatch.events import Event
from kubewatch.render import ChatMessage, escape
from kubewatch.sinks.http import encode_json
from kubewatch.sinks.threaded_chat import ThreadedChatSink
from kubewatch.sinks.threads import RootGone, ThreadBooks, ThreadRoot

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


class MattermostSink(ThreadedChatSink):
    """Post each event as an attachment to a Mattermost incoming webhook (``config.url``),
    or, with ``token`` and ``channelId``, through the REST API of the server at ``url``.

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
        books: ThreadBooks | None = None,
    ) -> None:
        token = config.token or ""
        secrets = (token,) if token else ()
        super().__init__(name, config, transport, clock=clock, books=books, secrets=secrets)
        self._channel_id = config.channel_id or ""
        self._auth = {"Authorization": f"Bearer {token}"} if token else {}
        self._api = str(self.endpoint.url).rstrip("/") + "/api/v4/"
        self._overrides = {
            key: value
            for key, value in (("channel", config.channel), ("username", config.username))
            if value
        }

    def payload(self, event: Event, message: ChatMessage, text: str | None) -> dict[str, Any]:
        return {**self._overrides, "attachments": [attachment(message, text)]}

    def post(self, payload: dict[str, Any], root: ThreadRoot | None) -> tuple[str, str]:
        if not self._auth:  # an incoming webhook: it answers "ok", no post id
            self.endpoint.send(encode_json(payload, f"{self.endpoint.label} message"))
            return "", ""
        doc: dict[str, Any] = {"channel_id": self._channel_id, **self._post_content(payload)}
        if root is not None:
            doc["root_id"] = root.ts
        try:
            answer = self.call("POST", self._url("posts"), doc, self._auth, root=root)
        except PermanentError as exc:
            if root is not None and exc.status == 400 and self._gone(root):
                raise RootGone(str(exc)) from None
            raise
        return str(answer.get("channel_id") or self._channel_id), str(answer.get("id") or "")

    def update(self, root: ThreadRoot, payload: dict[str, Any]) -> None:
        url = self._url(f"posts/{root.ts}/patch")
        self.call("PUT", url, self._post_content(payload), self._auth, root=root)

    def with_history(self, payload: dict[str, Any], history: tuple[str, ...]) -> dict[str, Any]:
        first, *rest = payload["attachments"]
        line = escape(" · ".join(history), "markdown")
        field = {"short": False, "title": "History", "value": line}
        return {**payload, "attachments": [{**first, "fields": [*first["fields"], field]}, *rest]}

    def preview(self, event: Event) -> str:
        """API mode: the request to ``/api/v4/posts`` (origin and path; no token)."""
        if not self._auth:
            return super().preview(event)
        payload = orjson.loads(self.request(event).body)
        doc = {"channel_id": self._channel_id, **self._post_content(payload)}
        shown = orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode()
        return f"POST {self.endpoint.origin}{self._url('posts').path}\n{shown}"

    def refusal(self, status: int) -> str | None:
        if status == 401:
            path = format_path(("sinks", self.name, "token"))
            return f"the token was refused: check {path}"
        if status == 403:
            path = format_path(("sinks", self.name, "channelId"))
            return f"the token's user may not post there: check {path} and channel membership"
        return None

    def _gone(self, root: ThreadRoot) -> bool:
        """Whether the root post was deleted (a reply to it answers only 400)."""
        try:
            self.call("GET", self._url(f"posts/{root.ts}"), None, self._auth, root=root)
        except RootGone:
            return True
        except DeliveryError:  # cannot tell: the reply's own error stands
            return False
        return False

    def _url(self, path: str) -> httpx.URL:
        return httpx.URL(self._api + path)

    @staticmethod
    def _post_content(payload: dict[str, Any]) -> dict[str, Any]:
        return {"message": "", "props": {"attachments": payload["attachments"]}}
