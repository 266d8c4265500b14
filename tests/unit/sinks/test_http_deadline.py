"""``timeout`` of an HTTP sink is a deadline for the whole attempt (kubewatch.sinks.http1).

A real loopback receiver answers with its status line and then trickles one byte every
3 s — in the headers or in the body — for far longer than the default 10 s timeout,
then completes a 200. Per-operation timeouts never fire on it (each read gets a byte
within 3 s), so without the deadline the attempt "succeeds" after the whole trickle.

The 3 s are those of the deadline's clock: the receiver steps a :class:`SteppedClock`
(standing in for ``time.monotonic`` in kubewatch.sinks.http1) by 3 s before each
byte, once the client is reading again, so the default timeout is proven in well under a
second of real time. One case (marked ``slow``) trickles in real time against the real
clock.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from kubewatch.config import WebhookSinkConfig
from kubewatch.errors import RetryableError
from kubewatch.sinks import http1
from kubewatch.sinks.webhook import WebhookSink
from tests.unit.sinks.test_sinks import make_event

TRICKLE_INTERVAL = 3.0
TRICKLE_BYTES = 12  # 36 s of trickling: far beyond the default 10 s timeout
READ_WAIT = 1.0
"""Real seconds a stepped trickle waits for the client to read again before it goes on
(a client that reads without asking the clock, one without the deadline, still gets every
byte, one a second)."""


class SteppedClock:
    """``time.monotonic`` that moves only when stepped; counts its calls (each read and
    write of an attempt asks it for the time left, so a new call means the client is
    reading again)."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.calls = 0
        self.changed = threading.Condition()

    def monotonic(self) -> float:
        with self.changed:
            self.calls += 1
            self.changed.notify_all()
            return self.now

    def step(self, seconds: float) -> None:
        with self.changed:
            self.now += seconds

    def called_since(self, calls: int, timeout: float) -> bool:
        with self.changed:
            return self.changed.wait_for(lambda: self.calls > calls, timeout)


@dataclass
class Trickler:
    """Answers each request slowly; ``finished`` counts answers sent to the end. With a
    ``clock``, each pause steps it instead of waiting in real time."""

    where: str  # "headers" or "body"
    clock: SteppedClock | None = None
    sock: socket.socket = field(default_factory=socket.socket)
    finished: int = 0
    gave_up: threading.Event = field(default_factory=threading.Event)
    stop: threading.Event = field(default_factory=threading.Event)

    def start(self) -> str:
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        threading.Thread(target=self._serve, daemon=True).start()
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}/hook"

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        with conn:
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                data += chunk
            head, _, rest = data.partition(b"\r\n\r\n")
            length = next(
                int(line.split(b":")[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length")
            )
            while len(rest) < length:
                rest += conn.recv(65536)
            slow = b"X" * TRICKLE_BYTES
            try:
                calls = self._calls()
                if self.where == "headers":
                    conn.sendall(b"HTTP/1.1 200 OK\r\nX-Slow: ")
                    self._trickle(conn, slow, calls)
                    conn.sendall(b"\r\nContent-Length: 0\r\n\r\n")
                else:
                    conn.sendall(f"HTTP/1.1 200 OK\r\nContent-Length: {len(slow)}\r\n\r\n".encode())
                    self._trickle(conn, slow, calls)
                self.finished += 1
            except OSError:
                self.gave_up.set()

    def _pause(self, calls: int) -> None:
        """TRICKLE_INTERVAL between bytes: real seconds, or a step of the clock, taken once
        the client reads again (it asks the clock for the time left: a call after
        ``calls``, the count when the last bytes went) or after READ_WAIT."""
        if self.clock is None:
            if self.stop.wait(TRICKLE_INTERVAL):
                raise OSError("test over")
            return
        self.clock.called_since(calls, READ_WAIT)
        if self.stop.is_set():
            raise OSError("test over")
        self.clock.step(TRICKLE_INTERVAL)

    def _calls(self) -> int:
        return self.clock.calls if self.clock else 0

    def _trickle(self, conn: socket.socket, data: bytes, calls: int) -> None:
        for i in range(len(data)):
            self._pause(calls)
            calls = self._calls()
            conn.sendall(data[i : i + 1])
            # A peer that closed shows as EOF on our side: stop trickling into nothing.
            conn.setblocking(False)
            try:
                if conn.recv(1) == b"":
                    raise OSError("client gone")
            except BlockingIOError:
                pass
            finally:
                conn.setblocking(True)

    def close(self) -> None:
        self.stop.set()
        self.sock.close()


@pytest.fixture(
    params=[
        pytest.param(("headers", True), id="headers"),
        pytest.param(("body", True), id="body"),
        pytest.param(("body", False), id="body-real-time", marks=pytest.mark.slow),
    ]
)
def trickler(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[Trickler]:
    where, stepped = request.param
    clock = SteppedClock() if stepped else None
    if clock is not None:
        monkeypatch.setattr(http1, "time", clock)
    t = Trickler(where, clock)
    yield t
    t.close()


def test_a_trickling_receiver_costs_one_timeout_per_attempt(trickler: Trickler) -> None:
    """Default timeout (10 s): the attempt fails with a deadline error, retryable, while
    the receiver is still trickling (it never got to finish its answer)."""
    url = trickler.start()
    sink = WebhookSink("slow", WebhookSinkConfig(type="webhook", url=url))
    with sink, pytest.raises(RetryableError, match=r"deadline of 10s passed"):
        sink.send(make_event())
    assert trickler.finished == 0
    assert trickler.gave_up.wait(2 * TRICKLE_INTERVAL)


def test_the_sink_sends_through_the_deadline_bounded_pool() -> None:
    """The trickle above is cut by kubewatch.sinks.http1: the path every real sink takes."""
    sink = WebhookSink("hook", WebhookSinkConfig(type="webhook", url="http://127.0.0.1:9/x"))
    with sink:
        assert isinstance(sink.endpoint._main, http1.Pool)
