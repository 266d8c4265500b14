"""A lean HTTP/1.1 client on pooled keep-alive sockets, bounded by one deadline per request.

Why not httpx: its request and response models, header and cookie merging and h11 cost
13-24x the CPU of this module per request (``bench/http_sender.py``).

- **One deadline.** :meth:`Pool.request` takes a ``time.monotonic()`` deadline; every
  connect, TLS handshake, write and read gets the time left, so a receiver trickling
  its answer a byte at a time costs at most the attempt's timeout.
- **Bounded.** The status line and headers fit in ``MAX_HEAD`` bytes; at most
  ``body_limit`` bytes of the body are read (Content-Length, chunked, or until close);
  a connection whose body was not read to its end is closed, never reused.
- **Reuse.** Idle connections are kept per pool (thread-safe) for ``KEEPALIVE_EXPIRY``
  seconds. One that the server closed while idle is found readable (EOF) before use and
  dropped; a request is sent again on a new connection only when its first write on a
  reused connection failed, so the server cannot have received it.
- **Proxy.** An ``http://`` proxy (:func:`environment_proxy`): absolute-form requests for
  http targets, a ``CONNECT`` tunnel for https ones.
"""

from __future__ import annotations

import base64
import select
import socket
import ssl
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterable
from typing import NamedTuple

__all__ = ["ConnectError", "Origin", "Pool", "ProtocolError", "Reply"]
__all__ += ["deadline_after", "encode_headers", "environment_proxy", "passed"]

MAX_HEAD = 64 * 1024
"""Bytes of status line and headers accepted: more is a protocol error."""
KEEPALIVE_EXPIRY = 5.0
"""Seconds an idle connection is kept: servers commonly close theirs after 5 s or more."""
MAX_IDLE = 20
"""Idle connections kept per pool."""
_WRITE_PIECE = 16 * 1024
"""Bytes per write: each piece gets the time left, so a slow reader cannot stretch one."""
_READ = 65536


class ProtocolError(OSError):
    """The server's answer is not HTTP/1.1 we can read (or the connection broke off)."""


class ConnectError(OSError):
    """No connection to the origin (or the proxy): refused, unreachable, no such host."""


class Reply(NamedTuple):
    status: int
    headers: dict[str, str]
    """Lower-cased names; a repeated header keeps its last value."""
    body: bytes
    """At most the pool's ``body_limit`` bytes; less when the body broke off after a status."""


class Origin(NamedTuple):
    scheme: str
    host: str
    port: int


def deadline_after(seconds: float) -> float:
    """The ``time.monotonic()`` deadline ``seconds`` from now, for :meth:`Pool.request`."""
    return time.monotonic() + seconds


def passed(deadline: float) -> bool:
    return time.monotonic() >= deadline


