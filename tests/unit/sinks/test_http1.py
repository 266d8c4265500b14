"""kubewatch.sinks.http1: the HTTP/1.1 client every HTTP sink sends through, against a
raw loopback server whose answers are scripted byte by byte."""

from __future__ import annotations

import socket
import ssl
import struct
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from kubewatch.config import WebhookSinkConfig
from kubewatch.errors import ConfigError, PermanentError, RateLimited, RetryableError
from kubewatch.sinks import http1
from kubewatch.sinks.http1 import Origin, Pool, ProtocolError, encode_headers
from kubewatch.sinks.webhook import WebhookSink
from tests.stress import hammer
from tests.unit.sinks.test_sinks import Receiver, cert, make_event

__all__ = ["cert"]  # the self-signed certificate fixture, shared with test_sinks

LIMIT = 1024
HEAD = encode_headers([("Content-Type", "application/json")])
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


@dataclass
class Raw:
    """Answers request n (0, 1, …, over all connections) with ``answer(n)``'s bytes; then
    closes the connection when ``close_after(n)``. Records each request's head."""

    answer: Callable[[int], bytes] = lambda n: OK
    close_after: Callable[[int], bool] = lambda n: False
    tls: ssl.SSLContext | None = None
    sock: socket.socket = field(default_factory=socket.socket)
    heads: list[bytes] = field(default_factory=list)
    connections: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    closed: threading.Semaphore = field(default_factory=lambda: threading.Semaphore(0))
    """Released each time the server has closed a connection."""
    reset: bool = False
    """Close with a TCP reset (SO_LINGER 0) instead of a FIN."""

    def start(self) -> Origin:
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        threading.Thread(target=self._accept, daemon=True).start()
        return Origin("https" if self.tls else "http", "127.0.0.1", self.sock.getsockname()[1])

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with self.lock:
                self.connections += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            if self.tls is not None:
                conn = self.tls.wrap_socket(conn, server_side=True)
            buf = b""
            while True:
                while b"\r\n\r\n" not in buf:
                    data = conn.recv(65536)
                    if not data:
                        return
                    buf += data
                head, _, buf = buf.partition(b"\r\n\r\n")
                length = next(
                    int(line.split(b":")[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length")
                )
                while len(buf) < length:
                    buf += conn.recv(65536)
                buf = buf[length:]
                with self.lock:
                    n = len(self.heads)
                    self.heads.append(head)
                conn.sendall(self.answer(n))
                if self.close_after(n):
                    if self.reset:
                        linger = struct.pack("ii", 1, 0)
                        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
                    return
        except (OSError, ssl.SSLError):
            return
        finally:
            conn.close()
            self.closed.release()


@pytest.fixture
def raw() -> Iterator[Raw]:
    server = Raw()
    yield server
    server.sock.close()


def post(pool: Pool, body: bytes = b"{}", seconds: float = 5.0) -> http1.Reply:
    return pool.request("POST", "/hook", HEAD, body, http1.deadline_after(seconds))


def pool_for(origin: Origin, tls: ssl.SSLContext | None = None) -> Pool:
    return Pool(origin, tls=tls, body_limit=LIMIT)


def test_content_length_body_and_keep_alive_reuse(raw: Raw) -> None:
    raw.answer = lambda n: b"HTTP/1.1 201 Created\r\nContent-Length: 5\r\nX-A: 1\r\n\r\nhello"
    pool = pool_for(raw.start())
    replies = [post(pool, b'{"n":%d}' % n) for n in range(3)]
    assert [(r.status, r.body, r.headers["x-a"]) for r in replies] == [(201, b"hello", "1")] * 3
    assert raw.connections == 1
    first = raw.heads[0].decode()
    assert first.startswith("POST /hook HTTP/1.1\r\nHost: 127.0.0.1:")
    assert "Content-Length: 7" in first and "Content-Type: application/json" in first
    pool.close()


def test_chunked_body_with_extension_and_trailer_then_reuse(raw: Raw) -> None:
    raw.answer = lambda n: (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n"
    )
    pool = pool_for(raw.start())
    assert post(pool).body == b"hello world"
    assert post(pool).body == b"hello world"
    assert raw.connections == 1
    pool.close()


def test_interim_100_continue_is_skipped(raw: Raw) -> None:
    raw.answer = lambda n: b"HTTP/1.1 100 Continue\r\n\r\n" + OK
    pool = pool_for(raw.start())
    assert post(pool).body == b"ok"
    assert post(pool).status == 200
    assert raw.connections == 1
    pool.close()


def test_a_connection_the_server_closed_while_idle_is_replaced(raw: Raw) -> None:
    """The server answers and closes: the next request goes, once, on a new connection."""
    raw.close_after = lambda n: True
    pool = pool_for(raw.start())
    assert post(pool).status == 200
    assert raw.closed.acquire(timeout=5)  # the idle connection now reads EOF
    assert post(pool).status == 200
    assert len(raw.heads) == 2 and raw.connections == 2
    pool.close()


def test_a_reset_connection_is_sent_again_only_when_its_first_write_failed(
    raw: Raw, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server resets the connection after its answer; the reuse check is made to miss
    it, so the next request's first write fails: it goes, once, on a new connection."""
    raw.close_after = lambda n: n == 0
    raw.reset = True
    pool = pool_for(raw.start())
    assert post(pool).status == 200
    assert raw.closed.acquire(timeout=5)
    monkeypatch.setattr(http1._Conn, "usable", lambda self, now: True)
    assert post(pool).status == 200
    assert len(raw.heads) == 2 and raw.connections == 2
    pool.close()


def test_a_request_the_server_may_have_received_is_never_sent_again(raw: Raw) -> None:
    """The server reads the request and closes without an answer: an error, not a resend."""
    raw.answer = lambda n: b""
    raw.close_after = lambda n: True
    with pytest.raises(ProtocolError, match="closed"):
        post(pool_for(raw.start()))
    assert len(raw.heads) == 1


def test_connection_close_and_http_1_0_are_not_reused(raw: Raw) -> None:
    answers = [b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"]
    answers.append(b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n")
    raw.answer = lambda n: answers[n % 2]
    pool = pool_for(raw.start())
    for _ in range(3):
        assert post(pool).status == 200
    assert raw.connections == 3
    pool.close()


@pytest.mark.parametrize(
    "answer",
    [
        pytest.param(b"Content-Length: 100000\r\n\r\n" + b"x" * 100000, id="content-length"),
        pytest.param(
            b"Transfer-Encoding: chunked\r\n\r\n"
            + b"%x\r\n" % 100000
            + b"x" * 100000
            + b"\r\n0\r\n\r\n",
            id="chunked",
        ),
    ],
)
def test_an_oversize_body_is_cut_at_the_limit_and_the_connection_dropped(
    raw: Raw, answer: bytes
) -> None:
    raw.answer = lambda n: b"HTTP/1.1 500 Oops\r\n" + answer
    pool = pool_for(raw.start())
    reply = post(pool)
    assert (reply.status, reply.body) == (500, b"x" * LIMIT)
    assert post(pool).body == b"x" * LIMIT
    assert raw.connections == 2
    pool.close()


def test_a_body_until_close_is_bounded(raw: Raw) -> None:
    raw.answer = lambda n: b"HTTP/1.1 200 OK\r\n\r\nall of it"
    raw.close_after = lambda n: True
    pool = pool_for(raw.start())
    assert post(pool).body == b"all of it"
    pool.close()


def test_a_head_beyond_the_bound_is_a_protocol_error(raw: Raw) -> None:
    raw.answer = lambda n: b"HTTP/1.1 200 OK\r\nX-Big: " + b"x" * (http1.MAX_HEAD + 10)
    pool = pool_for(raw.start())
    with pytest.raises(ProtocolError, match="exceeds"):
        post(pool)
    pool.close()


def test_garbage_is_a_protocol_error(raw: Raw) -> None:
    raw.answer = lambda n: b"SSH-2.0-OpenSSH\r\n\r\n"
    with pytest.raises(ProtocolError, match="status line"):
        post(pool_for(raw.start()))


def test_a_trickling_answer_is_cut_at_the_deadline() -> None:
    """One byte every 50 ms for 100 bytes: every read gets a byte in time, the deadline of
    0.3 s still ends the request (and nothing is left in the pool)."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def trickle() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n")
            for _ in range(100):
                if stop.wait(0.05):
                    return
                try:
                    conn.sendall(b"x")
                except OSError:
                    return

    threading.Thread(target=trickle, daemon=True).start()
    pool = pool_for(Origin("http", "127.0.0.1", listener.getsockname()[1]))
    with pytest.raises(TimeoutError):
        post(pool, seconds=0.3)
    stop.set()
    assert pool._idle == []
    pool.close()
    listener.close()


def test_header_values_cannot_break_the_request_apart(receiver: Receiver) -> None:
    with pytest.raises(ValueError, match="line break"):
        encode_headers([("X-A", "1\r\nX-Injected: 2")])
    with (
        WebhookSink("w", WebhookSinkConfig(type="webhook", url=receiver.url)) as sink,
        pytest.raises(PermanentError, match="line break"),
    ):
        sink.endpoint.send(b"{}", headers={"X-Event": "a\nb"})
    assert receiver.requests == []


def test_tls_with_a_self_signed_ca_reuses_one_connection(cert: tuple[Path, Path]) -> None:
    server_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_tls.load_cert_chain(*cert)
    server = Raw(tls=server_tls)
    origin = server.start()
    trusting = ssl.create_default_context(cafile=str(cert[0]))
    pool = pool_for(origin, trusting)
    assert post(pool).body == b"ok" and post(pool).body == b"ok"
    assert server.connections == 1
    pool.close()
    with pytest.raises(ssl.SSLCertVerificationError):
        post(pool_for(origin, ssl.create_default_context()))
    server.sock.close()


def test_workers_share_a_pool_safely(raw: Raw) -> None:
    """16 threads, 30 requests each, switching every microsecond: every request answered
    exactly once, and the pool never holds more connections than threads."""
    raw.answer = lambda n: (
        b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%d"
        % (
            len(str(n)),
            n,
        )
    )
    pool = pool_for(raw.start())
    answers: list[bytes] = []

    def work(_: int) -> None:
        for _ in range(30):
            answers.append(post(pool).body)

    hammer(work)
    assert sorted(int(a) for a in answers) == list(range(16 * 30))
    assert raw.connections <= 16 and len(pool._idle) <= 16
    pool.close()
    assert pool._idle == []
    with pytest.raises(RuntimeError, match="closed"):
        post(pool)


def test_a_sink_closed_while_its_workers_send(raw: Raw) -> None:
    """Each send is delivered or fails as closed, never anything else, and no connection
    is left open in the pool once the sink is closed."""
    origin = raw.start()
    url = f"http://127.0.0.1:{origin.port}/hook"
    sink = WebhookSink("w", WebhookSinkConfig(type="webhook", url=url))
    outcomes: list[str] = []

    def work(n: int) -> None:
        for i in range(20):
            if n == 0 and i == 10:
                sink.close()
            try:
                sink.send(make_event())
                outcomes.append("sent")
            except PermanentError as exc:
                assert "closed" in str(exc)
                outcomes.append("closed")

    hammer(work)
    assert len(outcomes) == 16 * 20 and outcomes.count("sent") == len(raw.heads)
    assert sink.endpoint._pools == {}
    pool = sink.endpoint._main
    assert pool is not None and pool._idle == []


@pytest.mark.parametrize(
    ("answer", "outcome"),
    [
        pytest.param(b"429 Slow Down\r\nretry-after:  7 ", RateLimited, id="429"),
        pytest.param(b"302 Found\r\nLocation: http://elsewhere/", PermanentError, id="302"),
        pytest.param(b"503 Busy", RetryableError, id="503"),
    ],
)
def test_the_outcome_table_over_the_wire(raw: Raw, answer: bytes, outcome: type[Exception]) -> None:
    """Status and ``Retry-After`` as read by http1 (any case, spaces around the value);
    a redirect is not followed."""
    raw.answer = lambda n: b"HTTP/1.1 " + answer + b"\r\nContent-Length: 4\r\n\r\nnope"
    origin = raw.start()
    url = f"http://127.0.0.1:{origin.port}/hook"
    with (
        WebhookSink("w", WebhookSinkConfig(type="webhook", url=url)) as sink,
        pytest.raises(outcome) as info,
    ):
        sink.send(make_event())
    assert type(info.value) is outcome and "nope" in str(info.value)
    if outcome is RateLimited:
        assert info.value.retry_after == 7.0  # type: ignore[attr-defined]
    assert len(raw.heads) == 1


def test_http_proxy_from_the_environment(
    receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An ``http://`` target through ``HTTP_PROXY`` is sent in absolute form to the proxy
    (here the receiver itself); ``NO_PROXY`` naming the host sends it directly."""
    monkeypatch.setenv("HTTP_PROXY", receiver.base)
    target = "http://hooks.internal:8080/path"
    with WebhookSink("w", WebhookSinkConfig(type="webhook", url=target)) as sink:
        sink.send(make_event())
    assert receiver.requests[0].target == target
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    with WebhookSink("w", WebhookSinkConfig(type="webhook", url=receiver.url)) as sink:
        sink.send(make_event())
    assert receiver.requests[1].target == "/hook"


def test_a_proxy_this_client_cannot_use_is_a_config_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "socks5://127.0.0.1:1080")
    with pytest.raises(ConfigError, match="proxy"):
        WebhookSink("w", WebhookSinkConfig(type="webhook", url="https://hooks.example/x"))


def test_https_through_a_connect_tunnel(
    cert: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    server_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_tls.load_cert_chain(*cert)
    server = Raw(tls=server_tls)
    origin = server.start()
    proxy = socket.create_server(("127.0.0.1", 0))
    asked: list[bytes] = []

    def tunnel() -> None:
        client, _ = proxy.accept()
        request = client.recv(65536)
        asked.append(request)
        upstream = socket.create_connection((origin.host, origin.port))
        client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")

        def pipe(a: socket.socket, b: socket.socket) -> None:
            while data := a.recv(65536):
                b.sendall(data)

        threading.Thread(target=pipe, args=(upstream, client), daemon=True).start()
        pipe(client, upstream)

    threading.Thread(target=tunnel, daemon=True).start()
    monkeypatch.setenv("HTTPS_PROXY", f"http://user:pw@127.0.0.1:{proxy.getsockname()[1]}")
    trusting = ssl.create_default_context(cafile=str(cert[0]))
    pool = Pool(origin, tls=trusting, body_limit=LIMIT, proxy=http1.environment_proxy(origin))
    assert post(pool).body == b"ok"
    assert asked[0].startswith(f"CONNECT 127.0.0.1:{origin.port} HTTP/1.1\r\n".encode())
    assert b"Proxy-Authorization: Basic dXNlcjpwdw==" in asked[0]
    pool.close()
    proxy.close()
    server.sock.close()
