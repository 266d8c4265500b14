"""CPU per request of candidate HTTP senders, one pooled keep-alive connection each.

A receiver in a child process answers every POST with ``200`` and a 2-byte body; the
sending thread's CPU (``time.thread_time``) over ``--requests`` sequential POSTs of a
~600-byte JSON body is divided by their number. Candidates: an ``httpx.Client``
(streaming, as the sinks used it), httpcore's ``ConnectionPool``, urllib3's
``HTTPConnectionPool``, kubewatch's own ``kubewatch.sinks.http1.Pool``, and the
webhook sink itself (``WebhookSink.send`` of a ready body, i.e. ``HttpEndpoint.send``).

    python bench/http_sender.py [--requests 5000]

The last line is ``RESULT httpx_us=… httpcore_us=… urllib3_us=… http1_us=… endpoint_us=…``.
"""

from __future__ import annotations

import argparse
import multiprocessing
import socket
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpcore
import httpx
import urllib3

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kubewatch.config import WebhookSinkConfig
from kubewatch.sinks.http1 import Origin, Pool, encode_headers
from kubewatch.sinks.webhook import WebhookSink

BODY = b'{"kind":"ConfigMap","name":"cm-00001","namespace":"bench","reason":"Updated"' + (
    b',"pad":"' + b"x" * 500 + b'"}'
)
ANSWER = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok"


def _serve(sock: socket.socket) -> None:
    """Answers each request on each connection (one thread per connection)."""

    def answer(conn: socket.socket) -> None:
        buf = b""
        with conn:
            while True:
                while b"\r\n\r\n" not in buf:
                    data = conn.recv(65536)
                    if not data:
                        return
                    buf += data
                head, _, buf = buf.partition(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                while len(buf) < length:
                    buf += conn.recv(65536)
                buf = buf[length:]
                conn.sendall(ANSWER)

    while True:
        conn, _ = sock.accept()
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        threading.Thread(target=answer, args=(conn,), daemon=True).start()


def measure(name: str, send: Callable[[], None], requests: int) -> float:
    for _ in range(200):
        send()
    started = time.thread_time()
    for _ in range(requests):
        send()
    us = (time.thread_time() - started) * 1e6 / requests
    print(f"{name:10s} {us:7.1f} µs CPU per request")
    return us


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=5000)
    args = parser.parse_args()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    port = sock.getsockname()[1]
    server = multiprocessing.Process(target=_serve, args=(sock,), daemon=True)
    server.start()
    url = f"http://127.0.0.1:{port}/hook"
    headers = {"Content-Type": "application/json", "User-Agent": "kubewatch/bench"}
    results: dict[str, float] = {}

    client = httpx.Client(headers=headers)

    def via_httpx() -> None:
        with client.stream("POST", url, content=BODY) as r:
            r.read()

    results["httpx"] = measure("httpx", via_httpx, args.requests)
    client.close()

    pool = httpcore.ConnectionPool()

    def via_httpcore() -> None:
        r = pool.request("POST", url, headers=headers, content=BODY)
        r.read()

    results["httpcore"] = measure("httpcore", via_httpcore, args.requests)
    pool.close()

    u3 = urllib3.HTTPConnectionPool("127.0.0.1", port, maxsize=4)

    def via_urllib3() -> None:
        u3.urlopen("POST", "/hook", body=BODY, headers=headers, retries=False).read()

    results["urllib3"] = measure("urllib3", via_urllib3, args.requests)
    u3.close()

    lean = Pool(Origin("http", "127.0.0.1", port), tls=None, body_limit=65536)
    head = encode_headers(headers.items())

    def via_http1() -> None:
        lean.request("POST", "/hook", head, BODY, time.monotonic() + 10)

    results["http1"] = measure("http1", via_http1, args.requests)
    lean.close()

    sink = WebhookSink("bench", WebhookSinkConfig(type="webhook", url=url))

    def via_endpoint() -> None:
        sink.endpoint.send(BODY)

    results["endpoint"] = measure("endpoint", via_endpoint, args.requests)
    sink.close()
    server.terminate()
    print("RESULT " + " ".join(f"{k}_us={v:.1f}" for k, v in results.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
