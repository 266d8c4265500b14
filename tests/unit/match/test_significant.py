"""The Store's significant-part shortcut decides exactly as the full diff does.

An update whose significant part (the object without the default ignored paths) is byte
for byte the previous state's is not diffed, nor is the old object decoded: that is only
right if no resource entry's diff, with any ``updates`` config, could have reported
anything. Proven here over random object pairs and random ``ignore``/``watch`` configs,
and end to end through the replay pipeline; and the two parts decode to the object.
"""

from __future__ import annotations

import copy
import sys
import threading
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kubewatch.config import UpdatesConfig, parse_config
from kubewatch.events import Event
from kubewatch.kube import SharedInformer
from kubewatch.kube.store import Store, StoredObject
from kubewatch.match.diff import covers, diff, graft
from kubewatch.match.paths import ALL, DEFAULT_IGNORE_TREE, SECRET_REDACT_TREE, compile_paths
from kubewatch.replay import Replayer, feeds
from kubewatch.replay.offline import resource_type
from kubewatch.watch.normalize import LAST_APPLIED, compact, significant, update_trees
from tests.budget import examples

REVISION = "deployment.kubernetes.io/revision"
KEYS = ["a", "b", "name", "type", "status", "spec", "resourceVersion", "generation", REVISION]

leaf = (
    st.none()
    | st.booleans()
    | st.integers(-2, 2)
    | st.floats(allow_nan=False, allow_infinity=False, width=16)
    | st.sampled_from(["x", "y", "1"])
)
value = st.recursive(
    leaf,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.sampled_from(KEYS), inner, max_size=3)
        | st.lists(
            st.fixed_dictionaries({"name": st.sampled_from(["p", "q"])}, optional={"b": inner})
        )
    ),
    max_leaves=8,
)
metadata = st.fixed_dictionaries(
    {"name": st.just("o")},
    optional={
        "resourceVersion": value,
        "generation": value,
        "labels": st.dictionaries(st.sampled_from(["a", "b"]), st.sampled_from(["x", "y"])),
        "annotations": st.dictionaries(st.sampled_from([REVISION, LAST_APPLIED, "a"]), value),
        "a": value,
    },
)
objects = st.fixed_dictionaries(
    {"metadata": metadata}, optional={"spec": value, "status": value, "a": value}
)
# Changes an update may make: mostly where the default ignores look, sometimes elsewhere.
PLACES = [
    ("status",),
    ("metadata", "resourceVersion"),
    ("metadata", "generation"),
    ("metadata", "annotations", REVISION),
    ("metadata", "annotations", LAST_APPLIED),
    ("metadata", "managedFields"),
    ("spec",),
    ("metadata", "labels"),
    ("a",),
    ("metadata", "a"),
]
EXTRA_IGNORES = ["spec", "spec.*", "spec.a", "a.**", "metadata.labels.a", "spec[*].b", "*.b"]
WATCHES = ["spec", "spec.a", "spec[*].b", "spec[p].b", "metadata.labels", "a", "*", "metadata.*"]


@st.composite
def updates(draw: st.DrawFn) -> tuple[dict[str, Any], dict[str, Any]]:
    """(old, new): a random object and a random change of it at a few places."""
    old = draw(objects)
    new = copy.deepcopy(old)
    for place in draw(st.lists(st.sampled_from(PLACES), max_size=3)):
        target = new
        for key in place[:-1]:
            target = target.setdefault(key, {}) if isinstance(target, dict) else {}
        if isinstance(target, dict):
            if draw(st.booleans()):
                target[place[-1]] = draw(value)
            else:
                target.pop(place[-1], None)
    return old, new


def cached(obj: dict[str, Any]) -> dict[str, Any]:
    """What the informer holds and hands out: compacted, and the old side as decoded."""
    return compact(orjson.loads(orjson.dumps(obj)))


def quiet(old: dict[str, Any], new: dict[str, Any]) -> bool:
    """What the informer decides: the significant parts are equal bytes."""
    return orjson.dumps(significant(old)[0]) == orjson.dumps(significant(new)[0])