def _timeout(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("the attempt's deadline passed")
    return left


def _check_header(text: str) -> str:
    if "\r" in text or "\n" in text or "\0" in text:
        raise ValueError("a header name or value holds a line break or NUL")
    return text


def encode_headers(headers: Iterable[tuple[str, str]]) -> bytes:
    """``Name: value\\r\\n`` lines; a CR, LF or NUL in a name or value is a ``ValueError``."""
    return "".join(f"{_check_header(k)}: {_check_header(v)}\r\n" for k, v in headers).encode()


def environment_proxy(origin: Origin) -> str | None:
    """The proxy URL the environment names for ``origin`` (None: connect directly)."""
    proxies = urllib.request.getproxies_environment()
    url = proxies.get(origin.scheme) or proxies.get("all")
    bypass = urllib.request.proxy_bypass  # NO_PROXY (the environment's, on POSIX)
    if not url or bypass(f"{origin.host}:{origin.port}") or bypass(origin.host):
        return None
    return url if "://" in url else f"http://{url}"


class _Conn:
    """One pooled socket and when it went idle."""

    __slots__ = ("idle_since", "poll", "sock")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.idle_since = 0.0
        self.poll = select.poll()  # registered once: one poll(2) per reuse check
        self.poll.register(sock, select.POLLIN)

    def usable(self, now: float) -> bool:
        """Not expired and not readable: a readable idle socket is EOF or garbage."""
        if now - self.idle_since > KEEPALIVE_EXPIRY:
            return False
        try:
            if isinstance(self.sock, ssl.SSLSocket) and self.sock.pending():
                return False
            return not self.poll.poll(0)
        except (OSError, ValueError):
            return False


class Pool:
    """Keep-alive connections to one origin (through ``proxy`` when given); thread-safe.

    ``tls`` is the context for ``https`` origins (None: the system default is not
    assumed, the caller passes one). :meth:`close` closes idle connections at once and
    busy ones when their request ends; :meth:`request` afterwards raises ``RuntimeError``.
    """

    def __init__(
        self,
        origin: Origin,
        *,
        tls: ssl.SSLContext | None,
        body_limit: int,
        proxy: str | None = None,
    ) -> None:
        self.origin = origin
        self._tls = tls
        self._body_limit = body_limit
        self._idle: list[_Conn] = []
        self._lock = threading.Lock()
        self._closed = False
        default = 443 if origin.scheme == "https" else 80
        host = f"[{origin.host}]" if ":" in origin.host else origin.host
        self._authority = host if origin.port == default else f"{host}:{origin.port}"
        self._proxy: tuple[str, int] | None = None
        self._proxy_auth = b""
        self._absolute = False  # http through a proxy: the absolute URL as request target
        if proxy is not None:
            parsed = urllib.parse.urlsplit(proxy)
            if parsed.scheme != "http" or not parsed.hostname:
                raise ValueError(f"only http:// proxies are supported, not {parsed.scheme}://")
            self._proxy = (parsed.hostname, parsed.port or 80)
            if parsed.username is not None:
                user = urllib.parse.unquote(parsed.username)
                secret = urllib.parse.unquote(parsed.password or "")
                token = base64.b64encode(f"{user}:{secret}".encode()).decode()
                self._proxy_auth = encode_headers([("Proxy-Authorization", f"Basic {token}")])
            self._absolute = origin.scheme == "http"

    def request(self, method: str, target: str, head: bytes, body: bytes, deadline: float) -> Reply:
        """Send ``method target`` with the header lines ``head`` (no ``Host`` or
        ``Content-Length``: added here) and ``body``; the answer, its body bounded.

        Raises ``TimeoutError`` when ``deadline`` passes, ``ssl.SSLError`` or ``OSError``
        (:class:`ProtocolError` for an unreadable answer) otherwise.
        """
        if self._absolute:
            target = f"http://{self._authority}{target}"
        data = b"".join(
            (
                f"{method} {target} HTTP/1.1\r\nHost: {self._authority}\r\n".encode(),
                self._proxy_auth if self._absolute else b"",
                head,
                b"Content-Length: %d\r\n\r\n" % len(body),
                body,
            )
        )
        conn = self._take()
        reused = conn is not None
        if conn is None:
            conn = self._connect(deadline)
        try:
            try:
                self._write(conn.sock, data, deadline)
            except _FirstWriteFailed as exc:
                if not reused:
                    raise exc.error from None
                conn.sock.close()  # closed by the server while idle: nothing was sent
                conn = self._connect(deadline)
                self._write(conn.sock, data, deadline)
            reply, reusable = self._read(conn.sock, method, deadline)
        except BaseException:
            conn.sock.close()
            raise
        self._give_back(conn, reusable)
        return reply

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.sock.close()

    # -- connections -----------------------------------------------------------------

    def _take(self) -> _Conn | None:
        now = time.monotonic()
        while True:
            with self._lock:
                if self._closed:
                    raise RuntimeError("the connection pool is closed")
                if not self._idle:
                    return None
                conn = self._idle.pop()
            if conn.usable(now):
                return conn
            conn.sock.close()

    def _give_back(self, conn: _Conn, reusable: bool) -> None:
        with self._lock:
            if reusable and not self._closed and len(self._idle) < MAX_IDLE:
                conn.idle_since = time.monotonic()
                self._idle.append(conn)
                return
        conn.sock.close()

    def _connect(self, deadline: float) -> _Conn:
        address = self._proxy or (self.origin.host, self.origin.port)
        try:
            sock = socket.create_connection(address, timeout=_timeout(deadline))
        except (TimeoutError, ssl.SSLError):
            raise
        except OSError as exc:
            raise ConnectError(str(exc)) from exc
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self._proxy is not None and self.origin.scheme == "https":
                self._tunnel(sock, deadline)
            if self.origin.scheme == "https":
                if self._tls is None:
                    raise ssl.SSLError("no TLS context for an https origin")
                sock.settimeout(_timeout(deadline))
                sock = self._tls.wrap_socket(sock, server_hostname=self.origin.host)
        except BaseException:
            sock.close()
            raise
        return _Conn(sock)

    def _tunnel(self, sock: socket.socket, deadline: float) -> None:
        line = f"CONNECT {self._authority} HTTP/1.1\r\nHost: {self._authority}\r\n".encode()
        self._write(sock, line + self._proxy_auth + b"\r\n", deadline)
        status, _, _, rest = _read_head(sock, bytearray(), deadline)
        if not 200 <= status < 300 or rest:
            raise ProtocolError(f"the proxy answered CONNECT with HTTP {status}")

    # -- the exchange ----------------------------------------------------------------

    @staticmethod
    def _write(sock: socket.socket, data: bytes, deadline: float) -> None:
        view = memoryview(data)
        sent = 0
        while sent < len(view):
            sock.settimeout(_timeout(deadline))
            try:
                sock.sendall(view[sent : sent + _WRITE_PIECE])
            except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError) as exc:
                if sent == 0:
                    raise _FirstWriteFailed(exc) from exc
                raise
            sent += _WRITE_PIECE

    def _read(self, sock: socket.socket, method: str, deadline: float) -> tuple[Reply, bool]:
        """The final answer (interim 1xx skipped) and whether the connection is reusable."""
        buf = bytearray()
        while True:
            status, headers, keep, buf = _read_head(sock, buf, deadline)
            if not 100 <= status < 200 or status == 101:
                break
        if method == "HEAD" or status in (204, 304) or status == 101:
            return Reply(status, headers, b""), keep and not buf and status != 101
        limit = self._body_limit
        try:
            if "chunked" in headers.get("transfer-encoding", "").lower():
                body, whole = _read_chunked(sock, buf, limit, deadline)
            elif "content-length" in headers:
                if not headers["content-length"].isdigit():
                    raise ProtocolError("Content-Length is not a number")
                length = int(headers["content-length"])
                body, whole = _read_exactly(sock, buf, length, limit, deadline)
            else:
                body, whole = _read_to_close(sock, buf, limit, deadline), False
        except OSError:
            if passed(deadline):
                raise  # a body cut by the deadline: the attempt timed out
            # The status is what counts: a 2xx whose body broke off still reached the
            # receiver, and a 4xx stays a 4xx without its explanation.
            return Reply(status, headers, b""), False
        return Reply(status, headers, body), keep and whole


