"""The fault suite on real API servers: what ``test_faults`` does not already cover.

- the API server frozen with ``kill -STOP`` while kubewatch watches: detected within the
  read timeout, recovered after ``kill -CONT``;
- a real ``410 Expired`` from an etcd compaction (a second control plane with the watch
  cache off), with creates, updates and deletes in the gap;
- a sink down for 60 s (connection refused, then 503) while 30 changes happen;
- SIGTERM while deliveries to a slow receiver are in flight.

Each test compares the exact multiset of ``(type, name, resourceVersion)`` (``uid`` for a
delete: the API answers a delete without the version it made) that kubewatch reported
with what the test did: nothing lost, nothing doubled. The frozen API server and the
compaction use a control plane of their own (``private_plane``), so that freezing it
disturbs nobody else's tests; the other two use the shared one.
"""

from __future__ import annotations

import base64
import contextlib
import http.server
import json
import os
import random
import re
import signal
import socket
import subprocess
import threading
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k8s
from kubernetes import config as k8s_config

from tests.e2e import conftest
from tests.e2e.conftest import Kubewatch, Receiver, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.fault]

SCRIPTS = os.environ.get("KUBE_LOCAL_SCRIPTS")
needs_scripts = pytest.mark.skipif(
    not SCRIPTS, reason="needs KUBE_LOCAL_SCRIPTS (the folder of ../shared/kube/up.sh)"
)
SETTLE = 2.0
"""Seconds to wait after the expected events arrived, for a duplicate that would follow."""

Ident = tuple[str, str, str]
"""(type, name, resourceVersion) of a create or update; (type, name, uid) of a delete."""


def ident(event: dict[str, Any]) -> Ident:
    last = event["uid"] if event["type"] == "delete" else event["resourceVersion"]
    return (event["type"], event["name"], last)


def idents(events: list[dict[str, Any]]) -> Counter[Ident]:
    return Counter(ident(e) for e in events)


class Changes:
    """ConfigMap changes made through the API, each recorded as the event it must give."""

    def __init__(self, core: k8s.CoreV1Api, namespace: str) -> None:
        self.core = core
        self.namespace = namespace
        self.done: list[Ident] = []
        self.uids: dict[str, str] = {}
        self.versions: dict[str, str] = {}

    def create(self, name: str, value: str = "1", record: bool = True) -> None:
        cm = self.core.create_namespaced_config_map(self.namespace, configmap(name, value))
        assert cm.metadata is not None and cm.metadata.uid and cm.metadata.resource_version
        self.uids[name] = cm.metadata.uid
        self.versions[name] = cm.metadata.resource_version
        if record:
            self.done.append(("create", name, cm.metadata.resource_version))

    def update(self, name: str, value: str, record: bool = True) -> None:
        cm = self.core.patch_namespaced_config_map(name, self.namespace, {"data": {"v": value}})
        assert cm.metadata is not None and cm.metadata.resource_version
        self.versions[name] = cm.metadata.resource_version
        if record:
            self.done.append(("update", name, cm.metadata.resource_version))

    def delete(self, name: str, record: bool = True) -> None:
        self.core.delete_namespaced_config_map(name, self.namespace)
        if record:
            self.done.append(("delete", name, self.uids[name]))


def configmap(name: str, value: str = "1") -> k8s.V1ConfigMap:
    return k8s.V1ConfigMap(metadata=k8s.V1ObjectMeta(name=name), data={"v": value})


