"""Per-sink delivery policy: what one sink's lane in the dispatcher is made of.

Each sink may set ``queueSize``, ``concurrency``, ``retry``, ``rateLimit`` and ``digest``;
what it leaves out comes from ``delivery`` (``queueSize``, ``workers``, ``retry``) or from
the sink type's own default (chat sinks: ``rateLimit`` 1/s and a digest; others: none).
:meth:`SinkPolicy.from_config` resolves those defaults once, so the dispatcher only ever
sees complete, validated policies.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from kubewatch.config import (
    Config,
    DeliveryConfig,
    DigestConfig,
    RateLimitConfig,
    RetryConfig,
)
from kubewatch.delivery.retry import RetryPolicy

_DEFAULTS = DeliveryConfig()
_DEFAULT_RETRY = RetryPolicy.from_config(_DEFAULTS.retry)


class SinkDeliveryKeys(Protocol):
    """The delivery keys every ``sinks:`` entry has (``None``: use ``delivery``'s)."""

    @property
    def queue_size(self) -> int | None: ...
    @property
    def concurrency(self) -> int | None: ...
    @property
    def retry(self) -> RetryConfig | None: ...
    @property
    def rate_limit(self) -> RateLimitConfig | None: ...
    @property
    def digest(self) -> DigestConfig | None: ...


@dataclass(frozen=True, slots=True)
class SinkPolicy:
    """How one sink is delivered to. The defaults are those of ``delivery:`` with no
    keys set: what every sink got before per-sink policies existed."""

    queue_size: int = _DEFAULTS.queue_size
    """Events waiting for the sink, at most; beyond, the oldest is dropped (logged,
    counted). Split over the workers' queues (see :mod:`.queue`)."""
    concurrency: int = _DEFAULTS.workers
    """Worker threads, i.e. parallel sends; one object's events always share a worker
    (capped at ``queue_size``: each worker needs a queue slot)."""
    retry: RetryPolicy = _DEFAULT_RETRY
    """Attempts per event (the first included) and the backoff between them."""
    rate_limit: RateLimitConfig | None = None
    """Attempts per second and burst (a token bucket); ``None``: unlimited. ``Retry-After``
    pauses the sink either way (see :mod:`.ratelimit`)."""
    digest: DigestConfig | None = None
    """Burst digests (see :mod:`.digest`); ``None``: every event is sent on its own."""

    def __post_init__(self) -> None:
        if self.queue_size < 1:
            raise ValueError("queue_size must be at least 1")
        if self.concurrency < 1:
            raise ValueError("concurrency must be at least 1")

    @classmethod
    def defaults(cls, delivery: DeliveryConfig) -> SinkPolicy:
        """The policy of a sink that sets none of its own keys and has no type defaults."""
        return cls(
            queue_size=delivery.queue_size,
            concurrency=delivery.workers,
            retry=RetryPolicy.from_config(delivery.retry),
        )

    @classmethod
    def from_config(cls, sink: SinkDeliveryKeys, delivery: DeliveryConfig) -> SinkPolicy:
        """The effective policy of one ``sinks:`` entry: its own keys, else ``delivery``'s.

        ``rateLimit`` and ``digest`` have no global default: the sink's value is taken as
        is (for chat sinks the model already filled in their type's defaults, and
        ``rateLimit: null`` / ``digest: off`` turn them off).
        """
        return cls(
            queue_size=sink.queue_size if sink.queue_size is not None else delivery.queue_size,
            concurrency=sink.concurrency if sink.concurrency is not None else delivery.workers,
            retry=RetryPolicy.from_config(sink.retry if sink.retry is not None else delivery.retry),
            rate_limit=sink.rate_limit,
            digest=sink.digest,
        )


def sink_policies(config: Config) -> dict[str, SinkPolicy]:
    """The effective policy of every configured sink, by name."""
    delivery = config.delivery
    return {name: SinkPolicy.from_config(sink, delivery) for name, sink in config.sinks.items()}


def check_policies(policies: Mapping[str, object], sinks: Mapping[str, object], what: str) -> None:
    """KeyError naming ``what`` for entries of ``policies`` that name no sink."""
    unknown = [name for name in policies if name not in sinks]
    if unknown:
        raise KeyError(f"{what} for unknown sink(s): {', '.join(unknown)}")
