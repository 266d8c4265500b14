"""Replay: reading captured watch output, and the events it turns into without a cluster."""

from __future__ import annotations

import copy
import io
import json
import logging
import random
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from kubewatch.config import Config, load_config, parse_config
from kubewatch.events import Event
from kubewatch.kube.discovery import ResourceTable
from kubewatch.replay import (
    Replayer,
    ReplayStats,
    build_entry,
    iter_watch_events,
    resource_type,
)
from kubewatch.replay.replayer import _latest_time
from kubewatch.timefmt import parse_time
from kubewatch.watch.filters import NamespaceLabels
from kubewatch.watch.plan import WatchPlan

ROOT = Path(__file__).resolve().parents[3]
CAPTURE = ROOT / "examples" / "watch-capture.json"
DATA = Path(__file__).parents[1] / "data"


def cm(
    name: str, rv: int, ns: str = "ns", labels: dict[str, str] | None = None, **data: str
) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "name": name,
        "namespace": ns,
        "uid": f"u-{name}",
        "resourceVersion": str(rv),
    }
    if labels is not None:
        meta["labels"] = labels
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": data}


def watch_event(event_type: str, obj: dict[str, Any]) -> dict[str, Any]:
    return {"type": event_type, "object": obj}


def parse(text: str | bytes, chunk_size: int = 65536) -> list[dict[str, Any]]:
    stream = io.BytesIO(text) if isinstance(text, bytes) else io.StringIO(text)
    return list(iter_watch_events(stream, chunk_size=chunk_size))


def brief(events: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(e["type"], e["object"]["metadata"]["name"]) for e in events]


def config(resources: str, extra: str = "") -> Config:
    return parse_config(f"resources: {resources}\nsinks: {{c: {{type: stdout}}}}\n{extra}")


def replay(
    cfg: Config, events: list[dict[str, Any]], **kwargs: Any
) -> tuple[list[Event], ReplayStats]:
    out: list[Event] = []
    replayer = Replayer(cfg, out.append, **kwargs)
    for event in events:
        replayer.feed(copy.deepcopy(event))
    return out, replayer.finish()


def what(events: list[Event]) -> list[tuple[str, str, str]]:
    return [(e.type.value, e.kind, e.name) for e in events]


# --------------------------------------------------------------------------- reading

STREAM = [
    watch_event("ADDED", cm("a", 1, x="é")),
    watch_event("MODIFIED", cm("a", 2, x="ü€")),
    watch_event("DELETED", cm("a", 3)),
]


@pytest.mark.parametrize("chunk_size", [1, 2, 7, 100, 65536])
@pytest.mark.parametrize("binary", [False, True])
@pytest.mark.parametrize(
    "layout",
    [
        pytest.param(lambda vs: "".join(json.dumps(v, indent=4) + "\n" for v in vs), id="pretty"),
        pytest.param(
            lambda vs: "".join(json.dumps(v, ensure_ascii=False) + "\n" for v in vs), id="lines"
        ),
        pytest.param(
            lambda vs: "".join(json.dumps(v, separators=(",", ":")) for v in vs), id="one-line"
        ),
        pytest.param(lambda vs: " \n\t".join(json.dumps(v, indent=2) for v in vs), id="mixed"),
    ],
)
def test_layouts_and_chunk_boundaries(layout: Any, binary: bool, chunk_size: int) -> None:
    text: str = layout(STREAM)
    assert parse(text.encode() if binary else text, chunk_size) == STREAM


def test_the_real_capture() -> None:
    with CAPTURE.open("rb") as f:
        events = list(iter_watch_events(f))
    assert [(e["type"], e["object"]["kind"]) for e in events] == [
        ("ADDED", "ConfigMap"),
        ("MODIFIED", "ConfigMap"),
        ("DELETED", "ConfigMap"),
        ("ADDED", "Deployment"),
        ("MODIFIED", "Deployment"),
        ("MODIFIED", "Deployment"),
        ("MODIFIED", "Deployment"),
        ("DELETED", "Deployment"),
    ]


def test_bare_objects_are_added_then_modified() -> None:
    text = "".join(
        json.dumps(o) for o in (cm("a", 1), cm("b", 1), cm("a", 2), cm("a", 1, ns="other"))
    )
    assert brief(parse(text)) == [("ADDED", "a"), ("ADDED", "b"), ("MODIFIED", "a"), ("ADDED", "a")]


