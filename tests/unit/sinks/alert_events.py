"""Health-alert events for the incident sinks' tests: a Pod's container failing."""

from __future__ import annotations

import dataclasses
from typing import Any

from kubewatch.events import AlertInfo, AlertState, Event, EventType
from tests.unit.sinks.test_sinks import make_event


def alert_event(
    state: str, reason: str = "CrashLoopBackOff", container: str | None = "app", **kw: Any
) -> Event:
    """A health alert about Pod ``shop/web-1`` (uid ``uid-web-1``)."""
    base = make_event(
        "shop/web-1",
        kind="Pod",
        resource="pods",
        uid="uid-web-1",
        changes=(),
        summary=f"[test] Pod shop/web-1 {reason} ({state})",
    )
    alert = AlertInfo(AlertState(state), reason, container, since="2026-11-26T22:00:00.000Z")
    return dataclasses.replace(base, type=EventType.ALERT, alert=alert, **kw)
