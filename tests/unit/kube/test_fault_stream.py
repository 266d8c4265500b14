"""Faults in the two streams kubewatch sits between, where exact control is needed.

- The watch stream in: a fake API server (``FakeApiServer`` of ``test_fake_apiserver``)
  sends one long scripted stream mixing lines cut into 1-byte and random-sized chunks,
  garbage, invalid UTF-8, JSON that is not an object, events without an object, unknown
  event types, a huge valid event and a huge garbage line, a connection cut in the middle
  of a line, a replayed event and an in-stream ERROR. Every valid event must reach the
  handlers exactly once, in order, and each re-watch must resume from the last applied
  resourceVersion (no relist, nothing repeated, nothing skipped). And a server that
  takes the connection and never answers costs one read timeout, not four.
- The event stream out: 100,000 events submitted to a sink that is blocked. The queue
  stays within its bound, every event is accounted for (delivered or dropped, the newest
  kept), memory stays bounded, and the overflow WARNINGs are rate limited yet add up.
  At shutdown, an event stuck in ``send`` is counted once, whatever happens to it later.
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
import re
import socket
import threading
import tracemalloc
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest

from kubewatch.config import DeliveryConfig
from kubewatch.delivery import Dispatcher, SinkStats
from kubewatch.delivery.dispatcher import DROP_LOG_INTERVAL
from kubewatch.delivery.queue import shard_capacities, shard_of
from kubewatch.events import Event
from kubewatch.kube import DeletedFinalStateUnknown, ReflectorSettings, SharedInformer
from kubewatch.kube.client import ListWatch, Query
from kubewatch.kube.failures import ApiUnreachable
from kubewatch.sinks.base import SinkBase
from tests.unit.delivery.test_delivery import make_event
from tests.unit.kube.test_fake_apiserver import FakeApiServer, Recorder, cm, connect, line

HANG_GUARD = 60.0
"""Seconds a test waits for something that should happen at once (a hang guard only)."""


# -- the watch stream ---------------------------------------------------------------------


class CutConnection:
    """Put in a watch script, it closes the connection where it stands: no terminating
    chunk, maybe half a line sent. (``FakeApiServer`` takes ``len()`` of each chunk; the
    TimeoutError raised here is what ``BaseHTTPRequestHandler`` answers by closing the
    connection, quietly.)"""

    def __len__(self) -> int:
        raise TimeoutError("cut the connection here")


class NamedRecorder(Recorder):
    """``Recorder`` that also names the object of a delete (and marks tombstones)."""

    def on_delete(self, obj: Any) -> None:
        tombstone = isinstance(obj, DeletedFinalStateUnknown)
        state = obj.obj if tombstone else obj
        meta = state["metadata"]
        kind = "delete-tombstone" if tombstone else "delete"
        self._record((kind, meta["name"], meta["resourceVersion"]))


@pytest.fixture
def fake() -> Iterator[FakeApiServer]:
    server = FakeApiServer()
    yield server
    server.close()


def cut(data: bytes, rng: random.Random, largest: int) -> list[bytes]:
    """``data`` in chunks of 1 to ``largest`` bytes: lines cut anywhere."""
    chunks = []
    pos = 0
    while pos < len(data):
        size = rng.randint(1, largest)
        chunks.append(data[pos : pos + size])
        pos += size
    return chunks


def raw(event_type: Any, obj: Any) -> bytes:
    return json.dumps({"type": event_type, "object": obj}).encode() + b"\n"


def bookmark(rv: int) -> bytes:
    return line("BOOKMARK", {"kind": "ConfigMap", "metadata": {"resourceVersion": str(rv)}})


def big(name: str, rv: int, size: int) -> dict[str, Any]:
    obj = cm(name, rv)
    obj["data"] = {"blob": "x" * size}
    return obj


def test_a_long_stream_of_garbage_and_cut_lines_applies_every_valid_event_once_in_order(
    fake: FakeApiServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    rng = random.Random(20261126)
    garbage = [
        b"not json at all\n",
        b"\xff\xfe\x00 invalid utf-8 \xc3\x28\n",
        b'{"type": "MODIFIED", "object": {"metadata": \n',  # a line cut short by a newline
        b"[1, 2]\n",
        b'"a string"\n',
        b"42\n",
        b"null\n",
        b"true\n",
        b"\n",
        b"   \t \n",
    ]
    malformed_events = [
        b'{"type": "ADDED"}\n',  # no object
        raw("ADDED", [1, 2]),  # an object that is not a mapping
        raw("ADDED", "cm"),
        raw("WEIRD", cm("ghost", 99)),  # unknown type: skipped, does not move the RV
        json.dumps({"object": cm("ghost", 98)}).encode() + b"\n",  # no type at all
    ]
    huge_garbage = b"x" * (1 << 20) + b"\n"
    first = line("MODIFIED", cm("a", 11))
    body = (
        b"".join(garbage[:3])
        + line("ADDED", big("big", 12, 1 << 20))  # ~1 MiB on one line
        + b"".join(malformed_events)
        + huge_garbage
        + b"".join(garbage[3:])
        + bookmark(13)
        + line("ADDED", cm("b", 14))
    )
    half = line("MODIFIED", cm("a", 15))
    fake.lists = [
        {"kind": "ConfigMapList", "metadata": {"resourceVersion": "10"}, "items": [cm("a", 1)]}
    ]
    fake.watches = [
        # 1: one event in 1-byte chunks, then everything else cut at random (1..512 bytes),
        #    then half of the next event and the connection drops: no terminating chunk.
        [
            *(first[i : i + 1] for i in range(len(first))),
            *cut(body, rng, 512),
            half[:25],
            CutConnection(),
        ],
        # 2: resumes from b@14. The server replays the last event it sent (a proxy may):
        #    same object, same RV, not an update. Then an in-stream error that is not 410.
        [
            line("ADDED", cm("b", 14)),
            *cut(half + line("DELETED", cm("b", 16)), rng, 7),
            b'{"type":"ERROR","object":{"kind":"Status","code":500,"reason":"InternalError",'
            b'"message":"etcdserver: leader changed"}}\n',
            line("ADDED", cm("never", 999)),  # after the ERROR: the stream is over for us
        ],
        # 3: resumes from 16 (not relisted). Ends cleanly, its last line without a newline.
        [line("ADDED", cm("c", 17)) + bookmark(18), line("MODIFIED", cm("c", 19)).rstrip()],
        # 4 and later: silent (the test stops before the read timeout matters)
    ]
    client = connect(fake, tmp_path)
    settings = ReflectorSettings(
        read_timeout=30.0,
        server_timeout=10,
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
    rec = NamedRecorder()
    informer.add_handler(rec)
    caplog.set_level(logging.WARNING)
    informer.start()
    try:
        rec.wait(8, timeout=HANG_GUARD)
        for _ in range(int(HANG_GUARD * 10)):  # the 4th watch opens once the 3rd is consumed
            if sum("watch" in q for q in fake.requests) >= 4:
                break
            threading.Event().wait(0.1)
        watches = [q["resourceVersion"] for q in fake.requests if "watch" in q]
        calls = list(rec.calls)
    finally:
        informer.stop()
        client.close()

    assert calls == [
        ("add", "a", "1"),
        ("update", "a", "11"),
        ("add", "big", "12"),
        ("add", "b", "14"),
        ("update", "a", "15"),
        ("delete", "b", "16"),
        ("add", "c", "17"),
        ("update", "c", "19"),
    ]
    assert watches[:4] == [["10"], ["14"], ["16"], ["19"]]
    assert sum("watch" not in q for q in fake.requests) == 1  # never relisted
    assert informer.reflector.relists == 0
    assert len(informer.store) == 3
    stored = informer.store.get("ns/big")
    assert stored is not None and len(stored.data) > 1 << 20

    messages = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    skipped_lines = [m for m in messages if "skipping a line" in m]
    # not JSON: garbage[0..2] and the huge garbage line; JSON but not an object: garbage[3..7]
    assert len(skipped_lines) == 3 + 1 + 5, skipped_lines
    skipped_events = [m for m in messages if "skipping a watch event" in m]
    assert len(skipped_events) == len(malformed_events), skipped_events
    assert all(len(m) < 1000 for m in messages)  # a huge line is not copied into the log
    # the cut connection and the in-stream error were each retried once, after a backoff
    retries = [m for m in messages if "retrying in" in m]
    assert len(retries) == 2, retries
    assert "watch /api/v1/namespaces/ns/configmaps: ProtocolError" in retries[0]
    assert "etcdserver: leader changed" in retries[1]
    # ... as what they are: no "unexpected error" with a traceback
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


def test_a_silent_server_costs_one_read_timeout_not_four(tmp_path: Path) -> None:
    """A server that takes the connection and never answers (a frozen API server): the
    request fails after ONE read timeout, over one connection. urllib3's default would
    silently try four times, hiding a dead server for four timeouts."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)  # never accepted: the kernel completes connections, nobody reads
    server = SimpleNamespace(url=f"http://127.0.0.1:{listener.getsockname()[1]}")
    client = connect(cast(FakeApiServer, server), tmp_path)
    try:
        with pytest.raises(ApiUnreachable, match="timed out"):
            client.watch(
                "/api/v1/configmaps",
                Query(),
                resource_version="1",
                timeout_seconds=1,
                read_timeout=0.5,
            )
    finally:
        client.close()
        listener.setblocking(False)
        connections = []
        with contextlib.suppress(BlockingIOError):
            while True:
                connections.append(listener.accept()[0])
        for conn in connections:
            conn.close()
        listener.close()
    assert len(connections) == 1


