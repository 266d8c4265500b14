"""Operator mode in the app: what the last run spooled for a Notifier's sinks waits for
that Notifier (the file's sinks do not drop it as unknown) and is sent once it runs."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

import kubewatch.app.core as app_module
from kubewatch.app import App
from kubewatch.app.tenants import Spooled
from kubewatch.config import parse_config
from kubewatch.delivery import Dispatcher
from kubewatch.kube.store import Store
from kubewatch.timefmt import utc_now
from kubewatch.watch.plan import Plan
from tests.unit.app.test_app_recovery import Collecting
from tests.unit.app.test_app_reload import Client
from tests.unit.delivery.test_delivery import make_event

WAIT = 20.0
"""Seconds a test waits for what should happen at once (a hang guard only)."""


class Listed:
    """The Notifier informer, listed: ``team-a/web`` exists."""

    def __init__(self) -> None:
        self.store = Store()
        self.store.put("team-a/web", {"metadata": {"name": "web", "namespace": "team-a"}})

    def wait_for_sync(self, timeout: Any = None) -> bool:
        return True


def test_a_notifiers_spooled_events_wait_for_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = parse_config(
        f"""
resources: [{{kind: ConfigMap}}]
sinks:
  a: {{type: webhook, url: "http://127.0.0.1:9/a"}}
state: {{path: "{tmp_path}"}}
"""
    )
    monkeypatch.setattr(app_module, "build_sinks", lambda cfg, services=None: {"a": Collecting()})
    first = App(config, Client(), Plan())  # type: ignore[arg-type]
    assert first.state is not None
    now = utc_now()
    mine, gone, files = (make_event(f"ns/o-{i}", rv=i + 1, observed_at=now) for i in range(3))
    first.state.spool.put(mine, ("team-a/web/hook",))
    first.state.spool.put(gone, ("team-b/deleted/hook",))
    first.state.spool.put(files, ("a",))
    first.state.close()

    app = App(config, Client(), Plan())  # type: ignore[arg-type]
    assert app.state is not None
    app.dispatcher.start()
    app._recover()
    assert [s for s, _ in app._delivering.tenant_spool] == [
        "team-a/web/hook",
        "team-b/deleted/hook",
    ]
    spooled = Spooled(app)
    sink = Collecting()
    dispatcher = Dispatcher({"team-a/web/hook": sink}, config.delivery, journal=app.state.spool)
    dispatcher.start()
    spooled.recover("team-a/web", dispatcher)
    deadline = time.monotonic() + WAIT
    while not sink.sent and time.monotonic() < deadline:
        time.sleep(0.01)
    assert [e.id for e in sink.sent] == [mine.id]
    spooled.forget_gone(Listed())  # type: ignore[arg-type]
    assert dispatcher.close(5.0)
    assert app.stop()
    again = App(config, Client(), Plan())  # type: ignore[arg-type]
    assert again.state is not None
    assert again.state.spool.recover() == []  # delivered, delivered, dropped: nothing left
    again.state.close()
