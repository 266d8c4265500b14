"""The webhook sink: POST the event JSON to an HTTP(S) endpoint.

With ``bodyTemplate`` the body is that template's rendering instead (JSON, checked at
load; ``markup`` says how interpolated object text is escaped, e.g. ``slack`` for a Slack
incoming webhook). When it fails for one event, the event JSON is sent instead and the
failure logged (:meth:`kubewatch.render.Template.render_or`).

Outcome of one POST (the delivery layer retries, this module only classifies):

=====================================  ==========================================
2xx                                    delivered
429                                    ``RateLimited`` (``Retry-After`` or 1 s)
503 with ``Retry-After``               ``RateLimited``
408, 425, 5xx                          ``RetryableError``
any other status (4xx, 3xx)            ``PermanentError`` (status + body excerpt)
connect error, timeout, reset          ``RetryableError``
TLS certificate not trusted            ``PermanentError`` (a wrong CA or name does
                                       not fix itself within a retry window; the
                                       log line says so at once)
=====================================  ==========================================

Redirects are not followed: a POST silently turned into a GET by a 301/302 would lose
the event, so a redirect is reported as a permanent error naming the status.
"""

from __future__ import annotations

import email.utils
import math
import ssl
import time
from collections.abc import Callable
from datetime import timezone

import httpx

from kubewatch._version import __version__
from kubewatch.config import WebhookSinkConfig
from kubewatch.errors import ConfigError, DeliveryError, PermanentError, RateLimited, RetryableError
from kubewatch.events import Event
from kubewatch.render import compile_sink_rendering
from kubewatch.sinks.base import SinkBase
from kubewatch.sinks.stdout import render_json

EVENT_ID_HEADER = "X-Kubewatch-Event-Id"
"""Carries :attr:`Event.id`: delivery is at-least-once, receivers de-duplicate on it."""

USER_AGENT = f"kubewatch/{__version__}"

DEFAULT_RETRY_AFTER = 1.0
"""Seconds to wait after a 429 without a usable ``Retry-After``: long enough not to hammer."""

BODY_EXCERPT_CHARS = 200
"""Characters of an error response body put into the error message."""

_BODY_READ_LIMIT = 64 * 1024
"""Bytes of a response body read at most: bounds memory against a chatty receiver."""

_RETRYABLE_STATUSES = frozenset({408, 425})
"""Request Timeout and Too Early: the receiver says "not now", not "never"."""

