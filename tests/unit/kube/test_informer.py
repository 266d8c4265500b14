"""Reflector + Store + SharedInformer against a scripted ListerWatcher (no server)."""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from kubewatch.errors import ApiError, WatchExpired
from kubewatch.kube import (
    DeletedFinalStateUnknown,
    Reflector,
    ReflectorSettings,
    SharedInformer,
    Store,
)
from kubewatch.kube.reflector import reflector_backoff

FAST = ReflectorSettings(
    page_size=2, backoff_initial=0.001, backoff_max=0.002, min_watch_duration=0.0
)


def cm(
    name: str, rv: int, uid: str | None = None, ns: str = "default", **data: str
) -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "namespace": ns,
            "uid": uid or f"uid-{name}",
            "resourceVersion": str(rv),
            "managedFields": [{"manager": "kubectl"}],
        },
        "data": dict(data),
    }


def ev(kind: str, obj: dict[str, Any]) -> dict[str, Any]:
    return {"type": kind, "object": obj}


def bookmark(rv: int) -> dict[str, Any]:
    return {
        "type": "BOOKMARK",
        "object": {"kind": "ConfigMap", "metadata": {"resourceVersion": str(rv)}},
    }


class FakeStream:
    """Yields scripted items (raising the exceptions among them), then blocks until closed."""

    def __init__(self, items: list[Any], block: bool) -> None:
        self.items = items
        self.block = block
        self.closed = threading.Event()

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for item in self.items:
            if self.closed.is_set():
                return
            if isinstance(item, BaseException):
                raise item
            yield item
        if self.block:
            self.closed.wait()

    def close(self) -> None:
        self.closed.set()


class FakeListerWatcher:
    """Scripted lists (each a list of pages, or an exception) and watches (event lists).

    When the scripts run out, a watch blocks like an idle stream until closed; ``done`` is
    set then, so a test knows that everything scripted was consumed.
    """

    def __init__(self, lists: list[Any], watches: list[list[Any]]) -> None:
        self.lists = list(lists)
        self.watches = list(watches)
        self.list_calls: list[str | None] = []
        self.watch_calls: list[str] = []
        self.done = threading.Event()
        self._pages: list[dict[str, Any]] = []

    def list_page(self, *, limit: int, continue_token: str | None) -> dict[str, Any]:
        self.list_calls.append(continue_token)
        if continue_token is None:
            script = self.lists.pop(0)
            if isinstance(script, BaseException):
                raise script
            self._pages = list(script)
        page = self._pages.pop(0)
        if isinstance(page, BaseException):
            raise page
        return page

    def watch(self, *, resource_version: str, timeout_seconds: int) -> FakeStream:
        assert resource_version, "a watch must never start without a resourceVersion"
        self.watch_calls.append(resource_version)
        if self.watches:
            return FakeStream(self.watches.pop(0), block=False)
        self.done.set()
        return FakeStream([], block=True)


def pages(rv: int, *objs: dict[str, Any], size: int = 2) -> list[dict[str, Any]]:
    """A paged list response: items without kind/apiVersion, as the server sends them."""
    chunks = [list(objs[i : i + size]) for i in range(0, len(objs), size)] or [[]]
    out = []
    for i, chunk in enumerate(chunks):
        last = i == len(chunks) - 1
        meta = {"resourceVersion": str(rv)} if last else {"continue": f"c{i}"}
        out.append({"items": chunk, "metadata": meta})
    return out


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def on_add(self, obj: dict[str, Any], is_initial_list: bool) -> None:
        self.calls.append(
            ("add", obj["metadata"]["name"], obj["metadata"]["resourceVersion"], is_initial_list)
        )

    def on_update(self, old: dict[str, Any], new: dict[str, Any]) -> None:
        self.calls.append(
            (
                "update",
                new["metadata"]["name"],
                old["metadata"]["resourceVersion"],
                new["metadata"]["resourceVersion"],
            )
        )

    def on_delete(self, obj: dict[str, Any] | DeletedFinalStateUnknown) -> None:
        if isinstance(obj, DeletedFinalStateUnknown):
            self.calls.append(
                (
                    "delete-unknown",
                    obj.obj["metadata"]["name"],
                    obj.obj["metadata"]["resourceVersion"],
                )
            )
        else:
            self.calls.append(
                ("delete", obj["metadata"]["name"], obj["metadata"]["resourceVersion"])
            )


