"""The Google Chat sink: one card (``cardsV2``) per event, posted to a space's webhook.

Payload::

    {"fallbackText": <the title, plain: notifications and clients without cards>,
     "cardsV2": [{"cardId": "kubewatch", "card": {
        "header": {"title": "🟡 <title>", "subtitle": "kubewatch · <event id>"},
        "sections": [
          {"widgets": [{"decoratedText": {"topLabel": "Cluster", "text": "prod"}}, …]},
          {"header": "Changes", "widgets": [{"textParagraph": {"text": "a<br>b"}}]}]}}],
     "thread": {"threadKey": <threadKey>, when set}}

Card texts (``decoratedText``, ``textParagraph``) render a small HTML subset (``<b>``,
``<i>``, ``<font>``, ``<a>``, ``<br>``): every text from cluster objects is HTML-escaped
for them. The header and ``fallbackText`` are plain text and get the text itself. Cards
cannot mention anyone (``<users/all>`` works only in a message's ``text``, which
kubewatch never sends). With ``threadKey``, the request asks
``messageReplyOption=REPLY_MESSAGE_FALLBACK_TO_NEW_THREAD``: the first message opens the
thread, later ones reply in it.

The webhook URL carries ``key`` and ``token`` in its query: both are credentials and
never appear in an error or a preview. Google answers 200 with the created message; a
429 (``RESOURCE_EXHAUSTED``, 60 messages a minute per space) is rate limited, and 4xx
refusals are permanent.
"""

from __future__ import annotations

import html
from typing import Any, ClassVar

import httpx

from kubewatch.config.chat_sinks import GoogleChatSinkConfig
from kubewatch.events import Event
from kubewatch.render import ChatMessage, Markup
from kubewatch.sinks.chatapi import COLOUR_MARKS, ChatApiSink

__all__ = ["CARD_ID", "GoogleChatSink", "card_message"]

CARD_ID = "kubewatch"
"""``cardId`` of the one card of a message (it only needs to be unique in the message)."""

TITLE_CHARS = 500
"""Characters of the header title kept: a header is a line or two, not a page."""


def card_message(message: ChatMessage, title: str) -> dict[str, Any]:
    """The message of one card: ``title`` (HTML-escaped, like every ``message`` text)."""
    plain = " ".join(html.unescape(title).split())
    if len(plain) > TITLE_CHARS:
        plain = plain[: TITLE_CHARS - 1] + "…"
    sections: list[dict[str, Any]] = [
        {
            "widgets": [
                {"decoratedText": {"topLabel": label, "text": value}}
                for label, value in message.fields
            ]
        }
    ]
    if message.changes:
        text = "<br>".join(message.changes.splitlines())
        sections.append({"header": "Changes", "widgets": [{"textParagraph": {"text": text}}]})
    mark = COLOUR_MARKS.get(message.colour, "")
    header = {"title": f"{mark} {plain}".strip(), "subtitle": message.footer}
    return {
        "fallbackText": plain,
        "cardsV2": [{"cardId": CARD_ID, "card": {"header": header, "sections": sections}}],
    }


class GoogleChatSink(ChatApiSink):
    """Post each event as a card to a Google Chat incoming webhook (``config.url``).

    ``template`` renders the header title; ``threadKey`` keeps every message in one thread.
    """

    kind = "googlechat"
    markup: ClassVar[Markup] = "html"

    def __init__(
        self,
        name: str,
        config: GoogleChatSinkConfig,
        transport: httpx.BaseTransport | None = None,
        **kw: Any,
    ) -> None:
        super().__init__(name, config, transport, **kw)
        self._thread_key = config.thread_key
        self._url = self.endpoint.url
        if self._thread_key is not None:
            self._url = self._url.copy_merge_params(
                {"messageReplyOption": "REPLY_MESSAGE_FALLBACK_TO_NEW_THREAD"}
            )

    def target(self, event: Event) -> httpx.URL:
        return self._url

    def payload(self, event: Event, message: ChatMessage, text: str | None) -> dict[str, Any]:
        doc = card_message(message, message.title if text is None else text)
        if self._thread_key is not None:
            doc["thread"] = {"threadKey": self._thread_key}
        return doc