_REDACTED = "<redacted>"
_MIN_SECRET_LEN = 4
"""Shorter header values are not credentials, and scrubbing them would garble messages."""


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (delta-seconds or HTTP-date), or None.

    ``now`` is a Unix time, passed in so tests control the clock. A date in the past
    means "now" (0). Garbage, NaN and infinity mean "not given".
    """
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:  # RFC 9110 dates are GMT even when the zone is "-0000"
            when = when.replace(tzinfo=timezone.utc)
        seconds = when.timestamp() - now
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


def _is_cert_failure(exc: BaseException) -> bool:
    """True when the chain under an httpx error holds a certificate verification failure."""
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        if isinstance(cur, ssl.SSLCertVerificationError):
            return True
        seen.add(id(cur))
        cur = cur.__cause__ or cur.__context__
    return "CERTIFICATE_VERIFY_FAILED" in str(exc)


class WebhookSink(SinkBase):
    """POST each event's JSON to ``config.url`` through one pooled, thread-safe httpx.Client.

    Headers: ``Content-Type: application/json``, ``User-Agent: kubewatch/<version>``,
    then the configured ``headers`` (which may override those two), and per request
    ``X-Kubewatch-Event-Id``. Error messages name the receiver by origin only
    (``https://host:port``) and never contain header values or the URL path, which
    often carries a token.

    A bad ``bodyTemplate`` raises :class:`~kubewatch.errors.ConfigErrors` here.
    """

    def __init__(
        self,
        name: str,
        config: WebhookSinkConfig,
        transport: httpx.BaseTransport | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.name = name
        self._clock = clock
        self._closed = False  # once True, send fails permanently; close is a no-op
        try:
            url = httpx.URL(config.url)
        except httpx.InvalidURL as exc:
            raise ConfigError(f"sinks.{name}.url", f"not a valid URL: {exc}") from exc
        if url.scheme not in ("http", "https") or not url.host:
            raise ConfigError(f"sinks.{name}.url", "must be an absolute http:// or https:// URL")
        self._url = url
        port = f":{url.port}" if url.port is not None else ""
        self._origin = f"{url.scheme}://{url.host}{port}"
        self._secrets = self._collect_secrets(config, url)
        self._body_template = compile_sink_rendering(name, config).body
        self._client = httpx.Client(
            transport=transport,
            verify=self._verify(name, config),
            timeout=httpx.Timeout(config.timeout),
            headers={
                "Content-Type": "application/json",
                "User-Agent": USER_AGENT,
                **config.headers,
            },
            follow_redirects=False,
        )

    @staticmethod
    def _verify(name: str, config: WebhookSinkConfig) -> ssl.SSLContext | bool:
        """TLS verification as configured; a missing or unreadable CA file is a config error."""
        if config.insecure_skip_verify:
            return False
        if config.ca_file is None:
            return True
        try:
            return ssl.create_default_context(cafile=config.ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"sinks.{name}.caFile", f"cannot load CA bundle: {exc}") from exc

    @staticmethod
    def _collect_secrets(config: WebhookSinkConfig, url: httpx.URL) -> tuple[str, ...]:
        """Strings never to show in a message: header values, their parts, URL path/query."""
        found: set[str] = set()
        for value in config.headers.values():
            found.add(value)
            found.update(value.split())  # "Bearer <token>": the receiver may echo the token
        found.update((url.path, url.query.decode(), url.password or ""))
        # Longest first, so that a value is scrubbed before a part of it.
        return tuple(sorted((s for s in found if len(s) >= _MIN_SECRET_LEN), key=len, reverse=True))

    def _scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, _REDACTED)
        return text

    def send(self, event: Event) -> None:
        if self._closed:
            raise PermanentError(f"webhook sink {self.name!r} is closed")
        if self._body_template is None:
            body = render_json(event).encode()
        else:
            body = self._body_template.render_or(event, render_json).encode()
        try:
            with self._client.stream(
                "POST", self._url, content=body, headers={EVENT_ID_HEADER: event.id}
            ) as response:
                status = response.status_code
                if 200 <= status < 300:
                    self._read_body(response)  # lets the connection go back to the pool
                    return
                excerpt = self._read_body(response)
                retry_after = response.headers.get("Retry-After")
        except httpx.TransportError as exc:
            raise self._transport_error(exc) from exc
        except RuntimeError as exc:
            if self._closed:  # closed by another thread while this request was in flight
                raise PermanentError(f"webhook sink {self.name!r} is closed") from exc
            raise
        raise self._status_error(status, retry_after, excerpt)

    @staticmethod
    def _read_body(response: httpx.Response) -> str:
        """Up to ``_BODY_READ_LIMIT`` bytes of the body as text; "" when reading fails."""
        chunks: list[bytes] = []
        size = 0
        try:
            for chunk in response.iter_bytes():
                chunks.append(chunk)
                size += len(chunk)
                if size >= _BODY_READ_LIMIT:
                    break
        except httpx.HTTPError:
            # The status is what counts: a 2xx whose body broke off still reached the
            # receiver, and a 4xx stays a 4xx without its explanation.
            pass
        return b"".join(chunks)[:_BODY_READ_LIMIT].decode("utf-8", "replace")

    def _status_error(self, status: int, retry_after: str | None, body: str) -> DeliveryError:
        excerpt = self._scrub(" ".join(body[:BODY_EXCERPT_CHARS].split()))
        message = f"webhook sink {self.name!r}: HTTP {status} from {self._origin}"
        if excerpt:
            message += f": {excerpt}"
        wait = parse_retry_after(retry_after, self._clock())
        if status == 429:
            return RateLimited(message, DEFAULT_RETRY_AFTER if wait is None else wait)
        if status == 503 and wait is not None:
            return RateLimited(message, wait)
        if status in _RETRYABLE_STATUSES or 500 <= status < 600:
            return RetryableError(message)
        return PermanentError(message)

    def _transport_error(self, exc: httpx.TransportError) -> DeliveryError:
        detail = self._scrub(str(exc)) or type(exc).__name__
        message = f"webhook sink {self.name!r}: {type(exc).__name__} to {self._origin}: {detail}"
        if _is_cert_failure(exc):
            return PermanentError(f"{message} (TLS certificate not trusted: check caFile)")
        if isinstance(exc, httpx.UnsupportedProtocol):
            return PermanentError(message)
        return RetryableError(message)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._client.close()
