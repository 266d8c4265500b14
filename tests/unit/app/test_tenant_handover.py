"""A standby keeps Notifiers' events like the file's and, when it takes over, hands each
to its Notifier's dispatcher: none lost, none twice, however the threads interleave."""

from __future__ import annotations

import threading
from typing import Any

from kubewatch.app.delivering import Delivering, Route
from kubewatch.app.handover import HandoverBuffer
from kubewatch.events import Event
from tests.stress import hammer
from tests.unit.delivery.test_delivery import make_event

SINKS = ("team-a/web/hook",)


class Recorder:
    def __init__(self, *sinks: str) -> None:
        self.sinks = sinks
        self.submitted: list[tuple[Event, tuple[str, ...]]] = []
        self.lock = threading.Lock()

    def submit(self, event: Event, sinks: tuple[str, ...]) -> None:
        with self.lock:
            self.submitted.append((event, sinks))

    def stats(self) -> dict[str, Any]:
        return dict.fromkeys(self.sinks)


def delivering(tenant: Recorder) -> tuple[Delivering, Recorder]:
    file = Recorder("chat")
    d = Delivering(
        Route(None, file),  # type: ignore[arg-type]
        None,
        HandoverBuffer(60.0),
        leading=False,
        observe=lambda resource, kind: None,
    )
    d.tenant_dispatcher = lambda key: tenant if key == "team-a/web" else None  # type: ignore[assignment,return-value]
    return d, file


def test_a_standby_hands_what_it_kept_to_the_notifier_when_it_takes_over() -> None:
    tenant = Recorder(*SINKS)
    d, file = delivering(tenant)
    kept, gone = make_event(rv=1), make_event(rv=2)
    d.hand(kept, SINKS, tenant)  # type: ignore[arg-type]
    d.hand(gone, ("team-b/old/hook",), tenant)  # type: ignore[arg-type]
    assert tenant.submitted == []
    d.start_leading(60.0, threading.Event())
    assert tenant.submitted == [(kept, SINKS)]  # the deleted Notifier's: nowhere
    assert file.submitted == []
    later = make_event(rv=3)
    d.hand(later, SINKS, tenant)  # type: ignore[arg-type]
    assert tenant.submitted[-1] == (later, SINKS)


def test_a_takeover_during_a_burst_loses_and_repeats_nothing() -> None:
    tenant = Recorder(*SINKS)
    d, _ = delivering(tenant)
    per_thread = 300

    def work(n: int) -> None:
        if n == 0:
            d.start_leading(60.0, threading.Event())
            return
        for i in range(per_thread):
            d.hand(make_event(key=f"team-a/o{n}", rv=i + 1), SINKS, tenant)  # type: ignore[arg-type]

    hammer(work, threads=9)
    ids = [event.id for event, _ in tenant.submitted]
    assert len(ids) == len(set(ids)) == 8 * per_thread


def test_a_takeover_between_the_look_and_the_keep_does_not_lose_the_event() -> None:
    """The takeover is tried right inside hand's step (between its look at leadership and
    keeping the event): it must wait for that step, or the event is kept after the drain
    and never sent."""
    tenant = Recorder(*SINKS)
    d, _ = delivering(tenant)
    takeover = threading.Thread(target=d.start_leading, args=(60.0, threading.Event()))
    add = d.handover.add

    def add_during_a_takeover(event: Event, sinks: tuple[str, ...]) -> None:
        takeover.start()
        takeover.join(0.2)  # it finishes here if nothing holds it back
        add(event, sinks)

    d.handover.add = add_during_a_takeover  # type: ignore[method-assign]
    event = make_event(rv=1)
    d.hand(event, SINKS, tenant)  # type: ignore[arg-type]
    takeover.join()
    assert tenant.submitted == [(event, SINKS)]
