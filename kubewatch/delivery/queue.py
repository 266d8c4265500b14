"""Bounded, keyed, drop-oldest queues: the first layer of delivery.

A :class:`ShardedQueue` holds the events waiting for one sink. It is split into one
:class:`Shard` per worker thread; an item goes to the shard chosen by a stable hash of
its key, so items of one key are always taken by the same worker in the order they were
put (per-key order) while items of different keys are spread over all workers.

Overflow policy: a full shard drops its OLDEST item to make room and hands it back to
the caller, who logs and counts it. Newer state beats older state for a change
notifier, and the producer (a watch thread) never waits. A producer that must not lose
anything (an offline replay) waits for room first with :meth:`Shard.wait_for_room`.
"""

from __future__ import annotations

import threading
import zlib
from collections import deque
from collections.abc import Callable
from typing import Generic, TypeVar

_T = TypeVar("_T")


class QueueClosed(RuntimeError):
    """``put`` after ``close``: the queue accepts nothing more."""


def shard_capacities(queue_size: int, workers: int) -> tuple[int, ...]:
    """Split ``queue_size`` over at most ``workers`` shards, each holding at least one item.

    The capacities sum to exactly ``queue_size``: 10 over 4 workers is (3, 3, 2, 2). When
    ``queue_size < workers`` there are only ``queue_size`` shards of 1 (so only that many
    workers): a total that exceeded ``queue_size`` would break the configured bound.
    """
    if queue_size < 1 or workers < 1:
        raise ValueError("queue_size and workers must be at least 1")
    shards = min(workers, queue_size)
    base, extra = divmod(queue_size, shards)
    return tuple(base + (1 if i < extra else 0) for i in range(shards))


def shard_of(key: str, shards: int) -> int:
    """The shard of ``key``: CRC-32, stable across processes (unlike ``hash(str)``),
    so a log line's shard can be reproduced and tests are deterministic."""
    return zlib.crc32(key.encode()) % shards


class Shard(Generic[_T]):
    """One worker's FIFO: bounded, drop-oldest, and closable.

    Invariants, all under ``_cond``:

    - ``len(_items) <= capacity``, always, including right after a ``put``;
    - once ``_closed`` is True no item is ever added again; ``get`` returns what is
      left, then ``None`` forever.

    ``_cond`` wakes the worker (items arrived); ``_room``, on the same lock, wakes
    producers in :meth:`wait_for_room` (items left, or the shard closed).
    """

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self._items: deque[_T] = deque()
        self._closed = False
        lock = threading.Lock()
        self._cond = threading.Condition(lock)
        self._room = threading.Condition(lock)

    def put(self, item: _T, *, over: bool = False) -> _T | None:
        """Append ``item`` without ever blocking; return the oldest item dropped for it.
        ``over``: never drop, go over ``capacity`` instead (for a bounded few: a window's
        digests, which each stand for many events)."""
        with self._cond:
            if self._closed:
                raise QueueClosed("queue is closed")
            full = len(self._items) >= self.capacity and not over
            dropped = self._items.popleft() if full else None
            self._items.append(item)
            self._cond.notify()
            return dropped

    def get(self) -> _T | None:
        """Block until an item is available; ``None`` once closed and empty."""
        with self._cond:
            while not self._items:
                if self._closed:
                    return None
                self._cond.wait()
            item = self._items.popleft()
            self._room.notify_all()
            return item

    def get_nowait(self) -> _T | None:
        """The oldest item, or ``None`` when there is none now (never blocks)."""
        with self._cond:
            if not self._items:
                return None
            item = self._items.popleft()
            self._room.notify_all()
            return item

    def has_room(self, free: int = 1) -> bool:
        """Whether ``free`` items (at most ``capacity``) fit now without a drop; stale
        as soon as it is read unless the caller is the shard's only producer."""
        with self._cond:
            return self.capacity - len(self._items) >= min(free, self.capacity)

    def wait_for_room(self, free: int = 1, timeout: float | None = None) -> bool:
        """Block until at least ``free`` items (at most ``capacity``) fit without a drop.

        True when they do; False when the shard is closed (it wakes at once) or
        ``timeout`` seconds passed. Room is only ever made by ``get`` and ``clear``, so
        it lasts until the next ``put``: a lone producer that waits, then puts, never
        drops. Never blocks ``put`` or ``get``.
        """
        need = min(free, self.capacity)
        with self._room:
            self._room.wait_for(
                lambda: self._closed or self.capacity - len(self._items) >= need, timeout
            )
            return not self._closed and self.capacity - len(self._items) >= need

    def close(self) -> None:
        """Refuse further puts; waiting ``get`` calls return once the shard is empty."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            self._room.notify_all()

    def clear(self) -> list[_T]:
        """Remove and return every waiting item (used to abandon them on a forced stop)."""
        with self._cond:
            items = list(self._items)
            self._items.clear()
            self._room.notify_all()
            return items

    def __len__(self) -> int:
        """Items waiting now; informational only, stale as soon as it is read."""
        with self._cond:
            return len(self._items)


class ShardedQueue(Generic[_T]):
    """The waiting items of one sink: ``len(shards)`` shards with a total capacity of
    exactly ``queue_size`` (see :func:`shard_capacities`); ``key`` picks an item's shard."""

    def __init__(self, queue_size: int, workers: int, key: Callable[[_T], str]) -> None:
        self.shards: tuple[Shard[_T], ...] = tuple(
            Shard(c) for c in shard_capacities(queue_size, workers)
        )
        self._key = key

    def shard_for(self, item: _T) -> Shard[_T]:
        return self.shards[shard_of(self._key(item), len(self.shards))]

    def put(self, item: _T, *, over: bool = False) -> _T | None:
        """Never blocks; returns the item dropped to make room, if any (see Shard.put)."""
        return self.shard_for(item).put(item, over=over)

    def close(self) -> None:
        for shard in self.shards:
            shard.close()

    def clear(self) -> list[_T]:
        return [item for shard in self.shards for item in shard.clear()]

    def __len__(self) -> int:
        """Items waiting in all shards; informational only."""
        return sum(len(shard) for shard in self.shards)
