"""``kubewatch replay`` to real sinks: backpressure instead of drops, and an honest summary.

A replay reads a capture far faster than most sinks take events. It must wait for them
(``Dispatcher.submit(block=True)``), never drop, and say per sink what became of the
events, with exit code 1 when any was not delivered. The capture here is generated:
20,000 Pod creates, the shape ``kubectl get pods -A -w --output-watch-events -o json``
prints.
"""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from kubewatch.cli import EXIT_FAILURE, main
from kubewatch.cli import replay as replay_cli
from kubewatch.config import DigestConfig, parse_config
from kubewatch.delivery import Dispatcher, SinkStats, sink_policies
from tests.unit.cli.test_cli_test_sink import Receiver
from tests.unit.delivery.test_delivery import WAIT, FakeSink, Gate, delivery, make_event

ROOT = Path(__file__).resolve().parents[3]


def pod_capture(path: Path, count: int) -> Path:
    """``count`` watch events, each the ADDED of a distinct Pod."""
    with path.open("wb") as f:
        for i in range(count):
            pod = {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "name": f"web-{i:05d}",
                    "namespace": f"team-{i % 20}",
                    "uid": f"6f1c2b8e-0000-4000-8000-{i:012d}",
                    "resourceVersion": str(100000 + i),
                    "creationTimestamp": "2026-11-26T10:00:00Z",
                    "labels": {"app": "web"},
                },
                "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]},
            }
            f.write(orjson.dumps({"type": "ADDED", "object": pod}) + b"\n")
    return path


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def test_a_replay_of_20000_pod_events_delivers_every_one(tmp_path: Path) -> None:
    """As a user runs it, with the default delivery settings: one process, the stdout
    sink's output in a file. Before, the stdout queue overflowed and dropped the oldest
    events (19,656 or 12,332 lines of 20,000) while the exit code was 0."""
    capture = pod_capture(tmp_path / "pods.json", 20_000)
    config = tmp_path / "config.yaml"
    config.write_text("resources: [{kind: Pod}]\nsinks:\n  out: {type: stdout, format: json}\n")
    out = tmp_path / "out.jsonl"
    with out.open("wb") as stdout:
        done = subprocess.run(
            [sys.executable, "-m", "kubewatch", "replay", str(capture), "--config", str(config)],
            cwd=ROOT,
            stdout=stdout,
            stderr=subprocess.PIPE,
            text=True,
            timeout=600,  # a hang guard only
            check=False,
        )
    assert done.returncode == 0, done.stderr[-2000:]
    lines = out.read_bytes().splitlines()
    assert len(lines) == 20_000
    names = [orjson.loads(line)["name"] for line in lines]
    # Delivered on the reading thread (stdout only): in capture order, across objects too.
    assert names == [f"web-{i:05d}" for i in range(20_000)]
    assert "replay delivered: out: 20000 delivered, 0 failed, 0 dropped" in done.stderr


@pytest.mark.parametrize(
    ("sinks", "inline"),
    [
        ("{out: {type: stdout}, err: {type: stdout, format: json}}", True),
        ("{out: {type: stdout, digest: {threshold: 5}}}", False),
        ("{out: {type: stdout}, hook: {type: webhook, url: 'http://127.0.0.1:9/'}}", False),
    ],
)
def test_replay_delivers_inline_only_to_plain_stdout_sinks(sinks: str, inline: bool) -> None:
    config = parse_config(f"resources: [{{kind: Pod}}]\nsinks: {sinks}\n")
    assert replay_cli._inline(config, sink_policies(config)) is inline


