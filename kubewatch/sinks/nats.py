"""The NATS sink: each event published to NATS JetStream and acknowledged by its stream.

The message: the subject from ``subject`` (default ``kubewatch.{cluster}.{kind}.{namespace}``),
the Event JSON as the payload (the webhook's body), and the headers ``Nats-Msg-Id: <event
id>`` and ``Content-Type: application/json``.

**Once, end to end.** :meth:`NatsSink.send` returns only when the stream answered with a
PubAck, so an event leaves the spool only once JetStream stored it. A retry after a lost
PubAck, or a restart after a ``kill -9`` between the PubAck and the spool's commit, sends
the same event again with the same ``Nats-Msg-Id`` (ids are stable): JetStream drops a
copy whose id it saw within the stream's ``duplicate_window`` (default 2 minutes) and
acknowledges it as a duplicate, which counts as delivered. A consumer therefore reads
each event once, as long as a retry comes within that window.

**Threads.** nats-py is asyncio. The sink owns one event loop on one thread
(``nats-<name>``) and one connection, made at the first send (a NATS server that is down
at start is a retryable failure, not a failed start) and kept; workers hand each publish
to that loop (:func:`asyncio.run_coroutine_threadsafe`) and wait for its outcome, at most
``timeout`` seconds for the whole attempt: (re)connecting, publishing, the PubAck. While
the connection is down, nats-py reconnects in the background.

Outcomes: PubAck (new or duplicate) → delivered; a timeout, no server, a connection lost
or reconnecting, no stream for the subject, a JetStream error 5xx → ``RetryableError``; a
payload over the server's limit, an invalid subject, refused credentials, a JetStream
error 4xx → ``PermanentError``. Messages name the servers by host only: URLs may hold a
``user:password@``, and the token and password never appear.
"""

from __future__ import annotations

import asyncio
import logging
import re
import ssl
import threading
import urllib.parse
from collections.abc import Coroutine
from typing import Any, TypeVar

import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext

from kubewatch.config.incident_sinks import NatsSinkConfig
from kubewatch.errors import DeliveryError, PermanentError, RetryableError
from kubewatch.events import Event
from kubewatch.scrub import Scrubber, secret_forms
from kubewatch.sinks.base import SinkBase
from kubewatch.sinks.stdout import render_json

__all__ = ["MSG_ID_HEADER", "NatsSink", "render_subject", "subject_token"]

MSG_ID_HEADER = "Nats-Msg-Id"
"""JetStream de-duplicates on it within the stream's duplicate window: the event id."""

CLOSE_TIMEOUT = 5.0
"""Seconds ``close`` waits for the connection to flush and close."""

_NOT_A_TOKEN = re.compile(r"[.*>\s\x00-\x1f\x7f]")
_FIELD = re.compile(r"\{(\w+)\}")
_T = TypeVar("_T")
log = logging.getLogger(__name__)

_PERMANENT: tuple[type[BaseException], ...] = (
    nats.errors.MaxPayloadError,
    nats.errors.BadSubjectError,
    nats.errors.BadHeaderError,
    nats.errors.AuthorizationError,
    nats.errors.InvalidUserCredentialsError,
)
"""Failures that the next attempt would meet again."""


def subject_token(value: str | None) -> str:
    """``value`` as one subject token: ``.``, ``*``, ``>``, spaces and controls → ``_``;
    ``_`` for nothing (a cluster-scoped object's namespace)."""
    return _NOT_A_TOKEN.sub("_", value) if value else "_"


def render_subject(template: str, event: Event) -> str:
    """The subject of ``event``: each ``{field}`` of ``template`` as one token."""
    fields = {
        "cluster": event.cluster,
        "kind": event.kind,
        "namespace": event.namespace,
        "name": event.name,
        "type": event.type.value,
        "resource": event.resource,
    }
    return _FIELD.sub(lambda m: subject_token(fields[m.group(1)]), template)


def _tls(config: NatsSinkConfig) -> ssl.SSLContext | None:
    """A TLS context when a CA, a client certificate or a ``tls://`` URL asks for one."""
    wants = any(u.lower().startswith(("tls://", "wss://")) for u in config.server_urls)
    if config.ca_file is None and config.cert_file is None and not wants:
        return None
    context = ssl.create_default_context(cafile=config.ca_file)
    if config.cert_file is not None and config.key_file is not None:
        context.load_cert_chain(config.cert_file, config.key_file)
    return context


def _hosts(urls: tuple[str, ...]) -> str:
    """``host:port`` of each server: what a message may show of the URLs."""
    shown = []
    for url in urls:
        parts = urllib.parse.urlsplit(url)
        shown.append(f"{parts.hostname}:{parts.port or 4222}")
    return ", ".join(shown)


