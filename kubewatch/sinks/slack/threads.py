"""Threads for the bot sink: one root message per object, its later events as replies, and
(``updateRoot``) the root edited in place to show the object's latest state.

How one event goes out with ``thread: object``:

- a digest, or the first event about an object (or one whose thread is older than
  ``threadMaxAge`` or was forgotten): ``chat.postMessage`` — this message is the root;
- a later event: with ``updateRoot`` first ``chat.update`` of the root (the latest state
  and a short history line), then ``chat.postMessage`` with the root's ``thread_ts``.

The edit comes before the reply because it is idempotent: when the reply fails and the
delivery layer retries the event, the edit is repeated harmlessly (the history notes each
event once, by id) and the reply is posted once. A root deleted in the channel
(``message_not_found``, ``thread_not_found``, ``cant_update_message``) is forgotten and the
event posted as a new root, within the same attempt: never an error loop.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from kubewatch.events import Event, EventType
from kubewatch.sinks.slack.blocks import SECTION_CHARS, fit_text
from kubewatch.sinks.threads import ThreadBook, ThreadRoot, thread_key

__all__ = ["ROOT_GONE_CODES", "RootGone", "SlackThreads", "history_line"]

ROOT_GONE_CODES = frozenset({"message_not_found", "thread_not_found", "cant_update_message"})
"""Slack's answers meaning the root message is no more: start a new thread."""

_VERBS = {EventType.CREATE: "created", EventType.UPDATE: "updated", EventType.DELETE: "deleted"}

Post = Callable[[dict[str, Any], "ThreadRoot | None"], tuple[str, str]]
"""Post a payload (as a reply under the root, if given); returns (channel ID, ts)."""
Update = Callable[[ThreadRoot, dict[str, Any]], None]
"""Replace the root message's content."""


class RootGone(Exception):
    """Slack says the root message no longer exists (one of :data:`ROOT_GONE_CODES`)."""


def history_line(event: Event) -> str:
    """``22:10:51 updated``, or the Kubernetes Event's reason for an Event alert."""
    at = event.observed_at[11:19]
    what = event.k8s_event.reason if event.k8s_event is not None else _VERBS[event.type]
    return f"{at} {what}"


def with_history(payload: dict[str, Any], history: tuple[str, ...]) -> dict[str, Any]:
    """The root's new content: the latest event's message and a context line of history."""
    line = fit_text("History: " + " · ".join(history), SECTION_CHARS)
    context = {"type": "context", "elements": [{"type": "mrkdwn", "text": line, "verbatim": True}]}
    return {**payload, "blocks": [*payload.get("blocks", []), context]}


class SlackThreads:
    """Sends events of one sink into per-object threads; see the module docstring."""

    def __init__(
        self,
        book: ThreadBook,
        *,
        update_root: bool,
        post: Post,
        update: Update,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.book = book
        self._update_root = update_root
        self._post = post
        self._update = update
        self._clock = clock

    def send(self, event: Event, payload: dict[str, Any]) -> None:
        """One attempt; Slack's errors other than :class:`RootGone` pass through."""
        key = thread_key(event)
        if key is None:  # a digest stands for many objects: one message, no thread
            self._post(payload, None)
            return
        root = self.book.get(key)
        if root is not None:
            try:
                self._reply(key, root, event, payload)
                return
            except RootGone:
                self.book.forget(key)
        channel, ts = self._post(payload, None)
        if not ts:  # no message id in the answer: nothing to thread under
            return
        self.book.put(key, ThreadRoot(channel, ts, self._clock(), (history_line(event),), event.id))

    def _reply(self, key: str, root: ThreadRoot, event: Event, payload: dict[str, Any]) -> None:
        if self._update_root:
            noted = self.book.note(key, history_line(event), event.id) or root
            self._update(noted, with_history(payload, noted.history))
        self._post(payload, root)
