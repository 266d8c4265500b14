"""The configuration model: one YAML file, validated before anything starts.

Keys are camelCase in YAML (``labelSelector``) and snake_case in Python. Every model is
frozen and forbids unknown keys, so a typo is an error that names its key path.

:func:`load_config` / :func:`parse_config` read the YAML, expand ``${VAR}`` in string
values, validate, and raise :class:`~kubewatch.errors.ConfigErrors` listing *every*
mistake with its key path (``resources[2].kind``), never only the first one. No error
message ever contains the value of an environment variable: those are often secrets.
"""

from __future__ import annotations

import difflib
import json
import os
import re
import ssl
import types
import typing
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails, InitErrorDetails, PydanticCustomError

from kubewatch.errors import ConfigError, ConfigErrors
from kubewatch.match.diff import compile_paths
from kubewatch.match.patterns import PatternError, compile_name, parse_selector
from kubewatch.scrub import Scrubber, secret_forms

__all__ = [
    "ALL_EVENTS",
    "SINK_TYPES",
    "CloudEventsSinkConfig",
    "Config",
    "DeliveryConfig",
    "DigestConfig",
    "DiscordSinkConfig",
    "EventName",
    "LeaderElectionConfig",
    "MatchConfig",
    "MattermostSinkConfig",
    "NamesConfig",
    "NamespacesConfig",
    "RateLimitConfig",
    "ResourceConfig",
    "RetryConfig",
    "RouteConfig",
    "ServerConfig",
    "SinkConfig",
    "SlackSinkConfig",
    "SlackWebhookSinkConfig",
    "SmtpSinkConfig",
    "StdoutSinkConfig",
    "TeamsSinkConfig",
    "UpdatesConfig",
    "WatchConfig",
    "WebhookSinkConfig",
    "format_errors",
    "load_config",
    "parse_config",
]

EventName = Literal["create", "update", "delete"]
ALL_EVENTS: tuple[EventName, ...] = ("create", "update", "delete")

_ERROR = "kubewatch"
"""pydantic error type of our own checks: their message is already written for humans."""

