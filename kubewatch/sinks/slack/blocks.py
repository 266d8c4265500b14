"""The Block Kit message, built by small pure functions from the shared chat content and
cut to Slack's limits."""

from __future__ import annotations

import logging
import re
from typing import Any

from kubewatch.render import ChatMessage

log = logging.getLogger("kubewatch.sinks.slack")

SECTION_CHARS = 3000
"""Slack's limit on a section's text (and on the fallback text we send)."""
FIELD_CHARS = 2000
"""Slack's limit on one section field's text."""
MAX_FIELDS = 10
"""Slack's limit on fields per section."""

_CUT = "… (cut: Slack allows {limit} characters)"
"""Ends a text cut to a Slack limit, so a reader knows there was more."""

_PARTIAL_ENTITY = re.compile(r"&[#a-zA-Z0-9]*$")
"""An escape sequence (``&amp;``) cut in half at the end of a text: drop the half."""

MIN_SECRET_LEN = 4
"""Shorter strings are not credentials, and scrubbing them would garble messages."""


# --------------------------------------------------------------------------- layout


def fit_text(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters with a marker; never half an escape sequence."""
    if len(text) <= limit:
        return text
    marker = _CUT.format(limit=limit)
    head = _PARTIAL_ENTITY.sub("", text[: max(0, limit - len(marker))])
    return head + marker


def fit_code_block(changes: str, limit: int = SECTION_CHARS) -> str:
    """``changes`` as a ``` block of at most ``limit`` characters, cut at whole lines.

    Lines that do not fit are counted in a last line (``… 7 more lines cut``); a single
    line longer than the whole block is cut like :func:`fit_text`.
    """
    fence = "```\n{}\n```"
    room = limit - len(fence.format(""))
    if len(changes) <= room:
        return fence.format(changes)
    lines = changes.split("\n")
    kept: list[str] = []
    used = 0
    for i, line in enumerate(lines):
        rest = len(lines) - i
        marker = (
            f"… {rest} more line{'' if rest == 1 else 's'} cut (Slack allows {limit} characters)"
        )
        last = i == len(lines) - 1  # the last line needs no marker after it
        if used + len(line) + (0 if last else 1 + len(marker)) > room:
            if not kept:  # not even the first line fits: cut inside it
                return fence.format(fit_text(line, room))
            kept.append(marker)
            break
        kept.append(line)
        used += len(line) + 1
    return fence.format("\n".join(kept))


def _mrkdwn(text: str, limit: int = SECTION_CHARS, *, verbatim: bool = True) -> dict[str, Any]:
    """A mrkdwn text object. ``verbatim``: Slack turns no plain text into links or
    mentions; object text is escaped already, this is a second line of defence."""
    return {"type": "mrkdwn", "text": fit_text(text, limit), "verbatim": verbatim}


def slack_blocks(message: ChatMessage, text: str | None = None) -> list[dict[str, Any]]:
    """The top-level blocks: one section with the title, or with ``text`` (a template's
    rendering, the user's own mrkdwn, so Slack may link and format it)."""
    if text is None:
        return [{"type": "section", "text": _mrkdwn(message.title)}]
    return [{"type": "section", "text": _mrkdwn(text, verbatim=False)}]


def slack_attachments(message: ChatMessage, *, changes: bool = True) -> list[dict[str, Any]]:
    """One attachment: the colour bar around fields, the changes (unless ``changes`` is
    False: a template replaced them) and the footer."""
    blocks: list[dict[str, Any]] = []
    if message.fields:
        blocks.append(
            {
                "type": "section",
                "fields": [
                    _mrkdwn(f"*{label}*\n{value}", FIELD_CHARS)
                    for label, value in message.fields[:MAX_FIELDS]
                ],
            }
        )
    if changes and message.changes:
        blocks.append(
            {
                "type": "section",
                "text": {
                    "type": "mrkdwn",
                    "text": fit_code_block(message.changes),
                    "verbatim": True,
                },
            }
        )
    blocks.append({"type": "context", "elements": [_mrkdwn(message.footer)]})
    return [{"color": message.colour, "blocks": blocks}]


def slack_payload(message: ChatMessage, text: str | None = None) -> dict[str, Any]:
    """``text`` / ``blocks`` / ``attachments`` of one message, for either API.

    ``text`` is a template's rendering; it replaces the title and the changes. Link
    previews are off: a URL in object text must not make Slack fetch it.
    """
    return {
        "text": fit_text(text if text is not None else message.fallback, SECTION_CHARS),
        "blocks": slack_blocks(message, text),
        "attachments": slack_attachments(message, changes=text is None),
        "unfurl_links": False,
        "unfurl_media": False,
    }
