"""The nats sink against a real ``nats-server -js`` (Debian's ``nats-server``).

- what a publish stores: subject from the template, the Event JSON, ``Nats-Msg-Id``;
- a retried copy (same event id) is dropped by JetStream's duplicate window;
- no stream for the subject, or no server: retryable; the server back: delivered;
- kubewatch with a state dir, killed with ``kill -9`` mid-stream and started again:
  a consumer in another process receives every change exactly once.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import nats
import pytest
from kubernetes import client as k8s

from kubewatch.config.incident_sinks import NatsSinkConfig
from kubewatch.errors import RetryableError
from kubewatch.sinks.nats import NatsSink
from tests.e2e.conftest import wait_for
from tests.e2e.servers import NatsServer
from tests.e2e.test_fault_suite import Changes, config_for, ident
from tests.e2e.test_operate import Daemon, daemon  # noqa: F401  (fixture)
from tests.unit.sinks.test_sinks import make_event


def add_stream(url: str, subjects: tuple[str, ...] = ("kubewatch.>",)) -> None:
    async def run() -> None:
        nc = await nats.connect(url)
        await nc.jetstream().add_stream(name="KUBEWATCH", subjects=list(subjects))
        await nc.close()

    asyncio.run(run())


def stored(url: str) -> list[Any]:
    """Every message of the stream, in order (an ephemeral consumer reads them all)."""

    async def run() -> list[Any]:
        nc = await nats.connect(url)
        js = nc.jetstream()
        count = (await js.stream_info("KUBEWATCH")).state.messages
        sub = await js.pull_subscribe("kubewatch.>", stream="KUBEWATCH")
        messages = await sub.fetch(count, timeout=5) if count else []
        await nc.close()
        return messages

    return asyncio.run(run())


def sink(url: str, **kw: Any) -> NatsSink:
    return NatsSink("bus", NatsSinkConfig(type="nats", url=url, **kw))


def test_publish_stores_the_event_once(nats_server: NatsServer) -> None:
    add_stream(nats_server.url)
    event = make_event("shop/web")
    with sink(nats_server.url) as bus:
        bus.send(event)
        bus.send(event)  # a retry after a lost PubAck: the same id
        bus.send(make_event("shop/web", rv="2"))
    first, second = stored(nats_server.url)
    assert first.subject == "kubewatch.test.ConfigMap.shop"
    assert first.headers["Nats-Msg-Id"] == event.id
    assert json.loads(first.data) == event.to_dict()
    assert json.loads(second.data)["resourceVersion"] == "2"


def test_no_stream_then_no_server_are_retryable(nats_server: NatsServer) -> None:
    with sink(nats_server.url, timeout=2) as bus:
        with pytest.raises(RetryableError, match="no JetStream stream"):
            bus.send(make_event())
        add_stream(nats_server.url)
        bus.send(make_event())
        nats_server.proc.terminate()
        nats_server.proc.wait(10)
        with pytest.raises(RetryableError):
            bus.send(make_event(rv="2"))
        restarted = subprocess.Popen(nats_server.proc.args)
        try:
            wait_for(lambda: _sends(bus, make_event(rv="3")), 30, "the reconnect")
            # The failed attempt may have been flushed on reconnect: its retry (the same
            # id) is then a duplicate. Either way the stream holds each event once.
            bus.send(make_event(rv="2"))
            versions = [json.loads(m.data)["resourceVersion"] for m in stored(nats_server.url)]
            assert sorted(versions) == ["1", "2", "3"]
        finally:
            restarted.terminate()
            restarted.wait(10)


def _sends(bus: NatsSink, event: Any) -> bool:
    try:
        bus.send(event)
    except RetryableError:
        return False
    return True


@pytest.fixture
def consumer(nats_server: NatsServer, tmp_path: Path) -> Iterator[Callable[[], list[Any]]]:
    """A consumer process appending what it receives to a file; returns a reader."""
    add_stream(nats_server.url)
    out = tmp_path / "received.jsonl"
    out.touch()
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.e2e.nats_consumer", nats_server.url, str(out)], cwd=root
    )

    def received() -> list[Any]:
        return [json.loads(line) for line in out.read_text().splitlines() if line.strip()]

    yield received
    proc.send_signal(signal.SIGTERM)
    proc.wait(10)


def test_every_change_exactly_once_across_a_kill(  # noqa: PLR0917  (fixtures)
    api: k8s.ApiClient,
    namespace: str,
    nats_server: NatsServer,
    consumer: Callable[[], list[Any]],
    daemon: Callable[..., Daemon],  # noqa: F811
    tmp_path: Path,
) -> None:
    changes = Changes(k8s.CoreV1Api(api), namespace)
    config = config_for(
        namespace,
        {"bus": {"type": "nats", "url": nats_server.url}},
        state={"path": str(tmp_path / "state")},
    )
    first = daemon(config, "first")
    first.wait_synced(1)
    for i in range(30):
        changes.create(f"cm-{i}")
        if i == 15:
            first.proc.send_signal(signal.SIGKILL)  # mid-stream, with a backlog maybe
    first.proc.wait(10)
    for i in range(10):
        changes.update(f"cm-{i}", "2")  # while down
    second = daemon(config, "second")
    second.wait_synced(1)
    for i in range(30, 40):
        changes.create(f"cm-{i}")
    wait_for(lambda: len(consumer()) >= len(changes.done), 60, "every change at the consumer")
    time.sleep(2)  # a duplicate following them would be there to see
    received = consumer()
    ids = Counter(line["msgId"] for line in received)
    assert [i for i, n in ids.items() if n > 1] == []
    assert Counter(ident(line["event"]) for line in received) == Counter(changes.done)
    assert all(line["msgId"] == line["event"]["id"] for line in received)
    assert {line["subject"] for line in received} == {f"kubewatch.e2e.ConfigMap.{namespace}"}


def test_many_threads_share_one_connection(nats_server: NatsServer) -> None:
    """Workers publish at once through the sink's one loop and connection."""
    add_stream(nats_server.url)
    errors: list[BaseException] = []
    with sink(nats_server.url) as bus:
        bus.send(make_event("ns/warm-up"))  # lazy imports done before the switching starts
        switch = sys.getswitchinterval()
        sys.setswitchinterval(1e-6)
        try:

            def work(t: int) -> None:
                try:
                    for i in range(20):
                        bus.send(make_event(f"ns/t{t}", rv=str(i)))
                except BaseException as exc:  # reported below
                    errors.append(exc)

            threads = [threading.Thread(target=work, args=(t,)) for t in range(16)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        finally:
            sys.setswitchinterval(switch)
    assert errors == []
    ids = [m.headers["Nats-Msg-Id"] for m in stored(nats_server.url)]
    assert len(ids) == len(set(ids)) == 1 + 16 * 20
