"""Slack threads on a real API server: one Deployment's life in one thread, across a restart.

kubewatch runs as users run it (``kubewatch run``, a state dir) with a Slack bot sink set to
``thread: object`` and ``updateRoot: true`` against the local Slack stand-in. A create,
two updates, a restart of kubewatch, a third update and the delete must give one root
message, every later event a reply with the root's ``thread_ts`` (the one after the
restart too), and a ``chat.update`` of the root for each of them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k8s

from tests.e2e.conftest import Kubewatch, wait_for
from tests.slack_standin import TOKEN, SlackStandIn

pytestmark = pytest.mark.e2e


@pytest.fixture
def slack() -> Iterator[SlackStandIn]:
    with SlackStandIn() as standin:
        yield standin


def deployment(name: str, image: str) -> dict[str, Any]:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "app", "image": image}]},
            },
        },
    }


def posted(slack: SlackStandIn, method: str) -> list[dict[str, Any]]:
    return [r.body for r in slack.requests if r.accepted and r.path == f"/api/chat.{method}"]


def test_one_thread_per_object_across_a_restart(
    api: k8s.ApiClient,
    namespace: str,
    slack: SlackStandIn,
    start_kubewatch: Callable[..., Kubewatch],
    tmp_path: Path,
) -> None:
    config = {
        "cluster": "e2e",
        "namespaces": {"include": [namespace]},
        "resources": [{"kind": "Deployment"}],
        "sinks": {
            "chat": {
                "type": "slack",
                "channel": "#ops",
                "token": TOKEN,
                "apiUrl": slack.api_url,
                "thread": "object",
                "updateRoot": True,
            }
        },
        "state": {"path": str(tmp_path / "state")},
    }
    apps = k8s.AppsV1Api(api)
    first = start_kubewatch(config)
    first.wait_synced(1)
    apps.create_namespaced_deployment(namespace, deployment("web", "nginx:1"))
    for image in ("nginx:2", "nginx:3"):
        wait_for(lambda: len(posted(slack, "postMessage")) >= 1, what="the root")
        patch = {"spec": {"template": {"spec": {"containers": [{"name": "app", "image": image}]}}}}
        apps.patch_namespaced_deployment("web", namespace, patch)
    wait_for(lambda: len(posted(slack, "postMessage")) == 3, what="the root and two replies")
    assert first.stop() == 0

    second = start_kubewatch(config)
    second.wait_synced(1)
    patch = {"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "nginx:4"}]}}}}
    apps.patch_namespaced_deployment("web", namespace, patch)
    wait_for(lambda: len(posted(slack, "postMessage")) == 4, what="the reply after the restart")
    apps.delete_namespaced_deployment("web", namespace)
    wait_for(lambda: len(posted(slack, "postMessage")) == 5, what="the delete's reply")

    root, *replies = posted(slack, "postMessage")
    assert "thread_ts" not in root
    assert [r["thread_ts"] for r in replies] == ["1700000000.000001"] * 4
    updates = posted(slack, "update")
    assert len(updates) == 4 and {u["ts"] for u in updates} == {"1700000000.000001"}
    history = slack.message("1700000000.000001")["blocks"][-1]["elements"][0]["text"]
    assert history.startswith("History: ") and history.endswith("deleted")
    assert history.count("updated") == 3