@given(
    updates(),
    st.lists(st.sampled_from(EXTRA_IGNORES), max_size=2),
    st.lists(st.sampled_from(WATCHES), max_size=2),
    st.booleans(),
)
@settings(max_examples=examples(1000), deadline=None)
def test_equal_significant_parts_mean_no_changes_for_any_config(
    pair: tuple[dict[str, Any], dict[str, Any]],
    ignores: list[str],
    watches: list[str],
    secret: bool,
) -> None:
    old, new = cached(pair[0]), compact(copy.deepcopy(pair[1]))
    if not quiet(old, new):
        return  # the informer diffs as before
    ignore, only = update_trees(UpdatesConfig(ignore=tuple(ignores), watch=tuple(watches)))
    redact = SECRET_REDACT_TREE if secret else None
    assert diff(old, new, ignore, redact=redact, only=only) == []


@given(updates())
@settings(max_examples=examples(300), deadline=None)
def test_a_reported_change_is_never_quiet_and_the_parts_decode_to_the_object(
    pair: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    old, new = cached(pair[0]), compact(copy.deepcopy(pair[1]))
    if diff(old, new, DEFAULT_IGNORE_TREE):
        assert not quiet(old, new)
    store = Store()
    for obj in (old, new):
        _, stored = store.put("ns/o", copy.deepcopy(obj), significant)
        assert stored.decode() == obj
        assert StoredObject("u", "1", stored.blob).decode() == obj  # a checkpoint's
        assert graft(*copy.deepcopy(significant(obj))) == obj


def test_status_only_updates_are_quiet_and_spec_changes_are_not() -> None:
    pod = {
        "metadata": {"name": "p", "resourceVersion": "1", "generation": 1},
        "spec": {"containers": [{"name": "web", "image": "web:1"}]},
        "status": {"phase": "Pending"},
    }
    status = copy.deepcopy(pod)
    status["metadata"]["resourceVersion"] = "2"
    status["status"]["phase"] = "Running"
    image = copy.deepcopy(status)
    image["spec"]["containers"][0]["image"] = "web:2"
    assert quiet(pod, status) and not quiet(status, image)
    store = Store()
    _, first = store.put("p", pod, significant)
    _, second = store.put("p", status, significant)
    _, third = store.put("p", image, significant)
    assert second.same_significant(first) and not third.same_significant(second)
    assert not StoredObject("u", "1", first.blob).same_significant(first)  # no parts: diff
    assert store.nbytes() == len(third.data) + len(third.rest or b"")


def test_covers() -> None:
    default = DEFAULT_IGNORE_TREE
    assert covers(default, default) and covers(ALL, default) and not covers(default, ALL)
    assert covers(update_trees(UpdatesConfig(ignore=("spec.a",)))[0], default)
    assert not covers(compile_paths(["status"]), default)
    assert covers(compile_paths(["*"]), default) and covers(compile_paths(["**"]), default)
    assert not covers(compile_paths(["metadata.x"]), compile_paths(["metadata.*"]))


# --------------------------------------------------------------------------- end to end


def pod_event(event_type: str, rv: int, **parts: Any) -> dict[str, Any]:
    obj = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p", "namespace": "ns", "uid": "u", "resourceVersion": str(rv)},
        **parts,
    }
    return {"type": event_type, "object": obj}


CONFIGS = [
    "[{kind: Pod}]",
    "[{kind: Pod, updates: {watch: [spec.a]}}]",
    "[{kind: Pod, updates: {ignore: [spec.b]}}, {kind: Pod, events: [update]}]",
    "[{kind: Pod, health: {}}]",
]


def replayed(config: str, events: list[dict[str, Any]], *, shortcut: bool) -> list[Event]:
    out: list[Event] = []
    cfg = parse_config(f"resources: {config}\nsinks: {{c: {{type: stdout}}}}\n")
    with pytest.MonkeyPatch.context() as mp:
        if not shortcut:
            mp.setattr(feeds, "significant", None)
        replayer = Replayer(cfg, out.append)
        for event in events:
            replayer.feed(copy.deepcopy(event))
    return out


