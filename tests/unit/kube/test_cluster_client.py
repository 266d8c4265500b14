"""kubewatch.kube.client on answers no API server gives: HTML where JSON belongs (a
proxy's error page, a login portal)."""

from __future__ import annotations

import http.server
from pathlib import Path
from typing import Any

import pytest

from kubewatch.errors import ApiError
from kubewatch.kube.client import ClusterClient, Query
from tests.apiserver_fakes import serve, write_kubeconfig

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