def run_informer(
    lw: FakeListerWatcher, settings: ReflectorSettings = FAST
) -> tuple[SharedInformer, Recorder]:
    informer = SharedInformer(
        "configmaps",
        lw,
        kind="ConfigMap",
        api_version="v1",
        settings=settings,
        rng=random.Random(1),
    )
    recorder = Recorder()
    informer.add_handler(recorder)
    informer.start()
    assert lw.done.wait(5), "the scripted list/watch calls were not all consumed"
    informer.stop()
    return informer, recorder


def test_initial_list_is_paged_announced_as_initial_and_typed() -> None:
    lw = FakeListerWatcher([pages(10, cm("a", 1), cm("b", 2), cm("c", 3))], [])
    informer, rec = run_informer(lw)
    assert rec.calls == [("add", "a", "1", True), ("add", "b", "2", True), ("add", "c", "3", True)]
    assert lw.list_calls == [None, "c0"]
    assert lw.watch_calls == ["10"]
    assert informer.has_synced
    stored = informer.store.get("default/a")
    assert stored is not None
    obj = stored.decode()
    assert obj["kind"] == "ConfigMap" and obj["apiVersion"] == "v1"
    assert "managedFields" not in obj["metadata"]


def test_watch_events_update_store_and_resource_version() -> None:
    lw = FakeListerWatcher(
        [pages(10, cm("a", 1))],
        [
            [
                ev("ADDED", cm("b", 11)),
                ev("MODIFIED", cm("a", 12, x="1")),
                ev("MODIFIED", cm("a", 12, x="1")),  # same RV again: not an update
                bookmark(15),
                ev("DELETED", cm("b", 16)),
            ]
        ],
    )
    informer, rec = run_informer(lw)
    assert rec.calls == [
        ("add", "a", "1", True),
        ("add", "b", "11", False),
        ("update", "a", "1", "12"),
        ("delete", "b", "16"),
    ]
    assert lw.watch_calls == ["10", "16"]  # the bookmark and the delete advanced the RV
    assert informer.store.keys() == ["default/a"]


def test_in_stream_410_relists_and_reports_each_gap_change_once() -> None:
    before = [cm("same", 1), cm("changed", 2), cm("deleted", 3), cm("recreated", 4, uid="old")]
    after = [
        cm("same", 1),
        cm("changed", 20, v="2"),
        cm("created", 21),
        cm("recreated", 22, uid="new"),
    ]
    expired = {
        "type": "ERROR",
        "object": {"kind": "Status", "code": 410, "reason": "Expired", "message": "too old"},
    }
    lw = FakeListerWatcher([pages(10, *before), pages(30, *after)], [[expired]])
    informer, rec = run_informer(lw)
    gap = rec.calls[4:]
    assert sorted(gap) == sorted(
        [
            ("update", "changed", "2", "20"),
            ("add", "created", "21", False),
            ("delete-unknown", "recreated", "4"),
            ("add", "recreated", "22", False),
            ("delete-unknown", "deleted", "3"),
        ]
    )
    # the delete of the old incarnation comes before the add of the new one
    assert gap.index(("delete-unknown", "recreated", "4")) < gap.index(
        ("add", "recreated", "22", False)
    )
    assert lw.watch_calls == ["10", "30"]
    assert sorted(informer.store.keys()) == [
        "default/changed",
        "default/created",
        "default/recreated",
        "default/same",
    ]
    assert informer.reflector.relists == 1


def test_http_410_on_watch_relists() -> None:
    lw = FakeListerWatcher([pages(10, cm("a", 1)), pages(30, cm("a", 25))], [[WatchExpired()]])
    _, rec = run_informer(lw)
    assert rec.calls == [("add", "a", "1", True), ("update", "a", "1", "25")]


def test_expired_continue_token_lists_again_from_scratch() -> None:
    first = [*pages(10, cm("a", 1), cm("b", 2))[:1], WatchExpired("continue expired")]
    first[0] = {"items": [cm("a", 1), cm("b", 2)], "metadata": {"continue": "c0"}}
    lw = FakeListerWatcher([first, pages(12, cm("a", 1), cm("c", 3))], [])
    informer, rec = run_informer(lw)
    # a and b were listed before the token expired; the fresh list has a and c, not b.
    assert rec.calls == [
        ("add", "a", "1", True),
        ("add", "b", "2", True),
        ("add", "c", "3", True),
        ("delete-unknown", "b", "2"),
    ]
    assert lw.list_calls == [None, "c0", None]
    assert sorted(informer.store.keys()) == ["default/a", "default/c"]


