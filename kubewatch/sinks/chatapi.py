"""What the chat APIs of Google Chat, Telegram, Matrix, DingTalk, Feishu and WeCom share:
render the text, send one JSON request, read the verdict in the answer.

:class:`ChatApiSink` is a :class:`~kubewatch.sinks.http.ChatSink` (same template, same
escaped :class:`~kubewatch.render.ChatMessage`, same status table) with three hooks a
service may fill:

- :meth:`ChatApiSink.target`: the URL of one request, when it is not the configured one
  (DingTalk signs in the query, Matrix names a transaction in the path);
- :meth:`ChatApiSink.verdict`: an error read from a ``200`` answer's body (DingTalk and
  WeCom ``errcode``, Feishu ``code``, Telegram ``ok: false``): robots answer 200 to a
  refused message, and that must not count as delivered;
- :meth:`ChatApiSink.redact`: what of the body ``kubewatch replay --dry-run`` must not show
  (Feishu's ``sign``).

Text-only services lay the message out with one :class:`Layout` (HTML for Telegram and
Matrix, markdown for DingTalk and WeCom) and keep their length limit by
:func:`compose`: changes are dropped from the end first (a last line counts them), then
the title is cut with ``…``, never in the middle of an escape.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson

from kubewatch.errors import DeliveryError, PermanentError, RateLimited, RetryableError
from kubewatch.events import Event
from kubewatch.render import ChatMessage
from kubewatch.sinks.http import BODY_EXCERPT_CHARS, ChatSink

__all__ = [
    "COLOUR_MARKS",
    "REDACTED",
    "ApiSettings",
    "BodyCodes",
    "ChatApiSink",
    "Layout",
    "compose",
    "json_object",
    "redacted_url",
    "utf8_len",
]

REDACTED = "<redacted>"

_TOKEN_CHARS = 16
"""A URL path segment this long is shown as ``<redacted>`` in a preview: it is a token or
a key (``bot123:ABC…``, a Feishu hook id), as :mod:`kubewatch.sinks.http` assumes too."""

COLOUR_MARKS = {"#2EB67D": "🟢", "#ECB22E": "🟡", "#E01E5A": "🔴", "#1D9BD1": "🔵"}
"""The colour of a change as a mark before the title, for services without colours."""


@dataclass(frozen=True)
class ApiSettings:
    """The HTTP settings of a chat API that is configured by server and token rather than
    by one webhook URL (:class:`~kubewatch.sinks.http.ChatSettings`)."""

    url: str
    timeout: float
    ca_file: str | None
    template: str | None
    headers: dict[str, str] = field(default_factory=dict)
    insecure_skip_verify: bool = False


def json_object(body: str) -> dict[str, Any] | None:
    """``body`` as a JSON object, or None when it is not one."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    return doc if isinstance(doc, dict) else None


def redacted_url(url: httpx.URL) -> str:
    """``url`` with each query value and each token-long path segment as ``<redacted>``."""
    port = f":{url.port}" if url.port is not None else ""
    path = "/".join(
        REDACTED if len(urllib.parse.unquote(part)) >= _TOKEN_CHARS else part
        for part in url.raw_path.decode().split("?")[0].split("/")
    )
    query = urllib.parse.parse_qsl(url.query.decode(), keep_blank_values=True)
    shown = "&".join(f"{key}={REDACTED}" for key, _ in query)
    return f"{url.scheme}://{url.host}{port}{path}" + (f"?{shown}" if shown else "")


@dataclass(frozen=True)
class BodyCodes:
    """How a robot says "refused" in a 200 answer: ``{"errcode": 130101, "errmsg": …}``.

    ``0`` (or no code at all) is success; a code in ``rate_limited`` waits ``wait``
    seconds; one in ``retryable`` (the service was busy) is retried; any other is
    permanent, quoting the service's message.
    """

    code: tuple[str, ...]
    """Keys the code may have, first found wins (Feishu answers ``code`` or the older
    ``StatusCode``)."""
    message: tuple[str, ...]
    rate_limited: frozenset[int]
    wait: float
    retryable: frozenset[int] = frozenset({-1})

    def verdict(
        self, label: str, doc: Mapping[str, Any], scrub: Callable[[str], str]
    ) -> DeliveryError | None:
        code = next((doc[key] for key in self.code if key in doc), 0)
        if code == 0 or isinstance(code, bool) or not isinstance(code, int):
            return None
        text = next((str(doc[key]) for key in self.message if key in doc), "")
        said = " ".join(scrub(text).split())[:BODY_EXCERPT_CHARS]
        message = f"{label}: refused with code {code}" + (f": {said}" if said else "")
        if code in self.rate_limited:
            return RateLimited(message, self.wait)
        if code in self.retryable:
            return RetryableError(message)
        return PermanentError(message)


