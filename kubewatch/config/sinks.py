"""Where events go: one model per sink type, their retry, rate limit and digest settings."""

from __future__ import annotations

import ssl
import urllib.parse
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BeforeValidator,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from kubewatch.config.fields import (
    HEADER_NAME,
    MAX_DURATION,
    Duration,
    Model,
    NonBlank,
    Problems,
    Seconds,
    StrictBool,
    StrictInt,
    fail,
    fail_at,
    strict,
)


class RetryConfig(Model):
    attempts: StrictInt | None = Field(None, ge=1, le=100)
    """Attempts per event and sink, the first included. Default: no limit; an event is
    retried until it is delivered, refused for good, or older than ``delivery.maxAge``."""
    max_backoff: Duration = 30.0
    """Seconds (or ``30s``): the longest pause of a failing sink between two probes
    (Retry-After may ask for more)."""


class DigestConfig(Model):
    """Burst digests: beyond ``threshold`` events within ``window``, one summary instead."""

    threshold: StrictInt = Field(ge=1, le=10_000_000)
    """Events per window sent one by one; the rest of the window becomes one digest."""
    window: Duration = 10.0
    """Seconds (or ``10s``, ``1m``) over which events are counted and then summarized."""


def rate_or_off(value: Any) -> Any:
    """``rateLimit: 2`` is shorthand for ``{perSecond: 2}``; ``off`` turns it off."""
    if value is False or (isinstance(value, str) and value.strip().lower() in ("off", "false")):
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return {"perSecond": value}
    return value


def digest_or_off(value: Any) -> Any:
    """``digest: false`` (or ``off``) turns a chat sink's default digest off."""
    if value is False or (isinstance(value, str) and value.strip().lower() in ("off", "false")):
        return None
    return value


class RateLimitConfig(Model):
    """A token bucket: ``perSecond`` messages on average, bursts of up to ``burst``."""

    per_second: Annotated[float, strict(float)] = Field(ge=1 / MAX_DURATION, le=1e9)
    """At least one per year (the wait between two sends is at most a year)."""
    burst: StrictInt = Field(1, ge=1, le=1_000_000)
    """Messages that may go back to back after a quiet spell (the bucket's size)."""


RateLimit = Annotated[RateLimitConfig | None, BeforeValidator(rate_or_off)]
Digest = Annotated[DigestConfig | None, BeforeValidator(digest_or_off)]


def base_path(value: str, info: ValidationInfo) -> Path:
    """A path from the config, relative to the config file's folder (like kubeconfig)."""
    path = Path(value).expanduser()
    base = (info.context or {}).get("base_dir") if isinstance(info.context, dict) else None
    if not path.is_absolute() and base is not None:
        path = Path(base) / path
    return path.absolute()


def readable_bundle(value: str | None, info: ValidationInfo) -> str | None:
    """A missing or broken CA bundle would fail every delivery; find out at start."""
    if value is None:
        return None
    if not value.strip():
        raise fail("must not be empty (leave caFile out to use the system's CAs)")
    path = base_path(value, info)
    shown = repr(str(path))
    if not path.exists():
        raise fail(f"file {shown} does not exist", value=shown)
    if not path.is_file():
        raise fail(f"{shown} is not a file", value=shown)
    try:
        ssl.create_default_context(cafile=str(path))
    except PermissionError:
        raise fail(f"file {shown} is not readable", value=shown) from None
    except (ssl.SSLError, OSError, ValueError):
        raise fail(f"file {shown} is not a PEM certificate bundle", value=shown) from None
    return str(path)


class SinkBase(Model):
    """Keys every sink has: its delivery policy (defaults from ``delivery``) and digests."""

    queue_size: StrictInt | None = Field(None, ge=1, le=10_000_000)
    """Events waiting for this sink (default: ``delivery.queueSize``); when full, the
    oldest is dropped, logged and counted (``kubewatch_events_dropped_total``)."""
    concurrency: StrictInt | None = Field(None, ge=1, le=64)
    """Parallel sends (default: ``delivery.workers``); one object's events stay in order."""
    retry: RetryConfig | None = None
    """``attempts`` and ``maxBackoff`` for this sink (default: ``delivery.retry``)."""
    rate_limit: RateLimit = None
    """Messages per second (``1``, or ``{perSecond: 1, burst: 5}``); default: none."""
    digest: Digest = None
    """Beyond ``threshold`` events in ``window``, the rest of the window goes as one summary
    (``{threshold: 20, window: 30s}``); off unless set (on for chat sinks)."""


