"""kubewatch.kube.client on answers no API server gives: a watch line that never ends,
and HTML where JSON belongs (a proxy's error page, a login portal)."""

from __future__ import annotations

import http.server
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kubewatch.errors import ApiError
from kubewatch.kube.client import (
    MAX_LINE_BYTES,
    READ_SIZE,
    ApiUnreachable,
    ClusterClient,
    Query,
    WatchStream,
)
from tests.apiserver_fakes import serve, write_kubeconfig

MIB = 1024 * 1024


class EndlessLine:
    """A chunked urllib3-like response: one line that never ends, up to ``total`` bytes
    (a bound so that the code under test cannot hang the test), then a newline."""

    chunked = True

    def __init__(self, total: int) -> None:
        self.total = total
        self.sent = 0
        self.closed = False

    def stream(self, amount: int, decode_content: bool = True) -> Iterator[bytes]:
        yield b'{"type":"ADDED","object":{"metadata":{"name":"'
        while self.sent < self.total and not self.closed:
            self.sent += READ_SIZE
            yield b"x" * READ_SIZE
        yield b'"}}}\n'

    def shutdown(self) -> None:
        self.closed = True

    def close(self) -> None:
        self.closed = True

    def release_conn(self) -> None:
        pass


def test_a_line_that_never_ends_is_cut_at_the_bound_and_breaks_the_stream(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The unfinished line is bounded by MAX_LINE_BYTES: past it the stream is broken
    (ApiUnreachable, which makes the Reflector open a new watch), and it says so."""
    response = EndlessLine(total=4 * MAX_LINE_BYTES)
    stream = WatchStream(response, "/api/v1/configmaps", 90.0)
    with pytest.raises(ApiUnreachable, match="longer than"):
        list(stream)
    assert response.sent <= MAX_LINE_BYTES + READ_SIZE  # read no further than the bound
    assert response.closed
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "without ending" in errors[0]


def test_a_long_line_below_the_bound_is_an_event() -> None:
    response = EndlessLine(total=2 * MIB)
    [event] = list(WatchStream(response, "/api/v1/configmaps", 90.0))
    assert len(event["object"]["metadata"]["name"]) >= 2 * MIB


HTML = b"<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>\n"


class HtmlServer:
    """Answers every GET with an HTML page and ``status``."""

    def __init__(self, status: int) -> None:
        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(HTML)))
                self.end_headers()
                self.wfile.write(HTML)

            do_POST = do_GET

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd, self.url = serve(Handler)

    def close(self) -> None:
        self.httpd.shutdown()


def connect(url: str, tmp_path: Path) -> ClusterClient:
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", url)
    return ClusterClient.connect(str(kubeconfig))


@pytest.mark.parametrize("status", [200, 500])
def test_an_html_answer_is_an_api_error(status: int, tmp_path: Path) -> None:
    """A LIST, a GET, a write and a WATCH answered by an HTML page each raise an ApiError
    that quotes the page: never a JSON decoding traceback, never a line-by-line skip."""
    server = HtmlServer(status)
    client = connect(server.url, tmp_path)
    try:
        calls = [
            lambda: client.list_page("/api/v1/pods", Query(), limit=1),
            lambda: client.get_json("/apis"),
            lambda: client.request_json("POST", "/api/v1/namespaces/x/events", {}),
            lambda: client.watch(
                "/api/v1/pods", Query(), resource_version="1", timeout_seconds=5, read_timeout=5
            ),
        ]
        for call in calls:
            with pytest.raises(ApiError) as caught:
                call()
            assert caught.value.status == status
            assert "502 Bad Gateway" in caught.value.message
    finally:
        client.close()
        server.close()