def test_lists_are_added_items_and_api_lists_get_their_kind() -> None:
    kubectl_list = {"apiVersion": "v1", "kind": "List", "items": [cm("a", 1), cm("b", 1)]}
    items = [cm("c", 1), cm("a", 2)]
    for item in items:
        del item["kind"], item["apiVersion"]
    api_list = {"apiVersion": "v1", "kind": "ConfigMapList", "metadata": {}, "items": items}
    events = parse(json.dumps(kubectl_list) + json.dumps(api_list))
    assert brief(events) == [("ADDED", "a"), ("ADDED", "b"), ("ADDED", "c"), ("MODIFIED", "a")]
    assert {(e["object"]["apiVersion"], e["object"]["kind"]) for e in events} == {
        ("v1", "ConfigMap")
    }


def test_garbage_is_skipped_with_its_offset(caplog: pytest.LogCaptureFixture) -> None:
    good = [json.dumps(watch_event("ADDED", cm(n, 1))) for n in ("a", "b", "c", "d")]
    text = "\n".join(
        [
            "error: something went wrong",  # line 1, byte 0
            good[0],
            '{"type": "ADDED", "object": {"metadata": ',  # cut short, then a new line
            good[1],
            "[1, 2]",  # valid JSON, not an object
            good[2],
            "é" + good[3],  # garbage before a value on the same line: skipped with it
            good[3],
            '{"type": "ADDED", "object": {',  # cut short at the end of the input
        ]
    )
    with caplog.at_level(logging.WARNING, logger="kubewatch.replay"):
        events = parse(text.encode(), chunk_size=5)
    assert brief(events) == [("ADDED", "a"), ("ADDED", "b"), ("ADDED", "c"), ("ADDED", "d")]
    lines = text.split("\n")

    def byte(line: int) -> int:
        return sum(len(x.encode()) + 1 for x in lines[: line - 1])

    assert [r.getMessage().split(":")[0] for r in caplog.records] == [
        f"line {n} (byte {byte(n)})" for n in (1, 3, 5, 7, 9)
    ]
    assert "not an object" in caplog.records[2].getMessage()
    assert "cut short at the end of the input" in caplog.records[4].getMessage()


def test_events_of_unknown_shape_are_skipped(caplog: pytest.LogCaptureFixture) -> None:
    values = [
        {"type": "UPSERTED", "object": cm("a", 1)},
        {"type": "ADDED", "object": "a"},
        {"hello": "world"},
        {"type": "BOOKMARK", "object": {"kind": "ConfigMap", "metadata": {"resourceVersion": "9"}}},
        {"type": "ERROR", "object": {"kind": "Status", "code": 410, "message": "too old"}},
    ]
    with caplog.at_level(logging.WARNING, logger="kubewatch.replay"):
        events = parse("".join(json.dumps(v) for v in values))
    assert [e["type"] for e in events] == ["BOOKMARK", "ERROR"]
    assert len(caplog.records) == 3


def test_reads_incrementally() -> None:
    """A value is yielded once it is complete, without reading the rest of the stream."""
    text = "".join(
        json.dumps(watch_event("ADDED", cm(f"o{i}", i))) + "\n" for i in range(1000)
    ).encode()
    stream = io.BytesIO(text)
    events = iter_watch_events(stream, chunk_size=4096)
    assert next(events)["object"]["metadata"]["name"] == "o0"
    assert stream.tell() <= 4096
    assert len(list(events)) == 999


def test_a_value_longer_than_a_chunk_and_a_bom() -> None:
    big = cm("big", 1, blob="x" * 200_000)
    text = "\ufeff" + json.dumps(watch_event("ADDED", big))
    assert parse(text.encode(), chunk_size=1000)[0]["object"] == big
    assert parse(text, chunk_size=1000)[0]["object"] == big


# --------------------------------------------------------------------------- replaying


def test_the_capture_with_the_example_config() -> None:
    cfg = load_config(ROOT / "config.example.yaml")
    events: list[Event] = []
    with CAPTURE.open("rb") as f:
        stats = Replayer(cfg, events.append).replay(f)
    assert [(e.observed_at, e.summary) for e in events] == [
        ("2026-11-26T22:56:20.000Z", "[replay] ConfigMap kw-demo/app-settings created"),
        (
            "2026-11-26T22:56:21.000Z",
            "[replay] ConfigMap kw-demo/app-settings updated: data.LOG_LEVEL info → debug",
        ),
        ("2026-11-26T22:56:21.000Z", "[replay] ConfigMap kw-demo/app-settings deleted"),
        ("2026-11-26T22:56:20.000Z", "[replay] Deployment kw-demo/web created"),
        (
            "2026-11-26T22:56:21.000Z",
            "[replay] Deployment kw-demo/web updated: "
            "spec.template.spec.containers[nginx].image nginx:1.25 → nginx:1.27",
        ),
        # spec.replicas 1 → 3 is ignored by the example config: no event.
        (
            "2026-11-26T22:56:23.000Z",
            "[replay] Deployment kw-demo/web updated: metadata.labels.tier added (frontend)",
        ),
        ("2026-11-26T22:56:23.000Z", "[replay] Deployment kw-demo/web deleted"),
    ]
    image = events[4]
    assert [(c.path, c.old, c.new) for c in image.changes] == [
        ("spec.template.spec.containers[nginx].image", "nginx:1.25", "nginx:1.27")
    ]
    assert (image.api_version, image.resource, image.namespace) == (
        "apps/v1",
        "deployments.apps",
        "kw-demo",
    )
    assert stats.events == 8 and stats.produced == 7 and not stats.skipped


