"""LISTs per second against an API server that answers every WATCH with 410 Gone.

A local HTTP server lists one ConfigMap and answers every watch with ``410``; kubewatch's
SharedInformer runs over the real ClusterClient/ListWatch with the default
ReflectorSettings for ``--seconds`` seconds. Without a backoff on relists this is a hot
loop (one LIST per round trip); with it, LISTs follow the backoff: 0.4-0.8 s, doubling,
then one per 15-30 s.

    python bench/gone_loop.py [--seconds 60]

The last line is ``RESULT seconds=… lists=… lists_per_s=…``.
"""

from __future__ import annotations

import argparse
import http.server
import json
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import yaml

from kubewatch.kube import ReflectorSettings, SharedInformer
from kubewatch.kube.client import ClusterClient, ListWatch, Query


def serve() -> tuple[http.server.ThreadingHTTPServer, list[int]]:
    lists = [0]

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            if "watch=true" in self.path:
                self._json(410, {"kind": "Status", "code": 410, "reason": "Expired"})
                return
            lists[0] += 1
            item = {
                "metadata": {"name": "a", "namespace": "ns", "uid": "u", "resourceVersion": "1"}
            }
            self._json(200, {"metadata": {"resourceVersion": str(lists[0])}, "items": [item]})

        def _json(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd, lists


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=60.0)
    args = parser.parse_args()
    httpd, lists = serve()
    with tempfile.TemporaryDirectory() as tmp:
        kubeconfig = Path(tmp) / "kubeconfig"
        url = f"http://127.0.0.1:{httpd.server_address[1]}"
        kubeconfig.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [{"name": "c", "cluster": {"server": url}}],
                    "users": [{"name": "u", "user": {"token": "t"}}],
                    "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
                    "current-context": "x",
                }
            )
        )
        client = ClusterClient.connect(str(kubeconfig))
    settings = ReflectorSettings()
    informer = SharedInformer(
        "configmaps in ns",
        ListWatch(client, "/api/v1/namespaces/ns/configmaps", Query(), settings.read_timeout),
        kind="ConfigMap",
        api_version="v1",
        settings=settings,
    )
    started = time.monotonic()
    informer.start()
    time.sleep(args.seconds)
    informer.stop()
    elapsed = time.monotonic() - started
    client.close()
    httpd.shutdown()
    print(f"RESULT seconds={elapsed:.0f} lists={lists[0]} lists_per_s={lists[0] / elapsed:.2f}")


if __name__ == "__main__":
    main()