def test_broken_watch_resumes_from_last_resource_version_without_relisting() -> None:
    lw = FakeListerWatcher(
        [pages(10, cm("a", 1))],
        [
            [ev("MODIFIED", cm("a", 11)), ConnectionError("reset")],
            [ApiError(500, "InternalError")],
            [ev("MODIFIED", cm("a", 12))],
        ],
    )
    _, rec = run_informer(lw)
    assert rec.calls == [
        ("add", "a", "1", True),
        ("update", "a", "1", "11"),
        ("update", "a", "11", "12"),
    ]
    assert lw.list_calls == [None]
    assert lw.watch_calls == ["10", "11", "11", "12"]


def test_failures_back_off_and_never_loop_hot() -> None:
    """Every failing call (403, 404, refused, empty watches) is followed by a backoff wait."""
    delays: list[float] = []
    settings = ReflectorSettings(backoff_initial=0.001, backoff_max=0.004, min_watch_duration=10.0)
    lw = FakeListerWatcher(
        [
            ApiError(403, "Forbidden"),
            ApiError(404, "NotFound"),
            ConnectionError("refused"),
            pages(10),
        ],
        [[], []],  # two watches that end at once with no event
    )
    informer = SharedInformer("cm", lw, kind="ConfigMap", api_version="v1", settings=settings)
    original = informer.reflector._fail

    def record(why: str) -> None:
        delays.append(why)  # type: ignore[arg-type]
        original(why)

    informer.reflector._fail = record  # type: ignore[method-assign]
    informer.start()
    assert lw.done.wait(5)
    informer.stop()
    assert len(delays) == 5  # 3 failed lists + 2 empty watches


def test_backoff_grows_caps_and_resets_after_a_healthy_period() -> None:
    now = [0.0]
    b = reflector_backoff(
        ReflectorSettings(backoff_initial=1, backoff_max=8, backoff_reset=60),
        random.Random(0),
        lambda: now[0],
    )
    caps = []
    for _ in range(6):
        d = b.next_delay()
        caps.append(d)
    assert all(0.5 <= d <= 1 for d in caps[:1])
    assert 4 <= caps[-1] <= 8 and 4 <= caps[-2] <= 8
    now[0] += 61
    assert 0.5 <= b.next_delay() <= 1


def test_stop_unblocks_a_blocked_read() -> None:
    lw = FakeListerWatcher([pages(10, cm("a", 1))], [])
    informer = SharedInformer("cm", lw, kind="ConfigMap", api_version="v1", settings=FAST)
    informer.start()
    assert lw.done.wait(5)  # now blocked inside the idle watch
    informer.stop(timeout=5)
    assert informer._thread is not None and not informer._thread.is_alive()


def test_a_failing_handler_does_not_stop_the_others() -> None:
    class Boom:
        def on_add(self, obj: dict[str, Any], is_initial_list: bool) -> None:
            raise RuntimeError("bug")

        def on_update(self, old: dict[str, Any], new: dict[str, Any]) -> None:
            raise RuntimeError("bug")

        def on_delete(self, obj: object) -> None:
            raise RuntimeError("bug")

    lw = FakeListerWatcher([pages(10, cm("a", 1))], [[ev("MODIFIED", cm("a", 2))]])
    informer = SharedInformer("cm", lw, kind="ConfigMap", api_version="v1", settings=FAST)
    rec = Recorder()
    informer.add_handler(Boom())  # type: ignore[arg-type]
    informer.add_handler(rec)
    informer.start()
    assert lw.done.wait(5)
    informer.stop()
    assert rec.calls == [("add", "a", "1", True), ("update", "a", "1", "2")]


def test_a_handler_joining_a_running_informer_hears_the_store_then_every_change() -> None:
    """client-go's AddEventHandler after start: the Store's objects as initial adds (of
    one namespace when asked), then live changes; a removed handler hears nothing more."""
    gate = threading.Event()
    lw = FakeListerWatcher(
        [pages(10, cm("a", 1), cm("b", 2, ns="other"))],
        [[ev("MODIFIED", cm("a", 3))]],
    )
    informer = SharedInformer("cm", lw, kind="ConfigMap", api_version="v1", settings=FAST)
    first = Recorder()
    informer.add_handler(first)
    original_watch = lw.watch

    def gated_watch(*, resource_version: str, timeout_seconds: int) -> FakeStream:
        gate.wait(5)
        return original_watch(resource_version=resource_version, timeout_seconds=timeout_seconds)

    lw.watch = gated_watch  # type: ignore[method-assign]
    informer.start()
    assert informer.wait_for_sync(5)
    late, in_default, gone = Recorder(), Recorder(), Recorder()
    informer.add_handler(late)
    informer.add_handler(in_default, namespace="default")
    informer.add_handler(gone)
    informer.remove_handler(gone)
    assert informer.handler_count == 3
    gate.set()
    assert lw.done.wait(5)
    informer.stop()
    assert late.calls == [
        ("add", "a", "1", True),
        ("add", "b", "2", True),
        ("update", "a", "1", "3"),
    ]
    assert in_default.calls == [("add", "a", "1", True), ("update", "a", "1", "3")]
    assert gone.calls == [("add", "a", "1", True), ("add", "b", "2", True)]
    assert first.calls == late.calls