# -- the event stream: overflow and shutdown ---------------------------------------------


class BlockedSink(SinkBase):
    """Every send waits until ``release`` is set (a hang guard ends it otherwise)."""

    def __init__(self) -> None:
        self.name = "s"
        self.release = threading.Event()
        self.lock = threading.Lock()
        self.attempted: list[Event] = []
        self.sent: list[Event] = []

    def send(self, event: Event) -> None:
        with self.lock:
            self.attempted.append(event)
        assert self.release.wait(HANG_GUARD), "the test never released the sink"
        with self.lock:
            self.sent.append(event)

    def close(self) -> None:
        pass


class FakeClock:
    """Monotonic seconds that move only when told (thread-safe enough: one writer)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


SUBMITTED = 100_000
QUEUE_SIZE = 100
WORKERS = 4
TICK = 0.0001
"""Fake seconds per submitted event: 100,000 events span 10 fake seconds of drops."""
MEMORY_BOUND_EVENTS = 5_000
"""The peak traced memory while 100,000 events go through must stay below what 5,000
events take (5 % of holding them all; 50 times the queue bound). What is really held
is the queue (100), the in-flight events (4) and the dispatcher itself."""

_NAMED = re.compile(r"queue full, dropped oldest event id=\w+ .*?(?:; dropped (\d+) more|$)")
_COUNTED = re.compile(r"queue full, dropped (\d+) event\(s\) since")


def per_event_bytes(n: int = 2_000) -> float:
    """Traced bytes one event of this test takes (it and its strings), measured."""
    before = tracemalloc.get_traced_memory()[0]
    held = [make_event(f"ns/cm-{i % 1000}", rv=i) for i in range(n)]
    size = (tracemalloc.get_traced_memory()[0] - before) / n
    del held
    return size


def test_overflow_keeps_the_bound_counts_every_drop_and_rate_limits_the_warnings(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """100,000 events into a queue of 100 whose sink is blocked (each of its 4 workers
    holds one event in send)."""
    caplog.set_level(logging.WARNING, logger="kubewatch.delivery")
    sink = BlockedSink()
    clock = FakeClock()
    dispatcher = Dispatcher(
        {"s": sink}, DeliveryConfig(queue_size=QUEUE_SIZE, workers=WORKERS), clock=clock
    )
    dispatcher.start()
    deepest, samples = 0, 0  # of the queue depth, sampled
    sampling = threading.Event()

    def sample() -> None:
        nonlocal deepest, samples
        while not sampling.is_set():
            deepest = max(deepest, dispatcher.depth("s"))
            samples += 1
            sampling.wait(0.001)

    sampler = threading.Thread(target=sample, daemon=True)
    keys = [shard_of(f"ns/cm-{i % 1000}", WORKERS) for i in range(1000)]
    # the newest ids submitted to each shard, as many as it holds (kept small on purpose:
    # the test must not hold what it measures)
    per_shard = [deque[str](maxlen=cap) for cap in shard_capacities(QUEUE_SIZE, WORKERS)]

    tracemalloc.start()
    try:
        per_event = per_event_bytes()
        baseline = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        sampler.start()
        for i in range(SUBMITTED):
            event = make_event(f"ns/cm-{i % 1000}", rv=i)
            dispatcher.submit(event)
            per_shard[keys[i % 1000]].append(event.id)
            clock.now += TICK
            if i % 1000 == 0:
                deepest = max(deepest, dispatcher.depth("s"))
                samples += 1
        peak = tracemalloc.get_traced_memory()[1] - baseline
    finally:
        tracemalloc.stop()
        sampling.set()
        sampler.join(HANG_GUARD)

    # every worker holds one event in send; the queue holds the newest of each shard
    for _ in range(int(HANG_GUARD * 100)):
        if len(sink.attempted) == WORKERS:
            break
        threading.Event().wait(0.01)
    in_flight = {e.id for e in sink.attempted}
    assert len(in_flight) == WORKERS
    stats = dispatcher.stats()["s"]
    assert stats == SinkStats(queued=QUEUE_SIZE, dropped=SUBMITTED - QUEUE_SIZE - WORKERS)
    assert deepest <= QUEUE_SIZE
    assert samples >= SUBMITTED // 1000

    # memory: bounded by the queue, not by what went through it
    detail = f"{peak} B peak; one event is {per_event:.0f} B"
    assert per_event > 0
    assert peak < MEMORY_BOUND_EVENTS * per_event, detail

    sink.release.set()
    assert dispatcher.close(timeout=HANG_GUARD)
    stats = dispatcher.stats()["s"]
    assert stats.delivered + stats.dropped == SUBMITTED
    assert stats.delivered == QUEUE_SIZE + WORKERS
    assert stats.queued == stats.failed == 0
    newest = {i for shard in per_shard for i in shard}
    delivered = [e.id for e in sink.sent]
    assert len(delivered) == len(set(delivered)) == stats.delivered  # none twice
    assert set(delivered) == in_flight | newest

    # the overflow WARNINGs: at most one per DROP_LOG_INTERVAL, and together they count
    # every drop (each names one event and the number dropped since without a line)
    lines = [
        r.getMessage()
        for r in caplog.records
        if r.levelno == logging.WARNING and "queue full" in r.getMessage()
    ]
    fake_seconds = SUBMITTED * TICK
    assert len(lines) <= fake_seconds / DROP_LOG_INTERVAL + 2, len(lines)
    accounted = 0
    for message in lines:
        if named := _NAMED.search(message):
            accounted += 1 + int(named.group(1) or 0)
        elif counted := _COUNTED.search(message):
            accounted += int(counted.group(1))
        else:
            raise AssertionError(f"unexpected line: {message}")
    assert accounted == stats.dropped


def test_close_counts_an_event_stuck_in_send_once_whatever_its_late_outcome(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """close() gives up on a worker still in ``send`` after the drain timeout and grace:
    its event is counted as failed then (outcome unknown), so the counters logged at
    shutdown add up to what was submitted; when the send returns later, it is not
    counted a second time."""
    sink = BlockedSink()
    dispatcher = Dispatcher({"s": sink}, DeliveryConfig(queue_size=10, workers=1))
    dispatcher.start()
    for i in range(3):
        dispatcher.submit(make_event("ns/cm", rv=i))
    for _ in range(int(HANG_GUARD * 100)):
        if sink.attempted:
            break
        threading.Event().wait(0.01)
    assert dispatcher.close(timeout=0) is False
    at_close = dispatcher.stats()["s"]
    assert at_close == SinkStats(failed=3)  # 2 never attempted + 1 stuck in send
    assert any("outcome unknown" in r.getMessage() for r in caplog.records)

    (worker,) = [t for t in threading.enumerate() if t.name == "kubewatch-sink-s-0"]
    sink.release.set()  # the stuck send returns: accepted, but already counted
    worker.join(HANG_GUARD)
    assert len(sink.sent) == 1
    assert dispatcher.stats()["s"] == at_close
    assert any("after shutdown gave up" in r.getMessage() for r in caplog.records)
