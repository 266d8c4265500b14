"""The status a reconcile result asks for, computed from the status the object has.

Status is the API (Kubernetes API conventions, kstatus): a ``Ready`` condition with a
CamelCase ``reason`` and a ``message``, ``observedGeneration`` saying which spec it is
about. Writes are the expensive part, so :func:`desired_status` returns None when the
object already says it: a no-op reconcile writes nothing, and ``lastTransitionTime``
moves only when the condition's ``status`` changes (not its reason or message).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Protocol

from kubewatch.timefmt import k8s_time

__all__ = ["desired_status", "with_delivery"]

READY = "Ready"


class _Outcome(Protocol):
    @property
    def reason(self) -> str: ...
    @property
    def message(self) -> str: ...


def desired_status(
    old: Mapping[str, Any] | None, result: _Outcome, generation: int, now: datetime
) -> dict[str, Any] | None:
    """The new ``status`` for ``result`` (a Compiled or a Failure), or None if unchanged.

    Other conditions and ``lastDelivery`` / ``lastError`` are kept as they are.
    """
    before = dict(old or {})
    conditions = [dict(c) for c in before.get("conditions") or () if isinstance(c, Mapping)]
    previous = next((c for c in conditions if c.get("type") == READY), None)
    status = "True" if result.reason == READY else "False"
    kept = previous is not None and previous.get("status") == status
    ready = {
        "type": READY,
        "status": status,
        "reason": result.reason,
        "message": result.message,
        "lastTransitionTime": (
            previous["lastTransitionTime"]
            if kept and previous and previous.get("lastTransitionTime")
            else k8s_time(now)
        ),
        "observedGeneration": generation,
    }
    if previous is None:
        conditions.append(ready)
    else:
        conditions[conditions.index(previous)] = ready
    after = {**before, "observedGeneration": generation, "conditions": conditions}
    return None if after == before else after


def with_delivery(
    old: Mapping[str, Any] | None, sink: str, now: datetime, error: str | None = None
) -> dict[str, Any]:
    """``old`` with ``lastDelivery`` (or, with ``error``, ``lastError``) set for ``sink``."""
    after = dict(old or {})
    if error is None:
        after["lastDelivery"] = {"time": k8s_time(now), "sink": sink}
    else:
        after["lastError"] = {"time": k8s_time(now), "sink": sink, "message": error}
    return after
