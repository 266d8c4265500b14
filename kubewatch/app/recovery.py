"""Undelivered events carried over: from the spool of the last run into the dispatcher,
and from a dispatcher a reload replaces into its successor, in order."""

from __future__ import annotations

import logging
import threading
import time

from kubewatch.delivery import Dispatcher
from kubewatch.events import Event
from kubewatch.state import State
from kubewatch.timefmt import parse_time

__all__ = ["resubmit", "take_over"]

log = logging.getLogger("kubewatch.app")


def resubmit(
    state: State,
    dispatcher: Dispatcher,
    items: list[tuple[str, Event]],
    stop: threading.Event,
) -> None:
    """Queue recovered ``(sink, event)`` pairs, oldest first, on the started ``dispatcher``;
    a pair for a sink no longer configured leaves the spool. The caller holds the app's lock.

    Each waits for room in its sink's queue (``submit(block=True)``) rather than pushing
    out an older one: a spool larger than a queue is delivered whole, at the sink's pace,
    and nothing the last run spooled is dropped by the restart. Returns when all are
    queued, or at once when ``stop`` is set: the feed then ends when the dispatcher
    closes, and what it did not queue stays in the spool for the next start.
    """
    feeder = threading.Thread(
        target=_feed, args=(state, dispatcher, items), name="kubewatch-recovery", daemon=True
    )
    feeder.start()
    while feeder.is_alive() and not stop.wait(FEED_POLL_INTERVAL):
        pass


FEED_POLL_INTERVAL = 0.1
"""Seconds between looks at the stop request while recovered events wait for room."""


def _feed(state: State, dispatcher: Dispatcher, items: list[tuple[str, Event]]) -> None:
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
        try:
            dispatcher.submit(event, (sink,), age=max(0.0, age), block=True)
        except RuntimeError:  # closed while waiting (a stop): the rest stays spooled
            return
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
