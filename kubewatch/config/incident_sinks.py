"""Incident tools and the event bus: PagerDuty, Opsgenie, Alertmanager and NATS JetStream.

Unlike chat sinks these have no default rate limit or digest: an incident tool
de-duplicates on its own key (``dedup_key``, ``alias``, the label set), and a bus
consumer wants every event, not a summary of a burst.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Callable
from typing import Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from kubewatch.config.fields import (
    Duration,
    Model,
    NonBlank,
    Problems,
    Seconds,
    StrictBool,
    fail,
    fail_at,
)
from kubewatch.config.sinks import HttpSinkBase, SinkBase, base_path, readable_bundle

Severity = Literal["critical", "error", "warning", "info"]
Priority = Literal["P1", "P2", "P3", "P4", "P5"]


class PagerDutySeverityConfig(Model):
    """PagerDuty ``severity`` per kind of event."""

    alert: Severity = "error"
    """A firing health alert (a crash loop, a failed Job, a NotReady Node)."""
    warning: Severity = "warning"
    """A Kubernetes Event of type Warning."""
    normal: Severity = "info"
    """A Kubernetes Event of type Normal."""
    delete: Severity = "info"
    """An object deleted (without ``resolveOnDelete``)."""
    change: Severity = "info"
    """An object created or updated."""


class OpsgeniePriorityConfig(Model):
    """Opsgenie ``priority`` per kind of event (P1 is the most urgent)."""

    alert: Priority = "P2"
    warning: Priority = "P3"
    normal: Priority = "P5"
    delete: Priority = "P4"
    change: Priority = "P5"


class PagerDutySinkConfig(HttpSinkBase):
    """PagerDuty Events API v2: trigger and resolve alerts keyed by object and reason."""

    type: Literal["pagerduty"]
    url: str = Field("https://events.pagerduty.com/v2/enqueue", alias="apiUrl")
    """The Events API v2 endpoint (a proxy, or a test server)."""
    routing_key: NonBlank = Field(repr=False)
    """The integration key of an Events API v2 integration of a service."""
    severity: PagerDutySeverityConfig = PagerDutySeverityConfig()
    resolve_on_delete: StrictBool = False
    """A deleted object resolves the alerts it triggered instead of triggering one."""


class OpsgenieSinkConfig(HttpSinkBase):
    """Opsgenie Alert API: create and close alerts keyed by object and reason (``alias``)."""

    type: Literal["opsgenie"]
    url: str = Field("https://api.opsgenie.com", alias="apiUrl")
    """API base URL: ``https://api.eu.opsgenie.com`` for an EU account."""
    api_key: NonBlank = Field(repr=False)
    """The key of an API integration (sent as ``Authorization: GenieKey …``)."""
    priority: OpsgeniePriorityConfig = OpsgeniePriorityConfig()
    tags: tuple[NonBlank, ...] = ()
    """Tags added to every alert, besides ``kubewatch``, the cluster, kind and reason."""
    resolve_on_delete: StrictBool = False
    """A deleted object closes the alerts it created instead of creating one."""


