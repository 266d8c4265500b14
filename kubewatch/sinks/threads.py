"""Which chat message an object's thread hangs on: a bounded map that survives restarts.

With ``thread: object`` the first event about an object posts a *root* message; later
events about it (updates, its Kubernetes Event alerts, its delete) reply under it. A
:class:`ThreadBook` remembers, per object, the root's address (channel and message id),
when it was posted, and a short history of what happened to the object (for
``updateRoot``). It is an LRU of at most ``size`` objects; a root older than ``max_age``
is forgotten, so the next event starts a new thread rather than replying to a day-old one.

A book is kept by :class:`ThreadBooks` per sink name for the life of the process, so a
reload (which builds new sinks) keeps threading; with ``state.path`` it is also written
to a :class:`ThreadMemory` (the state database), so a restart keeps threading too.

Events of one object reach a sink in order, one at a time (the delivery lanes), so two
roots for one object cannot race; the book is still locked, since other objects' events
use it from other worker threads.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Protocol

import orjson

from kubewatch.events import Event, EventType
from kubewatch.sinks.kept import PerSink

__all__ = [
    "HISTORY_ENTRIES",
    "ObjectThreads",
    "RootGone",
    "ThreadBook",
    "ThreadBooks",
    "ThreadMemory",
    "ThreadRoot",
    "ThreadSettings",
    "history_line",
    "object_threads",
    "thread_key",
]

HISTORY_ENTRIES = 6
"""Entries of an object's history kept for its root message (the newest)."""


class ThreadMemory(Protocol):
    """Where a book keeps its entries across restarts (:class:`kubewatch.state.Memo`)."""

    def load(self) -> dict[str, bytes]: ...

    def put(self, key: str, value: bytes) -> None: ...

    def delete(self, key: str) -> None: ...


@dataclass(frozen=True, slots=True)
class ThreadRoot:
    """The root message of one object's thread (immutable: replaced, never changed)."""

    channel: str
    """Where the root is (Slack answers with the channel ID; replies must use it)."""
    ts: str
    """The root message's id (Slack's ``ts``)."""
    started: float
    """Epoch seconds the root was posted."""
    history: tuple[str, ...] = ()
    """Short lines, oldest first, of what happened to the object since (``updateRoot``)."""
    last_id: str = ""
    """Id of the event of the newest history line: a retried event is noted once."""

    def to_bytes(self) -> bytes:
        return orjson.dumps(
            {
                "channel": self.channel,
                "ts": self.ts,
                "started": self.started,
                "history": self.history,
                "lastId": self.last_id,
            }
        )

    @classmethod
    def from_bytes(cls, raw: bytes) -> ThreadRoot | None:
        """None for a record this version cannot read (it is then forgotten)."""
        try:
            doc = orjson.loads(raw)
            history = tuple(str(h) for h in doc.get("history") or ())
            started = float(doc["started"])
            return cls(str(doc["channel"]), str(doc["ts"]), started, history, str(doc["lastId"]))
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError):
            return None


def thread_key(event: Event) -> str | None:
    """The object an event is about; None for a digest (it stands for many objects).

    A Kubernetes Event alert belongs to the thread of the object it is about. The uid is
    part of the key: an object deleted and created again under its name is a new object
    and gets a new thread.
    """
    if event.digest is not None:
        return None
    if event.k8s_event is not None:
        obj = event.k8s_event.involved
        return f"{obj.kind}/{obj.namespace or ''}/{obj.name}/{obj.uid}"
    return f"{event.kind}/{event.namespace or ''}/{event.name}/{event.uid}"


