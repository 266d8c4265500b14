"""The real HTTP path (ClusterClient + WatchStream + Reflector) against a fake API server,
for what a real one will not do on demand: lines cut across chunks, garbage, a stream that
goes silent with the socket open, an HTTP error in the middle."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest

from kubewatch.errors import ApiError
from kubewatch.kube import ReflectorSettings, SharedInformer
from kubewatch.kube.client import ClusterClient, ListWatch, Query
from tests.apiserver_fakes import JsonHandler, serve, write_kubeconfig


def cm(name: str, rv: int) -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "namespace": "ns",
            "uid": f"u-{name}",
            "resourceVersion": str(rv),
        }
    }


class FakeApiServer:
    """Answers LIST from ``lists`` and each WATCH with the next script of ``watches``.

    A script is a list of byte chunks (sent as separate HTTP chunks), the string "STALL"
    (keep the socket open and send nothing), or an int (answer with that HTTP status).
    """

    def __init__(self) -> None:
        self.lists: list[dict[str, Any]] = []
        self.watches: list[Any] = []
        self.requests: list[dict[str, list[str]]] = []
        self.release = threading.Event()
        server = self

        class Handler(JsonHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                query = parse_qs(urlparse(self.path).query)
                server.requests.append(query)
                if "watch" not in query:
                    self.send_json(
                        200, server.lists.pop(0) if len(server.lists) > 1 else server.lists[0]
                    )
                    return
                script = server.watches.pop(0) if server.watches else "STALL"
                if isinstance(script, int):
                    self.send_json(
                        script,
                        {
                            "kind": "Status",
                            "code": script,
                            "reason": "InternalError",
                            "message": "boom",
                        },
                    )
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                if script == "STALL":
                    server.release.wait(10)
                    return
                for chunk in script:
                    self.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                    self.wfile.flush()
                self.wfile.write(b"0\r\n\r\n")

        self.httpd, self.url = serve(Handler)

    def close(self) -> None:
        self.release.set()
        self.httpd.shutdown()


@pytest.fixture
def fake() -> Iterator[FakeApiServer]:
    server = FakeApiServer()
    yield server
    server.close()


def connect(server: FakeApiServer, tmp_path: Path) -> ClusterClient:
    kubeconfig = write_kubeconfig(
        tmp_path / "kubeconfig",
        server.url,
        token="secret-token",
        cluster="fake",
        context="fake-ctx",
    )
    return ClusterClient.connect(str(kubeconfig))


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str]] = []
        self.changed = threading.Condition()

    def _record(self, call: tuple[str, str, str]) -> None:
        with self.changed:
            self.calls.append(call)
            self.changed.notify_all()

    def on_add(self, obj: dict[str, Any], is_initial_list: bool) -> None:
        self._record(("add", obj["metadata"]["name"], obj["metadata"]["resourceVersion"]))

    def on_update(self, old: dict[str, Any], new: dict[str, Any]) -> None:
        self._record(("update", new["metadata"]["name"], new["metadata"]["resourceVersion"]))

    def on_delete(self, obj: Any) -> None:
        self._record(("delete", "?", "?"))

    def wait(self, count: int, timeout: float = 10) -> list[tuple[str, str, str]]:
        with self.changed:
            assert self.changed.wait_for(lambda: len(self.calls) >= count, timeout), self.calls
            return list(self.calls)


def line(event_type: str, obj: dict[str, Any]) -> bytes:
    return json.dumps({"type": event_type, "object": obj}).encode() + b"\n"


def test_cut_lines_garbage_stall_and_errors_are_survived(
    fake: FakeApiServer, tmp_path: Path
) -> None:
    first = line("MODIFIED", cm("a", 11))
    fake.lists = [
        {"kind": "ConfigMapList", "metadata": {"resourceVersion": "10"}, "items": [cm("a", 1)]}
    ]
    fake.watches = [
        # one event cut across three chunks, garbage, a non-object line, then the stream ends
        [
            first[:7],
            first[7:30],
            first[30:] + b"not json at all\n[1, 2]\n",
            line("MODIFIED", cm("a", 12)),
        ],
        500,  # the next watch fails with an HTTP error: back off, then resume
        "STALL",  # silent with the socket open: the read timeout must end it
        [b'{"type":"ERROR","object":{"kind":"Status","code":410,"reason":"Expired"}}\n'],
    ]
    client = connect(fake, tmp_path)
    settings = ReflectorSettings(
        read_timeout=1.0,
        server_timeout=30,
        backoff_initial=0.01,
        backoff_max=0.02,
        min_watch_duration=0.0,
    )
    informer = SharedInformer(
        "configmaps",
        ListWatch(client, "/api/v1/namespaces/ns/configmaps", Query(), settings.read_timeout),
        kind="ConfigMap",
        api_version="v1",
        settings=settings,
    )
    rec = Recorder()
    informer.add_handler(rec)
    informer.start()
    try:
        calls = rec.wait(3)
        assert calls == [("add", "a", "1"), ("update", "a", "11"), ("update", "a", "12")]
        # the stalled watch is replaced; after the 410 the informer lists again
        for _ in range(100):
            if sum("watch" not in q for q in fake.requests) >= 2:
                break
            threading.Event().wait(0.1)
        watches = [q for q in fake.requests if "watch" in q]
        assert [q["resourceVersion"] for q in watches[:4]] == [["10"], ["12"], ["12"], ["12"]]
        assert all(q["allowWatchBookmarks"] == ["true"] for q in watches)
        assert all(
            int(q["timeoutSeconds"][0]) < 1 + 1 for q in watches
        )  # capped below read timeout
        assert sum("watch" not in q for q in fake.requests) >= 2  # relisted after the 410
        assert informer.reflector.relists >= 1
    finally:
        informer.stop()
        client.close()


def test_http_error_status_is_decoded(fake: FakeApiServer, tmp_path: Path) -> None:
    client = connect(fake, tmp_path)
    fake.lists = []
    fake.watches = [403]
    with pytest.raises(ApiError) as info:
        client.watch(
            "/api/v1/configmaps", Query(), resource_version="1", timeout_seconds=5, read_timeout=5
        ).close()
    assert info.value.status == 403 and "boom" in str(info.value)
    assert "secret-token" not in str(info.value)
    client.close()