CHAT_RATE_LIMIT = RateLimitConfig(per_second=1.0, burst=1)
"""Slack allows about one message per second per channel; chat services are alike."""
CHAT_DIGEST = DigestConfig(threshold=10, window=10.0)
"""In chat, more than 10 messages in 10 s is a flood: the rest becomes one digest."""


class ChatSinkBase(SinkBase):
    """Chat sinks: rate limited and digested by default; ``template`` is the message text."""

    rate_limit: RateLimit = CHAT_RATE_LIMIT
    """Messages per second (``{perSecond: 1, burst: 5}``); default 1, ``false``: none."""
    digest: Digest = CHAT_DIGEST
    """Default ``{threshold: 10, window: 10s}``; ``false`` sends every event on its own."""
    template: str | None = None
    """Jinja2 text of the message (default: the summary and the changes)."""


class StdoutSinkConfig(SinkBase):
    """Print events to standard output."""

    type: Literal["stdout"]
    format: Literal["json", "text"] = "json"
    """``json``: one event JSON per line; ``text``: one human line per event."""
    template: str | None = None
    """Jinja2 text for ``format: text`` (default: time and summary)."""


FRAMING_HEADERS = frozenset({"host", "content-length", "transfer-encoding", "connection"})
"""Headers that frame the request: a second copy from ``headers`` would break it."""


class HttpSinkBase(SinkBase):
    """Keys of every sink that calls an HTTP(S) URL."""

    url: str
    """``http(s)://`` URL to send to; may hold a token (``${HOOK_URL}``): never logged.
    ``user:password@`` in it becomes an ``Authorization: Basic`` header."""
    headers: dict[str, str] = Field(default_factory=dict, repr=False)
    """Extra request headers (``{Authorization: "Bearer ${TOKEN}"}``); values never logged."""
    timeout: Seconds = 10.0
    """Seconds for one whole attempt: connect, send, response headers and body."""
    ca_file: str | None = None
    """PEM bundle to verify the receiver's certificate (default: the system's).

    A relative path is taken relative to the configuration file, like kubeconfig does,
    and stored absolute.
    """
    insecure_skip_verify: StrictBool = False
    """``true`` accepts any certificate (open to interception): for a test receiver only;
    use ``caFile`` for a private CA."""

    @field_validator("url")
    @classmethod
    def http_url(cls, value: str) -> str:
        """Fail at start, not at the first event; never echo the URL (it may hold a token)."""
        try:
            parts = urllib.parse.urlsplit(value)
            _ = parts.port  # raises on a non-numeric or out-of-range port
        except ValueError:
            raise fail("is not a valid URL (bad port or brackets)") from None
        if parts.scheme.lower() not in ("http", "https"):
            raise fail("must be an http:// or https:// URL")
        if not parts.hostname:
            raise fail("must be an http:// or https:// URL with a host")
        if any(c.isspace() for c in value):
            raise fail("is not a valid URL (contains whitespace)")
        return value

    @field_validator("headers")
    @classmethod
    def _header_syntax(cls, value: dict[str, str]) -> dict[str, str]:
        """A newline in a header (a secret read with its trailing newline) breaks requests."""
        errors: Problems = []
        for name, text in value.items():
            if not HEADER_NAME.fullmatch(name):
                errors.append(((name,), name, fail("is not a valid HTTP header name")))
            elif name.lower() in FRAMING_HEADERS:
                message = "is set by kubewatch from the URL and the body; remove it"
                errors.append(((name,), name, fail(message)))
            elif any(c in text for c in "\r\n\0"):
                errors.append(((name,), text, fail("header value contains a line break or NUL")))
        fail_at("headers", errors)
        return value

    _ca_file = field_validator("ca_file")(readable_bundle)

    @model_validator(mode="after")
    def _one_authorization(self) -> HttpSinkBase:
        """Userinfo in the URL becomes an ``Authorization: Basic`` header; an explicit one
        as well would silently replace it: one of the two is a mistake."""
        try:
            has_userinfo = "@" in urllib.parse.urlsplit(self.url).netloc
        except ValueError:
            return self
        explicit = [name for name in self.headers if name.lower() == "authorization"]
        if has_userinfo and explicit:
            message = (
                "cannot be set together with credentials in the URL (user:password@), "
                "which would be replaced by it: keep one of the two"
            )
            fail_at("HttpSinkConfig", [(("headers", explicit[0]), None, fail(message))])
        return self

    @model_validator(mode="after")
    def _verify_xor_ca(self) -> HttpSinkBase:
        """A CA bundle with verification off is ignored: one of the two is a mistake."""
        if self.ca_file is not None and self.insecure_skip_verify:
            fail_at(
                "HttpSinkConfig",
                [
                    (
                        ("insecureSkipVerify",),
                        True,
                        fail("cannot be true together with caFile (the CA would be ignored)"),
                    )
                ],
            )
        return self


