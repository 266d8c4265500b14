"""Observability: metrics scraped over real HTTP, readiness and liveness, log lines.

The server listens on a free loopback port; watch and sink state are plain fakes read at
scrape time; every clock is a fake that a test moves by hand, so nothing here depends on
timing.
"""

from __future__ import annotations

import io
import logging
import random
import select
import socket
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from kubewatch.delivery import SinkStats
from kubewatch.kube import SharedInformer
from kubewatch.observability import (
    HealthServer,
    Heartbeats,
    Metrics,
    Readiness,
    SecretRedactor,
    WatchState,
    health,
    register_secret,
    seconds_since,
    setup_logging,
    watch_states,
)
from kubewatch.observability.health import CONNECTION_DEADLINE, MAX_CONNECTIONS, REQUEST_TIMEOUT
from kubewatch.observability.logs import REDACTED, TextFormatter, default_redactor


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class FakeReflector:
    last_activity: float
    relists: int = 0
    watch_restarts: int = 0
    failure: str | None = None


@dataclass
class FakeInformer:
    """What WatchState reads of a SharedInformer, settable by hand."""

    name: str
    reflector: FakeReflector
    has_synced: bool = False
    handler_errors: int = 0


@dataclass
class State:
    """The live state the fake app exposes to the metrics collector."""

    watches: list[WatchState] = field(default_factory=list)
    sinks: dict[str, SinkStats] = field(default_factory=dict)
    leader: bool | None = None


def ok() -> tuple[bool, list[str]]:
    return True, []


@pytest.fixture
def state() -> State:
    return State()


@pytest.fixture
def metrics(state: State) -> Metrics:
    def sinks() -> Mapping[str, SinkStats]:
        return state.sinks

    return Metrics(
        informers=lambda: state.watches,
        sinks=sinks,
        leader=lambda: state.leader,
        version="9.9.9",
    )


def serve(
    metrics: Metrics | None = None,
    readiness: Any = ok,
    liveness: Any = ok,
) -> HealthServer:
    """A server on a free loopback port, started by ``with``."""
    return HealthServer(
        "127.0.0.1",
        0,
        metrics=metrics or Metrics(),
        readiness=readiness,
        liveness=liveness,
        poll_interval=0.01,
    )


def get(server: HealthServer, path: str, accept: str = "") -> tuple[int, str, str]:
    """(status, body, content type) of GET ``path``."""
    request = urllib.request.Request(f"http://127.0.0.1:{server.port}{path}")
    if accept:
        request.add_header("Accept", accept)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode(), response.headers["Content-Type"]
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(), e.headers["Content-Type"]


def sample_lines(body: str) -> set[str]:
    return {line for line in body.splitlines() if line and not line.startswith("#")}


# -- metrics ------------------------------------------------------------------------------


def test_scrape_shows_observations_and_live_state(metrics: Metrics, state: State) -> None:
    """Hot-path observations and the state read at scrape time, as exact sample lines."""
    metrics.observe_event("deployments.apps", "update")
    metrics.observe_event("deployments.apps", "update")
    metrics.observe_event("configmaps", "delete")
    metrics.observe_delivery("slack", 0.2)
    metrics.observe_delivery("slack", 42.0)
    state.watches = [
        WatchState("deployments.apps", "in shop", True, 12.5, relists=1, watch_restarts=7),
        WatchState("configmaps", "cluster-wide", False, 0.0, relists=0, watch_restarts=0),
    ]
    state.sinks = {
        "slack": SinkStats(delivered=5, failed=1, retried=3, dropped=2, queued=4, digested=6),
        "audit": SinkStats(delivered=9, held=8),
    }
    state.leader = True

    with serve(metrics) as server:
        status, body, content_type = get(server, "/metrics")

    assert status == 200
    assert content_type.startswith("text/plain; version=0.0.4")
    lines = sample_lines(body)
    for line in [
        'kubewatch_events_observed_total{resource="deployments.apps",type="update"} 2.0',
        'kubewatch_events_observed_total{resource="configmaps",type="delete"} 1.0',
        'kubewatch_delivery_latency_seconds_bucket{le="0.25",sink="slack"} 1.0',
        'kubewatch_delivery_latency_seconds_bucket{le="60.0",sink="slack"} 2.0',
        'kubewatch_delivery_latency_seconds_count{sink="slack"} 2.0',
        'kubewatch_delivery_latency_seconds_sum{sink="slack"} 42.2',
        'kubewatch_watch_restarts_total{resource="deployments.apps",watch="in shop"} 7.0',
        'kubewatch_relists_total{resource="deployments.apps",watch="in shop"} 1.0',
        'kubewatch_watch_seconds_since_activity{resource="deployments.apps",watch="in shop"} 12.5',
        'kubewatch_watch_synced{resource="deployments.apps",watch="in shop"} 1.0',
        'kubewatch_watch_synced{resource="configmaps",watch="cluster-wide"} 0.0',
        'kubewatch_events_delivered_total{sink="slack"} 5.0',
        'kubewatch_events_delivered_total{sink="audit"} 9.0',
        'kubewatch_events_failed_total{sink="slack"} 1.0',
        'kubewatch_events_retried_total{sink="slack"} 3.0',
        'kubewatch_events_dropped_total{sink="slack"} 2.0',
        'kubewatch_events_digested_total{sink="slack"} 6.0',
        'kubewatch_queue_depth{sink="slack"} 4.0',
        'kubewatch_digest_held_events{sink="audit"} 8.0',
        'kubewatch_build_info{version="9.9.9"} 1.0',
        "kubewatch_leader 1.0",
    ]:
        assert line in lines, line


