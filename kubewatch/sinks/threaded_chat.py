"""A chat sink over HTTP whose answers name the message posted, so its events can go into
per-object threads (``thread: object``): Mattermost's REST API and Discord's webhooks.

The threading itself is :class:`~kubewatch.sinks.threads.ObjectThreads`, shared with the
Slack bot; a service's sink says how to post (a root or a reply), how to edit the root
and how the history shows on it. A ``404`` to a reply or an edit means the root is gone
(deleted in the chat): :class:`~kubewatch.sinks.threads.RootGone`, so a new root is posted
in the same attempt.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol

import httpx
import orjson

from kubewatch.errors import PermanentError
from kubewatch.events import Event
from kubewatch.sinks.chatapi import json_object
from kubewatch.sinks.http import ChatSettings, ChatSink, encode_json
from kubewatch.sinks.threads import ObjectThreads, RootGone, ThreadBooks, ThreadRoot

__all__ = ["ThreadSettings", "ThreadedChatSink"]


class ThreadSettings(ChatSettings, Protocol):
    """The keys of a threaded chat sink (``ThreadedChatBase`` in :mod:`kubewatch.config`)."""

    @property
    def thread(self) -> str: ...

    @property
    def update_root(self) -> bool: ...

    @property
    def thread_cache_size(self) -> int: ...

    @property
    def thread_max_age(self) -> float: ...


class ThreadedChatSink(ChatSink):
    """A :class:`~kubewatch.sinks.http.ChatSink` that posts through :meth:`post`, into
    threads when ``thread: object``; ``books`` keeps the roots across reloads (and, with
    state, restarts), else this sink keeps its own."""

    def __init__(
        self,
        name: str,
        config: ThreadSettings,
        transport: httpx.BaseTransport | None = None,
        *,
        clock: Callable[[], float] = time.time,
        books: ThreadBooks | None = None,
        retry_after_from_body: Callable[[str], float | None] | None = None,
        secrets: Iterable[str] = (),
    ) -> None:
        super().__init__(
            name,
            config,
            transport,
            clock=clock,
            retry_after_from_body=retry_after_from_body,
            secrets=secrets,
        )
        self.threads: ObjectThreads | None = None
        if config.thread == "object":
            book = (books or ThreadBooks()).book(
                name, config.thread_cache_size, config.thread_max_age
            )
            self.threads = ObjectThreads(
                book,
                update_root=config.update_root,
                post=self.post,
                update=self.update,
                with_history=self.with_history,
                clock=clock,
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