class _FirstWriteFailed(ConnectionError):
    """Writing the first byte of a request failed: the server has none of it."""

    def __init__(self, error: OSError) -> None:
        super().__init__(*error.args)
        self.error = error


def _recv(sock: socket.socket, deadline: float) -> bytes:
    sock.settimeout(_timeout(deadline))
    data = sock.recv(_READ)
    if not data:
        raise ProtocolError("the server closed the connection")
    return data


def _find(sock: socket.socket, buf: bytearray, sep: bytes, deadline: float) -> int:
    """Where ``sep`` starts in ``buf``, reading until it is there (within ``MAX_HEAD``)."""
    while (at := buf.find(sep)) < 0 or at > MAX_HEAD:
        if len(buf) > MAX_HEAD:
            raise ProtocolError(f"a response head or chunk line exceeds {MAX_HEAD} bytes")
        buf += _recv(sock, deadline)
    return at


def _read_head(
    sock: socket.socket, buf: bytearray, deadline: float
) -> tuple[int, dict[str, str], bool, bytearray]:
    """Status, headers, keep-alive, and the bytes after the head."""
    end = _find(sock, buf, b"\r\n\r\n", deadline)
    lines = buf[:end].decode("latin-1").split("\r\n")
    version, _, rest = lines[0].partition(" ")
    code = rest[:3]
    if not version.startswith("HTTP/1.") or len(code) != 3 or not code.isdigit():
        raise ProtocolError(f"not an HTTP/1.x status line: {lines[0][:40]!r}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if not colon:
            raise ProtocolError("a response header line without a colon")
        headers[name.strip().lower()] = value.strip()
    connection = headers.get("connection", "").lower()
    keep = "close" not in connection and (version != "HTTP/1.0" or "keep-alive" in connection)
    return int(code), headers, keep, buf[end + 4 :]


def _read_exactly(
    sock: socket.socket, buf: bytearray, length: int, limit: int, deadline: float
) -> tuple[bytes, bool]:
    """The body of ``length`` bytes, its first ``limit`` at most; whether it was read whole."""
    want = min(length, limit)
    while len(buf) < want:
        buf += _recv(sock, deadline)
    return bytes(buf[:want]), length <= limit and len(buf) == length


def _read_to_close(sock: socket.socket, buf: bytearray, limit: int, deadline: float) -> bytes:
    while len(buf) < limit:
        try:
            buf += _recv(sock, deadline)
        except ProtocolError:  # EOF: the end of this body
            break
    return bytes(buf[:limit])


def _read_chunked(
    sock: socket.socket, buf: bytearray, limit: int, deadline: float
) -> tuple[bytes, bool]:
    """A chunked body, its first ``limit`` bytes at most; whether it was read to its end."""
    body = bytearray()
    while True:
        eol = _find(sock, buf, b"\r\n", deadline)
        digits = bytes(buf[:eol]).split(b";")[0].strip()
        if not digits or digits.strip(b"0123456789abcdefABCDEF"):
            raise ProtocolError("not a chunk size")
        size = int(digits, 16)
        del buf[: eol + 2]
        if size == 0:  # then trailer lines up to an empty one
            end = _find(sock, buf, b"\r\n", deadline)
            end = 2 if end == 0 else _find(sock, buf, b"\r\n\r\n", deadline) + 4
            return bytes(body), len(buf) == end
        if len(body) + size > limit:  # the first bytes up to the limit; the rest stays unread
            take = limit - len(body)
            while len(buf) < take:
                buf += _recv(sock, deadline)
            return bytes(body + buf[:take]), False
        while len(buf) < size + 2:
            buf += _recv(sock, deadline)
        body += buf[:size]
        del buf[: size + 2]