@pytest.mark.parametrize("config", CONFIGS)
@given(st.lists(st.tuples(st.sampled_from(PLACES[:3] + PLACES[6:9]), value), max_size=6))
@settings(max_examples=examples(100), deadline=None)
def test_replay_reports_the_same_with_and_without_the_shortcut(
    config: str, changes: list[tuple[tuple[str, ...], Any]]
) -> None:
    events = [pod_event("ADDED", 1, spec={"a": 1}, status={"phase": "Pending"})]
    obj = copy.deepcopy(events[0]["object"])
    for rv, (place, new) in enumerate(changes, start=2):
        target = obj
        for key in place[:-1]:
            target = target.setdefault(key, {})
        target[place[-1]] = new
        obj["metadata"]["resourceVersion"] = str(rv)
        events.append({"type": "MODIFIED", "object": copy.deepcopy(obj)})

    def brief(events: list[Event]) -> list[Any]:
        return [(e.type, e.resource_version, e.changes, e.summary, e.labels) for e in events]

    assert brief(replayed(config, events, shortcut=True)) == brief(
        replayed(config, events, shortcut=False)
    )


def test_a_status_only_update_decodes_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    decoded: list[bytes] = []
    real = StoredObject.decode
    monkeypatch.setattr(
        StoredObject, "decode", lambda self: decoded.append(self.data) or real(self)
    )
    out: list[Event] = []
    replayer = Replayer(
        parse_config("resources: [{kind: Pod}]\nsinks: {c: {type: stdout}}\n"), out.append
    )
    replayer.feed(pod_event("ADDED", 1, spec={"a": 1}, status={"phase": "Pending"}))
    replayer.feed(pod_event("MODIFIED", 2, spec={"a": 1}, status={"phase": "Running"}))
    assert decoded == [] and [e.type.value for e in out] == ["create"]
    replayer.feed(pod_event("MODIFIED", 3, spec={"a": 2}, status={"phase": "Running"}))
    assert len(decoded) == 1 and [e.type.value for e in out] == ["create", "update"]


def test_handlers_without_the_quiet_hook_get_on_update() -> None:
    seen: list[tuple[Any, Any]] = []

    class Plain:
        def on_add(self, obj: dict[str, Any], is_initial_list: bool) -> None:
            pass

        def on_update(self, old: dict[str, Any], new: dict[str, Any]) -> None:
            seen.append((old["status"], new["status"]))

        def on_delete(self, obj: Any) -> None:
            pass

    informer = feeds.offline_informer("pods", resource_type("v1", "Pod", True))
    assert isinstance(informer, SharedInformer)
    informer.add_handler(Plain())
    informer.watch_event("ADDED", pod_event("ADDED", 1, status={"x": 1})["object"])
    informer.watch_event("MODIFIED", pod_event("MODIFIED", 2, status={"x": 2})["object"])
    assert seen == [({"x": 1}, {"x": 2})]


def test_split_store_under_thread_stress() -> None:
    """Writers put states of a few objects in two parts while readers decode them: every
    decode is one whole state that was put (never a part of one and the rest of another),
    and only states of equal spec compare as quiet."""
    states = [
        {"metadata": {"name": "o", "resourceVersion": str(i)}, "spec": {"v": i % 3}, "status": i}
        for i in range(30)
    ]
    store, errors = Store(), []
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)

    def write(n: int) -> None:
        for i in range(300):
            store.put(f"k{i % 3}", copy.deepcopy(states[(i * n) % len(states)]), significant)

    def read() -> None:
        for i in range(300):
            stored = store.get(f"k{i % 3}")
            if stored is None:
                continue
            obj = stored.decode()
            if obj not in states:
                errors.append(obj)
            other = store.get(f"k{(i + 1) % 3}")
            quiet = other is not None and other.same_significant(stored)
            if quiet and other is not None and other.decode()["spec"] != obj["spec"]:
                errors.append((obj, other.decode()))

    try:
        threads = [threading.Thread(target=write, args=(n,)) for n in range(1, 5)]
        threads += [threading.Thread(target=read) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(old)
    assert errors == [] and len(store) == 3
