"""How the process runs: delivery, state, watch, server and leader election settings."""

from __future__ import annotations

from typing import Annotated

from pydantic import (
    Field,
    model_validator,
)

from kubewatch.config.fields import (
    MAX_DURATION,
    MAX_INT64,
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
from kubewatch.config.sinks import RetryConfig


class DeliveryConfig(Model):
    queue_size: StrictInt = Field(10_000, ge=1, le=10_000_000)
    """Events waiting per sink; when full, the oldest is dropped (logged and counted)."""
    workers: StrictInt = Field(4, ge=1, le=64)
    """Parallel sends per sink; events of one object always go through the same worker."""
    retry: RetryConfig = RetryConfig()
    drain_timeout: Annotated[float, strict(float)] = Field(10.0, ge=0, le=MAX_DURATION)
    """Seconds allowed on shutdown to deliver what is already queued."""
    max_age: Duration = 3600.0
    """An event not delivered this long after kubewatch saw it fails for good (counted
    as expired, logged): a sink that was down longer gets no stale news."""


class StateConfig(Model):
    """Durable state: the spool of undelivered events and the watch checkpoint."""

    path: NonBlank | None = None
    """Directory for ``state.db`` (SQLite, WAL). Default: none, state in memory only, so a
    restart loses queued events and the changes made while kubewatch was down."""


class WatchConfig(Model):
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


class ServerConfig(Model):
    """The HTTP server for ``/metrics``, ``/healthz`` and ``/readyz``."""

    port: StrictInt | None = Field(None, ge=0, le=65535)
    """Port to listen on (``0`` picks a free one); default: no server."""
    address: str = "0.0.0.0"
    """Address to bind."""
    stall_threshold: Duration = 180.0
    """A watch silent (no event, no bookmark, no reopen) for this long is stalled:
    ``/readyz`` fails until it is active again (``watch.readTimeout`` replaces it)."""


class LeaderElectionConfig(Model):
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
        errors: Problems = []
        if self.renew_deadline >= self.lease_duration:
            errors.append((("renewDeadline",), None, fail("must be shorter than leaseDuration")))
        if self.retry_period >= self.renew_deadline:
            errors.append((("retryPeriod",), None, fail("must be shorter than renewDeadline")))
        fail_at("LeaderElectionConfig", errors)
        return self
