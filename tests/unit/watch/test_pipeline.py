"""Informer callbacks → events: filters, event types, initial list, overlap between entries."""

from __future__ import annotations

from typing import Any

from kubewatch.config import parse_config
from kubewatch.events import Event
from kubewatch.kube import DeletedFinalStateUnknown
from kubewatch.watch.filters import NamespaceLabels, ObjectFilter
from kubewatch.watch.normalize import EventBuilder, ResourceInfo, update_trees
from kubewatch.watch.pipeline import EntryHandler, Fanout

INFO = ResourceInfo("ConfigMap", "v1", "configmaps")


def cm(name: str, rv: int, labels: dict[str, str] | None = None, **data: str) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "name": name,
        "namespace": "ns",
        "uid": f"u-{name}",
        "resourceVersion": str(rv),
    }
    if labels:
        meta["labels"] = labels
    return {"kind": "ConfigMap", "apiVersion": "v1", "metadata": meta, "data": data}


def entries(resources: str) -> list[EntryHandler]:
    config = parse_config(f"resources: {resources}\nsinks: {{c: {{type: stdout}}}}\n")
    out = []
    for rc in config.resources:
        ignore, only = update_trees(rc.updates)
        builder = EventBuilder("test", INFO, ignore=ignore, only=only)
        out.append(EntryHandler(rc, builder, ObjectFilter.build(config, rc, NamespaceLabels())))
    return out


def collect(resources: str) -> tuple[Fanout, list[Event]]:
    events: list[Event] = []
    return Fanout(entries(resources), events.append), events


def test_initial_list_is_silent_unless_notify_existing() -> None:
    fanout, events = collect("[{kind: cm}]")
    fanout.on_add(cm("a", 1), True)
    fanout.on_add(cm("b", 2), False)
    assert [(e.type.value, e.name) for e in events] == [("create", "b")]
    fanout, events = collect("[{kind: cm, notifyExisting: true}]")
    fanout.on_add(cm("a", 1), True)
    assert [(e.type.value, e.name) for e in events] == [("create", "a")]


def test_event_types_and_tombstones() -> None:
    fanout, events = collect("[{kind: cm, events: [update, delete]}]")
    fanout.on_add(cm("a", 1), False)
    fanout.on_update(cm("a", 1, x="1"), cm("a", 2, x="2"))
    fanout.on_delete(DeletedFinalStateUnknown("ns/a", cm("a", 2)))
    assert [(e.type.value, e.final_state_unknown) for e in events] == [
        ("update", False),
        ("delete", True),
    ]


def test_an_object_leaving_the_selection_is_reported_once() -> None:
    fanout, events = collect("[{kind: cm, labels: 'team=a'}]")
    fanout.on_add(cm("x", 1, {"team": "b"}), False)  # not selected
    fanout.on_update(cm("x", 1, {"team": "b"}), cm("x", 2, {"team": "a"}))  # enters
    fanout.on_update(cm("x", 2, {"team": "a"}), cm("x", 3, {"team": "b"}))  # leaves
    fanout.on_update(cm("x", 3, {"team": "b"}), cm("x", 4, {"team": "c"}))  # still out
    assert [e.resource_version for e in events] == ["2", "3"]


def test_overlapping_entries_report_a_change_once_first_entry_wins() -> None:
    fanout, events = collect(
        "[{kind: cm, updates: {watch: [data.a]}}, {kind: cm, updates: {ignore: [data.a]}}]"
    )
    fanout.on_update(cm("x", 1, a="1", b="1"), cm("x", 2, a="2", b="2"))
    assert len(events) == 1 and [c.path for c in events[0].changes] == ["data.a"]
    fanout.on_update(cm("x", 2, a="2", b="2"), cm("x", 3, a="2", b="3"))
    assert len(events) == 2 and [c.path for c in events[1].changes] == ["data.b"]
