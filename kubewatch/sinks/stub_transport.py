"""An ``httpx`` transport answering in place of the network (``httpx.MockTransport`` in
tests), behind the same ``request`` as :class:`kubewatch.sinks.http1.Pool`.

Its own module so that the HTTP sinks' hot path (:mod:`kubewatch.sinks.http1`) builds no
httpx request or response: only a sink given a ``transport`` comes here.
"""

from __future__ import annotations

import httpx

from kubewatch.sinks.http1 import Reply

__all__ = ["TransportError", "TransportPool"]


class TransportError(OSError):
    """An error of the transport, named as httpx names it (``ConnectError``)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


class TransportPool:
    """``request`` answered by ``transport``; its errors become ``OSError`` as the network's
    would (an unsupported URL scheme: ``ValueError``). Thread-safe as httpx's client is."""

    def __init__(self, transport: httpx.BaseTransport, body_limit: int) -> None:
        self._client = httpx.Client(transport=transport)
        self._body_limit = body_limit

    def request(self, method: str, url: str, head: bytes, body: bytes, deadline: float) -> Reply:
        """``url`` is absolute; ``head`` the header lines; ``deadline`` is not needed:
        the transport does not wait on a network."""
        lines = (line.partition(": ") for line in head.decode().split("\r\n"))
        fields = [(k, v) for k, _, v in lines if k]
        try:
            response = self._client.request(method, url, content=body, headers=fields)
        except httpx.UnsupportedProtocol as exc:
            raise ValueError(str(exc)) from exc
        except httpx.TransportError as exc:
            raise TransportError(type(exc).__name__, str(exc)) from exc
        answer = {k.lower(): v for k, v in response.headers.items()}
        return Reply(response.status_code, answer, response.content[: self._body_limit])

    def close(self) -> None:
        self._client.close()
