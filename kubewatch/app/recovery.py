"""Undelivered events carried over: from the spool of the last run into the dispatcher,
and from a dispatcher a reload replaces into its successor, in order."""

from __future__ import annotations

import logging
import time

from kubewatch.delivery import Dispatcher
from kubewatch.events import Event
from kubewatch.state import State
from kubewatch.timefmt import parse_time

__all__ = ["resubmit", "take_over"]

log = logging.getLogger("kubewatch.app")


def resubmit(state: State, dispatcher: Dispatcher, items: list[tuple[str, Event]]) -> None:
    """Queue recovered ``(sink, event)`` pairs, oldest first, on ``dispatcher``; a pair
    for a sink no longer configured leaves the spool. The caller holds the app's lock."""
    known = set(dispatcher.stats())
    now = time.time()
    orphans = 0
    for sink, event in items:
        if sink not in known:
            state.spool.settle(sink, event.id)
            orphans += 1
            continue
        seen = parse_time(event.observed_at)
        age = now - seen.timestamp() if seen is not None else 0.0
        dispatcher.submit(event, (sink,), age=max(0.0, age))
    if orphans:
        log.warning("state: %d spooled event(s) for sinks no longer configured dropped", orphans)


def take_over(state: State | None, old: Dispatcher, new: Dispatcher) -> None:
    """Move what ``old`` has queued to ``new``, in order; caller holds the lock."""
    known = set(new.stats())
    orphans = 0
    for sink, items in old.hand_over().items():
        for event, age in items:
            if sink in known:
                new.submit(event, (sink,), age=age)
                continue
            orphans += 1
            if state is not None:
                state.spool.settle(sink, event.id)
    if orphans:
        log.warning("reload: %d queued event(s) for removed sinks dropped", orphans)