class NatsSink(SinkBase):
    """Publish each event to JetStream and wait for its PubAck; thread-safe."""

    kind = "nats"

    def __init__(self, name: str, config: NatsSinkConfig) -> None:
        self.name = name
        self._config = config
        self._label = f"nats sink {name!r}"
        self._where = _hosts(config.server_urls)
        self._tls = _tls(config)  # before the thread: a bad certificate fails the start
        secrets = [*config.server_urls, config.token or "", config.password or ""]
        self._scrub = Scrubber(set().union(*(secret_forms(s) for s in secrets if s)))
        self._closed = False
        self._client: NatsClient | None = None  # only touched on the loop's thread
        self._js: JetStreamContext | None = None
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name=f"nats-{name}", daemon=True
        )
        self._thread.start()

    # -- on the loop's thread -------------------------------------------------------------

    async def _jetstream(self) -> JetStreamContext:
        """The connection's JetStream context, connecting first when there is none."""
        if self._js is not None and self._client is not None and not self._client.is_closed:
            return self._js
        config = self._config
        client = NatsClient()
        options: dict[str, Any] = {
            "servers": list(config.server_urls),
            "name": f"kubewatch {self.name}",
            "connect_timeout": config.timeout,
            "allow_reconnect": True,
            "max_reconnect_attempts": -1,  # never give up: the spool waits meanwhile
            "reconnect_time_wait": 1,
            "error_cb": self._on_error,
            "disconnected_cb": self._on_disconnected,
            "reconnected_cb": self._on_reconnected,
        }
        if config.creds_file is not None:
            options["user_credentials"] = config.creds_file
        if config.token is not None:
            options["token"] = config.token
        if config.user is not None:
            options["user"], options["password"] = config.user, config.password
        if self._tls is not None:
            options["tls"] = self._tls
        try:
            await client.connect(**options)
        except BaseException:
            await client.close()
            raise
        self._client, self._js = client, client.jetstream()
        log.info("%s: connected to %s", self._label, self._where)
        return self._js

    async def _publish(self, subject: str, body: bytes, msg_id: str) -> bool:
        js = await self._jetstream()
        headers = {MSG_ID_HEADER: msg_id, "Content-Type": "application/json"}
        ack = await js.publish(subject, body, timeout=self._config.timeout, headers=headers)
        return bool(ack.duplicate)

    async def _on_error(self, exc: Exception) -> None:
        log.warning("%s: %s", self._label, self._scrub(f"{type(exc).__name__}: {exc}"))

    async def _on_disconnected(self) -> None:
        if self._closed:  # our own close, not an outage
            return
        log.warning("%s: disconnected from %s; reconnecting", self._label, self._where)

    async def _on_reconnected(self) -> None:
        log.info("%s: reconnected", self._label)

    async def _shutdown(self) -> None:
        if self._client is not None and not self._client.is_closed:
            await self._client.close()

    # -- on the callers' threads ----------------------------------------------------------

    def _run(self, coro: Coroutine[Any, Any, _T], timeout: float) -> _T:
        """Run ``coro`` on the loop, at most ``timeout`` seconds; cancelled when late."""
        future = asyncio.run_coroutine_threadsafe(asyncio.wait_for(coro, timeout), self._loop)
        try:
            return future.result(timeout + 1.0)  # wait_for ends it first; this is a guard
        except BaseException:
            future.cancel()
            raise

    def preview(self, event: Event) -> str:
        subject = render_subject(self._config.subject, event)
        return f"PUB {subject}\n{MSG_ID_HEADER}: {event.id}\n{render_json(event)}"

    def send(self, event: Event) -> None:
        if self._closed:
            raise PermanentError(f"{self._label} is closed")
        subject = render_subject(self._config.subject, event)
        body = render_json(event).encode()
        try:
            duplicate = self._run(self._publish(subject, body, event.id), self._config.timeout)
        except Exception as exc:
            raise self._error(exc, subject) from None
        if duplicate:
            log.debug("%s: %s was stored before (Nats-Msg-Id %s)", self._label, subject, event.id)

    def _error(self, exc: Exception, subject: str) -> DeliveryError:
        if self._closed:
            return PermanentError(f"{self._label} is closed")
        detail = self._scrub(str(exc)) or type(exc).__name__
        what = f"{type(exc).__name__} publishing to {subject!r} via {self._where}"
        message = f"{self._label}: {what}: {detail}"
        if isinstance(exc, TimeoutError | asyncio.TimeoutError):
            return RetryableError(f"{message} (no PubAck within {self._config.timeout:g}s)")
        if isinstance(exc, nats.js.errors.NoStreamResponseError | nats.errors.NoRespondersError):
            return RetryableError(f"{message} (no JetStream stream captures this subject?)")
        if isinstance(exc, nats.js.errors.APIError):
            code = exc.code or 500
            return PermanentError(message) if 400 <= code < 500 else RetryableError(message)
        if isinstance(exc, _PERMANENT):
            return PermanentError(message)
        return RetryableError(message)

    def close(self) -> None:
        """Flush and close the connection, then stop the loop's thread; idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            self._run(self._shutdown(), CLOSE_TIMEOUT)
        except Exception as exc:
            log.warning("%s: closing: %s", self._label, self._scrub(str(exc)))
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(CLOSE_TIMEOUT)
            if not self._thread.is_alive():
                self._loop.close()
