"""The Telegram sink: one Bot API ``sendMessage`` per event, as HTML text.

Request: ``POST <apiUrl>/bot<token>/sendMessage`` with::

    {"chat_id": <chatId>, "message_thread_id": <messageThreadId, when set>,
     "text": "<b>🟡 title</b>\\n\\n<b>Cluster:</b> prod\\n…\\n\\n<pre>changes</pre>…",
     "parse_mode": "HTML", "link_preview_options": {"is_disabled": true}}

Telegram's HTML parse mode knows ``<b> <i> <a> <code> <pre>`` and the entities ``&lt;
&gt; &amp; &quot;`` (and numeric ones): every text from cluster objects is HTML-escaped,
and every ``@`` that could mention a user gets a ZERO WIDTH SPACE after it — in the
template's own text too, so no message ever notifies anyone by name. A message holds at
most 4096 characters: changes are dropped from the end (and counted) before that.

Answers: ``{"ok": true, "result": …}``; a refusal is ``{"ok": false, "error_code": 400,
"description": "Bad Request: chat not found"}`` with that status, and flood control is a
429 with ``parameters.retry_after`` (seconds) in the body, honoured. The bot token is in
the URL path: it never appears in an error or a preview.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any, ClassVar

import httpx

from kubewatch.config.chat_sinks import TelegramSinkConfig
from kubewatch.errors import DeliveryError, PermanentError, RateLimited, RetryableError
from kubewatch.events import Event
from kubewatch.render import ChatMessage, Markup
from kubewatch.render.escape import defuse_mentions
from kubewatch.sinks.chatapi import (
    COLOUR_MARKS,
    ApiSettings,
    ChatApiSink,
    Layout,
    compose,
    json_object,
)
from kubewatch.sinks.http import BODY_EXCERPT_CHARS, DEFAULT_RETRY_AFTER

__all__ = ["HTML", "TEXT_LIMIT", "TelegramSink", "telegram_retry_after", "utf16_len"]

TEXT_LIMIT = 4096
"""Telegram's limit on a message's text, counted after entity parsing; kubewatch counts
the HTML itself, which is never shorter."""

HTML = Layout(
    title="<b>{}</b>",
    field="<b>{label}:</b> {value}",
    field_separator="\n",
    changes=lambda lines: "<pre>" + "\n".join(lines) + "</pre>",
    footer="<i>{}</i>",
    separator="\n\n",
    cut_tail=re.compile(r"&[#\w]*$"),
)
"""Telegram HTML: a newline is a line break (no ``<br>``)."""


def utf16_len(text: str) -> int:
    """Length as Telegram counts it: UTF-16 code units (an emoji takes two)."""
    return len(text.encode("utf-16-le")) // 2


def telegram_retry_after(body: str) -> float | None:
    """``parameters.retry_after`` (seconds) of a flood-control answer, or None."""
    doc = json_object(body) or {}
    params = doc.get("parameters")
    wait = params.get("retry_after") if isinstance(params, dict) else None
    if isinstance(wait, bool) or not isinstance(wait, int | float) or wait < 0:
        return None
    return float(wait)


class TelegramSink(ChatApiSink):
    """Post each event with a bot to one Telegram chat (``chatId``), or a forum topic of
    it (``messageThreadId``). ``template`` renders the bold title."""

    kind = "telegram"
    markup: ClassVar[Markup] = "html"

    def __init__(
        self,
        name: str,
        config: TelegramSinkConfig,
        transport: httpx.BaseTransport | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        api = ApiSettings(
            url=f"{config.api_url.rstrip('/')}/bot{config.token}/sendMessage",
            timeout=config.timeout,
            ca_file=config.ca_file,
            template=config.template,
        )
        self._chat: dict[str, Any] = {"chat_id": config.chat_id}
        if config.message_thread_id is not None:
            self._chat["message_thread_id"] = config.message_thread_id
        super().__init__(
            name,
            api,
            transport,
            clock=clock,
            retry_after_from_body=telegram_retry_after,
            secrets=(config.token,),
        )

    def payload(self, event: Event, message: ChatMessage, text: str | None) -> dict[str, Any]:
        title = f"{COLOUR_MARKS.get(message.colour, '')} {message.title if text is None else text}"
        body = compose(message, title.strip(), HTML, limit=TEXT_LIMIT, measure=utf16_len)
        return {
            **self._chat,
            "text": defuse_mentions(body),
            "parse_mode": "HTML",
            "link_preview_options": {"is_disabled": True},
        }

    def verdict(self, body: str) -> DeliveryError | None:
        doc = json_object(body)
        if doc is None or doc.get("ok") is not False:
            return None
        code = doc.get("error_code")
        said = " ".join(self.endpoint.scrub(str(doc.get("description", ""))).split())
        message = f"{self.endpoint.label}: Telegram refused the message ({code}: "
        message += f"{said[:BODY_EXCERPT_CHARS]})"
        if code == 429:
            wait = telegram_retry_after(body)
            return RateLimited(message, DEFAULT_RETRY_AFTER if wait is None else wait)
        if isinstance(code, int) and code >= 500:
            return RetryableError(message)
        return PermanentError(message)