_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_SINK_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_API_VERSION = re.compile(r"([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


def _fail(message: str, **ctx: Any) -> PydanticCustomError:
    """Our own error type, so the converter passes the message through unchanged.

    A ``value`` in ``ctx`` is the repr of the offending value as it appears in the message;
    the converter replaces it when that value came from the environment.
    """
    return PydanticCustomError(_ERROR, message, ctx)


_Problems = list[tuple[tuple[str | int, ...], Any, PydanticCustomError]]
"""(location below the validated item, offending input, error) triples."""


def _fail_at(title: str, errors: _Problems) -> None:
    """Raise several errors at once at sub-locations of the validated field or model.

    pydantic merges a ValidationError raised inside a validator into the outer one with
    the locations prefixed, which keeps cross-field errors at the key that is wrong.
    """
    if errors:
        raise ValidationError.from_exception_data(
            title, [InitErrorDetails(type=e, loc=loc, input=v) for loc, v, e in errors]
        )


def _dns_label(value: str) -> str:
    """Namespace names are DNS-1123 labels; anything else can never match a namespace."""
    if len(value) > 63 or not _DNS_LABEL.fullmatch(value):
        raise _fail(
            f"{value!r} is not a valid namespace name (lowercase letters, digits and '-', "
            "starting and ending with a letter or digit, at most 63 characters)",
            value=repr(value),
        )
    return value


def _sink_name(value: str) -> str:
    """Sink names appear in logs, metrics labels and routes: keep them plain."""
    if not value:
        raise _fail("sink name must not be empty")
    if not _SINK_NAME.fullmatch(value):
        raise _fail(
            f"invalid sink name {value!r}: use letters, digits, '_', '.' and '-', "
            "starting with a letter or digit"
        )
    return value


def _not_blank(value: str) -> str:
    """An empty string is never what was meant where a name is expected."""
    if not value.strip():
        raise _fail("must not be empty")
    return value


def _namespace_pattern(value: str) -> str:
    """A namespace name (a DNS label), a glob (``team-*``) or a ``/regex/``."""
    try:
        compiled = compile_name(value)
    except PatternError as e:
        raise _fail(str(e), value=repr(value)) from None
    return _dns_label(value) if isinstance(compiled, str) else value


def _name_pattern(value: str) -> str:
    """An object name, a glob or a ``/regex/``."""
    try:
        compile_name(value)
    except PatternError as e:
        raise _fail(str(e), value=repr(value)) from None
    return value


def _selector(value: str) -> str:
    """Kubernetes label selector syntax, checked now rather than failing every match."""
    try:
        parse_selector(value)
    except PatternError as e:
        raise _fail(str(e), value=repr(value)) from None
    return value


def _regex(value: str) -> str:
    try:
        re.compile(value)
    except re.error as e:
        raise _fail(f"invalid regular expression {value!r}: {e}", value=repr(value)) from None
    return value


def _path_pattern(value: str) -> str:
    """An object path pattern (``spec.template.**``, ``metadata.labels.*``)."""
    try:
        compile_paths([value])
    except (ValueError, TypeError) as e:
        raise _fail(str(e), value=repr(value)) from None
    return value


_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def _duration(value: Any) -> Any:
    """Seconds as a number, or a Go-style duration string: ``30s``, ``10m``, ``1h30m``."""
    if isinstance(value, bool):
        raise _fail(
            f"expected a duration (seconds, or e.g. '30s'), got {value!r}", value=repr(value)
        )
    if not isinstance(value, str):
        return value
    text = value.strip()
    try:
        return float(text)
    except ValueError:
        pass
    pos, total = 0, 0.0
    for m in _DURATION_PART.finditer(text):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _DURATION_UNITS[m.group(2)]
        pos = m.end()
    if pos != len(text) or not text:
        raise _fail(
            f"{value!r} is not a duration (seconds, or e.g. '30s', '10m', '1h30m')",
            value=repr(value),
        )
    return total


MAX_DURATION = 365 * 86400.0
"""Seconds: the longest any duration, timeout or wait may be (one year). Every one of them
ends in a sleep, a wait or a socket timeout, and those overflow (``OverflowError`` at
SIGTERM for ``drainTimeout: 1e10``) long before a float does."""
MAX_INT64 = 2**63 - 1
"""The API server's integers (``limit``, ``timeoutSeconds``) are int64."""


class _Expanded(str):
    """A string value that came (partly) from ``${VAR}``: the one kind of string a number
    or boolean key accepts, as an environment variable can only hold text."""

    __slots__ = ()


def _strict(kind: type) -> Any:
    """A before-validator that refuses what pydantic's lax mode would coerce: ``true`` for
    a number, ``"12"`` or ``1`` for a boolean. Text from ``${VAR}`` is still converted."""
    names = {int: "an integer", float: "a number", bool: "true or false"}

    def check(value: Any) -> Any:
        if isinstance(value, _Expanded):
            return str(value)
        ok = (
            isinstance(value, bool)
            if kind is bool
            else isinstance(value, int | float if kind is float else int)
            and not isinstance(value, bool)
        )
        if ok or value is None:
            return value
        hint = (
            " (no quotes; and YAML reads 1e10 as text: write 1.0e10)"
            if isinstance(value, str)
            else ""
        )
        got = f"{_kind_of(value)} {value!r}" if isinstance(value, str | bool) else _kind_of(value)
        raise _fail(f"expected {names[kind]}, got {got}{hint}", value=repr(value))

    return BeforeValidator(check)


StrictInt = Annotated[int, _strict(int)]
StrictBool = Annotated[bool, _strict(bool)]
Seconds = Annotated[float, _strict(float), Field(gt=0, le=MAX_DURATION)]
"""A plain number of seconds (no ``30s`` form), more than 0, at most a year."""

DnsLabel = Annotated[str, AfterValidator(_dns_label)]
NamespacePattern = Annotated[str, AfterValidator(_namespace_pattern)]
NamePattern = Annotated[str, AfterValidator(_name_pattern)]
Selector = Annotated[str, AfterValidator(_selector)]
Regex = Annotated[str, AfterValidator(_regex)]
PathPattern = Annotated[str, AfterValidator(_path_pattern)]
Duration = Annotated[float, BeforeValidator(_duration), Field(gt=0, le=MAX_DURATION)]
SinkName = Annotated[str, AfterValidator(_sink_name)]
NonBlank = Annotated[str, AfterValidator(_not_blank)]


class _Model(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        alias_generator=to_camel,
        populate_by_name=True,
        allow_inf_nan=False,
    )


class NamespacesConfig(_Model):
    """Which namespaces to watch. An empty ``include`` means every namespace."""

    include: tuple[NamespacePattern, ...] = ()
    """Only these namespaces: names, globs (``team-*``) or ``/regex/``. Plain names get one
    watch each; any pattern means one cluster-wide watch filtered by kubewatch."""
    exclude: tuple[NamespacePattern, ...] = ()
    """Never these: plain names are filtered by the API server, patterns by kubewatch."""

    @model_validator(mode="after")
    def _no_overlap(self) -> NamespacesConfig:
        """Included and excluded at once is a contradiction, not a preference."""
        errors: _Problems = []
        for key, names in (("include", self.include), ("exclude", self.exclude)):
            for i, name in enumerate(names):
                if name in names[:i]:
                    errors.append(
                        (
                            (key, i),
                            name,
                            _fail(f"namespace {name!r} is listed twice", value=repr(name)),
                        )
                    )
        included = set(self.include)
        for i, name in enumerate(self.exclude):
            if name in included:
                msg = f"namespace {name!r} is both included and excluded"
                errors.append((("exclude", i), name, _fail(msg, value=repr(name))))
        _fail_at("NamespacesConfig", errors)
        return self


class NamesConfig(_Model):
    """Object names to report: names, globs or ``/regex/``."""

    include: tuple[NamePattern, ...] = ()
    exclude: tuple[NamePattern, ...] = ()


class UpdatesConfig(_Model):
    """Which changes make an update worth reporting."""

    watch: tuple[PathPattern, ...] = ()
    """When set, only changes at or below these paths count (``spec.template.**``)."""
    ignore: tuple[PathPattern, ...] = ()
    """Added to the default ignore list (status, resourceVersion, managedFields, …)."""


class ResourceConfig(_Model):
    """One watched resource: a kind, plural, short name, ``kind.group`` or apiVersion + kind."""

    kind: NonBlank
    api_version: str | None = None
    events: tuple[EventName, ...] = ALL_EVENTS
    label_selector: str | None = None
    field_selector: str | None = None
    notify_existing: StrictBool = False
    """Report objects that already exist at start as creates (default: only new ones)."""
    namespaces: NamespacesConfig | None = None
    """Narrows the global ``namespaces`` for this resource (both must admit an object)."""
    namespace_selector: Selector | None = None
    """Only objects in namespaces whose labels match (with the global one, if any)."""
    labels: Selector | None = None
    """Client-side label selector on the object (unlike ``labelSelector``, it also sees
    objects leave the selection: their delete is reported)."""
    annotations: Selector | None = None
    """Selector syntax applied to the object's annotations."""
    names: NamesConfig | None = None
    updates: UpdatesConfig = UpdatesConfig()
    # Kubernetes Events (kind: Event) only:
    types: tuple[Literal["Normal", "Warning"], ...] | None = None
    """Event ``type``s to report (default: all)."""
    reasons: tuple[Regex, ...] | None = None
    """Event reasons: names or regular expressions, matched against the whole reason."""
    message: Regex | None = None
    """Regular expression searched in the Event's message."""
    involved_kinds: tuple[NonBlank, ...] | None = None
    """Kinds of the involved object (``Pod``, ``Node``)."""
    repeat_window: Duration = 600.0
    """A repeating Event (same involved object and reason) is reported at most once per
    window, with its current count."""

    @field_validator("api_version")
    @classmethod
    def _api_version_shape(cls, value: str | None) -> str | None:
        """Catch ``apps/v1/`` or ``Apps/V1`` here rather than as a discovery miss later."""
        if value is not None and not _API_VERSION.fullmatch(value):
            raise _fail(
                f"{value!r} is not an apiVersion (expected 'v1' or 'group/version', "
                "e.g. 'apps/v1')",
                value=repr(value),
            )
        return value

    @field_validator("events")
    @classmethod
    def _events_set(cls, value: tuple[EventName, ...]) -> tuple[EventName, ...]:
        """An empty list would watch and never report; a duplicate hints at a typo."""
        if not value:
            raise _fail("at least one event is required (create, update, delete)")
        _fail_at(
            "events",
            [
                ((i,), e, _fail(f"duplicate event {e!r}", value=repr(e)))
                for i, e in enumerate(value)
                if e in value[:i]
            ],
        )
        return value


class RetryConfig(_Model):
    attempts: StrictInt | None = Field(None, ge=1, le=100)
    """Attempts per event and sink, the first included. Default: no limit; an event is
    retried until it is delivered, refused for good, or older than ``delivery.maxAge``."""
    max_backoff: Duration = 30.0
    """Seconds (or ``30s``): the longest pause of a failing sink between two probes
    (Retry-After may ask for more)."""


class DigestConfig(_Model):
    """Burst digests: beyond ``threshold`` events within ``window``, one summary instead."""

    threshold: StrictInt = Field(ge=1, le=10_000_000)
    """Events per window sent one by one; the rest of the window becomes one digest."""
    window: Duration = 10.0
    """Seconds (or ``10s``, ``1m``) over which events are counted and then summarized."""


def _rate(value: Any) -> Any:
    """``rateLimit: 2`` is shorthand for ``{perSecond: 2}``; ``off`` turns it off."""
    if value is False or (isinstance(value, str) and value.strip().lower() in ("off", "false")):
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return {"perSecond": value}
    return value


def _digest_off(value: Any) -> Any:
    """``digest: false`` (or ``off``) turns a chat sink's default digest off."""
    if value is False or (isinstance(value, str) and value.strip().lower() in ("off", "false")):
        return None
    return value


class RateLimitConfig(_Model):
    """A token bucket: ``perSecond`` messages on average, bursts of up to ``burst``."""

    per_second: Annotated[float, _strict(float)] = Field(ge=1 / MAX_DURATION, le=1e9)
    """At least one per year (the wait between two sends is at most a year)."""
    burst: StrictInt = Field(1, ge=1, le=1_000_000)


RateLimit = Annotated[RateLimitConfig | None, BeforeValidator(_rate)]
Digest = Annotated[DigestConfig | None, BeforeValidator(_digest_off)]


def _base_path(value: str, info: ValidationInfo) -> Path:
    """A path from the config, relative to the config file's folder (like kubeconfig)."""
    path = Path(value).expanduser()
    base = (info.context or {}).get("base_dir") if isinstance(info.context, dict) else None
    if not path.is_absolute() and base is not None:
        path = Path(base) / path
    return path.absolute()


def _readable_bundle(value: str | None, info: ValidationInfo) -> str | None:
    """A missing or broken CA bundle would fail every delivery; find out at start."""
    if value is None:
        return None
    if not value.strip():
        raise _fail("must not be empty (leave caFile out to use the system's CAs)")
    path = _base_path(value, info)
    shown = repr(str(path))
    if not path.exists():
        raise _fail(f"file {shown} does not exist", value=shown)
    if not path.is_file():
        raise _fail(f"{shown} is not a file", value=shown)
    try:
        ssl.create_default_context(cafile=str(path))
    except PermissionError:
        raise _fail(f"file {shown} is not readable", value=shown) from None
    except (ssl.SSLError, OSError, ValueError):
        raise _fail(f"file {shown} is not a PEM certificate bundle", value=shown) from None
    return str(path)


class _SinkBase(_Model):
    """Keys every sink has: its delivery policy (defaults from ``delivery``) and digests."""

    queue_size: StrictInt | None = Field(None, ge=1, le=10_000_000)
    """Events waiting for this sink (default: ``delivery.queueSize``)."""
    concurrency: StrictInt | None = Field(None, ge=1, le=64)
    """Parallel sends (default: ``delivery.workers``); one object's events stay in order."""
    retry: RetryConfig | None = None
    """Retry policy for this sink (default: ``delivery.retry``)."""
    rate_limit: RateLimit = None
    """Messages per second (``1``, or ``{perSecond: 1, burst: 5}``); default: none."""
    digest: Digest = None
    """Burst digests; off unless set."""


CHAT_RATE_LIMIT = RateLimitConfig(per_second=1.0, burst=1)
"""Slack allows about one message per second per channel; chat services are alike."""
CHAT_DIGEST = DigestConfig(threshold=10, window=10.0)
"""In chat, more than 10 messages in 10 s is a flood: the rest becomes one digest."""


class _ChatSinkBase(_SinkBase):
    """Chat sinks: rate limited and digested by default; ``template`` is the message text."""

    rate_limit: RateLimit = CHAT_RATE_LIMIT
    digest: Digest = CHAT_DIGEST
    template: str | None = None
    """Jinja2 text of the message (default: the summary and the changes)."""


class StdoutSinkConfig(_SinkBase):
    """Print events to standard output."""

    type: Literal["stdout"]
    format: Literal["json", "text"] = "json"
    """``json``: one event JSON per line; ``text``: one human line per event."""
    template: str | None = None
    """Jinja2 text for ``format: text`` (default: time and summary)."""


class _HttpSinkBase(_SinkBase):
    """Keys of every sink that calls an HTTP(S) URL."""

    url: str
    headers: dict[str, str] = Field(default_factory=dict, repr=False)
    """Extra request headers; often credentials, hence kept out of ``repr``."""
    timeout: Seconds = 10.0
    """Seconds for one whole attempt: connect, send, response headers and body."""
    ca_file: str | None = None
    """PEM bundle to verify the receiver's certificate (default: the system's).

    A relative path is taken relative to the configuration file, like kubeconfig does,
    and stored absolute.
    """
    insecure_skip_verify: StrictBool = False
    """Turn TLS verification off. For tests only."""

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        """Fail at start, not at the first event; never echo the URL (it may hold a token)."""
        try:
            parts = urllib.parse.urlsplit(value)
            _ = parts.port  # raises on a non-numeric or out-of-range port
        except ValueError:
            raise _fail("is not a valid URL (bad port or brackets)") from None
        if parts.scheme.lower() not in ("http", "https"):
            raise _fail("must be an http:// or https:// URL")
        if not parts.hostname:
            raise _fail("must be an http:// or https:// URL with a host")
        if any(c.isspace() for c in value):
            raise _fail("is not a valid URL (contains whitespace)")
        return value

    @field_validator("headers")
    @classmethod
    def _header_syntax(cls, value: dict[str, str]) -> dict[str, str]:
        """A newline in a header (a secret read with its trailing newline) breaks requests."""
        errors: _Problems = []
        for name, text in value.items():
            if not _HEADER_NAME.fullmatch(name):
                errors.append(((name,), name, _fail("is not a valid HTTP header name")))
            elif any(c in text for c in "\r\n\0"):
                errors.append(((name,), text, _fail("header value contains a line break or NUL")))
        _fail_at("headers", errors)
        return value

    _ca_file = field_validator("ca_file")(_readable_bundle)

    @model_validator(mode="after")
    def _one_authorization(self) -> _HttpSinkBase:
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
            _fail_at("HttpSinkConfig", [(("headers", explicit[0]), None, _fail(message))])
        return self

    @model_validator(mode="after")
    def _verify_xor_ca(self) -> _HttpSinkBase:
        """A CA bundle with verification off is ignored: one of the two is a mistake."""
        if self.ca_file is not None and self.insecure_skip_verify:
            _fail_at(
                "HttpSinkConfig",
                [
                    (
                        ("insecureSkipVerify",),
                        True,
                        _fail("cannot be true together with caFile (the CA would be ignored)"),
                    )
                ],
            )
        return self


class WebhookSinkConfig(_HttpSinkBase):
    """Send the event JSON to an HTTP(S) endpoint, optionally signed."""

    type: Literal["webhook"]
    method: Literal["POST", "PUT", "PATCH"] = "POST"
    secret: str | None = Field(None, repr=False)
    """HMAC-SHA256 signing key: adds ``X-Kubewatch-Timestamp`` / ``X-Kubewatch-Signature``."""
    body_template: str | None = None
    """Jinja2 template of the request body (JSON); default: the event JSON."""
    markup: Literal["none", "slack", "markdown", "html"] = "none"
    """Markup of the receiver: text from cluster objects is escaped for it in templates."""


class SlackSinkConfig(_ChatSinkBase):
    """Slack with a bot token (``chat.postMessage``; scope ``chat:write``)."""

    type: Literal["slack"]
    channel: NonBlank
    """Channel name (``#ops``) or ID (``C0123456789``)."""
    token: str | None = Field(None, repr=False)
    """Bot token (``xoxb-…``); or ``tokenFile``."""
    token_file: str | None = None
    """File holding the token (a mounted Secret), read at start."""
    api_url: str = "https://slack.com/api/"
    """Web API base URL: GovSlack, a proxy, or a test server."""
    timeout: Seconds = 10.0

    @field_validator("token_file")
    @classmethod
    def _anchor_token_file(cls, value: str | None, info: ValidationInfo) -> str | None:
        """Relative to the configuration file, like ``caFile`` (and kubeconfig paths)."""
        return None if value is None else str(_base_path(value, info))

    @model_validator(mode="after")
    def _one_token(self) -> SlackSinkConfig:
        """Exactly one way to get the token, so it is never ambiguous which one is used."""
        if (self.token is None) == (self.token_file is None):
            key = "tokenFile" if self.token_file is not None else "token"
            _fail_at(
                "SlackSinkConfig",
                [((key,), None, _fail("set exactly one of token and tokenFile"))],
            )
        return self


class SlackWebhookSinkConfig(_ChatSinkBase):
    """A Slack incoming webhook (the channel is fixed by the webhook)."""

    type: Literal["slackWebhook"]
    url: str = Field(repr=False)
    timeout: Seconds = 10.0


class TeamsSinkConfig(_ChatSinkBase, _HttpSinkBase):
    """Microsoft Teams through a Workflows webhook, as an Adaptive Card."""

    type: Literal["teams"]


class DiscordSinkConfig(_ChatSinkBase, _HttpSinkBase):
    """A Discord channel webhook, as an embed with a colour."""

    type: Literal["discord"]
    username: str | None = None


class MattermostSinkConfig(_ChatSinkBase, _HttpSinkBase):
    """A Mattermost incoming webhook, as an attachment."""

    type: Literal["mattermost"]
    channel: str | None = None
    """Override the webhook's channel (if the webhook allows it)."""
    username: str | None = None


class CloudEventsSinkConfig(_HttpSinkBase):
    """CloudEvents 1.0 over HTTP."""

    type: Literal["cloudevents"]
    mode: Literal["structured", "binary"] = "structured"
    source: str | None = None
    """``source`` attribute (default: ``kubewatch/<cluster>``)."""


class SmtpSinkConfig(_SinkBase):
    """E-mail over SMTP: a text and an HTML part per event."""

    type: Literal["smtp"]
    host: NonBlank
    port: StrictInt | None = Field(None, ge=1, le=65535)
    """Default: 587 for ``starttls``, 465 for ``implicit``, 25 for ``none``."""
    tls: Literal["starttls", "implicit", "none"] = "starttls"
    username: str | None = None
    password: str | None = Field(None, repr=False)
    from_: str = Field(alias="from")
    to: tuple[NonBlank, ...] = Field(min_length=1)
    subject: str = "{{ summary }}"
    """Jinja2 template of the subject line."""
    template: str | None = None
    """Jinja2 text of the plain-text part (default: summary and changes)."""
    timeout: Seconds = 30.0
    ca_file: str | None = None
    """PEM bundle to verify the server's certificate, relative to the config file."""
    insecure_skip_verify: StrictBool = False

    _ca_file = field_validator("ca_file")(_readable_bundle)

    @model_validator(mode="after")
    def _auth_pair(self) -> SmtpSinkConfig:
        """A username without a password (or the reverse) cannot log in."""
        if (self.username is None) != (self.password is None):
            key = "password" if self.username is not None else "username"
            _fail_at("SmtpSinkConfig", [((key,), None, _fail("username and password go together"))])
        return self


SinkConfig = Annotated[
    StdoutSinkConfig
    | WebhookSinkConfig
    | SlackSinkConfig
    | SlackWebhookSinkConfig
    | TeamsSinkConfig
    | DiscordSinkConfig
    | MattermostSinkConfig
    | CloudEventsSinkConfig
    | SmtpSinkConfig,
    Field(discriminator="type"),
]


class MatchConfig(_Model):
    """Conditions on an event; all given keys must hold, each list is any-of."""

    kinds: tuple[NonBlank, ...] | None = None
    namespaces: tuple[NamespacePattern, ...] | None = None
    names: tuple[NamePattern, ...] | None = None
    types: tuple[EventName, ...] | None = None
    labels: Selector | None = None
    reasons: tuple[Regex, ...] | None = None
    """Kubernetes Events only: reasons, names or regular expressions (whole reason)."""
    changed: tuple[PathPattern, ...] | None = None
    """Updates only: at least one changed path at or below one of these."""

    @model_validator(mode="after")
    def _no_empty_lists(self) -> MatchConfig:
        """An empty list would match nothing: a route that never fires, silently."""
        _fail_at(
            "MatchConfig",
            [
                ((field.alias or name,), [], _fail("must not be empty (leave the key out)"))
                for name, field in type(self).model_fields.items()
                if getattr(self, name) == ()
            ],
        )
        return self


class RouteConfig(_Model):
    """Events matching ``match`` (all events when absent) go to ``sinks``."""

    match: MatchConfig | None = None
    sinks: tuple[SinkName, ...]
    stop: StrictBool = False
    """Do not evaluate later routes for an event this route matched."""

    @field_validator("sinks")
    @classmethod
    def _some_sinks(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise _fail("at least one sink is required")
        return value


class DeliveryConfig(_Model):
    queue_size: StrictInt = Field(10_000, ge=1, le=10_000_000)
    """Events waiting per sink; when full, the oldest is dropped (logged and counted)."""
    workers: StrictInt = Field(4, ge=1, le=64)
    """Parallel sends per sink; events of one object always go through the same worker."""
    retry: RetryConfig = RetryConfig()
    drain_timeout: Annotated[float, _strict(float)] = Field(10.0, ge=0, le=MAX_DURATION)
    """Seconds allowed on shutdown to deliver what is already queued."""
    max_age: Duration = 3600.0
    """An event not delivered this long after kubewatch saw it fails for good (counted
    as expired, logged): a sink that was down longer gets no stale news."""


class StateConfig(_Model):
    """Durable state: the spool of undelivered events and the watch checkpoint."""

    path: NonBlank | None = None
    """Directory for ``state.db`` (SQLite, WAL). Default: none, state in memory only, so a
    restart loses queued events and the changes made while kubewatch was down."""


class WatchConfig(_Model):
    read_timeout: Seconds = 90.0
    """Seconds without a byte (event or bookmark) after which a watch is presumed dead.
    API servers before 1.27 send a bookmark only shortly before a watch's timeout, so a
    quiet watch is kept shorter than this (see ``server_timeout``)."""
    server_timeout: StrictInt = Field(60, ge=1, le=int(MAX_DURATION))
    """``timeoutSeconds`` asked of the server: each watch picks between this and twice it,
    capped at 90% of ``read_timeout``, then reopens from its resourceVersion (cheap)."""
    page_size: StrictInt = Field(200, ge=1, le=MAX_INT64)
    """``limit`` of each LIST page: bounds memory during a (re)list."""
    discovery_interval: Seconds = 30.0
    """Seconds between discovery checks for resources that are not installed yet."""


class ServerConfig(_Model):
    """The HTTP server for ``/metrics``, ``/healthz`` and ``/readyz``."""

    port: StrictInt | None = Field(None, ge=0, le=65535)
    """Port to listen on (``0`` picks a free one); default: no server."""
    address: str = "0.0.0.0"
    """Address to bind."""
    stall_threshold: Duration = 180.0
    """A watch silent (no event, no bookmark, no reopen) for this long is stalled:
    ``/readyz`` fails until it is active again (``watch.readTimeout`` replaces it)."""


class LeaderElectionConfig(_Model):
    """Several replicas, one deliverer: a ``coordination.k8s.io/v1`` Lease decides which."""

    enabled: StrictBool = False
    lease_name: NonBlank = "kubewatch"
    namespace: str | None = None
    """Namespace of the Lease (default: ``$POD_NAMESPACE``, else ``default``)."""
    lease_duration: Duration = 15.0
    """Seconds a leader's claim lasts without renewal: the longest a handover takes."""
    renew_deadline: Duration = 10.0
    """Seconds the leader keeps trying to renew before it steps down."""
    retry_period: Duration = 2.0
    """Seconds between attempts to acquire or renew."""

    @model_validator(mode="after")
    def _timings(self) -> LeaderElectionConfig:
        """client-go's rules: otherwise two leaders could overlap."""
        errors: _Problems = []
        if self.renew_deadline >= self.lease_duration:
            errors.append((("renewDeadline",), None, _fail("must be shorter than leaseDuration")))
        if self.retry_period >= self.renew_deadline:
            errors.append((("retryPeriod",), None, _fail("must be shorter than renewDeadline")))
        _fail_at("LeaderElectionConfig", errors)
        return self


class Config(_Model):
    cluster: NonBlank | None = None
    """Name put in every event; default: the kube context's name."""
    namespaces: NamespacesConfig = NamespacesConfig()
    resources: tuple[ResourceConfig, ...]
    """At least one (checked by a validator: ``min_length`` misfires when an item fails)."""
    sinks: dict[SinkName, SinkConfig]
    namespace_selector: Selector | None = None
    """Only objects in namespaces whose labels match (kept current by a Namespace watch)."""
    drop: tuple[MatchConfig, ...] = ()
    """Evaluated first: an event matching any entry is discarded."""
    routes: tuple[RouteConfig, ...] = ()
    """In order; without routes every event goes to every sink."""
    delivery: DeliveryConfig = DeliveryConfig()
    watch: WatchConfig = WatchConfig()
    server: ServerConfig = ServerConfig()
    leader_election: LeaderElectionConfig = LeaderElectionConfig()
    state: StateConfig = StateConfig()

    @field_validator("drop")
    @classmethod
    def _drop_not_everything(cls, value: tuple[MatchConfig, ...]) -> tuple[MatchConfig, ...]:
        """An empty match drops every event: never what was meant."""
        _fail_at(
            "drop",
            [
                ((i,), None, _fail("an empty match would drop every event"))
                for i, m in enumerate(value)
                if not m.model_fields_set
            ],
        )
        return value

    @model_validator(mode="after")
    def _stall_after_reopen(self) -> Config:
        """A quiet, healthy watch shows life only when it reopens; a shorter stall
        threshold would make /readyz flap on a healthy cluster."""
        quiet = min(2 * self.watch.server_timeout, 0.9 * self.watch.read_timeout)
        if self.server.stall_threshold <= quiet:
            message = (
                f"must be longer than {quiet:g}s, the longest a healthy quiet watch goes "
                "between reopens (min(2 x watch.serverTimeout, 0.9 x watch.readTimeout))"
            )
            _fail_at("Config", [(("server", "stallThreshold"), None, _fail(message))])
        return self

    @model_validator(mode="after")
    def _routes_name_sinks(self) -> Config:
        """A route to a sink that does not exist would lose events silently."""
        errors: _Problems = []
        for i, route in enumerate(self.routes):
            for j, name in enumerate(route.sinks):
                if name not in self.sinks:
                    close = difflib.get_close_matches(name, list(self.sinks), n=1)
                    hint = f" (did you mean {close[0]!r}?)" if close else ""
                    known = ", ".join(self.sinks)
                    errors.append(
                        (
                            ("routes", i, "sinks", j),
                            name,
                            _fail(f"unknown sink {name!r}{hint}; sinks: {known}", value=repr(name)),
                        )
                    )
        _fail_at("Config", errors)
        return self

    @field_validator("resources")
    @classmethod
    def _resources_distinct(cls, value: tuple[ResourceConfig, ...]) -> tuple[ResourceConfig, ...]:
        """Two identical watches would report every change twice."""
        if not value:
            raise _fail("at least one resource is required")
        first: dict[str, int] = {}
        errors: _Problems = []
        for i, r in enumerate(value):
            key = json.dumps(r.model_dump(mode="json"), sort_keys=True)
            if key in first:
                msg = f"duplicate of resources[{first[key]}] (every key the same)"
                errors.append(((i,), None, _fail(msg)))
            else:
                first[key] = i
        _fail_at("resources", errors)
        return value

    @field_validator("sinks")
    @classmethod
    def _some_sink(cls, value: dict[str, SinkConfig]) -> dict[str, SinkConfig]:
        """Events with nowhere to go mean a configuration mistake."""
        if not value:
            raise _fail("at least one sink is required")
        return value


# --------------------------------------------------------------------------- union helpers


def _unwrap(tp: Any) -> tuple[Any, str | None]:
    """Strip ``Annotated`` and ``X | None``; return the core type and its discriminator."""
    disc: str | None = None
    while True:
        origin = typing.get_origin(tp)
        if origin is Annotated:
            args = typing.get_args(tp)
            for meta in args[1:]:
                if isinstance(meta, FieldInfo) and isinstance(meta.discriminator, str):
                    disc = meta.discriminator
            tp = args[0]
        elif origin in (Union, types.UnionType):
            members = [a for a in typing.get_args(tp) if a is not type(None)]
            if len(members) == 1:
                tp = members[0]
            else:
                return tp, disc
        else:
            return tp, disc


def _union_members(tp: Any, disc: str) -> dict[str, type[BaseModel]]:
    """Map each tag of a discriminated union to its model, in declaration order."""
    out: dict[str, type[BaseModel]] = {}
    for member in typing.get_args(tp):
        if isinstance(member, type) and issubclass(member, BaseModel):
            for tag in typing.get_args(member.model_fields[disc].annotation):
                out[str(tag)] = member
    return out


SINK_TYPES: tuple[str, ...] = tuple(_union_members(_unwrap(SinkConfig)[0], "type"))
"""Every ``type`` a sink may have, derived from :data:`SinkConfig` (no list to keep in sync)."""


def _aliases(model: type[BaseModel]) -> list[str]:
    """The YAML spelling of each field, for messages and suggestions."""
    return [f.alias or name for name, f in model.model_fields.items()]


def _field(model: type[BaseModel], key: object) -> FieldInfo | None:
    """Find a field by its YAML alias or, as pydantic accepts it too, its Python name."""
    for name, f in model.model_fields.items():
        if key in (f.alias, name):
            return f
    return None


# --------------------------------------------------------------------------- describing types


def _describe(tp: Any, plural: bool = False) -> str | None:
    """Say in words what a type expects: ``a list of strings``; None when we cannot."""
    tp, disc = _unwrap(tp)
    origin = typing.get_origin(tp)
    if disc is not None:
        return "mappings" if plural else f"a mapping with a {disc!r} key"
    if origin is Literal:
        values = ", ".join(repr(a) for a in typing.get_args(tp))
        return f"values from {values}" if plural else f"one of {values}"
    if origin in (tuple, list):
        inner = _describe(typing.get_args(tp)[0], plural=True) or "values"
        return "lists" if plural else f"a list of {inner}"
    if origin is dict:
        k, v = typing.get_args(tp)
        pair = f"{_describe(k, plural=True) or 'keys'} to {_describe(v, plural=True) or 'values'}"
        return "mappings" if plural else f"a mapping of {pair}"
    simple = {
        str: ("a string", "strings"),
        int: ("an integer", "integers"),
        float: ("a number", "numbers"),
        bool: ("true or false", "booleans"),
    }
    if tp in simple:
        return simple[tp][plural]
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return "mappings" if plural else "a mapping"
    return None


def _kind_of(value: object) -> str:
    """Name a YAML value's type the way a YAML author thinks of it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, date):
        return "a date"
    return type(value).__name__


# --------------------------------------------------------------------------- key paths

PathPart = str | int


def format_path(parts: tuple[PathPart, ...] | list[PathPart]) -> str:
    """``("sinks", "audit", "url")`` → ``sinks.audit.url``; odd keys are quoted."""
    out = ""
    for p in parts:
        if isinstance(p, int) and not isinstance(p, bool):
            out += f"[{p}]"
        elif isinstance(p, str) and re.fullmatch(r"[A-Za-z0-9_-]+", p):
            out += f".{p}" if out else p
        else:
            out += f"[{json.dumps(str(p), ensure_ascii=False)}]"
    return out


@dataclass
class _Located:
    """Where a pydantic location lands in the document and in the model."""

    parts: list[PathPart] = field(default_factory=list)
    tp: Any = None
    parent: type[BaseModel] | None = None
    via_tag: str | None = None
    collection: str | None = None
    """The last model field name passed (``sinks``), to name a union's members."""
    is_key: bool = False


def _locate(loc: tuple[int | str, ...]) -> _Located:
    """Walk a pydantic loc through the model, dropping discriminator tags on the way."""
    at = _Located(tp=Config)
    for i, elem in enumerate(loc):
        tp, disc = _unwrap(at.tp)
        if disc is not None and i < len(loc) - 1:
            members = _union_members(tp, disc)
            if isinstance(elem, str) and elem in members:
                at.tp, at.via_tag = members[elem], elem
                continue
        if elem == "[key]":
            at.is_key = True
            at.tp = str
            continue
        origin = typing.get_origin(tp)
        if origin in (tuple, list) and isinstance(elem, int):
            at.parts.append(elem)
            at.tp = typing.get_args(tp)[0]
            continue
        at.parts.append(str(elem))  # a key, even if YAML made it a number
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            f = _field(tp, elem)
            at.parent = tp
            if f is None:
                at.tp = None
            else:
                at.tp = Annotated[f.annotation, f] if f.discriminator else f.annotation
                at.collection = f.alias or str(elem)
                at.via_tag = None
        elif origin is dict:
            at.tp = typing.get_args(tp)[1]
        else:
            at.tp = None
    return at


# --------------------------------------------------------------------------- env expansion

_REF = re.compile(r"\$\$\{|\$\{([^}]*)(\}?)")
_VAR_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_MAX_NODES = 200_000
_MAX_DEPTH = 64


class _TooBig(Exception):
    """The document is absurdly large or nested (an alias bomb, most likely)."""


@dataclass
class _Expansion:
    """The result of expanding ``${VAR}`` throughout a document."""

    errors: list[ConfigError] = field(default_factory=list)
    raw: dict[str, str] = field(default_factory=dict)
    """Key paths whose value came (partly) from the environment → the text before expansion."""
    broken: set[str] = field(default_factory=set)
    """Paths whose expansion failed: their validation errors would only repeat it."""
    secrets: set[str] = field(default_factory=set)
    nodes: int = 0


def _expand_str(
    text: str, env: Mapping[str, str], path: tuple[PathPart, ...], out: _Expansion
) -> str:
    """Replace ``${NAME}`` from env and ``$${`` by ``${``; record problems by path."""
    if "${" not in text:
        return text
    pieces: list[str] = []
    pos = 0
    used = False
    problems: list[str] = []
    for m in _REF.finditer(text):
        pieces.append(text[pos : m.start()])
        pos = m.end()
        if m.group(0) == "$${":
            pieces.append("${")
            continue
        name, closed = m.group(1), m.group(2)
        if not closed:
            problems.append("unterminated '${' (write '$${' for a literal '${')")
            pieces.append(m.group(0))
        elif not _VAR_NAME.fullmatch(name):
            problems.append(
                f"invalid variable name {name!r} in '${{...}}' (use letters, digits and '_'; "
                "write '$${' for a literal '${')"
            )
            pieces.append(m.group(0))
        elif name not in env:
            problems.append(f"environment variable {name} is not set")
            pieces.append(m.group(0))
        else:
            value = env[name]
            pieces.append(value)
            used = True
            if value:
                out.secrets.add(value)
    pieces.append(text[pos:])
    where = format_path(path)
    out.errors.extend(ConfigError(where, p) for p in problems)
    if problems:
        out.broken.add(where)
        return text
    if used:
        out.raw[where] = text
        return _Expanded("".join(pieces))
    return "".join(pieces)


def _expand(
    data: Any,
    env: Mapping[str, str],
    path: tuple[PathPart, ...],
    out: _Expansion,
    active: set[int],
) -> Any:
    """Copy the document with every string *value* expanded; keys are left alone."""
    out.nodes += 1
    if out.nodes > _MAX_NODES or len(path) > _MAX_DEPTH:
        raise _TooBig
    if isinstance(data, str):
        return _expand_str(data, env, path, out)
    if isinstance(data, dict | list):
        if id(data) in active:
            raise _TooBig
        active.add(id(data))
        try:
            if isinstance(data, dict):
                return {
                    k: _expand(v, env, (*path, k if isinstance(k, str) else str(k)), out, active)
                    for k, v in data.items()
                }
            return [_expand(v, env, (*path, i), out, active) for i, v in enumerate(data)]
        finally:
            active.discard(id(data))
    return data


# --------------------------------------------------------------------------- YAML


def _yaml_error(exc: yaml.YAMLError, source: str) -> ConfigError:
    """Name file, line and column; never quote the line (it may hold a secret)."""
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    where = f"{source}, line {mark.line + 1}, column {mark.column + 1}" if mark else source
    problem = getattr(exc, "problem", None) or type(exc).__name__
    context = getattr(exc, "context", None)
    detail = f"{problem} ({context})" if context else str(problem)
    return ConfigError("", f"invalid YAML in {where}: {detail}")


@dataclass
class _Document:
    """A parsed document and what the node tree tells that the data no longer does."""

    data: Any = None
    duplicates: list[ConfigError] = field(default_factory=list)
    lines: dict[str, int] = field(default_factory=dict)
    """Key path → 1-based line, to report errors in the order they appear in the file."""


def _index(node: yaml.Node, doc: _Document) -> None:
    """Record each key's line and every repeated key (PyYAML silently keeps the last)."""
    seen: set[int] = set()
    stack: list[tuple[yaml.Node, tuple[PathPart, ...]]] = [(node, ())]
    while stack:
        current, path = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        doc.lines.setdefault(format_path(path), current.start_mark.line + 1)
        if isinstance(current, yaml.MappingNode):
            first: dict[str, int] = {}
            for key_node, value_node in current.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
                if not isinstance(key, str):
                    continue
                line = key_node.start_mark.line + 1
                if key in first:
                    doc.duplicates.append(
                        ConfigError(
                            format_path((*path, key)),
                            f"duplicate key (line {line}; first at line {first[key]})",
                        )
                    )
                    continue
                first[key] = line
                doc.lines.setdefault(format_path((*path, key)), line)
                stack.append((value_node, (*path, key)))
        elif isinstance(current, yaml.SequenceNode):
            stack.extend((v, (*path, i)) for i, v in enumerate(current.value))


def _read_yaml(text: str, source: str) -> _Document:
    """Parse one YAML document safely; syntax errors become a ConfigError at path ''."""
    loader = yaml.SafeLoader(text)
    doc = _Document()
    try:
        node = loader.get_single_node()
        if node is not None:
            _index(node, doc)
            doc.data = loader.construct_document(node)
    except yaml.YAMLError as exc:
        raise ConfigErrors([_yaml_error(exc, source)]) from None
    except RecursionError:
        raise ConfigErrors([ConfigError("", f"{source} is nested too deeply")]) from None
    finally:
        loader.dispose()
    return doc


_PATH_TAIL = re.compile(r'(\.[^.\[]+|\[(?:\d+|"(?:[^"\\]|\\.)*")\])$')


def _line_of(path: str, lines: Mapping[str, int]) -> int:
    """The line of ``path`` or of its nearest ancestor in the file (a missing key's parent)."""
    while path:
        if path in lines:
            return lines[path]
        tail = _PATH_TAIL.search(path)
        path = path[: tail.start()] if tail else ""
    return 0


# --------------------------------------------------------------------------- pydantic errors


def _shown(value: object, raw: str | None) -> str:
    """The value for a message: the unexpanded text when it came from the environment."""
    if raw is not None:
        return f"{raw!r} (expanded)"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


_TYPE_ERRORS = frozenset(
    {
        "string_type",
        "int_type",
        "int_parsing",
        "int_from_float",
        "float_type",
        "float_parsing",
        "bool_type",
        "bool_parsing",
        "dict_type",
        "model_type",
        "model_attributes_type",
        "tuple_type",
        "list_type",
        "invalid_key",
        "string_unicode",
    }
)


def _message(err: ErrorDetails, at: _Located, raw: Mapping[str, str]) -> tuple[str, str]:
    """Turn one pydantic error into (path, message) in the words of the YAML author.

    ``raw`` maps key paths whose value came from the environment to their unexpanded
    text, which is what messages show instead of the value.
    """
    kind = err["type"]
    value = err.get("input")
    ctx: dict[str, Any] = dict(err.get("ctx") or {})
    path = format_path(at.parts)
    here = raw.get(path)
    tp, disc = _unwrap(at.tp) if at.tp is not None else (None, None)
    root_list = not at.is_key and len(at.parts) == 1 and at.parts[0] in ("resources", "sinks")
    at_least_one = (
        f"at least one {str(at.parts[0]).removesuffix('s')} is required" if root_list else ""
    )

    if kind == _ERROR:
        msg = err["msg"]
        shown = ctx.get("value")
        if here is not None and isinstance(shown, str):
            msg = msg.replace(shown, _shown(None, here))
        return path, msg
    if kind in ("union_tag_invalid", "union_tag_not_found") and disc is not None:
        label = (at.collection or "").removesuffix("s") or "item"
        tags = list(_union_members(tp, disc))
        known = f"known {label} types: {', '.join(tags)}"
        where = format_path([*at.parts, disc])
        if kind == "union_tag_not_found":
            return where, f"{disc!r} is required; {known}"
        tag = value.get(disc) if isinstance(value, dict) else None
        if isinstance(tag, str):
            close = difflib.get_close_matches(tag, tags, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close and where not in raw else ""
            return where, f"unknown {label} type {_shown(tag, raw.get(where))}; {known}{hint}"
        return where, f"expected a string, got {_kind_of(tag)}; {known}"
    if kind == "extra_forbidden":
        key = str(at.parts[-1]) if at.parts else ""
        allowed = _aliases(at.parent) if at.parent is not None else []
        close = difflib.get_close_matches(key, allowed, n=1)
        label = (at.collection or "").removesuffix("s") or "item"
        scope = f" for a {at.via_tag} {label}" if at.via_tag else ""
        if close:
            return path, f"unknown key {key!r}{scope} (did you mean {close[0]!r}?)"
        return path, f"unknown key {key!r}{scope}; valid keys: {', '.join(allowed)}"
    if kind == "missing":
        return path, at_least_one or "missing required key"
    if kind == "literal_error":
        choices = _describe(tp) or "one of " + str(ctx.get("expected", ""))
        return path, f"expected {choices}, got {_shown(value, here)}"
    if kind in _TYPE_ERRORS:
        if at.is_key or kind == "invalid_key":
            return path, f"keys must be strings, got {_kind_of(value)} (put it in quotes)"
        if value is None and at_least_one:
            return path, at_least_one
        expected = _describe(at.tp)
        if disc is not None and isinstance(value, str) and here is None:
            # `audit: webhook` where `audit: {type: webhook, ...}` was meant
            expected = f"a mapping like {{{disc}: {value}, ...}}"
        got = _kind_of(value)
        if isinstance(value, str) and tp in (int, float, bool):
            got = f"{got} {_shown(value, here)}"
        if expected is None:
            return path, f"{_clean(err['msg'])}, got {got}"
        hint = ""
        if tp is str and isinstance(value, bool | int | float | date):
            hint = " (put it in quotes to make it a string)"
        return path, f"expected {expected}, got {got}{hint}"
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        return path, f"{_clean(err['msg'])}, got {_shown(value, here)}"
    if kind == "finite_number":
        return path, "must be a finite number"
    return path, _clean(err["msg"])


def _clean(msg: str) -> str:
    """pydantic's wording, adapted: 'Input should be x' → 'must be x'."""
    for prefix in ("Value error, ", "Assertion failed, "):
        msg = msg.removeprefix(prefix)
    return msg.replace("Input should be", "must be")


def _convert(exc: ValidationError, exp: _Expansion) -> list[ConfigError]:
    """Every pydantic error as a ConfigError, minus those a failed expansion already explains."""
    out: list[ConfigError] = []
    for err in exc.errors(include_url=False):
        path, message = _message(err, _locate(tuple(err["loc"])), exp.raw)
        if any(path == b or path.startswith((f"{b}.", f"{b}[")) for b in exp.broken):
            continue
        out.append(ConfigError(path, message))
    return out


# --------------------------------------------------------------------------- public API


def parse_config(
    text: str,
    env: Mapping[str, str] | None = None,
    source: str = "<config>",
    *,
    base_dir: str | os.PathLike[str] | None = None,
) -> Config:
    """Validate a YAML document into a :class:`Config`, or raise every mistake at once.

    ``env`` (default ``os.environ``) feeds ``${VAR}``; ``source`` names the document in
    messages; ``base_dir`` anchors relative file paths (``caFile``), default the cwd.
    """
    env = os.environ if env is None else env
    doc = _read_yaml(text, source)
    data, errors = doc.data, doc.duplicates
    if data is None:
        errors.append(
            ConfigError("", f"{source} is empty; it needs at least 'resources' and 'sinks'")
        )
        raise ConfigErrors(errors)
    if not isinstance(data, dict):
        errors.append(
            ConfigError(
                "",
                f"{source} must be a mapping of keys (resources, sinks, ...), got {_kind_of(data)}",
            )
        )
        raise ConfigErrors(errors)
    exp = _Expansion()
    try:
        expanded = _expand(data, env, (), exp, set())
    except _TooBig:
        raise ConfigErrors(
            [ConfigError("", f"{source} is too large, nested too deeply or recursive")]
        ) from None
    errors.extend(exp.errors)
    context = {"base_dir": os.fspath(base_dir)} if base_dir is not None else None
    try:
        config = Config.model_validate(expanded, context=context)
    except ValidationError as exc:
        # `from None`: the ValidationError's text quotes input values, secrets included.
        errors.extend(_convert(exc, exp))
    if errors:
        ordered = sorted(_unique(errors), key=lambda e: _line_of(e.path, doc.lines))
        raise ConfigErrors(_redact(ordered, exp.secrets)) from None
    return config


MAX_CONFIG_BYTES = 1024 * 1024
"""A configuration is a few KiB; a larger file is refused before it is parsed (a 12 MB
one took 42 s and 1 GB of memory to refuse after parsing)."""


def _too_large(source: str, size: int, limit: int) -> ConfigErrors:
    return ConfigErrors(
        [
            ConfigError(
                "",
                f"{source}: {size:,} bytes or more, larger than the {limit:,} bytes "
                "(1 MiB) a configuration may have",
            )
        ]
    )


def load_config(
    path: str | os.PathLike[str],
    env: Mapping[str, str] | None = None,
    *,
    max_bytes: int = MAX_CONFIG_BYTES,
) -> Config:
    """Read and validate a configuration file of at most ``max_bytes``; see
    :func:`parse_config`. The size is checked before anything is parsed."""
    source = os.fspath(path)
    try:
        with open(source, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size > max_bytes:
                raise _too_large(source, size, max_bytes)
            data = f.read(max_bytes + 1)  # a pipe or /proc file has no size: read one more
        if len(data) > max_bytes:
            raise _too_large(source, len(data), max_bytes)
        text = data.decode("utf-8-sig")
    except FileNotFoundError:
        raise ConfigErrors([ConfigError("", f"{source}: file not found")]) from None
    except IsADirectoryError:
        raise ConfigErrors([ConfigError("", f"{source}: is a directory, not a file")]) from None
    except PermissionError:
        raise ConfigErrors([ConfigError("", f"{source}: permission denied")]) from None
    except UnicodeDecodeError as exc:
        raise ConfigErrors(
            [ConfigError("", f"{source}: not UTF-8 text (byte {exc.start})")]
        ) from None
    except OSError as exc:
        raise ConfigErrors([ConfigError("", f"{source}: {exc.strerror or exc}")]) from None
    return parse_config(text, env, source, base_dir=Path(source).absolute().parent)


def format_errors(err: ConfigErrors, source: str) -> str:
    """One header line and one indented line per mistake, for stderr."""
    n = len(err.errors)
    lines = [f"{source}: {n} error{'' if n == 1 else 's'}"]
    lines += [f"  {e.path}: {e.message}" if e.path else f"  {e.message}" for e in err.errors]
    return "\n".join(lines)


def _unique(errors: list[ConfigError]) -> list[ConfigError]:
    """Drop exact repeats (one YAML alias reused in two places fails twice)."""
    seen: set[tuple[str, str]] = set()
    out = []
    for e in errors:
        if (e.path, e.message) not in seen:
            seen.add((e.path, e.message))
            out.append(e)
    return out


def _redact(errors: list[ConfigError], secrets: set[str]) -> list[ConfigError]:
    """Last line of defence: no substituted value of 8+ characters may reach a message,
    in any form it travels in (URL-encoded, base64, a URL's password)."""
    scrub = Scrubber({f for s in secrets if len(s) >= 8 for f in secret_forms(s)}, min_length=8)
    if scrub.pattern is None:
        return errors
    out = []
    for e in errors:
        msg = scrub(e.message)
        out.append(e if msg == e.message else ConfigError(e.path, msg))
    return out