class AlertmanagerSinkConfig(HttpSinkBase):
    """Prometheus Alertmanager API v2: alerts with labels, sent to each of ``urls``."""

    type: Literal["alertmanager"]
    url: str | None = None  # type: ignore[assignment]
    """Base URL (``http://alertmanager:9093``); or ``urls``."""
    urls: tuple[str, ...] = ()
    """Base URLs of the replicas of an HA Alertmanager: each one is sent every alert."""
    alertname: NonBlank = "KubewatchEvent"
    """The ``alertname`` label (health alerts use their reason's name)."""
    labels: dict[str, str] = Field(default_factory=dict)
    """Labels added to every alert (``severity``, ``team``)."""
    generator_url: str | None = None
    """``generatorURL`` base, e.g. a dashboard; the object is added as a query
    (``?cluster=…&kind=…&namespace=…&name=…``). Default: ``kubewatch://``."""
    alert_timeout: Duration = 86400.0
    """A firing health alert's ``endsAt`` lies this far ahead: Alertmanager resolves it
    then unless a reminder or its resolved event came first (default 24h)."""
    resolve_on_delete: StrictBool = False
    """A deleted object resolves (``endsAt``) the alerts it fired."""

    @field_validator("url")
    @classmethod
    def http_url(cls, value: str | None) -> str | None:  # type: ignore[override]
        return None if value is None else HttpSinkBase.http_url(value)

    @field_validator("urls")
    @classmethod
    def _http_urls(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for url in value:
            HttpSinkBase.http_url(url)
        return value

    @field_validator("labels")
    @classmethod
    def _label_names(cls, value: dict[str, str]) -> dict[str, str]:
        """Alertmanager refuses the whole request for one bad label name."""
        for name in value:
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
                raise fail(f"{name!r} is not a label name ([A-Za-z_][A-Za-z0-9_]*)")
        return value

    @model_validator(mode="after")
    def _one_authorization(self) -> AlertmanagerSinkConfig:
        """One of ``url`` and ``urls``; and, as for every HTTP sink, credentials in a URL
        or an ``Authorization`` header, not both."""
        if (self.url is None) == (not self.urls):
            key = "urls" if self.urls else "url"
            fail_at("AlertmanagerSinkConfig", [((key,), None, fail("set one of url and urls"))])
        check: Callable[[HttpSinkBase], object] = HttpSinkBase._one_authorization  # type: ignore[assignment]
        for url in self.base_urls:
            check(self.model_copy(update={"url": url}))
        return self

    @property
    def base_urls(self) -> tuple[str, ...]:
        return (self.url,) if self.url is not None else self.urls


_SUBJECT_FIELD = re.compile(r"\{([^{}]*)\}")
SUBJECT_FIELDS = ("cluster", "kind", "namespace", "name", "type", "resource")
"""What a ``subject`` may name, each in braces (``{namespace}``)."""


class NatsSinkConfig(SinkBase):
    """NATS JetStream: each event published to a subject, acknowledged before it counts."""

    type: Literal["nats"]
    url: str | None = Field(None, repr=False)
    """Server URL (``nats://nats:4222``); or ``servers``. May hold ``user:password@``."""
    servers: tuple[str, ...] = Field((), repr=False)
    """URLs of the servers of a cluster; the client connects to one and fails over."""
    subject: NonBlank = "kubewatch.{cluster}.{kind}.{namespace}"
    """Subject of each event: ``{cluster}``, ``{kind}``, ``{namespace}``, ``{name}``,
    ``{type}`` and ``{resource}`` become one token each (``.``, ``*``, ``>`` and spaces
    replaced by ``_``; ``_`` for none, as for a cluster-scoped object's namespace)."""
    timeout: Seconds = 10.0
    """Seconds for one attempt: (re)connecting and waiting for the stream's PubAck."""
    creds_file: str | None = None
    """A ``.creds`` file (JWT and NKey seed), relative to the configuration file."""
    token: str | None = Field(None, repr=False)
    user: str | None = None
    password: str | None = Field(None, repr=False)
    ca_file: str | None = None
    """PEM bundle to verify the server (TLS); relative to the configuration file."""
    cert_file: str | None = None
    """Client certificate (PEM) for mutual TLS, with ``keyFile``."""
    key_file: str | None = None

    @field_validator("url")
    @classmethod
    def _nats_url(cls, value: str | None) -> str | None:
        return None if value is None else _check_nats_url(value)

    @field_validator("servers")
    @classmethod
    def _nats_urls(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(_check_nats_url(v) for v in value)

    @field_validator("subject")
    @classmethod
    def _subject(cls, value: str) -> str:
        for name in _SUBJECT_FIELD.findall(value):
            if name not in SUBJECT_FIELDS:
                raise fail(f"unknown field {{{name}}}; known: {', '.join(SUBJECT_FIELDS)}")
        literal = _SUBJECT_FIELD.sub("x", value)
        if any(c in literal for c in "{} \t\r\n*>") or "" in literal.split("."):
            raise fail(
                "is not a subject: tokens separated by single dots, no spaces, "
                "no '*' or '>', fields in braces"
            )
        return value

    _ca_file = field_validator("ca_file")(readable_bundle)

    @field_validator("creds_file", "cert_file", "key_file")
    @classmethod
    def _anchor(cls, value: str | None, info: ValidationInfo) -> str | None:
        """Relative to the configuration file, like ``caFile``; checked at start."""
        if value is None:
            return None
        path = base_path(value, info)
        if not path.is_file():
            raise fail(f"file {str(path)!r} does not exist")
        return str(path)

    @model_validator(mode="after")
    def _consistent(self) -> NatsSinkConfig:
        problems: Problems = []
        if (self.url is None) == (not self.servers):
            key = "servers" if self.servers else "url"
            problems.append(((key,), None, fail("set one of url and servers")))
        if (self.user is None) != (self.password is None):
            key = "password" if self.user is not None else "user"
            problems.append(((key,), None, fail("user and password go together")))
        ways = [self.creds_file is not None, self.token is not None, self.user is not None]
        if sum(ways) > 1:
            problems.append(
                (("token",), None, fail("set at most one of credsFile, token, user/password"))
            )
        if (self.cert_file is None) != (self.key_file is None):
            key = "keyFile" if self.cert_file is not None else "certFile"
            problems.append(((key,), None, fail("certFile and keyFile go together")))
        fail_at("NatsSinkConfig", problems)
        return self

    @property
    def server_urls(self) -> tuple[str, ...]:
        return (self.url,) if self.url is not None else self.servers


def _check_nats_url(value: str) -> str:
    """``nats://``, ``tls://`` (or ``ws(s)://``) with a host; never echo it (credentials)."""
    try:
        parts = urllib.parse.urlsplit(value)
        _ = parts.port
    except ValueError:
        raise fail("is not a valid URL (bad port or brackets)") from None
    if parts.scheme.lower() not in ("nats", "tls", "ws", "wss") or not parts.hostname:
        raise fail("must be a nats://, tls://, ws:// or wss:// URL with a host")
    return value
