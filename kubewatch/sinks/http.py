"""Sinks that send each event as one HTTP request: :class:`HttpSink`, and :class:`ChatSink`
for chat webhooks (the shared :class:`~kubewatch.render.ChatMessage`, laid out by each
service's module).

Webhook, Teams, Discord, Mattermost and CloudEvents differ in the body they build and a
few headers; how they reach the receiver and how its answer is classified (the outcome
table, one deadline per attempt, no redirects, secrets kept out of messages) is
:mod:`kubewatch.sinks.endpoint`'s job. Every body is data encoded by :func:`encode_json`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, ClassVar, NamedTuple, Protocol

import httpx
import orjson

from kubewatch.config import format_path
from kubewatch.errors import PermanentError
from kubewatch.events import Event
from kubewatch.render import ChatMessage, Markup, Template, chat_message, compile_template
from kubewatch.sinks.base import SinkBase
from kubewatch.sinks.endpoint import (
    BODY_EXCERPT_CHARS,
    DEFAULT_RETRY_AFTER,
    USER_AGENT,
    HttpEndpoint,
    HttpSettings,
    parse_retry_after,
)

__all__ = [
    "BODY_EXCERPT_CHARS",
    "DEFAULT_RETRY_AFTER",
    "USER_AGENT",
    "ChatSettings",
    "ChatSink",
    "HttpEndpoint",
    "HttpSettings",
    "HttpSink",
    "Request",
    "encode_json",
    "parse_retry_after",
]


def encode_json(document: Any, what: str) -> bytes:
    """``document`` as compact UTF-8 JSON (orjson); an unencodable value is permanent.

    Every HTTP body is built as data and encoded here, never by string concatenation,
    so object text can never break out of its JSON string. ``what`` names the event in
    the error (an integer beyond 64 bits in a change value is the usual cause).
    """
    try:
        return orjson.dumps(document)
    except orjson.JSONEncodeError as exc:
        raise PermanentError(f"{what} cannot be encoded as JSON: {exc}") from exc


class Request(NamedTuple):
    """What a sink sends for one event: the body and the headers of this request only."""

    body: bytes
    headers: Mapping[str, str] = {}


class HttpSink(SinkBase):
    """A sink that sends each event as one HTTP request to one :class:`HttpEndpoint`.

    Subclasses set ``kind`` (``discord``: names the sink in messages), optionally
    ``method`` and ``content_type``, and implement :meth:`request`. Thread-safe as long
    as :meth:`request` is (it only reads what ``__init__`` set).
    """

    kind: ClassVar[str]
    method: str = "POST"
    content_type: ClassVar[str] = "application/json"

    def __init__(
        self,
        name: str,
        config: HttpSettings,
        transport: httpx.BaseTransport | None = None,
        *,
        clock: Callable[[], float] = time.time,
        retry_after_from_body: Callable[[str], float | None] | None = None,
        secrets: Iterable[str] = (),
    ) -> None:
        self.name = name
        self.clock = clock
        self.endpoint = HttpEndpoint(
            self.kind,
            name,
            config,
            transport,
            clock=clock,
            content_type=self.content_type,
            retry_after_from_body=retry_after_from_body,
            secrets=secrets,
        )

    def request(self, event: Event) -> Request:
        """The request for ``event``; may raise ``PermanentError`` (unencodable event)."""
        raise NotImplementedError

    def preview(self, event: Event) -> str:
        body = self.request(event).body
        try:
            return orjson.dumps(orjson.loads(body), option=orjson.OPT_INDENT_2).decode()
        except orjson.JSONDecodeError:
            return body.decode("utf-8", "replace")

    def send(self, event: Event) -> None:
        if self.endpoint.closed:  # before rendering: a closed sink does no work
            raise PermanentError(f"{self.endpoint.label} is closed")
        body, headers = self.request(event)
        self.endpoint.send(body, method=self.method, headers=headers)

    def close(self) -> None:
        self.endpoint.close()


class ChatSettings(HttpSettings, Protocol):
    """The keys of a chat webhook config: HTTP plus ``template``."""

    @property
    def template(self) -> str | None: ...


class ChatSink(HttpSink):
    """A chat webhook: :func:`~kubewatch.render.chat_message` laid out by :meth:`payload`.

    ``template`` (``sinks.<name>.template``) is compiled for the service's ``markup`` at
    build time, so a mistake fails the start, not an event; at send time it renders the
    message's title (its main text), falling back to the default title when it fails for
    one event (:meth:`~kubewatch.render.Template.render_or`, logged, never raised).
    Every text in the :class:`~kubewatch.render.ChatMessage` is escaped for ``markup``
    already; the payload is data encoded by orjson (:func:`encode_json`).
    """

    markup: ClassVar[Markup] = "markdown"

    def __init__(
        self,
        name: str,
        config: ChatSettings,
        transport: httpx.BaseTransport | None = None,
        *,
        clock: Callable[[], float] = time.time,
        retry_after_from_body: Callable[[str], float | None] | None = None,
        secrets: Iterable[str] = (),
    ) -> None:
        # Compiled before the client exists: a bad template leaves nothing open behind.
        self._template: Template | None = None
        if config.template is not None:
            path = format_path(("sinks", name, "template"))
            self._template = compile_template(
                config.template, markup=self.markup, kind="text", path=path
            )
        super().__init__(
            name,
            config,
            transport,
            clock=clock,
            retry_after_from_body=retry_after_from_body,
            secrets=secrets,
        )

    def request(self, event: Event) -> Request:
        message = chat_message(event, self.markup)
        text = None
        if self._template is not None:
            text = self._template.render_or(event, lambda _: message.title)
            if not text.strip():  # a message without its main text helps nobody
                text = message.title
        return Request(encode_json(self.payload(event, message, text), f"event {event.id}"))

    def payload(self, event: Event, message: ChatMessage, text: str | None) -> dict[str, Any]:
        """The service's JSON document; ``text`` is the template's output, or None."""
        raise NotImplementedError