class ChatApiSink(ChatSink):
    """A chat API: one JSON request per event, and a verdict read from the answer."""

    def target(self, event: Event) -> httpx.URL:
        """The URL of the request for ``event`` (default: the configured one)."""
        return self.endpoint.url

    def verdict(self, body: str) -> DeliveryError | None:
        """The error a 2xx answer's ``body`` reports, or None when it reports success."""
        return None

    def redact(self, doc: dict[str, Any]) -> dict[str, Any]:
        """``doc`` as a preview may show it (default: all of it; no secret is in it)."""
        return doc

    def send(self, event: Event) -> None:
        if self.endpoint.closed:  # before rendering: a closed sink does no work
            raise PermanentError(f"{self.endpoint.label} is closed")
        body, headers = self.request(event)
        answer = self.endpoint.send(
            body, method=self.method, headers=headers, url=self.target(event)
        )
        error = self.verdict(answer)
        if error is not None:
            raise error

    def preview(self, event: Event) -> str:
        """The method, the URL with its secrets as ``<redacted>``, and the JSON body."""
        doc = self.redact(orjson.loads(self.request(event).body))
        shown = orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode()
        return f"{self.method} {redacted_url(self.target(event))}\n{shown}"


# -- text layout ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Layout:
    """How one markup writes the parts of a message; each ``{}`` takes escaped text."""

    title: str
    field: str
    """``{label}`` and ``{value}``."""
    field_separator: str
    changes: Callable[[list[str]], str]
    """The change lines (already escaped) as one block."""
    footer: str
    separator: str
    """Between the blocks."""
    cut_tail: re.Pattern[str]
    """What may not end a cut text: half an escape (``&am``, a lone ``\\``)."""


def utf8_len(text: str) -> int:
    """Bytes of ``text`` in UTF-8: WeCom's and DingTalk's limits count bytes."""
    return len(text.encode())


def _cut(text: str, room: int, layout: Layout, measure: Callable[[str], int]) -> str:
    """``text`` cut to ``room`` (as ``measure`` counts), ending in ``…``, escapes whole."""
    if measure(text) <= room:
        return text
    cut = text
    while cut and measure(cut + "…") > room:
        over = measure(cut + "…") - room
        cut = cut[: -max(1, over // 4)]  # a character takes 1 to 4 bytes: never too far
    return layout.cut_tail.sub("", cut) + "…"


def compose(
    message: ChatMessage,
    title: str,
    layout: Layout,
    *,
    limit: int,
    measure: Callable[[str], int] = len,
    lines: list[str] | None = None,
) -> str:
    """The message as one text in ``layout``, at most ``limit`` long as ``measure`` counts.

    ``lines`` are the change lines (default: ``message.changes``, one per line). When the
    whole does not fit, changes go from the end and a last line says how many; when the
    title alone is too long it is cut.
    """
    changes = message.changes.splitlines() if lines is None else lines
    fields = layout.field_separator.join(
        layout.field.format(label=label, value=value) for label, value in message.fields
    )
    footer = layout.footer.format(message.footer)

    def whole(head: str, shown: list[str]) -> str:
        blocks = [layout.title.format(head), fields]
        if shown:
            blocks.append(layout.changes(shown))
        return layout.separator.join([*blocks, footer])

    for n in range(len(changes), -1, -1):
        rest = len(changes) - n
        shown = changes[:n] + ([f"… {rest} more line{'' if rest == 1 else 's'}"] if rest else [])
        text = whole(title, shown)
        if measure(text) <= limit:
            return text
    room = limit - measure(whole("", []))
    return whole(_cut(title, max(0, room), layout, measure), [])
