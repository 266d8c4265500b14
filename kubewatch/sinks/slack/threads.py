"""Threads for the bot sink: one root message per object, its later events as replies, and
(``updateRoot``) the root edited in place to show the object's latest state.

The bookkeeping and the order of calls are :class:`kubewatch.sinks.threads.ObjectThreads`
(shared by every chat sink); what is Slack's own is here: ``chat.postMessage`` posts
(a reply names the root's ``thread_ts``), ``chat.update`` edits the root, the history is a
context block under it, and the answers that mean the root is gone
(:data:`ROOT_GONE_CODES`).
"""

from __future__ import annotations

from typing import Any

from kubewatch.sinks.slack.blocks import SECTION_CHARS, fit_text
from kubewatch.sinks.threads import ObjectThreads, RootGone, history_line

__all__ = ["ROOT_GONE_CODES", "ObjectThreads", "RootGone", "history_line", "with_history"]

ROOT_GONE_CODES = frozenset({"message_not_found", "thread_not_found", "cant_update_message"})
"""Slack's answers meaning the root message is no more: start a new thread."""


def with_history(payload: dict[str, Any], history: tuple[str, ...]) -> dict[str, Any]:
    """The root's new content: the latest event's message and a context line of history."""
    line = fit_text("History: " + " · ".join(history), SECTION_CHARS)
    context = {"type": "context", "elements": [{"type": "mrkdwn", "text": line, "verbatim": True}]}
    return {**payload, "blocks": [*payload.get("blocks", []), context]}
