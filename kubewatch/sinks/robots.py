"""What the group robots of DingTalk and WeCom share: a markdown message, escaped, within
a limit in bytes, whose refusals come as ``{"errcode": …, "errmsg": …}`` in a 200 answer.

Their markdown is a subset (bold, quotes, lists, links; no code blocks), so the changes
are quoted lines, each escaped for markdown like every other text from cluster objects
(:mod:`kubewatch.render.escape`): links, emphasis and mention syntax (``@all``, WeCom's
``<@userid>``) arrive as literal text. Neither robot mentions anyone unless the request
names them (DingTalk's ``at``), which kubewatch never does.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

from kubewatch.errors import DeliveryError
from kubewatch.render import ChatMessage, Markup, escape
from kubewatch.sinks.chatapi import BodyCodes, ChatApiSink, Layout, compose, json_object, utf8_len

__all__ = ["MARKDOWN", "RobotSink"]

MARKDOWN = Layout(
    title="**{}**",
    field="- **{label}:** {value}",
    field_separator="\n",
    changes=lambda lines: "\n".join(f"> {line}" for line in lines),
    footer="{}",
    separator="\n\n",
    cut_tail=re.compile(r"(?<!\\)(?:\\\\)*\\$"),
)


class RobotSink(ChatApiSink):
    """A group robot: ``codes`` reads its verdict, ``limit`` bytes bound its markdown."""

    markup: ClassVar[Markup] = "markdown"
    codes: ClassVar[BodyCodes]
    limit: ClassVar[int]

    def markdown(self, message: ChatMessage, title: str, layout: Layout = MARKDOWN) -> str:
        """The markdown text of ``message`` within :attr:`limit` bytes."""
        lines = [escape(line, "markdown") for line in message.changes.splitlines()]
        return compose(message, title, layout, limit=self.limit, measure=utf8_len, lines=lines)

    def verdict(self, body: str) -> DeliveryError | None:
        doc: dict[str, Any] | None = json_object(body)
        if doc is None:
            return None
        return self.codes.verdict(self.endpoint.label, doc, self.endpoint.scrub)
