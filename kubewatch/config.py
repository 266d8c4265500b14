"""The configuration model: one YAML file, validated before anything starts.

Keys are camelCase in YAML (``labelSelector``) and snake_case in Python. Every model is
frozen and forbids unknown keys, so a typo is an error that names its key path.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

EventName = Literal["create", "update", "delete"]
ALL_EVENTS: tuple[EventName, ...] = ("create", "update", "delete")


class _Model(BaseModel):
    model_config = ConfigDict(
        extra="forbid", frozen=True, alias_generator=to_camel, populate_by_name=True
    )


class NamespacesConfig(_Model):
    """Which namespaces to watch. An empty ``include`` means every namespace."""

    include: tuple[str, ...] = ()
    """Watch only these namespaces (one watch per namespace and resource)."""
    exclude: tuple[str, ...] = ()
    """Never report objects in these namespaces (filtered server-side)."""


class ResourceConfig(_Model):
    """One watched resource: a kind, plural, short name, ``kind.group`` or apiVersion + kind."""

    kind: str
    api_version: str | None = None
    events: tuple[EventName, ...] = ALL_EVENTS
    label_selector: str | None = None
    field_selector: str | None = None
    notify_existing: bool = False
    """Report objects that already exist at start as creates (default: only new ones)."""


class StdoutSinkConfig(_Model):
    """Print events to standard output."""

    type: Literal["stdout"]
    format: Literal["json", "text"] = "json"
    """``json``: one event JSON per line; ``text``: one human line per event."""


class WebhookSinkConfig(_Model):
    """POST the event JSON to an HTTP(S) endpoint."""

    type: Literal["webhook"]
    url: str
    headers: dict[str, str] = Field(default_factory=dict)
    timeout: float = Field(10.0, gt=0)
    """Seconds for connect, write and read of one attempt."""
    ca_file: str | None = None
    """PEM bundle to verify the receiver's certificate (default: the system's)."""
    insecure_skip_verify: bool = False
    """Turn TLS verification off. For tests only."""


SinkConfig = Annotated[StdoutSinkConfig | WebhookSinkConfig, Field(discriminator="type")]


class RetryConfig(_Model):
    attempts: int = Field(5, ge=1, le=100)
    """Attempts per event and sink, the first included."""
    max_backoff: float = Field(30.0, gt=0)
    """Seconds: the longest wait between two attempts (Retry-After may ask for more)."""


class DeliveryConfig(_Model):
    queue_size: int = Field(10_000, ge=1)
    """Events waiting per sink; when full, the oldest is dropped (logged and counted)."""
    workers: int = Field(4, ge=1, le=64)
    """Parallel sends per sink; events of one object always go through the same worker."""
    retry: RetryConfig = RetryConfig()
    drain_timeout: float = Field(10.0, ge=0)
    """Seconds allowed on shutdown to deliver what is already queued."""


class WatchConfig(_Model):
    read_timeout: float = Field(90.0, gt=0)
    """Seconds without a byte (event or bookmark) after which a watch is presumed dead."""
    server_timeout: int = Field(300, ge=10)
    """``timeoutSeconds`` asked of the server; each watch picks between this and twice it."""
    page_size: int = Field(500, ge=1)
    """``limit`` of each LIST page: bounds memory during a (re)list."""
    discovery_interval: float = Field(30.0, gt=0)
    """Seconds between discovery checks for resources that are not installed yet."""


class Config(_Model):
    cluster: str | None = None
    """Name put in every event; default: the kube context's name."""
    namespaces: NamespacesConfig = NamespacesConfig()
    resources: tuple[ResourceConfig, ...] = Field(min_length=1)
    sinks: dict[str, SinkConfig] = Field(min_length=1)
    delivery: DeliveryConfig = DeliveryConfig()
    watch: WatchConfig = WatchConfig()
