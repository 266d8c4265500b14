"""The sink protocol: what the delivery layer may expect of every sink.

A sink renders one :class:`~kubewatch.events.Event` and sends it, once, synchronously.
It never retries and never sleeps: it reports how the attempt went and the delivery
layer (``kubewatch.delivery``) decides what happens next. That keeps every retry,
backoff and shutdown decision in one place and keeps sinks small.

Contract of :meth:`Sink.send`:

- returns ``None``: the receiver accepted the event;
- raises :class:`~kubewatch.errors.RateLimited`: the receiver asked to wait
  ``retry_after`` seconds;
- raises :class:`~kubewatch.errors.RetryableError`: the attempt failed in a way that may
  pass (connection refused, timeout, 5xx);
- raises :class:`~kubewatch.errors.PermanentError`: retrying cannot help (4xx, bad
  certificate, an event that cannot be rendered, the sink is closed).

Any other exception is a bug in the sink; the delivery layer logs it with its traceback
and treats it as permanent for that one event. Error messages must never contain
credentials (header values, tokens in URLs): they end up in logs.

``send`` may be called from several worker threads at once; a sink is thread-safe.
"""

from __future__ import annotations

from typing import Protocol, TypeVar

import orjson

from kubewatch.events import Event

_T = TypeVar("_T")
_B = TypeVar("_B", bound="SinkBase")


class Sink(Protocol):
    """One destination for events; see the module docstring for the ``send`` contract."""

    name: str
    """The configured name (the key under ``sinks:``), used in every log line."""

    def send(self, event: Event) -> None:
        """Deliver one event or raise a ``DeliveryError`` saying whether to retry."""
        ...

    def close(self) -> None:
        """Release connections and files; idempotent, and ``send`` fails permanently after."""
        ...

    def preview(self, event: Event) -> str:
        """What ``send`` would transmit for ``event``, as text, without sending it
        (``kubewatch replay --dry-run``). Secrets (tokens, signatures) are not included."""
        ...

    def __enter__(self: _T) -> _T: ...

    def __exit__(self, *exc_info: object) -> None: ...


class SinkBase:
    """Context-manager plumbing shared by the built-in sinks: leaving ``with`` closes."""

    name: str

    def close(self) -> None:
        raise NotImplementedError

    def preview(self, event: Event) -> str:
        """The event JSON, indented; sinks that send something else override this."""
        return orjson.dumps(event.to_dict(), option=orjson.OPT_INDENT_2).decode()

    def __enter__(self: _B) -> _B:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