def test_unmatched_kinds_are_counted_and_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    cfg = config("[{kind: cm}]", "cluster: lab")
    events: list[Event] = []
    with caplog.at_level(logging.INFO, logger="kubewatch.replay"), CAPTURE.open("rb") as f:
        stats = Replayer(cfg, events.append).replay(f)
    assert what(events) == [
        ("create", "ConfigMap", "app-settings"),
        ("update", "ConfigMap", "app-settings"),
        ("delete", "ConfigMap", "app-settings"),
    ]
    assert events[0].cluster == "lab"
    assert stats.skipped == {"Deployment (apps/v1)": 5}
    skipped = [r.getMessage() for r in caplog.records if "skipped" in r.getMessage()]
    assert skipped == [
        "5 objects matched no resource entry and were skipped: Deployment (apps/v1): 5"
    ]


def deployment(name: str, rv: int, group_version: str = "apps/v1") -> dict[str, Any]:
    return {
        "apiVersion": group_version,
        "kind": "Deployment",
        "metadata": {
            "name": name,
            "namespace": "ns",
            "uid": f"u-{name}",
            "resourceVersion": str(rv),
        },
        "spec": {"replicas": 1},
    }


def widget(name: str, rv: int) -> dict[str, Any]:
    return {
        "apiVersion": "example.com/v1",
        "kind": "Widget",
        "metadata": {
            "name": name,
            "namespace": "ns",
            "uid": f"u-{name}",
            "resourceVersion": str(rv),
        },
    }


@pytest.mark.parametrize(
    ("entry", "matches"),
    [
        ("{kind: Deployment}", True),
        ("{kind: deployment}", True),
        ("{kind: deployments}", True),
        ("{kind: deploy}", True),
        ("{kind: deployments.apps}", True),
        ("{kind: Deployment.apps}", True),
        ("{kind: deployments.v1.apps}", True),
        ("{kind: Deployment, apiVersion: apps/v1}", True),
        ("{kind: Deployment, apiVersion: apps/v1beta1}", False),
        ("{kind: deployments.batch}", False),
        ("{kind: ReplicaSet}", False),
    ],
)
def test_offline_matching_rules(entry: str, matches: bool) -> None:
    events, stats = replay(config(f"[{entry}]"), [watch_event("ADDED", deployment("web", 1))])
    assert (len(events) == 1) is matches
    assert bool(stats.skipped) is not matches


def test_offline_resource_types() -> None:
    assert resource_type("example.com/v1", "Widget", True).group_resource == "widgets.example.com"
    assert resource_type("networking.k8s.io/v1", "NetworkPolicy", True).plural == "networkpolicies"
    assert resource_type("networking.k8s.io/v1", "Ingress", True).plural == "ingresses"
    assert resource_type("v1", "Endpoints", True).plural == "endpoints"
    assert resource_type("gateway.networking.k8s.io/v1", "Gateway", True).plural == "gateways"
    events, _ = replay(
        config("[{kind: widgets.example.com}]"), [watch_event("ADDED", widget("w", 1))]
    )
    assert [(e.resource, e.api_version) for e in events] == [
        ("widgets.example.com", "example.com/v1")
    ]


def test_with_discovery_names_resolve_as_live() -> None:
    documents = json.loads((DATA / "discovery-1.20.json").read_text())
    table = ResourceTable.from_documents(documents)
    # "wd" is the Widget CRD's short name: only discovery knows it.
    events, _ = replay(config("[{kind: wd}]"), [watch_event("ADDED", widget("w", 1))], table=table)
    assert what(events) == [("create", "Widget", "w")]
    events, stats = replay(config("[{kind: wd}]"), [watch_event("ADDED", widget("w", 1))])
    assert not events and stats.skipped == {"Widget (example.com/v1)": 1}
    # Deployment resolves to apps/v1: extensions/v1beta1 objects are another resource.
    old = watch_event("ADDED", deployment("old", 1, "extensions/v1beta1"))
    events, _ = replay(
        config("[{kind: Deployment}]"),
        [old, watch_event("ADDED", deployment("new", 1))],
        table=table,
    )
    assert what(events) == [("create", "Deployment", "new")]


