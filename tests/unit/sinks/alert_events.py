"""Health-alert events built by hand: ``type == "alert"`` and an ``alert`` with a ``state``.

The incident sinks read a health alert by those two names only (duck-typed), so these
stand-ins carry exactly them: an :class:`Event` with ``alert`` added, whose ``type`` has
the value ``alert``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from kubewatch.events import Event
from tests.unit.sinks.test_sinks import make_event


class AlertType(str, enum.Enum):
    ALERT = "alert"


@dataclass(frozen=True, slots=True)
class Alert:
    state: str
    reason: str
    container: str | None = None
    exit_code: int | None = None
    restart_count: int | None = None
    since: str | None = None
    logs: str | None = None
    message: str = ""


@dataclass(frozen=True, slots=True)
class AlertEvent(Event):
    alert: Alert | None = None


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
    fields = {f: getattr(base, f) for f in Event.__dataclass_fields__}
    fields.update(type=AlertType.ALERT, **kw)
    alert = Alert(state, reason, container, since="2026-11-26T22:00:00.000Z")
    return AlertEvent(**fields, alert=alert)