def test_every_metric_is_prefixed_and_documented(metrics: Metrics, state: State) -> None:
    metrics.observe_event("pods", "create")
    metrics.observe_delivery("stdout", 0.01)
    state.watches = [WatchState("pods", "in shop", True, 1.0, 0, 0)]
    state.sinks = {"stdout": SinkStats()}
    state.leader = False
    body, _ = metrics.exposition()
    families = list(text_string_to_metric_families(body.decode()))
    assert len(families) >= 15
    for family in families:
        assert family.name.startswith("kubewatch_"), family.name
        assert family.documentation, family.name
    helps = {f.name: f.documentation for f in families}
    assert "Seconds" in helps["kubewatch_delivery_latency_seconds"]
    assert "Seconds" in helps["kubewatch_watch_seconds_since_activity"]
    assert "kubewatch_leader 0.0" in sample_lines(body.decode())


def test_leader_gauge_absent_without_election(metrics: Metrics) -> None:
    body, _ = metrics.exposition()
    assert "kubewatch_leader" not in body.decode()


def test_state_is_read_at_each_scrape(metrics: Metrics, state: State) -> None:
    state.sinks = {"slack": SinkStats(delivered=1)}
    with serve(metrics) as server:
        _, first, _ = get(server, "/metrics")
        state.sinks = {"slack": SinkStats(delivered=2)}
        _, second, _ = get(server, "/metrics")
    assert 'kubewatch_events_delivered_total{sink="slack"} 1.0' in sample_lines(first)
    assert 'kubewatch_events_delivered_total{sink="slack"} 2.0' in sample_lines(second)


def test_a_failing_source_leaves_only_its_own_metrics_out(
    state: State, caplog: pytest.LogCaptureFixture
) -> None:
    def broken() -> list[WatchState]:
        raise RuntimeError("informers are gone")

    metrics = Metrics(informers=broken, sinks=lambda: {"slack": SinkStats(delivered=3)})
    with caplog.at_level(logging.ERROR, "kubewatch.observability"):
        body = metrics.exposition()[0].decode()
    assert "kubewatch_watch_synced" not in body
    assert 'kubewatch_events_delivered_total{sink="slack"} 3.0' in sample_lines(body)
    assert "reading the watch states failed" in caplog.text


def test_openmetrics_when_asked(metrics: Metrics) -> None:
    with serve(metrics) as server:
        status, body, content_type = get(server, "/metrics", accept="application/openmetrics-text")
    assert status == 200
    assert content_type.startswith("application/openmetrics-text")
    assert body.endswith("# EOF\n")


def test_negative_delivery_latency_counts_as_zero(metrics: Metrics) -> None:
    metrics.observe_delivery("slack", -3.0)
    lines = sample_lines(metrics.exposition()[0].decode())
    assert 'kubewatch_delivery_latency_seconds_bucket{le="0.005",sink="slack"} 1.0' in lines
    assert 'kubewatch_delivery_latency_seconds_sum{sink="slack"} 0.0' in lines


def test_seconds_since_observed_at() -> None:
    now = datetime(2026, 11, 26, 22, 10, 53, 623000, tzinfo=timezone.utc)
    assert seconds_since("2026-11-26T22:10:51.123Z", now) == pytest.approx(2.5)


