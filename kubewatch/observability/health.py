"""The HTTP server for ``/metrics``, ``/healthz`` and ``/readyz``, and the two checks.

* **Liveness** (``/healthz``, :class:`Heartbeats`): the process is alive and its loops are
  turning. Each long-running loop calls ``beat(name)``; a registered loop silent for longer
  than its limit fails the check, and the kubelet restarts a process that is wedged
  (deadlocked, or stuck in a call that never returns).
* **Readiness** (``/readyz``, :class:`Readiness`): every watch has listed once, none has
  failed its latest attempt (a 403, a refused connection, a TLS error, a read past its
  timeout) and none has been silent past the stall threshold, so kubewatch is seeing what
  happens now. A failing or stalled watch is the Reflector's to repair (it retries under
  its backoff; its read timeout replaces a silent stream); readiness only reports it, and
  a restart would not help more than that.

A check is any ``Callable[[], tuple[bool, list[str]]]``: (healthy, reasons if not).

The server is a stdlib :class:`~http.server.ThreadingHTTPServer` on a daemon thread: three
read-only endpoints need no framework. Requests are logged at DEBUG only: a probe every few
seconds must not fill the log.

Bounded against slow or hostile clients: at most ``MAX_CONNECTIONS`` connections are
served at once (one thread each; a connection beyond that is closed at once, and counted
in the DEBUG log), and each connection is cut ``CONNECTION_DEADLINE`` seconds after it
was accepted, however it trickles its request — so 200 slow clients hold at most
``MAX_CONNECTIONS`` threads, and only for that long. ``Server: kubewatch`` names no
Python version.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import socketserver
import threading
import time
from collections.abc import Callable, Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from kubewatch.observability.metrics import Metrics, WatchState

log = logging.getLogger(__name__)

__all__ = ["Check", "HealthServer", "Heartbeats", "Readiness"]

Check = Callable[[], tuple[bool, list[str]]]
"""A health check: (healthy, the reasons it is not, one short sentence each)."""

REQUEST_TIMEOUT = 10.0
"""Seconds a client may take to send its request: a stuck client cannot hold a thread."""
MAX_CONNECTIONS = 16
"""Connections served at once: probes and a scraper or two need a handful; the bound
keeps a flood of slow clients from growing threads without limit."""
CONNECTION_DEADLINE = REQUEST_TIMEOUT
"""Seconds from accept after which a connection is shut down, even one that sends a byte
every few seconds (the per-read timeout alone would let it stay for ever)."""


class Readiness:
    """Ready iff every watch has synced, none failed its latest LIST or WATCH attempt
    (:attr:`~kubewatch.kube.Reflector.failure`, reported with its reason from the first
    failed attempt on) and none is silent past ``stall_threshold``.

    ``watches`` is called on every check (for instance
    ``lambda: watch_states(app.informers.values())``). No watch at all is ready: kubewatch
    may be waiting for a CRD to be installed, which is not a failure.

    A quiet but healthy watch is never silent for long: the Reflector asks the server to
    end each WATCH after ``serverTimeout`` to twice that and reopens it, which counts as
    activity, as do bookmarks. The threshold must therefore exceed twice ``serverTimeout``
    (the defaults, 180 s and 60 s, leave a margin for a slow reopen).
    """

    def __init__(self, watches: Callable[[], Iterable[WatchState]], stall_threshold: float) -> None:
        self._watches = watches
        self.stall_threshold = stall_threshold
        """Seconds of silence after which a watch counts as stalled."""

    def __call__(self) -> tuple[bool, list[str]]:
        reasons: list[str] = []
        for state in self._watches():
            if state.failure is not None:
                reasons.append(f"watch {state.name} failing: {state.failure}")
            elif not state.synced:
                reasons.append(f"watch {state.name} not synced yet")
            if state.synced and state.last_activity_age_seconds > self.stall_threshold:
                reasons.append(
                    f"watch {state.name} silent for {state.last_activity_age_seconds:.0f}s "
                    f"(threshold {self.stall_threshold:.0f}s)"
                )
        return not reasons, reasons


class Heartbeats:
    """Liveness from named loops: each registered loop must ``beat`` within its timeout.

    A loop that blocks waiting for work must still wake up (``get(timeout=…)``) and beat
    at least once per timeout. A loop that ends for good calls ``unregister``. Threads
    that cannot beat (a delivery worker blocks on its queue) are covered by checks of
    their own, :meth:`add_check`, whose reasons join the loops'. Thread-safe.
    """

    def __init__(self, timeout: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.timeout = timeout
        """Default seconds a loop may go without a beat before liveness fails."""
        self._clock = clock
        self._lock = threading.Lock()
        # Under _lock: _last and _limits have the same keys, the registered loops.
        self._last: dict[str, float] = {}  # loop name -> clock time of its last beat
        self._limits: dict[str, float] = {}  # loop name -> its timeout in seconds
        self._checks: list[Check] = []  # only appended to

    def register(self, name: str, timeout: float | None = None) -> None:
        """Start watching loop ``name`` (as if it beat now), with its own ``timeout``
        when it wakes up less often than the default allows."""
        with self._lock:
            self._last[name] = self._clock()
            self._limits[name] = self.timeout if timeout is None else timeout

    def beat(self, name: str) -> None:
        """Loop ``name`` is turning; registers it with the default timeout if needed."""
        now = self._clock()
        with self._lock:
            self._last[name] = now
            self._limits.setdefault(name, self.timeout)

    def add_check(self, check: Check) -> None:
        """Also fail liveness when ``check`` does (e.g. ``Dispatcher.workers_alive``)."""
        with self._lock:
            self._checks.append(check)

    def unregister(self, name: str) -> None:
        """Loop ``name`` ended on purpose: stop watching it. Unknown names are ignored."""
        with self._lock:
            self._last.pop(name, None)
            self._limits.pop(name, None)

    def __call__(self) -> tuple[bool, list[str]]:
        now = self._clock()
        with self._lock:
            silent = [
                (name, now - last, self._limits[name])
                for name, last in sorted(self._last.items())
                if now - last > self._limits[name]
            ]
            checks = list(self._checks)
        reasons = [
            f"loop {name} silent for {age:.0f}s (limit {limit:.0f}s)" for name, age, limit in silent
        ]
        for check in checks:  # outside the lock: a check may take locks of its own
            healthy, more = check()
            if not healthy:
                reasons += more or ["a liveness check failed"]
        return not reasons, reasons


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # stop() must not wait for a slow client

    def __init__(self, address: tuple[str, int], owner: HealthServer) -> None:
        if ":" in address[0]:  # an IPv6 literal such as "::"
            self.address_family = socket.AF_INET6
        self.owner = owner
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        self._lock = threading.Lock()
        self._open: dict[socket.socket, float] = {}  # under _lock: served socket -> deadline
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves the bound address with socket.getfqdn, a reverse
        # DNS lookup that can stall start-up for seconds; the name is never used here.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)

    def process_request(self, request: Any, client_address: Any) -> None:
        """Serve on a thread of its own while a slot is free; otherwise close at once."""
        if not self._slots.acquire(blocking=False):
            log.debug("%s: %d connections open; closing a new one", client_address, MAX_CONNECTIONS)
            self.shutdown_request(request)
            return
        with self._lock:
            self._open[request] = time.monotonic() + CONNECTION_DEADLINE
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._release(request)
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._release(request)

    def _release(self, request: socket.socket) -> None:
        with self._lock:
            if self._open.pop(request, None) is None:
                return
        self._slots.release()

    def service_actions(self) -> None:
        """Between polls of the listening socket: cut connections past their deadline
        (shutdown wakes the thread blocked in its read; it then ends and frees its slot)."""
        now = time.monotonic()
        with self._lock:
            late = [s for s, deadline in self._open.items() if deadline <= now]
        for sock in late:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def cut(self, request: socket.socket) -> bool:
        """True once ``request`` is past its deadline (its request may be incomplete)."""
        with self._lock:
            deadline = self._open.get(request)
        return deadline is not None and deadline <= time.monotonic()

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that went away (or was cut) is no error of ours: DEBUG, no traceback.
        log.debug("%s: connection ended early", client_address, exc_info=True)

    def open_connections(self) -> int:
        with self._lock:
            return len(self._open)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    timeout = REQUEST_TIMEOUT
    server_version = "kubewatch"
    sys_version = ""  # no "Python/3.x" in the Server header: nothing to fingerprint

    def version_string(self) -> str:
        return self.server_version

    def setup(self) -> None:
        threading.current_thread().name = "kubewatch-http-request"
        super().setup()

    def do_GET(self) -> None:
        self._respond(send_body=True)

    def do_HEAD(self) -> None:
        self._respond(send_body=False)

    def _respond(self, *, send_body: bool) -> None:
        if self.server.cut(self.request):  # the headers "ended" because the socket was cut
            self.close_connection = True
            return
        owner = self.server.owner
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            try:
                body, content_type = owner.metrics.exposition(self.headers.get("Accept", ""))
            except Exception:
                log.exception("/metrics: rendering the metrics failed")
                self._send(500, b"rendering the metrics failed\n", send_body=send_body)
                return
            self._send(200, body, content_type, send_body=send_body)
        elif path == "/healthz":
            self._check("liveness", owner.liveness, send_body=send_body)
        elif path == "/readyz":
            self._check("readiness", owner.readiness, send_body=send_body)
        else:
            self._send(404, b"not found; try /metrics, /healthz or /readyz\n", send_body=send_body)

    def _check(self, what: str, check: Check, *, send_body: bool) -> None:
        try:
            healthy, reasons = check()
        except Exception as e:
            log.exception("%s check failed", what)
            healthy, reasons = False, [f"{what} check failed: {type(e).__name__}"]
        if healthy:
            self._send(200, b"ok\n", send_body=send_body)
            return
        text = "".join(f"{reason}\n" for reason in reasons) or f"{what} check failed\n"
        self._send(503, text.encode(), send_body=send_body)

    def _send(
        self,
        status: int,
        body: bytes,
        content_type: str = "text/plain; charset=utf-8",
        *,
        send_body: bool,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if send_body:
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        # Probes come every few seconds: request lines at DEBUG, never at INFO.
        log.debug("%s %s", self.address_string(), format % args)


class HealthServer:
    """Serves ``/metrics``, ``/healthz`` (liveness) and ``/readyz`` (readiness).

    ``start()`` binds (``port`` 0 picks a free port, then see :attr:`port`) and serves on
    a daemon thread; ``stop()`` is idempotent, takes up to ``poll_interval`` seconds, and a
    stopped server cannot be started again. Also a context manager. Other paths answer 404.
    """

    def __init__(
        self,
        address: str,
        port: int,
        *,
        metrics: Metrics,
        readiness: Check,
        liveness: Check,
        poll_interval: float = 0.5,
    ) -> None:
        self.address = address
        self._poll_interval = poll_interval  # seconds; bounds how long stop() takes
        self.metrics = metrics
        self.readiness = readiness
        self.liveness = liveness
        self._requested_port = port
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._stopped = False

    @property
    def port(self) -> int:
        """The port listened on (the one picked when 0 was asked for); after ``start()``."""
        if self._server is None:
            raise RuntimeError("the health server is not started")
        return int(self._server.server_address[1])

    def start(self) -> None:
        """Bind and serve; raises OSError when the address cannot be bound."""
        if self._stopped or self._server is not None:
            raise RuntimeError("the health server can be started once only")
        self._server = _Server((self.address, self._requested_port), self)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": self._poll_interval},
            name="kubewatch-http",
            daemon=True,
        )
        self._thread.start()
        log.info("serving /metrics, /healthz and /readyz on %s port %d", self.address, self.port)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop serving and close the socket; waits up to ``timeout`` for the thread."""
        if self._stopped:
            return
        self._stopped = True
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout)

    def __enter__(self) -> HealthServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