def test_garbage_events_are_skipped() -> None:
    lw = FakeListerWatcher(
        [pages(10, cm("a", 1))],
        [
            [
                {"type": "MODIFIED"},
                {"type": "WHATEVER", "object": {}},
                {"object": "x"},
                ev("MODIFIED", cm("a", 2)),
            ]
        ],
    )
    _, rec = run_informer(lw)
    assert rec.calls == [("add", "a", "1", True), ("update", "a", "1", "2")]


def test_store_hands_out_fresh_copies() -> None:
    store = Store()
    obj = cm("a", 1)
    store.put("default/a", obj)
    obj["data"]["x"] = "mutated after put"
    first = store.get("default/a")
    assert first is not None
    copy = first.decode()
    copy["data"]["y"] = "mutated copy"
    again = store.get("default/a")
    assert again is not None
    assert again.decode()["data"] == {}
    assert (again.uid, again.resource_version) == ("uid-a", "1")
    assert store.delete("default/a") is not None and len(store) == 0


def test_reflector_fills_kind_only_when_missing() -> None:
    lw = FakeListerWatcher([pages(10, {**cm("a", 1), "kind": "Other", "apiVersion": "x/v1"})], [])
    seen: list[dict[str, Any]] = []

    class Target:
        def replace_begin(self) -> None: ...
        def replace_item(self, obj: dict[str, Any]) -> None:
            seen.append(obj)

        def replace_end(self) -> None: ...
        def watch_event(self, event_type: str, obj: dict[str, Any]) -> None: ...

    r = Reflector("cm", lw, Target(), kind="ConfigMap", api_version="v1", settings=FAST)
    t = threading.Thread(target=r.run)
    t.start()
    assert lw.done.wait(5)
    r.stop()
    t.join(5)
    assert (seen[0]["kind"], seen[0]["apiVersion"]) == ("Other", "x/v1")


class SteppedTime:
    """A monotonic clock that moves only when the Reflector waits (no real sleeps)."""

    def __init__(self) -> None:
        self.now = 0.0
        self.waits: list[float] = []

    def __call__(self) -> float:
        return self.now

    def wait(self, seconds: float) -> bool:
        self.waits.append(seconds)
        self.now += seconds
        return False


class GoneAlways:
    """A server that lists fine and answers every watch with 410 Gone."""

    def __init__(self, reflector_lists: int) -> None:
        self.limit = reflector_lists
        self.lists = 0
        self.reflector: Reflector | None = None

    def list_page(self, *, limit: int, continue_token: str | None) -> dict[str, Any]:
        self.lists += 1
        if self.lists >= self.limit and self.reflector is not None:
            self.reflector.stop()
        return pages(self.lists, cm("a", self.lists))[0]

    def watch(self, *, resource_version: str, timeout_seconds: int) -> FakeStream:
        raise WatchExpired("too old resource version")


class NullTarget:
    def replace_begin(self) -> None: ...
    def replace_item(self, obj: dict[str, Any]) -> None: ...
    def replace_end(self) -> None: ...
    def watch_event(self, event_type: str, obj: dict[str, Any]) -> None: ...


def test_410_for_every_watch_lists_under_the_backoff_with_the_defaults() -> None:
    """A relist is a list-and-watch cycle like any other: it waits under the backoff, so a
    server that answers every watch with 410 gets far less than one LIST per second, with
    the waits growing to the 30 s cap (the defaults), never a hot loop."""
    time_ = SteppedTime()
    server = GoneAlways(reflector_lists=60)
    reflector = Reflector(
        "cm",
        server,
        NullTarget(),
        kind="ConfigMap",
        api_version="v1",
        rng=random.Random(3),
        clock=time_,
        wait=time_.wait,
    )
    server.reflector = reflector
    reflector.run()  # returns once the fake server stopped it
    assert server.lists == 60
    assert len(time_.waits) == 59  # one wait before every LIST after the first
    assert server.lists / time_.now < 0.1  # LISTs per (simulated) second
    defaults = ReflectorSettings()
    assert max(time_.waits) <= defaults.backoff_max
    assert time_.waits[-1] >= defaults.backoff_max / 2
    assert reflector.relists == 59
    assert reflector.failure is None  # 410 is no failure: the list after it works


