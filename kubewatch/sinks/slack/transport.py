"""What both Slack sinks share: URL checks, the SDK's log scrubbed of secrets, transport
errors turned into delivery errors, the base sink that renders the payload."""

from __future__ import annotations

import http.client
import logging
import ssl
import threading
import time
import urllib.parse
from collections.abc import Mapping
from typing import Any
from urllib.error import URLError

import orjson

from kubewatch.errors import ConfigError, DeliveryError, PermanentError, RetryableError
from kubewatch.events import Event
from kubewatch.render import Template, chat_message, compile_template
from kubewatch.scrub import Scrubber, secret_forms
from kubewatch.sinks.base import SinkBase
from kubewatch.sinks.endpoint import DEFAULT_RETRY_AFTER, parse_retry_after
from kubewatch.sinks.slack.blocks import MIN_SECRET_LEN, slack_payload

log = logging.getLogger("kubewatch.sinks.slack")

# --------------------------------------------------------------------------- shared plumbing


def scrubber(*secrets: str) -> Scrubber:
    """Removes secrets (in every form they travel in) from text that may reach a log line."""
    return Scrubber({f for s in secrets for f in secret_forms(s)}, min_length=MIN_SECRET_LEN)


class SdkLog(logging.Logger):
    """The logger handed to slack-sdk: its lines reach ours at DEBUG, scrubbed.

    slack-sdk logs every failed attempt at ERROR (the delivery layer logs the outcome
    already) and, when its logger's own level is DEBUG, request URLs and bodies — for an
    incoming webhook the URL is the credential. This logger's level is INFO, so those
    dumps are never even built, and it belongs to no logging hierarchy: nothing
    configured elsewhere can turn them on.
    """

    def __init__(self, sink: str, scrub: Scrubber) -> None:
        super().__init__(f"{log.name}.sdk", logging.INFO)
        self._sink = sink
        self._scrub = scrub

    def handle(self, record: logging.LogRecord) -> None:
        if log.isEnabledFor(logging.DEBUG):
            text = self._scrub(record.getMessage())
            log.debug("sink %r: slack-sdk %s: %s", self._sink, record.levelname, text)


class _OnceLog:
    """Logs an explanation once per key (an error code), then stays quiet: one broken
    token fails every event alike, and the log should say so once, not flood."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seen: set[object] = set()  # keys already logged; only grows

    def __call__(self, key: object, level: int, message: str) -> None:
        with self._lock:
            if key in self._seen:
                return
            self._seen.add(key)
        log.log(level, "%s (logged once; later events fail alike)", message)


def url_origin(url: str) -> str:
    """``scheme://host[:port]`` of ``url``: all of it that a message may show."""
    parts = urllib.parse.urlsplit(url)
    port = f":{parts.port}" if parts.port is not None else ""
    return f"{parts.scheme}://{parts.hostname}{port}"


def check_url(url: str, path: str) -> None:
    """An http(s) URL with a host, checked at start; the URL itself is never echoed."""
    try:
        parts = urllib.parse.urlsplit(url)
        _ = parts.port  # raises on a non-numeric or out-of-range port
    except ValueError:
        raise ConfigError(path, "is not a valid URL (bad port or brackets)") from None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ConfigError(path, "must be an http:// or https:// URL with a host")
    if any(c.isspace() for c in url):
        raise ConfigError(path, "is not a valid URL (contains whitespace)")


def _is_cert_failure(exc: BaseException) -> bool:
    reason = exc.reason if isinstance(exc, URLError) else exc
    return isinstance(reason, ssl.SSLCertVerificationError)


def transport_error(sink: str, origin: str, exc: BaseException, scrub: Scrubber) -> DeliveryError:
    """A failure before any HTTP status: retryable, except an untrusted certificate."""
    reason = exc.reason if isinstance(exc, URLError) else exc
    kind = type(reason).__name__ if isinstance(reason, BaseException) else type(exc).__name__
    detail = scrub(str(reason)) or kind
    message = f"slack sink {sink!r}: cannot reach {origin}: {kind}: {detail}"
    if _is_cert_failure(exc):
        return PermanentError(f"{message} (TLS certificate not trusted)")
    return RetryableError(message)


TRANSPORT_ERRORS = (OSError, http.client.HTTPException)
"""What urllib raises before a status arrives: URLError, ConnectionError, TimeoutError
(socket.timeout) and the rest of OSError, and HTTPException (IncompleteRead,
RemoteDisconnected)."""


def _header(headers: Mapping[str, Any] | None, name: str) -> str | None:
    for key, value in (headers or {}).items():
        if key.lower() == name.lower():
            return str(value[0] if isinstance(value, list) and value else value)
    return None


def retry_after_of(headers: Mapping[str, Any] | None) -> float:
    wait = parse_retry_after(_header(headers, "Retry-After"), time.time())
    return DEFAULT_RETRY_AFTER if wait is None else wait


class SlackSinkBase(SinkBase):
    """What both Slack sinks share: the message, the template, close."""

    def __init__(self, name: str, template_source: str | None) -> None:
        self.name = name
        self._closed = False  # once True, send fails permanently; close is a no-op
        self._once = _OnceLog()
        self._template: Template | None = None
        if template_source is not None:
            self._template = compile_template(
                template_source, markup="slack", kind="text", path=f"sinks.{name}.template"
            )

    def preview(self, event: Event) -> str:
        return orjson.dumps(self.payload(event), option=orjson.OPT_INDENT_2).decode()

    def payload(self, event: Event) -> dict[str, Any]:
        """The message for ``event``; a failing or blank template gives the default one."""
        message = chat_message(event, "slack")
        if self._template is None:
            return slack_payload(message)
        fell_back = False

        def default(_: Event) -> str:
            nonlocal fell_back
            fell_back = True
            return message.title

        text = self._template.render_or(event, default)
        if fell_back or not text.strip():  # Slack rejects an empty section
            return slack_payload(message)
        return slack_payload(message, text)

    def _check_open(self) -> None:
        if self._closed:
            raise PermanentError(f"slack sink {self.name!r} is closed")

    def close(self) -> None:
        # slack-sdk's clients open a connection per request and keep none: nothing to
        # release, only later sends to refuse.
        self._closed = True
