"""Faults on a real API server: a restart mid-stream, and a 410 gap. Nothing lost or doubled."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from kubernetes import client as k8s

from tests.e2e.conftest import Kubewatch, Receiver, base_config, brief, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.fault]

SCRIPTS = os.environ.get("KUBE_LOCAL_SCRIPTS")
STATE = os.environ.get("KUBE_LOCAL_DIR")
needs_control = pytest.mark.skipif(
    not (SCRIPTS and STATE), reason="needs KUBE_LOCAL_SCRIPTS and KUBE_LOCAL_DIR (../shared/kube)"
)
TOKEN_ENV = {"E2E_TOKEN": "t"}


def restart_apiserver(seconds_down: int = 0) -> None:
    assert SCRIPTS and STATE
    subprocess.run(
        [str(Path(SCRIPTS) / "restart.sh"), STATE, str(seconds_down)],
        check=True,
        capture_output=True,
        timeout=90,
    )


def cm(name: str, value: str = "1") -> dict[str, object]:
    return {"metadata": {"name": name}, "data": {"v": value}}


@needs_control
def test_apiserver_restart_mid_stream_later_changes_reported_once(
    api: k8s.ApiClient,
    namespace: str,
    receiver: Receiver,
    start_kubewatch: Callable[..., Kubewatch],
) -> None:
    core = k8s.CoreV1Api(api)
    kw = start_kubewatch(base_config(namespace, receiver, [{"kind": "ConfigMap"}]), TOKEN_ENV)
    kw.wait_synced(1)
    core.create_namespaced_config_map(namespace, cm("before"))
    wait_for(lambda: len(kw.events) == 1, what="the first create")

    restart_apiserver(seconds_down=2)

    core.create_namespaced_config_map(namespace, cm("after"))
    core.patch_namespaced_config_map("before", namespace, {"data": {"v": "2"}})
    core.delete_namespaced_config_map("after", namespace)
    expected = [
        ("create", "ConfigMap", "before"),
        ("create", "ConfigMap", "after"),
        ("update", "ConfigMap", "before"),
        ("delete", "ConfigMap", "after"),
    ]
    wait_for(
        lambda: len(kw.events) >= 4 and len(receiver.events) >= 4,
        timeout=60,
        what="events after restart",
    )
    time.sleep(2)
    for events in (kw.events, receiver.events):
        got = brief(events)
        assert sorted(got) == sorted(expected), got
        assert [t for t in got if t[2] == "before"] == [t for t in expected if t[2] == "before"]
        assert [t for t in got if t[2] == "after"] == [t for t in expected if t[2] == "after"]
    assert kw.stop() == 0


@needs_control
def test_410_gap_reconciles_each_change_exactly_once(
    api: k8s.ApiClient,
    namespace: str,
    receiver: Receiver,
    start_kubewatch: Callable[..., Kubewatch],
) -> None:
    """kubewatch is frozen while the API server restarts (its watch cache forgets the old
    window) and objects change; on resume its resourceVersion is too old: 410, relist."""
    core = k8s.CoreV1Api(api)
    kw = start_kubewatch(base_config(namespace, receiver, [{"kind": "ConfigMap"}]), TOKEN_ENV)
    kw.wait_synced(1)
    for name in ("keep", "change", "remove", "recreate"):
        core.create_namespaced_config_map(namespace, cm(name))
    wait_for(lambda: len(kw.events) == 4 and len(receiver.events) == 4, what="the initial creates")
    old_uid = next(e["uid"] for e in kw.events if e["name"] == "recreate")

    kw.pause()
    try:
        restart_apiserver()
        core.create_namespaced_config_map(namespace, cm("new"))
        core.patch_namespaced_config_map("change", namespace, {"data": {"v": "2"}})
        core.patch_namespaced_config_map("change", namespace, {"data": {"v": "3"}})
        core.delete_namespaced_config_map("remove", namespace)
        core.delete_namespaced_config_map("recreate", namespace)
        core.create_namespaced_config_map(namespace, cm("recreate", "again"))
    finally:
        kw.resume()

    wait_for(
        lambda: len(kw.events) >= 9 and len(receiver.events) >= 9, timeout=60, what="the gap events"
    )
    time.sleep(2)
    assert "expired" in kw.stderr, "the 410 path was not exercised"
    for events in (kw.events, receiver.events):
        gap = events[4:]
        assert sorted(brief(gap)) == sorted(
            [
                ("create", "ConfigMap", "new"),
                ("update", "ConfigMap", "change"),
                ("delete", "ConfigMap", "remove"),
                ("delete", "ConfigMap", "recreate"),
                ("create", "ConfigMap", "recreate"),
            ]
        ), brief(gap)
        by_name = {(e["type"], e["name"]): e for e in gap}
        update = by_name[("update", "change")]
        assert update["changes"] == [{"path": "data.v", "op": "changed", "old": "1", "new": "3"}]
        assert by_name[("delete", "remove")]["finalStateUnknown"] is True
        assert by_name[("delete", "recreate")]["uid"] == old_uid
        assert by_name[("create", "recreate")]["uid"] != old_uid
        recreate = [e["type"] for e in gap if e["name"] == "recreate"]
        assert recreate == ["delete", "create"]
        assert len({e["id"] for e in events}) == len(events)
    assert kw.stop() == 0