def test_a_410_after_a_productive_watch_relists_at_once() -> None:
    """The gap after a watch that applied events is what the relist closes: no wait."""
    time_ = SteppedTime()
    lw = FakeListerWatcher(
        [pages(5, cm("a", 1)), pages(9, cm("a", 8))],
        [[ev("MODIFIED", cm("a", 6)), WatchExpired("too old")]],
    )
    reflector = Reflector(
        "cm", lw, NullTarget(), kind="ConfigMap", api_version="v1", clock=time_, wait=time_.wait
    )

    def after_the_list(seconds: float = 5.0) -> None:
        time_.now += seconds  # the watch ran for a while before its 410

    original = lw.watch

    def watch(**kwargs: Any) -> FakeStream:
        after_the_list()
        return original(**kwargs)

    lw.watch = watch  # type: ignore[method-assign]
    thread = threading.Thread(target=reflector.run, daemon=True)
    thread.start()
    assert lw.done.wait(5)
    reflector.stop()
    thread.join(5)
    assert reflector.relists == 1
    assert time_.waits == []


def test_expired_continue_tokens_do_not_relist_hot() -> None:
    """An expired continue token starts the list again from scratch after a backoff wait."""
    time_ = SteppedTime()
    expired = WatchExpired("continue expired")
    page1 = {"items": [cm("a", 1)], "metadata": {"continue": "c1"}}
    lw = FakeListerWatcher([[page1, expired], [page1, expired], pages(5, cm("a", 1))], [])
    reflector = Reflector(
        "cm",
        lw,
        NullTarget(),
        kind="ConfigMap",
        api_version="v1",
        rng=random.Random(3),
        clock=time_,
        wait=time_.wait,
    )
    thread = threading.Thread(target=reflector.run, daemon=True)
    thread.start()
    assert lw.done.wait(5)
    reflector.stop()
    thread.join(5)
    assert len(time_.waits) == 2
    assert all(w > 0 for w in time_.waits)


@pytest.mark.parametrize(
    ("script_lists", "script_watches", "reason"),
    [
        pytest.param([ApiError(403, "Forbidden", "no list")], [], "HTTP 403", id="list-403"),
        pytest.param(
            [pages(3)], [[ApiError(403, "Forbidden", "no watch")]], "HTTP 403", id="watch-403"
        ),
        pytest.param([ConnectionError("refused")], [], "refused", id="refused"),
        pytest.param(
            [pages(3)],
            [[ConnectionError("watch /x: no data for 90s, presumed dead")]],
            "presumed dead",
            id="frozen",
        ),
    ],
)
def test_a_failed_attempt_is_the_reflectors_failure_until_one_succeeds(
    script_lists: list[Any], script_watches: list[list[Any]], reason: str
) -> None:
    """``failure`` names the reason from the first failed attempt; an answered watch
    clears it."""
    seen: list[str | None] = []
    lw = FakeListerWatcher([*script_lists, pages(4)], script_watches)
    reflector = Reflector("cm", lw, NullTarget(), kind="ConfigMap", api_version="v1")
    reflector._wait = lambda _s: seen.append(reflector.failure)  # type: ignore[assignment]
    thread = threading.Thread(target=reflector.run, daemon=True)
    thread.start()
    assert lw.done.wait(5)
    reflector.stop()
    thread.join(5)
    assert seen and seen[0] is not None and reason in seen[0]
    assert reflector.failure is None


def test_the_store_lists_one_namespaces_keys_through_its_index() -> None:
    store = Store()
    store.put("a/x", cm("x", 1, ns="a"))
    store.put("b/y", cm("y", 2, ns="b"))
    store.put("a/z", cm("z", 3, ns="a"))
    store.put("a/x", cm("x", 4, ns="a"))  # an update: indexed once
    store.put("node-1", {"metadata": {"name": "node-1", "uid": "n", "resourceVersion": "5"}})
    stored = store.get("b/y")
    assert stored is not None
    store.load([("c/w", stored)])
    assert sorted(store.keys("a")) == ["a/x", "a/z"]
    assert store.keys("c") == ["c/w"]
    store.delete("a/x")
    store.delete("b/y")
    store.delete("node-1")
    assert store.keys("a") == ["a/z"]
    assert store.keys("b") == [] and store._by_namespace.keys() == {"a", "c"}
    assert sorted(store.keys()) == ["a/z", "c/w"]
