"""RFC 3339 times, formatted and parsed in one place, so every stamp kubewatch writes
(``observedAt``, Lease ``MicroTime``, Event ``Time``) and reads uses the same rules."""

from __future__ import annotations

import re
from datetime import datetime, timezone
from functools import lru_cache
from typing import Any

__all__ = ["k8s_time", "micro_time", "parse_time", "rfc3339", "seconds_since", "utc_now"]


def rfc3339(moment: datetime) -> str:
    """RFC 3339 UTC with milliseconds, the format of ``observedAt``."""
    moment = moment.astimezone(timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def micro_time(moment: datetime) -> str:
    """A metav1.MicroTime: UTC with microseconds, ``2026-11-26T22:10:51.123456Z``."""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def k8s_time(moment: datetime) -> str:
    """A metav1.Time (whole seconds), as ``firstTimestamp``/``lastTimestamp`` take."""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


_TIME = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?([Zz]|[+-]\d\d:\d\d)")


def parse_time(value: Any) -> datetime | None:
    """RFC 3339 (Kubernetes ``Time`` or ``MicroTime``) → aware UTC datetime; anything else
    → ``None``. Fractions of any length (Python 3.10's ``fromisoformat`` takes only 3 or 6
    digits, and no ``Z``)."""
    return _parse_text(value) if isinstance(value, str) else None


@lru_cache(maxsize=4096)
def _parse_text(value: str) -> datetime | None:
    """Cached: an object repeats the same few stamps in every update (managedFields)."""
    m = _TIME.fullmatch(value.strip())
    if m is None:
        return None
    base, fraction, zone = m.groups()
    micros = (fraction or "0")[:6].ljust(6, "0")
    offset = "+00:00" if zone in ("Z", "z") else zone
    try:
        return datetime.fromisoformat(f"{base}.{micros}{offset}").astimezone(timezone.utc)
    except ValueError:  # 2024-02-30 and the like
        return None


def utc_now() -> str:
    """Now, as :func:`rfc3339`."""
    return rfc3339(datetime.now(timezone.utc))


def seconds_since(observed_at: str, now: datetime | None = None) -> float:
    """Seconds from an event's ``observedAt`` (RFC 3339, ``…Z``) to ``now`` (default: the
    wall clock)."""
    then = datetime.fromisoformat(observed_at.replace("Z", "+00:00"))
    return ((now or datetime.now(timezone.utc)) - then).total_seconds()