def test_every_added_is_a_create_and_unknown_modified_objects_existed() -> None:
    stream = [
        watch_event("MODIFIED", cm("old", 5, x="1")),  # existed before the capture
        watch_event("MODIFIED", cm("old", 6, x="2")),
        watch_event("ADDED", cm("new", 7)),
        watch_event("ADDED", cm("new", 7)),  # same resourceVersion: not an update
        watch_event("DELETED", cm("gone", 8)),  # never seen: it existed, and is deleted
        {"type": "BOOKMARK", "object": {"kind": "ConfigMap", "metadata": {"resourceVersion": "9"}}},
    ]
    events, stats = replay(config("[{kind: cm}]"), stream)
    assert what(events) == [
        ("update", "ConfigMap", "old"),
        ("create", "ConfigMap", "new"),
        ("delete", "ConfigMap", "gone"),
    ]
    assert (stats.existing, stats.bookmarks, stats.events) == (1, 1, 6)
    events, _ = replay(config("[{kind: cm, notifyExisting: true}]"), stream)
    assert what(events)[0] == ("create", "ConfigMap", "old")


def test_label_selector_has_the_servers_semantics() -> None:
    stream = [
        watch_event("ADDED", cm("a", 1, labels={"app": "other"})),
        watch_event("MODIFIED", cm("a", 2, labels={"app": "web"})),  # enters: an ADDED
        watch_event("MODIFIED", cm("a", 3, labels={"app": "web"}, x="1")),
        watch_event("MODIFIED", cm("a", 4, labels={"app": "other"})),  # leaves: a DELETED
        watch_event("DELETED", cm("a", 5, labels={"app": "other"})),
    ]
    events, _ = replay(config("[{kind: cm, labelSelector: app=web}]"), stream)
    assert what(events) == [
        ("create", "ConfigMap", "a"),
        ("update", "ConfigMap", "a"),
        ("delete", "ConfigMap", "a"),
    ]


def test_namespaces_and_field_selectors() -> None:
    stream = [
        watch_event("ADDED", cm("a", 1, ns="shop")),
        watch_event("ADDED", cm("b", 1, ns="kube-system")),
        watch_event("ADDED", cm("c", 1, ns="team-x")),
    ]
    events, _ = replay(config("[{kind: cm}]", "namespaces: {exclude: [kube-system]}"), stream)
    assert [e.name for e in events] == ["a", "c"]
    events, _ = replay(config("[{kind: cm, namespaces: {include: [shop]}}]"), stream)
    assert [e.name for e in events] == ["a"]
    events, _ = replay(config("[{kind: cm, namespaces: {include: ['team-*']}}]"), stream)
    assert [e.name for e in events] == ["c"]
    events, _ = replay(config("[{kind: cm, fieldSelector: metadata.name!=a}]"), stream)
    assert [e.name for e in events] == ["b", "c"]


def test_namespace_selectors_use_namespaces_in_the_input(caplog: pytest.LogCaptureFixture) -> None:
    namespaces = {
        "apiVersion": "v1",
        "kind": "List",
        "items": [
            {
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {"name": "shop", "labels": {"env": "prod"}},
            },
            {
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {"name": "lab", "labels": {"env": "dev"}},
            },
        ],
    }
    text = json.dumps(namespaces) + "".join(
        json.dumps(watch_event("ADDED", cm(n, 1, ns=ns)))
        for n, ns in (("a", "shop"), ("b", "lab"), ("c", "elsewhere"), ("d", "elsewhere"))
    )
    events: list[Event] = []
    replayer = Replayer(config("[{kind: cm, namespaceSelector: env=prod}]"), events.append)
    with caplog.at_level(logging.WARNING, logger="kubewatch.replay"):
        stats = replayer.replay(io.StringIO(text))
    assert [e.name for e in events] == ["a"]
    assert not stats.skipped  # the Namespaces were used
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1 and "namespace elsewhere is not in the input" in warnings[0]


def load_k8s_events() -> dict[str, dict[str, Any]]:
    events: dict[str, dict[str, Any]] = json.loads((DATA / "k8s-events.json").read_text())["events"]
    return events