def test_watch_state_of_a_shared_informer() -> None:
    """The real SharedInformer fits; age is measured on the clock its Reflector was given."""
    clock = FakeClock()
    informer = SharedInformer(
        "deployments.apps in shop labels app=web",
        lister_watcher=None,  # type: ignore[arg-type]  # never started
        kind="Deployment",
        api_version="apps/v1",
        rng=random.Random(0),
        clock=clock,
    )
    clock.advance(30)
    [state] = watch_states([informer], clock)
    assert state == WatchState(
        resource="deployments.apps",
        scope="in shop labels app=web",
        synced=False,
        last_activity_age_seconds=30.0,
        relists=0,
        watch_restarts=0,
    )
    assert state.name == informer.name


# -- readiness and liveness -------------------------------------------------------------


def test_readiness_not_synced_then_synced_then_stalled_then_recovered() -> None:
    clock = FakeClock()
    configmaps = FakeInformer("configmaps cluster-wide", FakeReflector(clock()))
    deployments = FakeInformer("deployments.apps in shop", FakeReflector(clock()))
    readiness = Readiness(lambda: watch_states([configmaps, deployments], clock), 180)

    with serve(readiness=readiness) as server:
        status, body, _ = get(server, "/readyz")
        assert (status, body) == (
            503,
            "watch configmaps cluster-wide not synced yet\n"
            "watch deployments.apps in shop not synced yet\n",
        )

        configmaps.has_synced = True
        status, body, _ = get(server, "/readyz")
        assert (status, body) == (503, "watch deployments.apps in shop not synced yet\n")

        deployments.has_synced = True
        assert get(server, "/readyz")[:2] == (200, "ok\n")

        # configmaps keeps reopening its watch; deployments goes silent.
        clock.advance(120)
        configmaps.reflector.last_activity = clock()
        clock.advance(60)  # deployments silent for exactly the threshold: still ready
        assert get(server, "/readyz")[:2] == (200, "ok\n")
        clock.advance(61)
        status, body, _ = get(server, "/readyz")
        assert (status, body) == (
            503,
            "watch deployments.apps in shop silent for 241s (threshold 180s)\n",
        )

        deployments.reflector.last_activity = clock()  # a bookmark arrives
        assert get(server, "/readyz")[:2] == (200, "ok\n")


def test_readiness_fails_on_the_first_failed_attempt_with_its_reason() -> None:
    """A watch that may list but not watch (or whose server refuses, or froze past a read
    timeout) is not ready at once, long before the stall threshold, and says why."""
    clock = FakeClock()
    pods = FakeInformer("pods in shop", FakeReflector(clock()), has_synced=True)
    never = FakeInformer("secrets cluster-wide", FakeReflector(clock()))
    readiness = Readiness(lambda: watch_states([pods, never], clock), 180)
    never.reflector.failure = "API error HTTP 403 Forbidden: cannot list secrets"
    pods.reflector.failure = "API error HTTP 403 Forbidden: cannot watch pods"
    clock.advance(1)
    with serve(readiness=readiness) as server:
        assert get(server, "/readyz")[:2] == (
            503,
            "watch pods in shop failing: API error HTTP 403 Forbidden: cannot watch pods\n"
            "watch secrets cluster-wide failing: API error HTTP 403 Forbidden: "
            "cannot list secrets\n",
        )
        pods.reflector.failure = None  # the watch was answered
        never.reflector.failure = None
        assert get(server, "/readyz")[:2] == (
            503,
            "watch secrets cluster-wide not synced yet\n",
        )


def test_failing_watch_metric() -> None:
    clock = FakeClock()
    pods = FakeInformer("pods in shop", FakeReflector(clock(), failure="refused"), True)
    ok = FakeInformer("configmaps cluster-wide", FakeReflector(clock()), True)
    metrics = Metrics(informers=lambda: watch_states([pods, ok], clock))
    lines = sample_lines(metrics.exposition()[0].decode())
    assert 'kubewatch_watch_failing{resource="pods",watch="in shop"} 1.0' in lines
    assert 'kubewatch_watch_failing{resource="configmaps",watch="cluster-wide"} 0.0' in lines


def test_no_watch_yet_is_ready() -> None:
    assert Readiness(list, 180)() == (True, [])


def test_healthz_follows_heartbeats() -> None:
    clock = FakeClock()
    beats = Heartbeats(60, clock=clock)
    beats.register("dispatcher")
    beats.register("discovery", timeout=600)

    with serve(liveness=beats) as server:
        assert get(server, "/healthz")[:2] == (200, "ok\n")
        clock.advance(59)
        beats.beat("dispatcher")
        clock.advance(59)
        assert get(server, "/healthz")[:2] == (200, "ok\n")
        clock.advance(2)  # dispatcher silent for 61 s; discovery's limit is longer
        assert get(server, "/healthz")[:2] == (503, "loop dispatcher silent for 61s (limit 60s)\n")
        beats.beat("dispatcher")
        assert get(server, "/healthz")[:2] == (200, "ok\n")
        clock.advance(600)
        status, body, _ = get(server, "/healthz")
        assert status == 503
        assert body.splitlines() == [
            "loop discovery silent for 720s (limit 600s)",
            "loop dispatcher silent for 600s (limit 60s)",
        ]
        beats.unregister("discovery")
        beats.unregister("dispatcher")
        assert get(server, "/healthz")[:2] == (200, "ok\n")


