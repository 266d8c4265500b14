"""A chat sink over HTTP whose answers name the message posted, so its events can go into
per-object threads (``thread: object``): Mattermost's REST API and Discord's webhooks.

The threading itself is :class:`~kubewatch.sinks.threads.ObjectThreads`, shared with the
Slack bot; a service's sink says how to post (a root or a reply), how to edit the root
and how the history shows on it. A ``404`` to a reply or an edit means the root is gone
(deleted in the chat): :class:`~kubewatch.sinks.threads.RootGone`, so a new root is posted
in the same attempt.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

import httpx
import orjson

from kubewatch.errors import PermanentError
from kubewatch.events import Event
from kubewatch.sinks.chatapi import json_object
from kubewatch.sinks.http import ChatSettings, ChatSink, encode_json
from kubewatch.sinks.threads import (
    RootGone,
    ThreadBooks,
    ThreadRoot,
    ThreadSettings,
    object_threads,
)

__all__ = ["ThreadedChatSettings", "ThreadedChatSink"]


class ThreadedChatSettings(ChatSettings, ThreadSettings, Protocol):
    """The keys of a threaded chat sink: a chat webhook's and the thread keys."""


class ThreadedChatSink(ChatSink):
    """A :class:`~kubewatch.sinks.http.ChatSink` that posts through :meth:`post`, into
    threads when ``thread: object``; ``books`` keeps the roots across reloads (and, with
    state, restarts), else this sink keeps its own."""

    def __init__(
        self,
        name: str,
        config: ThreadedChatSettings,
        transport: httpx.BaseTransport | None = None,
        *,
        books: ThreadBooks | None = None,
        **options: Any,
    ) -> None:
        super().__init__(name, config, transport, **options)
        self.threads = object_threads(
            books,
            name,
            config,
            post=self.post,
            update=self.update,
            with_history=self.with_history,
            clock=self.clock,
        )

    def send(self, event: Event) -> None:
        if self.endpoint.closed:  # before rendering: a closed sink does no work
            raise PermanentError(f"{self.endpoint.label} is closed")
        payload = orjson.loads(self.request(event).body)
        if self.threads is None:
            self.post(payload, None)
        else:
            self.threads.send(event, payload)

    def post(self, payload: dict[str, Any], root: ThreadRoot | None) -> tuple[str, str]:
        """Post ``payload`` (a reply under ``root``, if given): (channel, message id)."""
        raise NotImplementedError

    def update(self, root: ThreadRoot, payload: dict[str, Any]) -> None:
        """Replace the root message's content with ``payload``."""
        raise NotImplementedError

    def with_history(self, payload: dict[str, Any], history: tuple[str, ...]) -> dict[str, Any]:
        """The root's new content: ``payload`` with a line of ``history`` added."""
        raise NotImplementedError

    def refusal(self, status: int) -> str | None:
        """What to fix when the service answers ``status`` (401, 403), or None."""
        return None

    def call(
        self,
        method: str,
        url: httpx.URL,
        doc: Mapping[str, Any] | None,
        headers: Mapping[str, str] | None = None,
        *,
        root: ThreadRoot | None = None,
    ) -> dict[str, Any]:
        """One JSON request (no body when ``doc`` is None); the answer's JSON object ({}
        when it has none). A 404 to a request about ``root`` (a reply, an edit) is
        :class:`RootGone`."""
        body = b"" if doc is None else encode_json(dict(doc), f"{self.endpoint.label} message")
        try:
            answer = self.endpoint.send(body, method=method, url=url, headers=headers)
        except PermanentError as exc:
            if root is not None and exc.status == 404:
                raise RootGone(str(exc)) from None
            fix = None if exc.status is None else self.refusal(exc.status)
            if fix is not None:
                raise PermanentError(f"{exc} ({fix})") from None
            raise
        return json_object(answer) or {}