def test_a_sink_that_fails_permanently_makes_the_replay_fail(
    tmp_path: Path, receiver: Receiver, capsys: pytest.CaptureFixture[str]
) -> None:
    """The webhook answers 400 (permanent): every event fails there, the stdout sink
    still gets every one, the summary says so per sink, and the exit code is 1."""
    receiver.status = 400
    capture = pod_capture(tmp_path / "pods.json", 30)
    config = tmp_path / "config.yaml"
    config.write_text(
        "resources: [{kind: Pod}]\n"
        "sinks:\n"
        "  out: {type: stdout, format: json}\n"
        f"  hook: {{type: webhook, url: '{receiver.url}'}}\n"
    )
    code = main(["replay", str(capture), "--config", str(config)])
    captured = capsys.readouterr()
    assert code == EXIT_FAILURE
    assert len(captured.out.splitlines()) == 30
    assert len(receiver.requests) == 30  # one attempt each: a 400 is not retried
    assert (
        "replay incomplete, not every event was delivered: "
        "out: 30 delivered, 0 failed, 0 dropped; hook: 0 delivered, 30 failed, 0 dropped"
    ) in captured.err


# -- Dispatcher.submit(block=True) -----------------------------------------------------


def test_a_blocking_submit_waits_for_room_and_drops_nothing() -> None:
    """Queue of 2, the sink stuck in its first send: a blocking producer waits (a plain
    submit would drop the oldest), then every event is delivered once, in order."""
    gate = Gate({"ns/a"})
    sink = FakeSink("s", gate)
    d = Dispatcher({"s": sink}, delivery(queue_size=2, workers=1))
    d.start()
    events = [make_event("ns/a", rv) for rv in range(10)]
    producer = threading.Thread(target=lambda: [d.submit(e, block=True) for e in events])
    producer.start()
    assert gate.entered.wait(WAIT)
    producer.join(0.2)
    assert producer.is_alive()  # waiting for room, not dropping
    assert d.stats()["s"].dropped == 0
    gate.opened.set()
    producer.join(WAIT)
    assert not producer.is_alive()
    assert d.close()
    assert [e.resource_version for e in sink.sent] == [str(rv) for rv in range(10)]
    assert d.stats()["s"] == SinkStats(delivered=10)


def test_a_blocking_submit_wakes_on_close() -> None:
    """Never started: the queue stays full; close() wakes the waiting producer, whose
    submit then raises as any submit after close does."""
    d = Dispatcher({"s": FakeSink("s")}, delivery(queue_size=1, workers=1))
    d.submit(make_event("ns/a", 1))
    raised: list[BaseException] = []

    def produce() -> None:
        try:
            d.submit(make_event("ns/a", 2), block=True)
        except RuntimeError as error:
            raised.append(error)

    producer = threading.Thread(target=produce)
    producer.start()
    producer.join(0.2)
    assert producer.is_alive()
    d.close(timeout=0)
    producer.join(WAIT)
    assert not producer.is_alive()
    assert [str(e) for e in raised] == ["dispatcher is closed"]
    assert d.stats()["s"] == SinkStats(failed=1)  # the queued one, abandoned; none dropped


def test_blocking_producers_never_drop_under_thread_stress() -> None:
    """Eight producers, small shards, four workers, a digesting sink beside a plain one,
    the interpreter switching threads as often as it can: nothing is dropped, and every
    event ends delivered (alone or in a digest)."""
    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        plain, digesting = FakeSink("plain"), FakeSink("digesting")
        d = Dispatcher(
            {"plain": plain, "digesting": digesting},
            delivery(queue_size=8, workers=4),
            digests={"digesting": DigestConfig(threshold=5, window=0.01)},
        )
        d.start()

        def produce(n: int) -> None:
            for rv in range(150):
                d.submit(make_event(f"ns{n % 3}/p{n}-{rv % 7}", rv), block=True)

        threads = [threading.Thread(target=produce, args=(n,)) for n in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert d.close()
    finally:
        sys.setswitchinterval(previous)
    stats = d.stats()
    assert stats["plain"] == SinkStats(delivered=1200)
    s = stats["digesting"]
    assert (s.dropped, s.failed) == (0, 0)
    digests = sum(1 for e in digesting.sent if e.digest is not None)
    assert s.delivered - digests + s.digested == 1200