def test_kubernetes_events_become_alerts_in_capture_time() -> None:
    """Every Event counts, however old; the repeat window runs in the Events' own time."""
    k8s = load_k8s_events()
    names = [f"core-backoff-{i}" for i in range(1, 7)] + [
        "core-pulled",
        "core-backoff-web-2",
        "core-node-oom",
    ]
    stream = [
        watch_event("ADDED" if n.endswith(("-1", "pulled", "web-2", "oom")) else "MODIFIED", k8s[n])
        for n in names
    ]
    cfg = config("[{kind: Event, types: [Warning], reasons: [BackOff], repeatWindow: 1m}]")
    events, _ = replay(cfg, stream)
    assert [(e.type.value, e.k8s_event and e.k8s_event.count, e.observed_at) for e in events] == [
        ("create", 1, "2026-11-26T22:34:13.000Z"),
        ("update", 4, "2026-11-26T22:35:13.000Z"),  # one window after the first report
        ("create", 1, "2026-11-26T22:34:18.000Z"),  # web-2
    ]
    assert (
        events[0].summary
        == "[replay] Warning BackOff Pod kw-shop/web-1: Back-off restarting failed container"
    )


def test_errors_in_the_stream_are_logged(caplog: pytest.LogCaptureFixture) -> None:
    stream = [
        {
            "type": "ERROR",
            "object": {"kind": "Status", "code": 410, "message": "too old resource version"},
        },
        {"type": "ADDED"},
        watch_event("ADDED", {"metadata": {"name": "x"}}),
    ]
    with caplog.at_level(logging.WARNING, logger="kubewatch.replay"):
        events, stats = replay(config("[{kind: cm}]"), stream)
    assert not events
    assert (stats.errors, stats.invalid) == (1, 1)
    assert stats.skipped == {"objects without kind/apiVersion": 1}
    assert "too old resource version (code 410)" in caplog.records[0].getMessage()


def test_event_only_keys_on_another_kind_are_an_error_not_a_crash(
    caplog: pytest.LogCaptureFixture,
) -> None:
    stream = [watch_event("ADDED", cm("a", 1))]
    with caplog.at_level(logging.ERROR, logger="kubewatch.replay"):
        events, _ = replay(config("[{kind: cm, reasons: [BackOff]}, {kind: ConfigMap}]"), stream)
    assert what(events) == [("create", "ConfigMap", "a")]
    assert "resources[0].reasons: applies only to kind Event" in caplog.records[0].getMessage()


def test_build_entry_is_the_live_entry() -> None:
    cfg = config("[{kind: cm, updates: {ignore: [data.x]}}]")
    watch = WatchPlan(0, cfg.resources[0], resource_type("v1", "ConfigMap", True), (None,), None)
    started = datetime.now(timezone.utc)
    entry = build_entry(cfg, watch, "prod", NamespaceLabels(), started)
    assert entry.updated(cm("a", 1, x="1"), cm("a", 2, x="2")) is None  # an ignored path
    created = entry.added(cm("a", 1), False)
    assert created is not None
    assert (created.cluster, created.resource, created.api_version) == ("prod", "configmaps", "v1")
    assert created.observed_at >= started.strftime("%Y-%m-%dT%H:%M:%S")
    fixed = datetime(2030, 1, 2, 3, 4, 5, 678000, tzinfo=timezone.utc)
    entry = build_entry(cfg, watch, "prod", NamespaceLabels(), started, clock=lambda: fixed)
    created = entry.added(cm("a", 1), False)
    assert created is not None and created.observed_at == "2030-01-02T03:04:05.678Z"


_STAMPS = [
    "2026-11-26T10:00:05Z",
    "2026-11-26T10:00:04Z",
    "2026-02-30T10:00:09Z",
    "2026-11-26T10:00:05.5Z",
    "2026-11-26T11:00:00+02:00",
    " 2026-11-26T10:00:06Z",
    "9999-99-99T99:99:99Z",
    "soon",
]


@pytest.mark.parametrize("seed", range(40))
def test_the_replay_clock_takes_the_latest_stamp_whatever_their_forms(seed: int) -> None:
    """The text shortcut (whole-second UTC stamps sort as times) agrees with parsing all."""
    rng = random.Random(seed)
    pool = _STAMPS[:2] if seed % 2 else _STAMPS
    stamps: list[Any] = [rng.choice([*pool, None, 3]) for _ in range(rng.randint(0, 5))]
    obj = {
        "metadata": {
            "creationTimestamp": rng.choice(pool),
            "managedFields": [{"time": s} for s in stamps],
        },
        "lastTimestamp": rng.choice([*pool, None]),
    }
    texts = [obj["metadata"]["creationTimestamp"], obj["lastTimestamp"], *stamps]
    times = [t for t in map(parse_time, texts) if t is not None]
    assert _latest_time(obj) == (max(times) if times else None)