class WebhookSinkConfig(HttpSinkBase):
    """Send the event JSON to an HTTP(S) endpoint, optionally signed."""

    type: Literal["webhook"]
    method: Literal["POST", "PUT", "PATCH"] = "POST"
    """HTTP method of each request."""
    secret: str | None = Field(None, repr=False)
    """HMAC-SHA256 key: adds ``X-Kubewatch-Timestamp`` and ``X-Kubewatch-Signature`` (of
    timestamp and body), so the receiver can check the sender and refuse replays."""
    body_template: str | None = None
    """Jinja2 template of the request body (JSON); default: the event JSON."""
    markup: Literal["none", "slack", "markdown", "html"] = "none"
    """Markup of the receiver: text from cluster objects is escaped for it in templates."""


class SlackWebhookSinkConfig(ChatSinkBase):
    """A Slack incoming webhook (the channel is fixed by the webhook)."""

    type: Literal["slackWebhook"]
    url: str = Field(repr=False)
    """The webhook URL (``https://hooks.slack.com/services/…``), a credential: never logged."""
    timeout: Seconds = 10.0
    """Seconds for the connection and for each read of a request (the Slack SDK's)."""


class TeamsSinkConfig(ChatSinkBase, HttpSinkBase):
    """Microsoft Teams through a Workflows webhook, as an Adaptive Card."""

    type: Literal["teams"]


class CloudEventsSinkConfig(HttpSinkBase):
    """CloudEvents 1.0 over HTTP."""

    type: Literal["cloudevents"]
    mode: Literal["structured", "binary"] = "structured"
    """``structured``: the whole CloudEvent as the JSON body; ``binary``: the event JSON as
    the body, the other attributes as ``ce-*`` headers."""
    source: str | None = None
    """``source`` attribute, a URI reference (default: ``kubewatch/<cluster>``)."""


class SmtpSinkConfig(SinkBase):
    """E-mail over SMTP: a text and an HTML part per event."""

    type: Literal["smtp"]
    host: NonBlank
    """Host name or address of the SMTP server (``smtp.example.com``)."""
    port: StrictInt | None = Field(None, ge=1, le=65535)
    """Default: 587 for ``starttls``, 465 for ``implicit``, 25 for ``none``."""
    tls: Literal["starttls", "implicit", "none"] = "starttls"
    """``starttls`` (required of the server), ``implicit`` (SMTPS) or ``none`` (plain)."""
    username: str | None = None
    """SMTP AUTH login, with ``password`` (default: no login)."""
    password: str | None = Field(None, repr=False)
    """SMTP AUTH password (``${SMTP_PASSWORD}``); never logged."""
    from_: str = Field(alias="from")
    """Sender address (``From:`` and envelope), e.g. ``kubewatch@example.com``."""
    to: tuple[NonBlank, ...] = Field(min_length=1)
    """Recipient addresses (at least one): each message goes to all of them."""
    subject: str = "{{ summary }}"
    """Jinja2 template of the subject line (default: the event's summary)."""
    template: str | None = None
    """Jinja2 text of the plain-text part (default: summary and changes)."""
    timeout: Seconds = 30.0
    """Seconds for each SMTP step: connect, TLS, login, sending."""
    ca_file: str | None = None
    """PEM bundle to verify the server's certificate, relative to the config file."""
    insecure_skip_verify: StrictBool = False
    """``true`` accepts any certificate (open to interception): for a test server only."""

    _ca_file = field_validator("ca_file")(readable_bundle)

    @model_validator(mode="after")
    def _auth_pair(self) -> SmtpSinkConfig:
        """A username without a password (or the reverse) cannot log in."""
        if (self.username is None) != (self.password is None):
            key = "password" if self.username is not None else "username"
            fail_at("SmtpSinkConfig", [((key,), None, fail("username and password go together"))])
        return self
