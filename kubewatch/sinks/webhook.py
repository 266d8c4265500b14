"""The webhook sink: send the event JSON to an HTTP(S) endpoint, optionally signed.

With ``bodyTemplate`` the body is that template's rendering instead (JSON, checked at
load; ``markup`` says how interpolated object text is escaped, e.g. ``slack`` for a Slack
incoming webhook). When it fails for one event, the event JSON is sent instead and the
failure logged (:meth:`kubewatch.render.Template.render_or`).

Every request carries ``X-Kubewatch-Event-Id`` (delivery is at-least-once: receivers
de-duplicate on it). With ``secret``, every *attempt* is signed afresh:

- ``X-Kubewatch-Timestamp: <unix seconds>``
- ``X-Kubewatch-Signature: v1=<hex HMAC-SHA256>`` of ``<timestamp>.<body>`` (the header's
  digits, a dot, the exact body bytes), keyed with the secret's UTF-8 bytes.

The timestamp lets a receiver refuse replays (README: accept 5 minutes of skew, compare
in constant time); ``v1=`` names the scheme so that a later one can be added beside it.

Status mapping, TLS and secret handling: :mod:`kubewatch.sinks.endpoint`.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable

import httpx

from kubewatch.config import WebhookSinkConfig
from kubewatch.events import Event
from kubewatch.render import compile_sink_rendering
from kubewatch.sinks.endpoint import parse_retry_after
from kubewatch.sinks.http import HttpSink, Request
from kubewatch.sinks.stdout import render_json

__all__ = [
    "EVENT_ID_HEADER",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "WebhookSink",
    "parse_retry_after",
    "sign",
]

EVENT_ID_HEADER = "X-Kubewatch-Event-Id"
"""Carries :attr:`Event.id`: delivery is at-least-once, receivers de-duplicate on it."""

TIMESTAMP_HEADER = "X-Kubewatch-Timestamp"
"""Unix seconds of the attempt: signed with the body, so a receiver can refuse replays."""

SIGNATURE_HEADER = "X-Kubewatch-Signature"
"""``v1=<hex HMAC-SHA256 of "<timestamp>.<body>">``."""


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The ``X-Kubewatch-Signature`` value of ``body`` sent at ``timestamp``."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return f"v1={mac.hexdigest()}"


class WebhookSink(HttpSink):
    """Send each event's JSON (or ``bodyTemplate``) to ``config.url`` with ``config.method``.

    Headers: ``Content-Type: application/json``, ``User-Agent: kubewatch/<version>``,
    then the configured ``headers`` (which may override those two), and per request
    ``X-Kubewatch-Event-Id`` and, with ``secret``, the signature headers (which no
    configured header can override). ``clock`` (Unix seconds) dates signatures and
    ``Retry-After``; tests pass a fixed one.

    A bad ``bodyTemplate`` raises :class:`~kubewatch.errors.ConfigErrors` here.
    """

    kind = "webhook"

    def __init__(
        self,
        name: str,
        config: WebhookSinkConfig,
        transport: httpx.BaseTransport | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        # Compiled before the client exists: a bad template leaves nothing open behind.
        self._body_template = compile_sink_rendering(name, config).body
        secrets = (config.secret,) if config.secret else ()
        super().__init__(name, config, transport, clock=clock, secrets=secrets)
        self.method = config.method
        self._secret = config.secret

    def request(self, event: Event) -> Request:
        if self._body_template is None:
            body = render_json(event).encode()
        else:
            body = self._body_template.render_or(event, render_json).encode()
        headers = {EVENT_ID_HEADER: event.id}
        if self._secret is not None:
            # Per attempt: a retry is signed with its own time, never replayed as it was.
            timestamp = str(int(self.clock()))
            headers[TIMESTAMP_HEADER] = timestamp
            headers[SIGNATURE_HEADER] = sign(self._secret, timestamp, body)
        return Request(body, headers)