def config_for(namespace: str, sinks: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """ConfigMaps of ``namespace`` to stdout (JSON) and ``sinks``."""
    return {
        "cluster": "e2e",
        "namespaces": {"include": [namespace]},
        "resources": [{"kind": "ConfigMap"}],
        "sinks": {"console": {"type": "stdout", "format": "json"}, **sinks},
        **extra,
    }


def wait_for_all(
    kw: Kubewatch, receiver_events: Callable[[], list[Any]], n: int, *, settle: bool = True
) -> None:
    """Until stdout and the receiver have ``n`` events each; then, with ``settle``, a
    little longer, so that a duplicate following them would be there to see."""
    wait_for(
        lambda: len(kw.events) >= n and len(receiver_events()) >= n,
        timeout=60,
        what=f"{n} events on stdout and at the receiver",
    )
    if settle:
        time.sleep(SETTLE)


# -- a control plane of our own -----------------------------------------------------------


@dataclass
class Plane:
    """A control plane started by ``up.sh`` in ``state``."""

    state: Path

    def env(self) -> dict[str, str]:
        """The current ``env`` file (``restart.sh`` rewrites the API server's pid)."""
        out = {}
        for text in (self.state / "env").read_text().splitlines():
            key, _, value = text.removeprefix("export ").partition("=")
            out[key] = value
        return out

    @property
    def kubeconfig(self) -> str:
        return self.env()["KUBECONFIG"]

    @property
    def etcd(self) -> str:
        return self.env()["KUBE_LOCAL_ETCD"]

    def apiserver_pid(self) -> int:
        return int(self.env()["KUBE_LOCAL_APISERVER_PID"])

    def etcd_post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        request = urllib.request.Request(
            self.etcd + path, data=json.dumps(body).encode(), method="POST"
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            answer: dict[str, Any] = json.load(response)
            return answer

    def etcd_revision(self) -> int:
        key = base64.b64encode(b"/kubewatch-e2e/no-such-key").decode()
        return int(self.etcd_post("/v3/kv/range", {"key": key})["header"]["revision"])

    def compact(self, revision: int) -> None:
        """Forget every revision before ``revision`` (``physical``: done when this returns)."""
        self.etcd_post("/v3/kv/compaction", {"revision": str(revision), "physical": True})


@pytest.fixture(scope="module")
def private_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Plane]:
    """A second control plane with the watch cache off: watches are served by etcd, so
    an etcd compaction makes older resourceVersions answer a real 410 at once."""
    if not SCRIPTS or not conftest.KUBECONFIG:
        pytest.skip("needs KUBE_LOCAL_SCRIPTS and KUBEWATCH_E2E_KUBECONFIG")
    state = tmp_path_factory.mktemp("private-plane")
    plane = Plane(state)
    try:
        subprocess.run(
            [str(Path(SCRIPTS) / "up.sh"), str(state)],
            check=True,
            capture_output=True,
            timeout=120,
            env={**os.environ, "KUBE_LOCAL_WATCH_CACHE": "false"},
        )
        yield plane
    finally:
        subprocess.run(
            [str(Path(SCRIPTS) / "down.sh"), str(state)],
            check=False,
            capture_output=True,
            timeout=60,
        )


@pytest.fixture(scope="module")
def private_api(private_plane: Plane) -> k8s.ApiClient:
    client: k8s.ApiClient = k8s_config.new_client_from_config(  # type: ignore[no-untyped-call]
        config_file=private_plane.kubeconfig, context="kube-local"
    )
    return client


@pytest.fixture
def private_namespace(private_api: k8s.ApiClient) -> Iterator[str]:
    name = f"fault-{uuid.uuid4().hex[:8]}"
    core = k8s.CoreV1Api(private_api)
    core.create_namespace(k8s.V1Namespace(metadata=k8s.V1ObjectMeta(name=name)))
    yield name
    core.delete_namespace(name)


@pytest.fixture
def start_private(
    private_plane: Plane,
    start_kubewatch: Callable[..., Kubewatch],
    monkeypatch: pytest.MonkeyPatch,
) -> Callable[..., Kubewatch]:
    """``start_kubewatch`` against the private plane (the kubeconfig ``Kubewatch`` passes
    is conftest's module setting)."""
    monkeypatch.setattr(conftest, "KUBECONFIG", private_plane.kubeconfig)
    return start_kubewatch


# -- 1. the API server frozen -------------------------------------------------------------

READ_TIMEOUT = 4
SERVER_TIMEOUT = 2
_DETECTED = re.compile(r"(no data for [\d.]+s, presumed dead|timed out)[^\n]*; retrying in")
"""The reflector giving up on the frozen server: a silent open stream is "presumed dead"
after ``readTimeout``; in the rare case the freeze caught a watch being opened, the
connect or read timeout of that request says "timed out" (within ``CONNECT_TIMEOUT``)."""


@needs_scripts
def test_frozen_apiserver_is_presumed_dead_and_later_changes_arrive_once(
    private_plane: Plane,
    private_api: k8s.ApiClient,
    private_namespace: str,
    receiver: Receiver,
    start_private: Callable[..., Kubewatch],
) -> None:
    """``kill -STOP`` keeps the API server's sockets open and silent: only the client
    read timeout can tell. The watch must be presumed dead within ``readTimeout`` (the
    bound waited for is generous: it also covers a freeze that catches a watch being
    opened, reported by that request's own timeout); after ``kill -CONT`` the changes
    made are reported once each, and nothing from before is repeated."""
    changes = Changes(k8s.CoreV1Api(private_api), private_namespace)
    sinks = {"audit": {"type": "webhook", "url": receiver.url}}
    kw = start_private(
        config_for(
            private_namespace,
            sinks,
            watch={"readTimeout": READ_TIMEOUT, "serverTimeout": SERVER_TIMEOUT},
            delivery={"retry": {"attempts": 20, "maxBackoff": 1}},
        )
    )
    kw.wait_synced(1)
    changes.create("before-1")
    changes.create("before-2")
    changes.update("before-1", "2")
    wait_for_all(kw, lambda: receiver.events, 3, settle=False)

    since = len(kw.stderr)
    pid = private_plane.apiserver_pid()
    os.kill(pid, signal.SIGSTOP)
    try:
        wait_for(
            lambda: _DETECTED.search(kw.stderr, since),
            timeout=READ_TIMEOUT + SERVER_TIMEOUT + 10,
            what="the silent watch to be presumed dead",
        )
    finally:
        os.kill(pid, signal.SIGCONT)

    changes.create("after-1")
    changes.update("before-2", "2")
    changes.delete("before-1")
    changes.create("after-2")
    changes.update("after-2", "2")
    wait_for_all(kw, lambda: receiver.events, len(changes.done))

    expected = Counter(changes.done)
    assert idents(kw.events) == expected
    assert idents(receiver.events) == expected
    assert kw.proc.poll() is None
    assert kw.stop() == 0


# -- 2. a real 410 from an etcd compaction ---------------------------------------------------


@needs_scripts
def test_compaction_gap_gives_a_real_410_and_each_change_once(
    private_plane: Plane,
    private_api: k8s.ApiClient,
    private_namespace: str,
    receiver: Receiver,
    start_private: Callable[..., Kubewatch],
) -> None:
    """kubewatch is frozen long enough for the API server to end its watch (its
    ``timeoutSeconds`` runs out: no restart needed, and with the watch cache off the
    re-watch would simply resume from etcd's history); meanwhile objects are created,
    updated twice, deleted, deleted and recreated, and etcd is compacted past all of it.
    On resume the re-watch gets a real 410 from etcd, and the relist reports each
    object's net change once: one update (old value to newest), deletes as tombstones
    with the last known state, a recreate as delete + create."""
    core = k8s.CoreV1Api(private_api)
    changes = Changes(core, private_namespace)
    sinks = {"audit": {"type": "webhook", "url": receiver.url}}
    kw = start_private(
        config_for(
            private_namespace,
            sinks,
            watch={"readTimeout": READ_TIMEOUT, "serverTimeout": SERVER_TIMEOUT},
            delivery={"retry": {"attempts": 20, "maxBackoff": 1}},
        )
    )
    kw.wait_synced(1)
    for name in ("keep", "change", "remove", "recreate"):
        changes.create(name)
    wait_for_all(kw, lambda: receiver.events, 4, settle=False)
    before = Counter(changes.done)
    old = dict(changes.versions)

    kw.pause()
    try:
        # Every watch asks for timeoutSeconds <= 0.9 * readTimeout: by now the server
        # has ended the one kubewatch had open, and nothing below can reach it.
        time.sleep(READ_TIMEOUT)
        changes.create("new")
        changes.update("change", "2", record=False)
        changes.update("change", "3", record=False)
        changes.delete("remove", record=False)
        old_uid = changes.uids["recreate"]
        changes.delete("recreate", record=False)
        changes.create("recreate", "again", record=False)
        # the relist can see only the net result of the gap
        changes.done += [
            ("update", "change", changes.versions["change"]),
            ("delete", "remove", changes.uids["remove"]),
            ("delete", "recreate", old_uid),
            ("create", "recreate", changes.versions["recreate"]),
        ]
        # two writes kubewatch does not watch, so that the compaction is strictly past
        # the revision after the last one kubewatch could know
        bump = k8s.CoreV1Api(private_api)
        bump.create_namespaced_config_map("default", configmap(private_namespace))
        bump.delete_namespaced_config_map(private_namespace, "default")
        revision = private_plane.etcd_revision()
        assert revision >= int(changes.versions["recreate"]) + 2
        private_plane.compact(revision)
    finally:
        kw.resume()

    wait_for_all(kw, lambda: receiver.events, len(changes.done), settle=False)
    assert "expired" in kw.stderr, "the 410 path was not taken"
    changes.update("keep", "after")  # and the watch goes on from the relist
    wait_for_all(kw, lambda: receiver.events, len(changes.done))

    expected = Counter(changes.done)
    for events in (kw.events, receiver.events):
        assert idents(events) == expected
        assert idents(events[:4]) == before
        gap = {(e["type"], e["name"]): e for e in events[4:]}
        assert gap[("update", "change")]["changes"] == [
            {"path": "data.v", "op": "changed", "old": "1", "new": "3"}
        ]
        for name in ("remove", "recreate"):
            tombstone = gap[("delete", name)]
            assert tombstone["finalStateUnknown"] is True
            assert tombstone["resourceVersion"] == old[name]  # the last state it knew
        assert gap[("create", "recreate")]["uid"] != old_uid
        recreate = [e["type"] for e in events if e["name"] == "recreate"]
        assert recreate == ["create", "delete", "create"]
    assert kw.stop() == 0


# -- 3. a sink down for 60 s ------------------------------------------------------------------

OUTAGE = 60.0


def quiet_port() -> int:
    """A free loopback port below the ephemeral range: while the receiver is closed, no
    outgoing connection can take it as its source port and keep it from reopening. Tried
    in random order: test runs side by side on one machine would otherwise all pick the
    same first free port, and one could take it while another's receiver is closed."""
    low = 32768
    with contextlib.suppress(OSError, ValueError, IndexError):
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    ports = list(range(max(1025, low - 4000), low))
    random.shuffle(ports)
    for port in ports:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise AssertionError("no free port below the ephemeral range")


class AckReceiver:
    """A webhook receiver on a fixed port that can be closed (connection refused) and
    reopened. It answers ``status``; with 200 it acknowledges the event: its id (the
    ``X-Kubewatch-Event-Id`` header) and body are recorded, once per acknowledgement,
    so a duplicate delivery shows up as an id acknowledged twice. ``delay`` slows every
    answer down."""

    def __init__(self, port: int | None = None, delay: float = 0.0) -> None:
        self.port = port or quiet_port()
        self.url = f"http://127.0.0.1:{self.port}/hook"
        self.status = 200
        self.delay = delay
        self.started = threading.Event()  # set when a request first arrives
        self._lock = threading.Lock()
        self._acked: list[tuple[str, dict[str, Any]]] = []
        self._server: http.server.ThreadingHTTPServer | None = None

    @property
    def acked_ids(self) -> list[str]:
        with self._lock:
            return [i for i, _ in self._acked]

    @property
    def events(self) -> list[dict[str, Any]]:
        with self._lock:
            return [body for _, body in self._acked]

    def open(self) -> None:
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                receiver.started.set()
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                time.sleep(receiver.delay)
                status = receiver.status
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()
                self.wfile.flush()
                if status == 200:  # answered: acknowledged
                    with receiver._lock:
                        receiver._acked.append(
                            (self.headers["X-Kubewatch-Event-Id"], json.loads(body))
                        )

            def log_message(self, *args: Any) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()  # the port refuses connections from now on
            self._server = None


@pytest.fixture
def ack_receiver() -> Iterator[AckReceiver]:
    r = AckReceiver()
    r.open()
    yield r
    r.close()


_STATS = re.compile(
    r"sink (?P<sink>\S+): delivered (?P<delivered>\d+), failed (?P<failed>\d+), "
    r"retried (?P<retried>\d+), dropped (?P<dropped>\d+), digested (?P<digested>\d+)"
)


def final_stats(stderr: str) -> dict[str, dict[str, int]]:
    """The counters of the stats lines kubewatch logs when it stops, by sink."""
    return {
        m["sink"]: {k: int(v) for k, v in m.groupdict().items() if k != "sink"}
        for m in _STATS.finditer(stderr)
    }


def test_sink_down_for_60s_gets_every_change_exactly_once_after(
    api: k8s.ApiClient,
    namespace: str,
    ack_receiver: AckReceiver,
    start_kubewatch: Callable[..., Kubewatch],
) -> None:
    """The receiver refuses connections for 30 s, then answers 503 for 30 s, while 10
    ConfigMaps are created, updated and deleted (30 changes, spread over the outage).
    The sink's retry policy (100 attempts, backoff up to 3 s with full jitter: about
    2.5 minutes) outlasts the outage; afterwards the receiver has acknowledged each
    change exactly once, each object's changes in order, and nothing was given up."""
    changes = Changes(k8s.CoreV1Api(api), namespace)
    sinks = {
        "audit": {
            "type": "webhook",
            "url": ack_receiver.url,
            "retry": {"attempts": 100, "maxBackoff": 3},
            "concurrency": 4,
        }
    }
    kw = start_kubewatch(config_for(namespace, sinks))
    kw.wait_synced(1)
    names = [f"cm-{i:02d}" for i in range(10)]

    ack_receiver.close()  # connection refused
    down = time.monotonic()

    def at(seconds: float) -> None:
        time.sleep(max(0.0, down + seconds - time.monotonic()))

    for name in names:
        changes.create(name)
    wait_for(lambda: len(kw.events) >= 10, what="kubewatch to see the creates")
    wait_for(lambda: "attempt 1 for event" in kw.stderr, what="the sink to retry")
    at(15)
    for name in names:
        changes.update(name, "2")
    at(OUTAGE / 2)
    ack_receiver.status = 503
    ack_receiver.open()
    wait_for(ack_receiver.started.is_set, what="a retry to reach the reopened receiver")
    at(45)
    for name in names:
        changes.delete(name)
    at(OUTAGE)
    assert ack_receiver.acked_ids == []
    assert "not delivered after" not in kw.stderr  # nothing given up during the outage
    ack_receiver.status = 200

    wait_for_all(kw, lambda: ack_receiver.events, 30)
    assert kw.stop() == 0
    acked = Counter(ack_receiver.acked_ids)
    assert [i for i, n in acked.items() if n > 1] == []  # no duplicate acknowledged
    assert set(acked) == {e["id"] for e in kw.events}
    expected = Counter(changes.done)
    assert len(expected) == 30
    assert idents(ack_receiver.events) == expected
    assert idents(kw.events) == expected
    for name in names:  # one object's changes in order, outage or not
        assert [e["type"] for e in ack_receiver.events if e["name"] == name] == [
            "create",
            "update",
            "delete",
        ]
    assert "not delivered after" not in kw.stderr
    retried = [line for line in kw.stderr.splitlines() if "retry in" in line]
    assert any("ConnectError" in line for line in retried)  # refused ...
    assert any("HTTP 503" in line for line in retried)  # ... then 503: both were retried
    stats = final_stats(kw.stderr)["audit"]
    assert (stats["delivered"], stats["failed"], stats["dropped"]) == (30, 0, 0)
    assert stats["retried"] > 0


# -- 4. SIGTERM while deliveries are in flight -------------------------------------------------

DRAIN_TIMEOUT = 3
POST_SECONDS = 0.5
_GIVEN_UP_IN_SEND = re.compile(r"shutdown: (\d+) event\(s\) still in send given up")
_LOST = re.compile(r"(\d+) event\(s\) were not delivered and are lost")


def test_sigterm_with_deliveries_in_flight_exits_3_and_accounts_for_every_event(
    api: k8s.ApiClient,
    namespace: str,
    start_kubewatch: Callable[..., Kubewatch],
) -> None:
    """A receiver that takes 0.5 s per POST, one worker, 20 events queued, no state
    dir: SIGTERM mid-delivery. kubewatch stops watching, delivers what it can within
    ``drainTimeout``, gives up the rest (counted as failed) and, since nothing keeps
    them, exits 3 within ``drainTimeout`` plus a few seconds, the log saying how many
    were lost. The receiver acknowledged no event twice, and the final stats line
    accounts for every event produced: delivered + failed, the failed ones being the
    lost ones. (With a state dir the rest is kept and the exit code is 0: see
    ``test_durable_state``.)"""
    receiver = AckReceiver(delay=POST_SECONDS)
    receiver.open()
    try:
        changes = Changes(k8s.CoreV1Api(api), namespace)
        sinks = {"audit": {"type": "webhook", "url": receiver.url, "concurrency": 1}}
        kw = start_kubewatch(config_for(namespace, sinks, delivery={"drainTimeout": DRAIN_TIMEOUT}))
        kw.wait_synced(1)
        for i in range(20):
            changes.create(f"slow-{i:02d}")
        wait_for(lambda: len(kw.events) >= 20, what="all 20 events produced")
        wait_for(receiver.started.is_set, what="the first delivery in flight")

        kw.proc.send_signal(signal.SIGTERM)
        stopped = time.monotonic()
        code = kw.proc.wait(timeout=DRAIN_TIMEOUT + 10)
        took = time.monotonic() - stopped
        kw.stop()  # joins the stdout reader
    finally:
        receiver.close()

    assert code == 3, kw.stderr[-3000:]  # events were abandoned and nothing keeps them
    assert took < DRAIN_TIMEOUT + 5, f"exited {took:.1f}s after SIGTERM"
    produced = kw.events
    assert idents(produced) == Counter(changes.done)
    stats = final_stats(kw.stderr)
    assert stats["console"]["delivered"] == 20
    audit = stats["audit"]
    assert audit["delivered"] + audit["failed"] == len(produced) == 20, audit
    assert audit["dropped"] == 0
    assert audit["failed"] > 0, "nothing was left to abandon: the test proves nothing"
    lost = _LOST.findall(kw.stderr)
    assert [int(n) for n in lost] == [audit["failed"]], lost
    acked = receiver.acked_ids
    assert len(acked) == len(set(acked)), "an event was delivered twice"
    assert set(acked) <= {e["id"] for e in produced}
    # What the receiver has is what kubewatch counted as delivered, plus at most the
    # sends close() stopped waiting for (counted as failed, outcome unknown).
    in_send = sum(int(n) for n in _GIVEN_UP_IN_SEND.findall(kw.stderr))
    assert audit["delivered"] <= len(acked) <= audit["delivered"] + in_send, (acked, audit)
