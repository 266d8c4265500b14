"""Escaping text from cluster objects for the markup of the receiving chat or page.

Names, labels, annotation values and change values are written by whoever can edit
objects in the cluster, which is rarely who reads the notifications. Every piece of such
text is escaped here, at the edge, for the markup the receiver interprets, so that it
always reads as the plain text it is: never as a mention that pings a channel, never as
a link whose text hides its target, never as an HTML tag.

================  =====================================================================
markup            what :func:`escape` does
================  =====================================================================
``none``          nothing: the receiver shows text as text (stdout, generic webhooks)
``slack``         Slack mrkdwn: ``&`` ``<`` ``>`` → ``&amp;`` ``&lt;`` ``&gt;`` (Slack's
                  own rule: it turns ``<!channel>``, ``<@U123>``, ``<#C1>`` and
                  ``<https://evil|click>`` into inert text), and mentions defused (below)
``markdown``      Discord, Mattermost, Teams: a backslash before each of
                  ``\\ * _ ~ ` | < > [ ] ( ) #`` (links ``[t](u)``, autolinks ``<u>``,
                  Discord's ``<@123>`` / ``<#1>`` / ``<t:1>``, emphasis, code, quotes,
                  headings, spoilers and tables become literal), and mentions defused
``html``          :func:`html.escape` with quotes: ``& < > " '`` become entities
================  =====================================================================

**Mentions** (``slack`` and ``markdown``). Plain ``@everyone`` / ``@here`` ping in
Discord, ``@channel`` / ``@all`` / ``@username`` in Mattermost, and in Slack as soon as
a message is posted with ``link_names``. A ZERO WIDTH SPACE (U+200B) goes right after
such an ``@``: the text looks the same, no client parses it as a mention (the technique
``discord.py``'s ``escape_mentions`` uses). An ``@`` is defused when it starts a word
and is followed by a non-space character, when ``everyone``, ``here``, ``channel``,
``all`` or ``group`` follows it in any case anywhere, and when it ends the text (a template
may put another value right after it). An e-mail address (``ops@example.com``) keeps its
``@`` untouched, so it can still be copied.

**Limits.** Bare URLs (``https://example.com``) stay as they are; clients may make them
clickable, but such a link shows its real target, so nothing is disguised. Slack mrkdwn
has no way to escape ``*bold*`` or ``_italic_`` short of inserting invisible characters,
so emphasis in object text may still render in Slack: it changes looks, never meaning
or reach.
"""

from __future__ import annotations

import html
import re
from typing import Literal

__all__ = ["MARKUPS", "ZWSP", "Markup", "escape"]

Markup = Literal["none", "slack", "markdown", "html"]
"""The markups a sink can declare (``markup:`` in the sink config)."""

MARKUPS: tuple[Markup, ...] = ("none", "slack", "markdown", "html")

ZWSP = "\u200b"
"""ZERO WIDTH SPACE, put after the ``@`` of a would-be mention."""

_MENTION = re.compile(r"(?<![A-Za-z0-9])@(?=\S)|@(?=(?i:everyone|here|channel|all|group)|\Z)")
"""An ``@`` some client would read as a mention; see the module docstring."""

_MARKDOWN_META = re.compile(r"([\\*_~`|<>\[\]()#])")
"""Characters that start markdown syntax in at least one of Discord, Mattermost, Teams."""

_SLACK = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;"})


def defuse_mentions(text: str) -> str:
    return _MENTION.sub("@" + ZWSP, text) if "@" in text else text


def escape(text: str, markup: Markup) -> str:
    """``text`` made inert for ``markup``: it reads as itself, and never pings or links.

    >>> escape("<!channel> deploy @here", "slack")
    '&lt;!channel&gt; deploy @\\u200bhere'
    >>> escape("[click](https://evil)", "markdown")
    '\\\\[click\\\\]\\\\(https://evil\\\\)'
    """
    if markup == "none":
        return text
    if markup == "slack":
        return defuse_mentions(text.translate(_SLACK))
    if markup == "markdown":
        return defuse_mentions(_MARKDOWN_META.sub(r"\\\1", text))
    if markup == "html":
        return html.escape(text, quote=True)
    raise ValueError(f"unknown markup {markup!r}; known: {', '.join(MARKUPS)}")
