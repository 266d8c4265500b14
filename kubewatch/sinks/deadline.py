"""One deadline for a whole HTTP attempt: connect, TLS, send, headers and body together.

httpx bounds each socket operation on its own (``Timeout(10)`` is 10 s per read), so a
receiver that trickles a byte every few seconds — in its headers or its body — holds an
attempt, and the worker sending it, for ever. Here every read and write of every
connection uses ``min(its own timeout, time left to the attempt's deadline)`` and fails
at once when the deadline has passed.

The deadline lives in a :class:`~contextvars.ContextVar`: a pooled connection serves the
attempts of several threads one after the other, and each read must be bounded by the
deadline of the attempt doing it, not of the one that opened the connection.
:func:`install` puts :class:`DeadlineBackend` under every connection pool of an
``httpx.Client`` (httpx has no public parameter for httpcore's ``network_backend``).
"""

from __future__ import annotations

import contextlib
import ssl
import time
import typing
from collections.abc import Iterator
from contextvars import ContextVar

import httpcore
import httpx

__all__ = ["DeadlineBackend", "attempt_deadline", "deadline_passed", "install"]

_DEADLINE: ContextVar[float | None] = ContextVar("kubewatch_http_deadline", default=None)
"""time.monotonic() by which the current attempt must be over; None: no attempt running."""

_WRITE_PIECE = 16 * 1024
"""Bytes written per socket call: each piece gets the time left, so a receiver that
reads slowly cannot stretch one large write past the deadline."""


@contextlib.contextmanager
def attempt_deadline(seconds: float) -> Iterator[float]:
    """Every network operation of this thread inside the block ends by now + ``seconds``."""
    deadline = time.monotonic() + seconds
    token = _DEADLINE.set(deadline)
    try:
        yield deadline
    finally:
        _DEADLINE.reset(token)


def deadline_passed(deadline: float) -> bool:
    return time.monotonic() >= deadline


def _bounded(timeout: float | None, error: type[Exception]) -> float | None:
    """``timeout`` cut to the time left; raises ``error`` when none is left."""
    deadline = _DEADLINE.get()
    if deadline is None:
        return timeout
    left = deadline - time.monotonic()
    if left <= 0:
        raise error("the attempt's deadline passed")
    return left if timeout is None else min(timeout, left)


class _DeadlineStream(httpcore.NetworkStream):
    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, _bounded(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        view = memoryview(buffer)
        for start in range(0, len(view), _WRITE_PIECE):
            piece = bytes(view[start : start + _WRITE_PIECE])
            self._inner.write(piece, _bounded(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        bounded = _bounded(timeout, httpcore.ConnectTimeout)
        return _DeadlineStream(self._inner.start_tls(ssl_context, server_hostname, bounded))

    def get_extra_info(self, info: str) -> typing.Any:
        return self._inner.get_extra_info(info)


class DeadlineBackend(httpcore.NetworkBackend):
    """httpcore's sync backend with every operation bounded by the attempt's deadline."""

    def __init__(self, inner: httpcore.NetworkBackend | None = None) -> None:
        self._inner = inner if inner is not None else httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        bounded = _bounded(timeout, httpcore.ConnectTimeout)
        stream = self._inner.connect_tcp(host, port, bounded, local_address, socket_options)
        return _DeadlineStream(stream)

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        bounded = _bounded(timeout, httpcore.ConnectTimeout)
        return _DeadlineStream(self._inner.connect_unix_socket(path, bounded, socket_options))

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


def install(client: httpx.Client) -> int:
    """Put a :class:`DeadlineBackend` under every httpcore pool of ``client`` (its
    transport and any proxy mounts); returns how many pools now have one."""
    transports = [client._transport, *client._mounts.values()]
    count = 0
    for transport in transports:
        pool = getattr(transport, "_pool", None)
        if isinstance(pool, httpcore.ConnectionPool):
            if not isinstance(pool._network_backend, DeadlineBackend):
                pool._network_backend = DeadlineBackend(pool._network_backend)
            count += 1
    return count