def test_beat_registers_an_unknown_loop() -> None:
    clock = FakeClock()
    beats = Heartbeats(10, clock=clock)
    beats.beat("worker-slack-0")
    clock.advance(11)
    assert beats() == (False, ["loop worker-slack-0 silent for 11s (limit 10s)"])


def test_a_check_that_raises_is_a_503(caplog: pytest.LogCaptureFixture) -> None:
    def broken() -> tuple[bool, list[str]]:
        raise RuntimeError("boom")

    with caplog.at_level(logging.ERROR), serve(readiness=broken) as server:
        assert get(server, "/readyz")[:2] == (503, "readiness check failed: RuntimeError\n")
    assert "readiness check failed" in caplog.text


def test_unknown_paths_are_404_and_requests_are_not_logged_at_info(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.DEBUG, "kubewatch.observability"), serve() as server:
        assert get(server, "/nope")[0] == 404
        assert get(server, "/healthz?verbose=1")[:2] == (200, "ok\n")
    requests = [r for r in caplog.records if "GET /" in r.getMessage()]
    assert requests
    assert all(r.levelno == logging.DEBUG for r in requests)


def test_server_lifecycle() -> None:
    server = HealthServer(
        "127.0.0.1", 0, metrics=Metrics(), readiness=ok, liveness=ok, poll_interval=0.01
    )
    with pytest.raises(RuntimeError):
        _ = server.port
    server.start()
    assert server.port > 0
    with pytest.raises(RuntimeError):
        server.start()
    server.stop()
    server.stop()  # idempotent
    with pytest.raises(RuntimeError):
        server.start()


# -- logging --------------------------------------------------------------------------------


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    libraries = {name: logging.getLogger(name).level for name in ("urllib3", "httpx", "httpcore")}
    yield
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)
    for name, lib_level in libraries.items():
        logging.getLogger(name).setLevel(lib_level)


def test_text_line_format_in_utc() -> None:
    created = datetime(2026, 11, 26, 22, 10, 51, 500000, tzinfo=timezone.utc).timestamp()
    record = logging.LogRecord(
        "kubewatch.app", logging.INFO, __file__, 1, "watching %s", ("x",), None
    )
    record.created = created
    assert (
        TextFormatter().format(record) == "2026-11-26T22:10:51Z INFO    kubewatch.app: watching x"
    )


@pytest.mark.usefixtures("restore_logging")
def test_json_lines_parse_and_carry_extras() -> None:
    stream = io.StringIO()
    setup_logging("debug", "json", stream=stream, redactor=SecretRedactor())
    log = logging.getLogger("kubewatch.delivery")
    log.info("sink %s: delivered %d", "slack", 3, extra={"sink": "slack", "attempt": 2})
    try:
        raise ValueError("bad payload")
    except ValueError:
        log.exception("sink failed", extra={"event": {"kind": "Pod"}})

    first, second = (orjson.loads(line) for line in stream.getvalue().splitlines())
    assert first.keys() == {"time", "level", "logger", "message", "thread", "sink", "attempt"}
    assert first["level"] == "INFO"
    assert first["logger"] == "kubewatch.delivery"
    assert first["message"] == "sink slack: delivered 3"
    assert first["thread"] == "MainThread"
    assert (first["sink"], first["attempt"]) == ("slack", 2)
    assert first["time"].endswith("Z")
    assert datetime.fromisoformat(first["time"].replace("Z", "+00:00")).tzinfo is not None
    assert second["event"] == {"kind": "Pod"}
    assert second["level"] == "ERROR"
    assert second["exception"].startswith("Traceback")
    assert "ValueError: bad payload" in second["exception"]


@pytest.mark.usefixtures("restore_logging")
def test_setup_logging_quiets_libraries_and_replaces_itself() -> None:
    first = setup_logging("warning", "text", stream=io.StringIO())
    second = setup_logging("info", "text", stream=io.StringIO())
    root = logging.getLogger()
    assert first not in root.handlers
    assert second in root.handlers
    assert root.level == logging.INFO
    assert logging.getLogger("urllib3").level == logging.ERROR
    assert logging.getLogger("httpx").level == logging.WARNING
    assert logging.getLogger("httpcore").level == logging.WARNING
    with pytest.raises(ValueError, match="unknown log level"):
        setup_logging("loud", "text")