class ThreadBook:
    """Object key → :class:`ThreadRoot`, at most ``size`` of them, none older than
    ``max_age`` seconds. Thread-safe."""

    def __init__(
        self,
        size: int,
        max_age: float,
        memory: ThreadMemory | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.size = size
        self.max_age = max_age
        self._memory = memory
        self._clock = clock
        self._lock = threading.Lock()
        self._roots: OrderedDict[str, ThreadRoot] = OrderedDict()  # oldest use first
        if memory is not None:
            self._load(memory)

    def _load(self, memory: ThreadMemory) -> None:
        records = [(k, ThreadRoot.from_bytes(v)) for k, v in memory.load().items()]
        now = self._clock()
        fresh = sorted(
            ((k, r) for k, r in records if r is not None and now - r.started < self.max_age),
            key=lambda kr: kr[1].started,
        )
        kept = dict(fresh[-self.size :])
        for key, _ in records:
            if key not in kept:
                memory.delete(key)
        self._roots.update(kept)

    def resize(self, size: int, max_age: float) -> None:
        """New limits (a reload); entries over the new size go, oldest use first."""
        with self._lock:
            self.size, self.max_age = size, max_age
            while len(self._roots) > self.size:
                self._drop(next(iter(self._roots)))

    def __len__(self) -> int:
        with self._lock:
            return len(self._roots)

    def get(self, key: str) -> ThreadRoot | None:
        """The live root of ``key``'s thread; None when there is none or it is too old."""
        with self._lock:
            root = self._roots.get(key)
            if root is None:
                return None
            if self._clock() - root.started >= self.max_age:
                self._drop(key)
                return None
            self._roots.move_to_end(key)
            return root

    def put(self, key: str, root: ThreadRoot) -> None:
        """Remember ``root`` for ``key`` (the least recently used entry goes if full)."""
        with self._lock:
            self._roots[key] = root
            self._roots.move_to_end(key)
            while len(self._roots) > self.size:
                self._drop(next(iter(self._roots)))
            if self._memory is not None:
                self._memory.put(key, root.to_bytes())

    def note(self, key: str, line: str, event_id: str) -> ThreadRoot | None:
        """Add ``line`` (about event ``event_id``) to the history of ``key``'s root, once
        per event; the root as it is now, or None when ``key`` has none."""
        with self._lock:
            root = self._roots.get(key)
            if root is None or root.last_id == event_id:
                return root
            history = (*root.history, line)[-HISTORY_ENTRIES:]
            root = replace(root, history=history, last_id=event_id)
            self._roots[key] = root
            if self._memory is not None:
                self._memory.put(key, root.to_bytes())
            return root

    def forget(self, key: str) -> None:
        """The root is gone (deleted in the chat): the next event starts a new thread."""
        with self._lock:
            if key in self._roots:
                self._drop(key)

    def _drop(self, key: str) -> None:
        del self._roots[key]
        if self._memory is not None:
            self._memory.delete(key)


class ThreadBooks:
    """One :class:`ThreadBook` per sink name for the life of the process (reloads
    included); ``memory(sink)`` gives a book its durable store, when there is state."""

    def __init__(self, memory: Callable[[str], ThreadMemory] | None = None) -> None:
        self._memory = memory
        self._books: PerSink[ThreadBook] = PerSink()

    def book(self, sink: str, size: int, max_age: float) -> ThreadBook:
        """The book of ``sink``; a changed size or age takes effect, entries stay."""

        def make() -> ThreadBook:
            memory = None if self._memory is None else self._memory(sink)
            return ThreadBook(size, max_age, memory)

        book, made = self._books.get(sink, make)
        if not made:
            book.resize(size, max_age)
        return book


# --------------------------------------------------------------------------- sending

_VERBS = {EventType.CREATE: "created", EventType.UPDATE: "updated", EventType.DELETE: "deleted"}

Post = Callable[[dict[str, Any], "ThreadRoot | None"], tuple[str, str]]
"""Post a payload (as a reply under the root, if given); returns (channel, message id)."""
Update = Callable[[ThreadRoot, dict[str, Any]], None]
"""Replace the root message's content."""
WithHistory = Callable[[dict[str, Any], tuple[str, ...]], dict[str, Any]]
"""The root's new content: the latest event's payload with a line of history added."""


class RootGone(Exception):
    """The chat says the root message (or its thread) no longer exists: start a new one."""


def history_line(event: Event) -> str:
    """``22:10:51 updated``, or the Kubernetes Event's reason for an Event alert."""
    at = event.observed_at[11:19]
    what = event.k8s_event.reason if event.k8s_event is not None else _VERBS[event.type]
    return f"{at} {what}"


class ObjectThreads:
    """Sends the events of one sink into per-object threads (``thread: object``).

    How one event goes out:

    - a digest, or the first event about an object (or one whose thread is older than
      ``threadMaxAge`` or was forgotten): ``post`` without a root — this message is the root;
    - a later event: with ``updateRoot`` first ``update`` of the root (the latest state and
      a short history line, laid out by ``with_history``), then ``post`` under the root.

    The edit comes before the reply because it is idempotent: when the reply fails and the
    delivery layer retries the event, the edit is repeated harmlessly (the history notes
    each event once, by id) and the reply is posted once. A root deleted in the chat (the
    sink raises :class:`RootGone`) is forgotten and the event posted as a new root, within
    the same attempt: never an error loop. Every chat service's sink uses this one class.
    """

    def __init__(
        self,
        book: ThreadBook,
        *,
        update_root: bool,
        post: Post,
        update: Update,
        with_history: WithHistory,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.book = book
        self._update_root = update_root
        self._post = post
        self._update = update
        self._with_history = with_history
        self._clock = clock

    def send(self, event: Event, payload: dict[str, Any]) -> None:
        """One attempt; the sink's errors other than :class:`RootGone` pass through."""
        key = thread_key(event)
        if key is None:  # a digest stands for many objects: one message, no thread
            self._post(payload, None)
            return
        root = self.book.get(key)
        if root is not None:
            try:
                self._reply(key, root, event, payload)
                return
            except RootGone:
                self.book.forget(key)
        channel, ts = self._post(payload, None)
        if not ts:  # no message id in the answer: nothing to thread under
            return
        self.book.put(key, ThreadRoot(channel, ts, self._clock(), (history_line(event),), event.id))

    def _reply(self, key: str, root: ThreadRoot, event: Event, payload: dict[str, Any]) -> None:
        if self._update_root:
            noted = self.book.note(key, history_line(event), event.id) or root
            self._update(noted, self._with_history(payload, noted.history))
        self._post(payload, root)


class ThreadSettings(Protocol):
    """The thread keys of a chat sink's config (``ThreadedChatBase``)."""

    @property
    def thread(self) -> str: ...

    @property
    def update_root(self) -> bool: ...

    @property
    def thread_cache_size(self) -> int: ...

    @property
    def thread_max_age(self) -> float: ...


def object_threads(
    books: ThreadBooks | None,
    sink: str,
    config: ThreadSettings,
    *,
    post: Post,
    update: Update,
    with_history: WithHistory,
    clock: Callable[[], float] = time.time,
) -> ObjectThreads | None:
    """The threads of sink ``sink`` when its config says ``thread: object``, else None;
    without ``books`` (a sink built on its own) the sink keeps its roots itself."""
    if config.thread != "object":
        return None
    book = (books or ThreadBooks()).book(sink, config.thread_cache_size, config.thread_max_age)
    return ObjectThreads(
        book,
        update_root=config.update_root,
        post=post,
        update=update,
        with_history=with_history,
        clock=clock,
    )
