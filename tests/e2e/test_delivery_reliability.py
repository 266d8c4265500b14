"""Delivery against a real API server and real receivers: outages, failing neighbours.

Per-sink delivery policies (``retry``, ``concurrency``) are set in the configuration
here, so these tests also prove they reach the dispatcher. Assertions are about what
was received and in which order things happened, never about durations; real waits
are the scenario (a receiver down for 30 s) or hang guards.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from kubernetes import client as k8s

from tests.e2e.conftest import Kubewatch, Receiver, wait_for

pytestmark = pytest.mark.e2e

OUTAGE = 30.0
"""Seconds the receiver stays down in the outage test."""

_ATTEMPT = re.compile(r"sink '(?P<sink>[^']+)': attempt \d+ for event id=(?P<id>[0-9a-f]+) ")
_GAVE_UP = re.compile(r"sink '(?P<sink>[^']+)': event id=[0-9a-f]+ .* not delivered after")


def retried_ids(stderr: str, sink: str) -> set[str]:
    """Ids of the events whose attempts to ``sink`` failed and were retried."""
    return {m["id"] for m in _ATTEMPT.finditer(stderr) if m["sink"] == sink}


def gave_up(stderr: str, sink: str) -> int:
    """Events ``sink`` gave up on (attempts exhausted, permanent error or shutdown)."""
    return sum(1 for m in _GAVE_UP.finditer(stderr) if m["sink"] == sink)


def configmaps(core: k8s.CoreV1Api, namespace: str, n: int, prefix: str = "cm") -> list[str]:
    names = [f"{prefix}-{i:02d}" for i in range(n)]
    for name in names:
        core.create_namespaced_config_map(
            namespace, {"metadata": {"name": name}, "data": {"n": name}}
        )
    return names


def only_configmap_creates(namespace: str, sinks: dict[str, Any]) -> dict[str, Any]:
    return {
        "cluster": "e2e",
        "namespaces": {"include": [namespace]},
        "resources": [{"kind": "ConfigMap", "events": ["create"]}],
        "sinks": {"console": {"type": "stdout", "format": "json"}, **sinks},
        # The global retry gives up after 2 attempts: only the per-sink policies below
        # can carry a sink through an outage.
        "delivery": {"retry": {"attempts": 2, "maxBackoff": 1}, "drainTimeout": 2},
    }


@pytest.fixture
def failing_receiver() -> Iterator[Receiver]:
    r = Receiver()
    r.status = 500
    yield r
    r.close()


def test_a_receiver_down_for_30s_gets_every_event_exactly_once_after_it_recovers(
    api: k8s.ApiClient,
    namespace: str,
    receiver: Receiver,
    start_kubewatch: Callable[..., Kubewatch],
) -> None:
    """The receiver answers 503 for 30 s while 20 ConfigMaps are created. The sink's own
    retry policy (60 attempts, backoff at most 2 s: about a minute of retrying with full
    jitter) outlasts the outage, so once the receiver is back it has all 20, once each."""
    core = k8s.CoreV1Api(api)
    receiver.status = 503
    down_since = time.monotonic()
    config = only_configmap_creates(
        namespace,
        {
            "audit": {
                "type": "webhook",
                "url": receiver.url,
                "retry": {"attempts": 60, "maxBackoff": 2},
                "concurrency": 4,
                "queueSize": 100,
            }
        },
    )
    kw = start_kubewatch(config)
    kw.wait_synced(1)
    names = configmaps(core, namespace, 20)
    wait_for(lambda: len(kw.events) >= 20, what="kubewatch to see the 20 creates")
    wait_for(lambda: retried_ids(kw.stderr, "audit"), what="the audit sink to retry")
    time.sleep(max(0.0, OUTAGE - (time.monotonic() - down_since)))  # the outage itself

    assert receiver.events == []
    assert gave_up(kw.stderr, "audit") == 0  # nothing given up during the outage
    receiver.status = 200
    wait_for(lambda: len(receiver.events) >= 20, timeout=60, what="all 20 after recovery")
    time.sleep(2)  # a duplicate would have arrived by now
    assert kw.stop() == 0

    events = receiver.events
    assert len(events) == 20
    assert len({e["id"] for e in events}) == 20
    assert sorted(e["name"] for e in events) == names
    assert {e["type"] for e in events} == {"create"}
    assert {e["id"] for e in events} == {e["id"] for e in kw.events}
    assert gave_up(kw.stderr, "audit") == 0


def test_a_failing_receiver_never_delays_a_healthy_one(
    api: k8s.ApiClient,
    namespace: str,
    receiver: Receiver,
    failing_receiver: Receiver,
    start_kubewatch: Callable[..., Kubewatch],
) -> None:
    """One receiver always answers 500 (its sink retries for minutes, one event at a
    time), the other is healthy. Order, not time: when the healthy receiver has all 12
    events, the failing sink has given up on none and is still retrying its first event,
    i.e. the healthy sink did not wait for any of the failing sink's work."""
    core = k8s.CoreV1Api(api)
    config = only_configmap_creates(
        namespace,
        {
            "healthy": {"type": "webhook", "url": receiver.url},
            "failing": {
                "type": "webhook",
                "url": failing_receiver.url,
                "retry": {"attempts": 100, "maxBackoff": 5},
                "concurrency": 1,
            },
        },
    )
    kw = start_kubewatch(config)
    kw.wait_synced(1)
    names = configmaps(core, namespace, 12, prefix="pair")
    wait_for(lambda: len(receiver.events) >= 12, what="every event at the healthy receiver")
    stderr = kw.stderr  # one snapshot: everything below is as of this moment
    assert gave_up(stderr, "failing") == 0
    assert len(retried_ids(stderr, "failing")) <= 1  # still on its first event, if any
    assert retried_ids(stderr, "healthy") == set()

    # and the failing sink is indeed still at it, on that same first event
    wait_for(lambda: retried_ids(kw.stderr, "failing"), what="the failing sink's retries")
    later = kw.stderr
    assert len(retried_ids(later, "failing")) == 1
    assert gave_up(later, "failing") == 0
    assert failing_receiver.events == []

    assert sorted(e["name"] for e in receiver.events) == names
    assert len({e["id"] for e in receiver.events}) == 12
    # no state dir: the stop's drain timeout abandons the failing sink's queue, which is
    # lost — reported in the log and by the exit code, not hidden
    assert kw.stop() == 3
    assert "abandoned undelivered" in kw.stderr
    assert "were not delivered and are lost" in kw.stderr
