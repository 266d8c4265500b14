"""One HTTP receiver: a pooled client, one request per attempt, one outcome map.

Its own module because reaching a receiver and reading its answer is the same for every
HTTP sink (webhook, Teams, Discord, Mattermost, CloudEvents), while
what they send differs: :class:`HttpEndpoint` knows nothing of events; the sinks built on
it are in :mod:`kubewatch.sinks.http`.

Outcome of one request (the delivery layer retries; this module only classifies):

=====================================  ==========================================
2xx                                    delivered
429                                    ``RateLimited``: ``Retry-After`` (seconds or
                                       HTTP-date), else what the sink reads from the
                                       body (Discord's ``retry_after``), else 1 s
503 with ``Retry-After``               ``RateLimited``
408, 425, 5xx                          ``RetryableError``
any other status (4xx, 3xx)            ``PermanentError`` (status + the first 200
                                       characters of the body)
connect error, timeout, reset          ``RetryableError``
a header value with CR, LF or NUL      ``PermanentError``
the attempt's deadline passed          ``RetryableError`` ("deadline of 10s passed")
TLS certificate not trusted            ``PermanentError`` (a wrong CA or name does
                                       not fix itself within a retry window; the
                                       log line says so at once)
=====================================  ==========================================

**One deadline per attempt.** ``timeout`` bounds the whole attempt — connect, TLS, sending
the request, the response headers and the body — not each socket operation on its own
(:mod:`kubewatch.sinks.http1`, the HTTP/1.1 client on pooled keep-alive connections, one
pool per origin): a receiver that trickles its answer a byte at a time costs at most
``timeout`` per attempt. ``HTTP_PROXY``/``HTTPS_PROXY``/``ALL_PROXY``/``NO_PROXY`` are
honoured (``http://`` proxies).

Redirects are not followed: a POST silently turned into a GET by a 301/302 would lose
the event, so a redirect is reported as a permanent error naming the status.

**Secrets.** Webhook URLs carry their token in the path (Discord, Slack, Mattermost) or
in the query (Teams Workflows ``sig=``), and headers carry credentials. Error messages
name the receiver by origin only (``https://host:port``); any response text quoted in a
message has every header value (and each word of it), the URL's userinfo in every form
(``Basic`` credentials included, :mod:`kubewatch.scrub`), the URL path and query, each
long path segment and query value, and any extra secret the sink names replaced by
``<redacted>`` — before it is cut to length, so no cut can leave half a token behind.
"""

from __future__ import annotations

import base64
import email.utils
import math
import ssl
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable, Mapping
from datetime import timezone
from functools import lru_cache
from typing import Protocol

import httpx

from kubewatch._version import __version__
from kubewatch.config import format_path
from kubewatch.errors import ConfigError, DeliveryError, PermanentError, RateLimited, RetryableError
from kubewatch.scrub import Scrubber, secret_forms
from kubewatch.sinks import http1
from kubewatch.sinks.http1 import Origin
from kubewatch.sinks.stub_transport import TransportError, TransportPool

__all__ = [
    "BODY_EXCERPT_CHARS",
    "DEFAULT_RETRY_AFTER",
    "USER_AGENT",
    "HttpEndpoint",
    "HttpSettings",
    "parse_retry_after",
]

USER_AGENT = f"kubewatch/{__version__}"

DEFAULT_RETRY_AFTER = 1.0
"""Seconds to wait after a 429 without a usable ``Retry-After``: long enough not to hammer."""

BODY_EXCERPT_CHARS = 200
"""Characters of an error response body put into the error message."""

_BODY_READ_LIMIT = 64 * 1024
"""Bytes of a response body read at most: bounds memory against a chatty receiver."""

_RETRYABLE_STATUSES = frozenset({408, 425})
"""Request Timeout and Too Early: the receiver says "not now", not "never"."""

_MIN_SECRET_LEN = 4
"""Shorter header values are not credentials, and scrubbing them would garble messages."""
_MIN_TOKEN_LEN = 16
"""A URL path segment or query value this long is treated as a token on its own
(``/api/webhooks/<id>/<token>``, ``?sig=…``): a receiver may echo just that part."""


class HttpSettings(Protocol):
    """The keys of every HTTP sink config (``HttpSinkBase`` in :mod:`kubewatch.config`)."""

    @property
    def url(self) -> str: ...

    @property
    def headers(self) -> dict[str, str]: ...

    @property
    def timeout(self) -> float: ...

    @property
    def ca_file(self) -> str | None: ...

    @property
    def insecure_skip_verify(self) -> bool: ...


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
    """True when the chain under an error holds a certificate verification failure."""
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        if isinstance(cur, ssl.SSLCertVerificationError):
            return True
        seen.add(id(cur))
        cur = cur.__cause__ or cur.__context__
    return "CERTIFICATE_VERIFY_FAILED" in str(exc)


