"""Occurrences folded into series: which Event object each occurrence counts towards.

Its own module because aggregation is pure bookkeeping (no I/O, no threads, one owner:
the recorder's worker), with its own rules: an occurrence is (type, reason, message,
involved object); a repeat within ``window`` seconds of the previous one counts towards
the same Event, after ``window`` seconds of silence the next one starts a new Event; at most
``max_keys`` keys are kept, the least recently seen forgotten first.
"""

from __future__ import annotations

import logging
import math
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from kubewatch.timefmt import k8s_time

__all__ = ["EventKind", "Occurrence", "Series", "SeriesCache"]

log = logging.getLogger("kubewatch.kube.recorder")  # one story with the recorder's lines

EventKind = Literal["Normal", "Warning"]

About = tuple[tuple[str, str], ...]
"""The involved object's fields (``kind``, ``name``, ``namespace``, ``uid``...), sorted;
empty: the recorder's own object."""
SeriesKey = tuple[str, str, str, About]
"""(type, reason, message, involved object)."""


@dataclass(frozen=True, slots=True)
class Occurrence:
    type: EventKind
    reason: str
    message: str
    at: float
    """clock() when recorded."""
    wall: datetime
    about: About = ()


@dataclass(slots=True)
class Series:
    """The occurrences of one key that share one Event object."""

    type: EventKind
    reason: str
    message: str
    count: int
    """Occurrences so far: what the Event's ``count`` should say."""
    sent: int
    """The count the server has (0: no Event created yet). ``sent < count``: dirty."""
    first: str
    last: str
    last_seen: float
    """clock() of the latest occurrence: the window runs from it."""
    next_call: float = -math.inf
    """clock() before which no API call is made for this key."""
    name: str | None = None
    """The Event object's name once created."""
    failures: int = 0
    """Failed calls in a row for the pending update."""
    about: About = ()
    """The involved object when it is not the recorder's own."""


class SeriesCache:
    """The series of at most ``max_keys`` keys, and which of them are dirty."""

    def __init__(self, window: float, max_keys: int) -> None:
        self._window = window
        self._max_keys = max_keys
        # At most max_keys keys, least recently seen first; dirty is the keys of series
        # whose sent < count, in the order they became dirty.
        self._series: OrderedDict[SeriesKey, Series] = OrderedDict()
        self.dirty: dict[SeriesKey, None] = {}

    def get(self, key: SeriesKey) -> Series | None:
        return self._series.get(key)

    def observe(self, occurrence: Occurrence) -> None:
        """Count ``occurrence`` towards its series, or start a new one."""
        key = (occurrence.type, occurrence.reason, occurrence.message, occurrence.about)
        series = self._series.get(key)
        stamp = k8s_time(occurrence.wall)
        if series is None or occurrence.at - series.last_seen > self._window:
            previous = series
            series = Series(
                occurrence.type,
                occurrence.reason,
                occurrence.message,
                count=1,
                sent=0,
                first=stamp,
                last=stamp,
                last_seen=occurrence.at,
                about=occurrence.about,
            )
            if previous is not None:
                series.next_call = previous.next_call
                if previous.sent < previous.count:
                    log.debug("Kubernetes Event %s: an unsent update was superseded", key[1])
            self._series[key] = series
        else:
            series.count += 1
            series.last = stamp
            series.last_seen = occurrence.at
        self._series.move_to_end(key)
        self.dirty[key] = None
        while len(self._series) > self._max_keys:
            old_key, old = self._series.popitem(last=False)
            self.dirty.pop(old_key, None)
            if old.sent < old.count:
                log.debug("Kubernetes Event %s: forgotten before it was sent", old_key[1])
