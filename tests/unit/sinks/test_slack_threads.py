"""Slack threads (``thread: object``, ``updateRoot``) against the local Slack stand-in."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kubewatch.app.build import sink_services
from kubewatch.config import SlackSinkConfig, parse_config
from kubewatch.errors import ConfigErrors, RetryableError
from kubewatch.events import DigestInfo, Event, EventType, InvolvedObject, KubeEventInfo
from kubewatch.sinks import SinkServices
from kubewatch.sinks.slack import SlackSink
from kubewatch.sinks.threads import ThreadBook, ThreadBooks, ThreadRoot, thread_key
from kubewatch.state import open_state
from tests.slack_standin import API_OK, TOKEN, SlackStandIn, server_error
from tests.stress import hammer
from tests.unit.sinks.test_slack import make_event


@pytest.fixture
def slack() -> Iterator[SlackStandIn]:
    with SlackStandIn() as standin:
        yield standin


def threaded(slack: SlackStandIn, services: SinkServices | None = None, **kw: Any) -> SlackSink:
    config = SlackSinkConfig(
        type="slack", channel="#ops", api_url=slack.api_url, token=TOKEN, thread="object", **kw
    )
    return SlackSink("ops", config, (services or SinkServices()).books)


def life(name: str = "web") -> list[Event]:
    """Create, two updates and a delete of one Deployment."""
    kw: dict[str, Any] = {"kind": "Deployment", "resource": "deployments", "api_version": "apps/v1"}
    return [
        make_event(name, EventType.CREATE, resource_version="1", **kw),
        make_event(name, EventType.UPDATE, resource_version="2", **kw),
        make_event(name, EventType.UPDATE, resource_version="3", **kw),
        make_event(name, EventType.DELETE, resource_version="4", **kw),
    ]


def calls(slack: SlackStandIn, method: str) -> list[dict[str, Any]]:
    return [r.body for r in slack.requests if r.accepted and r.path == f"/api/chat.{method}"]


def test_one_root_and_its_replies(slack: SlackStandIn) -> None:
    sink = threaded(slack)
    for event in life():
        sink.send(event)
    root, *replies = calls(slack, "postMessage")
    assert "thread_ts" not in root
    assert len(replies) == 3
    # the stand-in numbers its messages from 000001: the root is the first
    assert {r["thread_ts"] for r in replies} == {"1700000000.000001"}
    assert {r["channel"] for r in replies} == {"C0STANDIN"}  # the ID Slack answered with
    assert calls(slack, "update") == []


def test_update_root_edits_the_root_with_the_latest_state_and_history(slack: SlackStandIn) -> None:
    sink = threaded(slack, update_root=True)
    events = life()
    for event in events:
        sink.send(event)
    updates = calls(slack, "update")
    assert len(updates) == 3
    assert {u["ts"] for u in updates} == {"1700000000.000001"}
    assert not any(k.startswith("unfurl_") for k in updates[0])
    shown = slack.message("1700000000.000001")
    assert shown["text"] == sink.payload(events[-1])["text"]  # the latest state: deleted
    history = shown["blocks"][-1]["elements"][0]["text"]
    assert history == "History: 22:10:51 created · 22:10:51 updated · 22:10:51 updated · " + (
        "22:10:51 deleted"
    )
    assert len(calls(slack, "postMessage")) == 4  # the root and three replies


def test_a_retried_event_is_replied_and_noted_once(slack: SlackStandIn) -> None:
    sink = threaded(slack, update_root=True)
    create, update, *_ = life()
    sink.send(create)
    slack.queue_api(API_OK)  # the update passes
    slack.queue_api(server_error())  # the reply fails
    with pytest.raises(RetryableError):
        sink.send(update)
    sink.send(update)  # the delivery layer's retry
    replies = [b for b in calls(slack, "postMessage") if "thread_ts" in b]
    assert len(replies) == 1
    history = slack.message("1700000000.000001")["blocks"][-1]["elements"][0]["text"]
    assert history.count("updated") == 1


@pytest.mark.parametrize("update_root", [False, True])
def test_a_deleted_root_starts_a_new_thread(slack: SlackStandIn, update_root: bool) -> None:
    sink = threaded(slack, update_root=update_root)
    create, update, again, _ = life()
    sink.send(create)
    slack.delete_message("1700000000.000001")  # someone deleted the root in the channel
    sink.send(update)  # thread_not_found / message_not_found: a new root, no error
    assert "thread_ts" not in calls(slack, "postMessage")[-1]
    sink.send(again)
    assert calls(slack, "postMessage")[-1]["thread_ts"] == "1700000000.000002"


def test_a_digest_is_one_message_outside_threads(slack: SlackStandIn) -> None:
    sink = threaded(slack)
    digest = make_event("", EventType.UPDATE, digest=DigestInfo(300, ("a", "b"), ("x", "y")))
    sink.send(digest)
    sink.send(digest)
    assert all("thread_ts" not in b for b in calls(slack, "postMessage"))
    assert thread_key(digest) is None


def test_an_event_alert_goes_into_its_objects_thread(slack: SlackStandIn) -> None:
    sink = threaded(slack)
    create = life()[0]
    involved = InvolvedObject("Deployment", "shop", "web", create.uid)
    alert = make_event(
        "web.1781",
        EventType.CREATE,
        kind="Event",
        resource="events",
        uid="event-uid",
        k8s_event=KubeEventInfo("Warning", "FailedCreate", "quota", 1, involved),
    )
    sink.send(create)
    sink.send(alert)
    assert calls(slack, "postMessage")[-1]["thread_ts"] == "1700000000.000001"


def test_a_thread_older_than_max_age_is_not_replied_to() -> None:
    now = [1000.0]
    book = ThreadBook(10, 60.0, clock=lambda: now[0])
    book.put("k", ThreadRoot("C1", "1.1", now[0]))
    now[0] += 59
    assert book.get("k") is not None
    now[0] += 1
    assert book.get("k") is None
    assert len(book) == 0


def test_the_book_is_an_lru_of_its_size() -> None:
    book = ThreadBook(2, 3600.0)
    for key in "abc":
        book.put(key, ThreadRoot("C", key, 1e12))
    assert book.get("a") is None and len(book) == 2
    book.get("b")  # b is now the most recently used
    book.put("d", ThreadRoot("C", "d", 1e12))
    assert book.get("b") is not None and book.get("c") is None


def test_a_restart_with_state_keeps_threading(slack: SlackStandIn, tmp_path: Path) -> None:
    create, update, again, _ = life()
    state = open_state(str(tmp_path))
    assert state is not None
    threaded(slack, sink_services(state)).send(create)
    state.close()

    state = open_state(str(tmp_path))  # the next process
    assert state is not None
    sink = threaded(slack, sink_services(state))
    sink.send(update)
    sink.send(again)
    state.close()
    replies = [b for b in calls(slack, "postMessage") if "thread_ts" in b]
    assert [r["thread_ts"] for r in replies] == ["1700000000.000001"] * 2


def test_a_reload_keeps_threading(slack: SlackStandIn) -> None:
    services = SinkServices()
    create, update, *_ = life()
    threaded(slack, services).send(create)
    threaded(slack, services).send(update)  # the sink a reload built
    assert calls(slack, "postMessage")[-1]["thread_ts"] == "1700000000.000001"


def test_the_state_forgets_what_the_book_evicted(tmp_path: Path) -> None:
    state = open_state(str(tmp_path))
    assert state is not None
    book = ThreadBooks(lambda sink: state.memo(f"threads/{sink}")).book("ops", 2, 3600.0)
    for key in "abcd":
        book.put(key, ThreadRoot("C", key, 1e12))
    state.db.flush()
    assert sorted(state.memo("threads/ops").load()) == ["c", "d"]
    state.close()


def test_config_defaults_and_update_root_needs_a_thread() -> None:
    config = SlackSinkConfig(type="slack", channel="#ops", token=TOKEN)
    assert (config.thread, config.update_root) == ("none", False)
    assert (config.thread_cache_size, config.thread_max_age) == (10_000, 86_400.0)
    with pytest.raises(ConfigErrors) as info:
        parse_config(
            "sinks:\n  chat: {type: slack, channel: '#ops', token: x, updateRoot: true}\n"
            "resources: [{kind: ConfigMap}]\n"
        )
    assert "sinks.chat.updateRoot" in str(info.value)
    assert "thread: object" in str(info.value)


def test_book_shared_by_many_threads_stays_within_its_size() -> None:
    book = ThreadBook(50, 3600.0)

    def work(n: int) -> None:
        for i in range(400):
            key = f"{n}-{i % 80}"
            if book.get(key) is None:
                book.put(key, ThreadRoot("C", key, 1e12))
            book.note(key, "line", f"id-{i}")
            if i % 17 == 0:
                book.forget(key)

    hammer(work)
    assert len(book) <= 50
