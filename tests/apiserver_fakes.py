"""What the local stand-ins for an API server share: a handler that answers JSON and logs
nothing, a threaded server on a free loopback port, and a kubeconfig that points at it."""

from __future__ import annotations

import http.server
import json
import threading
from pathlib import Path
from typing import Any

import yaml


class JsonHandler(http.server.BaseHTTPRequestHandler):
    """A request handler with :meth:`send_json`; the test's output stays free of access logs."""

    def send_json(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


def serve(handler: type[http.server.BaseHTTPRequestHandler]) -> tuple[http.server.HTTPServer, str]:
    """``handler`` served on 127.0.0.1 from a daemon thread; the server and its URL."""
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd, f"http://127.0.0.1:{httpd.server_address[1]}"


def write_kubeconfig(
    path: Path, server: str, *, token: str = "t", cluster: str = "c", context: str = "x"
) -> Path:
    """A kubeconfig at ``path`` whose current context reaches ``server`` with ``token``."""
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": cluster, "cluster": {"server": server}}],
                "users": [{"name": "u", "user": {"token": token}}],
                "contexts": [{"name": context, "context": {"cluster": cluster, "user": "u"}}],
                "current-context": context,
            }
        )
    )
    return path