@lru_cache(maxsize=1)
def default_tls() -> ssl.SSLContext:
    """The verifying TLS context of every sink without ``caFile``: httpx's default (certifi,
    or ``SSL_CERT_FILE``/``SSL_CERT_DIR``), built once: loading the CA bundle costs ~38 ms
    per sink otherwise. A context is safe to share between connections and threads."""
    return httpx.create_ssl_context()


@lru_cache(maxsize=1)
def _unverified_tls() -> ssl.SSLContext:
    """``insecureSkipVerify``: TLS without checking the certificate or its name."""
    return httpx.create_ssl_context(verify=False)


def origin_of(url: httpx.URL) -> Origin:
    host = url.raw_host.decode("ascii")
    return Origin(url.scheme, host, url.port or (443 if url.scheme == "https" else 80))


class HttpEndpoint:
    """One configured URL behind pooled, thread-safe keep-alive connections
    (:class:`kubewatch.sinks.http1.Pool`, one per origin requested).

    Request headers: ``Content-Type`` (``content_type``), ``User-Agent:
    kubewatch/<version>``, ``Authorization: Basic`` from the URL's userinfo, then the
    configured ``headers`` (which may override those);
    headers passed to :meth:`send` override all of those for that request.

    ``kind`` and ``name`` start every error message (``discord sink 'ops': …``).
    ``retry_after_from_body`` reads a wait from a 429 body when ``Retry-After`` is
    absent or unusable; ``secrets`` are further strings never to show in a message
    (a signing key). ``clock`` (Unix seconds) dates ``Retry-After`` HTTP-dates.
    ``transport`` (tests) answers in place of the network: an ``httpx`` transport
    such as ``httpx.MockTransport``.

    Raises :class:`ConfigError` (``sinks.<name>.url`` / ``.caFile``) for a config the
    model did not validate. After :meth:`close`, :meth:`send` fails permanently.
    """

    def __init__(
        self,
        kind: str,
        name: str,
        config: HttpSettings,
        transport: httpx.BaseTransport | None = None,
        *,
        clock: Callable[[], float] = time.time,
        content_type: str = "application/json",
        retry_after_from_body: Callable[[str], float | None] | None = None,
        secrets: Iterable[str] = (),
    ) -> None:
        self.label = f"{kind} sink {name!r}"
        """``webhook sink 'audit'``: how messages name the sink."""
        self._clock = clock
        self._retry_after_from_body = retry_after_from_body
        self._closed = False  # once True, send fails permanently; close is a no-op
        url_path = format_path(("sinks", name, "url"))
        try:
            url = httpx.URL(config.url)
        except httpx.InvalidURL as exc:
            raise ConfigError(url_path, f"not a valid URL: {exc}") from None
        if url.scheme not in ("http", "https") or not url.host:
            raise ConfigError(url_path, "must be an absolute http:// or https:// URL")
        self.url = url
        port = f":{url.port}" if url.port is not None else ""
        self.origin = f"{url.scheme}://{url.host}{port}"
        """``scheme://host[:port]``: all of the URL an error message may show."""
        self._secrets = self._collect_secrets(config, url, secrets)
        self.timeout = config.timeout
        """Seconds for one whole attempt: connect, send, headers and body."""
        fixed = {"Content-Type": content_type, "User-Agent": USER_AGENT}
        if url.username or url.password:  # userinfo in the URL: Basic auth, as curl sends it
            pair = f"{url.username}:{url.password}".encode()
            fixed["Authorization"] = f"Basic {base64.b64encode(pair).decode()}"
        fixed.update(config.headers)
        self._headers = {k.lower(): (k, v) for k, v in fixed.items()}
        try:
            self._head = http1.encode_headers(self._headers.values())
        except ValueError as exc:
            raise ConfigError(format_path(("sinks", name, "headers")), str(exc)) from None
        self._tls = self._verify(name, config)
        self._pools: dict[Origin, http1.Pool] = {}
        self._lock = threading.Lock()
        self._mock = None if transport is None else TransportPool(transport, _BODY_READ_LIMIT)
        try:
            self._main = None if self._mock is not None else self._pool(url)
        except ValueError as exc:  # a proxy this client cannot use
            raise ConfigError(url_path, f"proxy from the environment: {exc}") from None

    @staticmethod
    def _verify(name: str, config: HttpSettings) -> ssl.SSLContext:
        """TLS verification as configured; a missing or unreadable CA file is a config error."""
        if config.insecure_skip_verify:
            return _unverified_tls()
        if config.ca_file is None:
            return default_tls()
        try:
            return ssl.create_default_context(cafile=config.ca_file)
        except (OSError, ssl.SSLError) as exc:
            path = format_path(("sinks", name, "caFile"))
            raise ConfigError(path, f"cannot load CA bundle: {exc}") from None

    @staticmethod
    def _collect_secrets(config: HttpSettings, url: httpx.URL, extra: Iterable[str]) -> Scrubber:
        """Strings never to show in a message: see "Secrets" in the module docstring."""
        found: set[str] = set()
        for value in (*extra, *config.headers.values(), config.url):
            found |= secret_forms(value)
        query = url.query.decode()
        found.update((url.path, query))
        pieces = [*url.path.split("/"), *(v for _, v in urllib.parse.parse_qsl(query))]
        found.update(p for p in pieces if len(p) >= _MIN_TOKEN_LEN)
        found.update(urllib.parse.unquote(s) for s in list(found))  # echoed decoded
        return Scrubber(found, min_length=_MIN_SECRET_LEN)

    def scrub(self, text: str) -> str:
        """``text`` with every secret of this endpoint replaced by ``<redacted>``."""
        return self._secrets(text)

    @property
    def closed(self) -> bool:
        return self._closed

    def send(
        self,
        body: bytes,
        *,
        method: str = "POST",
        headers: Mapping[str, str] | None = None,
        url: httpx.URL | None = None,
    ) -> str:
        """One request to ``url`` (default: the configured one, whose secrets are scrubbed);
        returns the body of a 2xx answer (a chat API may say "refused" in it), raises the
        ``DeliveryError`` of the table above."""
        if self._closed:
            raise PermanentError(f"{self.label} is closed")
        target = url or self.url
        by = http1.deadline_after(self.timeout)
        try:
            head = self._request_head(headers)
            if self._mock is not None:
                reply = self._mock.request(method, str(target), head, body, by)
            else:
                pool = self._main if url is None and self._main else self._pool(target)
                reply = pool.request(method, target.raw_path.decode("ascii"), head, body, by)
        except ValueError as exc:  # a header value that would break the request apart
            raise PermanentError(f"{self.label}: {exc}") from None
        except RuntimeError as exc:
            if self._closed:  # closed by another thread while this request was in flight
                raise PermanentError(f"{self.label} is closed") from exc
            raise
        except OSError as exc:  # ssl.SSLError and TimeoutError included
            if http1.passed(by):
                raise RetryableError(
                    f"{self.label}: the attempt's deadline of {self.timeout:g}s passed "
                    f"before {self.origin} answered completely"
                ) from exc
            raise self._transport_error(exc) from exc
        text = reply.body.decode("utf-8", "replace")
        if 200 <= reply.status < 300:
            return text
        error = self._status_error(reply.status, reply.headers.get("retry-after"), text)
        error.status = reply.status
        raise error

    def _request_head(self, headers: Mapping[str, str] | None) -> bytes:
        """The header lines of one request: the fixed ones, overridden by ``headers``."""
        if not headers:
            return self._head
        if not any(k.lower() in self._headers for k in headers):
            return self._head + http1.encode_headers(headers.items())
        merged = {**self._headers, **{k.lower(): (k, v) for k, v in headers.items()}}
        return http1.encode_headers(merged.values())

    def _pool(self, url: httpx.URL) -> http1.Pool:
        origin = origin_of(url)
        pool = self._pools.get(origin)
        if pool is None:
            with self._lock:
                if self._closed:
                    raise RuntimeError("the endpoint is closed")
                pool = self._pools.get(origin)
                if pool is None:
                    if origin.scheme not in ("http", "https"):
                        raise ValueError(f"unsupported URL scheme {origin.scheme!r}")
                    pool = http1.Pool(
                        origin,
                        tls=self._tls,
                        body_limit=_BODY_READ_LIMIT,
                        proxy=http1.environment_proxy(origin),
                    )
                    self._pools[origin] = pool
        return pool

    def _status_error(self, status: int, retry_after: str | None, body: str) -> DeliveryError:
        # Scrubbed before it is cut: a cut through a token would leave part of it.
        excerpt = " ".join(self.scrub(body).split())[:BODY_EXCERPT_CHARS]
        message = f"{self.label}: HTTP {status} from {self.origin}"
        if excerpt:
            message += f": {excerpt}"
        wait = parse_retry_after(retry_after, self._clock())
        if status == 429:
            if wait is None and self._retry_after_from_body is not None:
                wait = self._retry_after_from_body(body)
            return RateLimited(message, DEFAULT_RETRY_AFTER if wait is None else wait)
        if status == 503 and wait is not None:
            return RateLimited(message, wait)
        if status in _RETRYABLE_STATUSES or 500 <= status < 600:
            return RetryableError(message)
        return PermanentError(message)

    def _transport_error(self, exc: OSError) -> DeliveryError:
        name = exc.kind if isinstance(exc, TransportError) else type(exc).__name__
        detail = self.scrub(str(exc)) or name
        message = f"{self.label}: {name} to {self.origin}: {detail}"
        if _is_cert_failure(exc):
            return PermanentError(f"{message} (TLS certificate not trusted: check caFile)")
        return RetryableError(message)

    def close(self) -> None:
        """Close the connection pools; idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            pools, self._pools = list(self._pools.values()), {}
        for pool in pools:
            pool.close()
        if self._mock is not None:
            self._mock.close()