@pytest.mark.parametrize("fmt", ["text", "json"])
@pytest.mark.usefixtures("restore_logging")
def test_redactor_removes_a_registered_token_everywhere(fmt: Any) -> None:
    token = "xoxb-" + uuid.uuid4().hex
    redactor = SecretRedactor()
    assert redactor.register(token)
    stream = io.StringIO()
    setup_logging("info", fmt, stream=stream, redactor=redactor)
    log = logging.getLogger("kubewatch.sinks.slack")
    url = f"https://hooks.example.com/services/{token}"
    try:
        raise ConnectionError(f"POST {url}: connection reset")
    except ConnectionError:
        log.exception(
            "sink slack: sending to %s failed",
            url,
            extra={"url": url, "headers": {"Authorization": f"Bearer {token}"}},
        )
    output = stream.getvalue()
    assert token not in output
    assert "ConnectionError" in output  # the exception text is kept, redacted
    assert f"https://hooks.example.com/services/{REDACTED}" in output
    if fmt == "json":
        entry = orjson.loads(output)
        assert entry["url"] == f"https://hooks.example.com/services/{REDACTED}"
        assert REDACTED in entry["headers"]
        assert REDACTED in entry["exception"]


def test_redactor_rules() -> None:
    redactor = SecretRedactor()
    assert not redactor.register("short")
    assert redactor.redact("a short line") == "a short line"
    assert redactor.register("  password-1  ")  # surrounding whitespace is not the secret
    assert redactor.register("password-12345")  # contains the other: redacted whole
    assert redactor.redact("x password-12345 y password-1") == f"x {REDACTED} y {REDACTED}"


def test_register_secret_feeds_the_default_redactor() -> None:
    secret = "s3cr3t-" + uuid.uuid4().hex
    assert register_secret(secret)
    assert default_redactor().redact(f"token={secret}") == f"token={REDACTED}"


class SteppedMonotonic:
    """``time.monotonic`` for kubewatch.observability.health: moves only when stepped."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


def test_slow_clients_hold_a_bounded_number_of_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    """40 clients (more than the bound) that send half a request and wait: at most
    MAX_CONNECTIONS are served (one thread each), the rest are closed at once; once the
    slow ones are cut at their deadline (CONNECTION_DEADLINE on the server's clock, stepped
    here; the per-read REQUEST_TIMEOUT, real seconds, has not passed), a probe is answered
    again."""
    clock = SteppedMonotonic()
    monkeypatch.setattr(health, "time", clock)
    with serve() as server:
        before = threading.active_count()
        clients = []
        give_up = time.monotonic() + 5
        for i in range(40):
            c = socket.create_connection(("127.0.0.1", server.port))
            c.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # never finished
            clients.append(c)
            # the next one once the server took this one (its thread, or closing it): the
            # listen backlog is small, and a SYN it drops costs a second of retransmission
            while time.monotonic() < give_up and (
                threading.active_count() - before <= i
                if i < MAX_CONNECTIONS
                else not select.select([c], [], [], 0.01)[0]
            ):
                time.sleep(0.001)
        try:
            # Every client is either being served or was closed (EOF): wait up to 5 s for
            # the server to accept them all and close those beyond its bound.
            closed: set[socket.socket] = set()
            give_up = time.monotonic() + 5
            while len(closed) < len(clients) - MAX_CONNECTIONS and time.monotonic() < give_up:
                readable, _, _ = select.select([c for c in clients if c not in closed], [], [], 0.2)
                for c in readable:
                    assert c.recv(1) == b""
                    closed.add(c)
            served = len(clients) - len(closed)
            assert served <= MAX_CONNECTIONS
            assert threading.active_count() - before <= MAX_CONNECTIONS
            clock.now += CONNECTION_DEADLINE
            for c in clients:  # the served ones are cut by the server (EOF), not by us,
                c.settimeout(REQUEST_TIMEOUT / 2)  # and not by its per-read timeout
                assert c.recv(1) == b""
            assert get(server, "/healthz")[0] == 200
        finally:
            for c in clients:
                c.close()


def test_server_header_names_no_python_version() -> None:
    with serve() as server:
        request = urllib.request.Request(f"http://127.0.0.1:{server.port}/healthz")
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.headers["Server"] == "kubewatch"
