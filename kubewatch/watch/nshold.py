"""Changes of objects whose namespace the Namespace watch has not reported yet: held, not lost.

Namespaces and the objects in them come from different watches on different threads, so
an object may be seen before its namespace: apply a Namespace and a Deployment at once and
the Deployment's watch may win the race. A namespace selector cannot judge that object
yet, and rejecting it would lose its create. :class:`NamespaceHold` keeps such a change
and runs it again once the namespace is known.

Guarantees:

* **Order per object.** A change is run after every earlier change of the same object:
  while any change of a namespace is held, every later change in that namespace is held
  behind it, and a release runs them in arrival order.
* **Never silent.** At most :data:`MAX_HELD` changes are held, each for at most
  :data:`MAX_HOLD_SECONDS`; past either bound the oldest is run with what is known (a
  namespace selector then rejects it) and a rate-limited WARNING says so. Every held
  change is counted (``held_total``), every one run unresolved too (``expired_total``).
* **Thread safety.** The Namespace watch (:meth:`release`, :meth:`forget`), the resource
  watches (:meth:`defer`) and the expiry thread meet under one lock; held changes run
  under it, so a change arriving during a release waits for the release to finish. The
  fast path of :meth:`defer` (namespace known, nothing held for it) takes no lock: held
  changes of a namespace are only ever added by a thread that saw it unknown (under the
  lock), and removed after they ran; a release always takes the lock, so a change held
  just as its namespace became known is run by that release, not left to expire.

A deleted namespace counts as known for this purpose (its objects are judged as before,
without waiting). The expiry thread, ``kubewatch-namespace-hold``, runs only while
something is held.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Container, Mapping
from dataclasses import dataclass
from typing import Any

from kubewatch.observability.ratelog import RateLimitedLog

__all__ = ["MAX_HELD", "MAX_HOLD_SECONDS", "HoldStats", "NamespaceHold"]

log = logging.getLogger(__name__)

MAX_HELD = 10_000
"""Changes held at most, over all namespaces: bounds memory if the Namespace watch is down."""
MAX_HOLD_SECONDS = 60.0
"""Seconds a change waits for its namespace at most. A new namespace reaches the Namespace
watch within a second or two; a minute covers a slow or reconnecting watch."""
_GONE_MAX = 1024
"""Deleted namespaces remembered (so their objects do not wait); oldest forgotten first."""


@dataclass(frozen=True, slots=True)
class HoldStats:
    """Counters of a :class:`NamespaceHold` (a snapshot)."""

    held_total: int
    """Changes held because their namespace was not known yet."""
    expired_total: int
    """Held changes run before their namespace was known (timeout or overflow)."""
    held: int
    """Changes held now."""


@dataclass(slots=True, eq=False)
class _Held:
    since: float
    namespace: str
    obj: Mapping[str, Any]
    run: Callable[[], None]
    done: bool = False


class NamespaceHold:
    """Holds changes per namespace until ``known`` contains it; see the module docstring."""

    def __init__(
        self,
        known: Container[str],
        *,
        max_held: int = MAX_HELD,
        max_age: float = MAX_HOLD_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._known = known
        self._max_held = max_held
        self._max_age = max_age
        self._clock = clock
        self._lock = threading.Lock()
        self._wake = threading.Event()
        # Under _lock: every _Held in _by_namespace is in _arrivals and not done; _count
        # is their number; a namespace key is present iff its deque is not empty.
        # _arrivals may also hold done entries (released), skipped when met.
        self._by_namespace: dict[str, deque[_Held]] = {}
        self._arrivals: deque[_Held] = deque()
        self._count = 0
        self._gone: dict[str, None] = {}  # deleted namespaces, oldest first
        self._timer: threading.Thread | None = None
        self._held_total = 0
        self._expired_total = 0
        self._warn = RateLimitedLog(log)

    def stats(self) -> HoldStats:
        with self._lock:
            return HoldStats(self._held_total, self._expired_total, self._count)

    def defer(self, namespace: str, obj: Mapping[str, Any], run: Callable[[], None]) -> bool:
        """Hold ``run`` (a change of ``obj``) if ``namespace`` is not known yet or has held
        changes: True. False: the caller runs the change itself, now."""
        if namespace in self._known and namespace not in self._by_namespace:
            return False
        with self._lock:
            if namespace not in self._by_namespace and (
                namespace in self._known or namespace in self._gone
            ):
                return False
            if self._count >= self._max_held:
                self._expire_oldest(f"among more than {self._max_held} changes waiting")
            queue = self._by_namespace.setdefault(namespace, deque())
            held = _Held(self._clock(), namespace, obj, run)
            queue.append(held)
            self._arrivals.append(held)
            self._count += 1
            self._held_total += 1
            if self._timer is None:
                self._timer = threading.Thread(
                    target=self._expire_loop, name="kubewatch-namespace-hold", daemon=True
                )
                self._timer.start()
        return True

    def release(self, namespace: str) -> None:
        """``namespace`` is known now: run its held changes, in arrival order.

        Always under the lock (no unlocked look first): a :meth:`defer` that saw the
        namespace unknown just before it became known may be about to hold its change, and
        must have done so (it runs here) or see it known (it runs itself)."""
        with self._lock:
            queue = self._by_namespace.pop(namespace, None)
            while queue:
                self._run(queue.popleft())

    def forget(self, namespace: str) -> None:
        """``namespace`` was deleted: its objects are judged at once from now on."""
        with self._lock:
            self._gone.pop(namespace, None)
            self._gone[namespace] = None
            if len(self._gone) > _GONE_MAX:
                del self._gone[next(iter(self._gone))]
        self.release(namespace)

    def known_again(self, namespace: str) -> None:
        """``namespace`` exists (again): no longer counted as deleted; run what it held."""
        if namespace in self._gone:
            with self._lock:
                self._gone.pop(namespace, None)
        self.release(namespace)

    def expire(self) -> None:
        """Run every change held longer than ``max_age`` (the expiry thread calls this)."""
        with self._lock:
            deadline = self._clock() - self._max_age
            while self._arrivals:
                if self._arrivals[0].since > deadline:
                    return
                if self._arrivals[0].done:
                    self._arrivals.popleft()
                else:
                    self._expire_oldest(f"not seen within {self._max_age:.0f}s")

    # -- under _lock ------------------------------------------------------------------

    def _run(self, held: _Held) -> None:
        held.done = True
        self._count -= 1
        try:
            held.run()
        except Exception:
            self._warn("a held change of %s failed when run", self._describe(held), exc_info=True)

    def _expire_oldest(self, why: str) -> None:
        while self._arrivals[0].done:
            self._arrivals.popleft()
        held = self._arrivals.popleft()
        queue = self._by_namespace[held.namespace]
        assert queue[0] is held  # per namespace, arrival order too
        queue.popleft()
        if not queue:
            del self._by_namespace[held.namespace]
        self._expired_total += 1
        self._warn(
            "namespace %r %s: judging %s without its labels (a namespaceSelector rejects it)",
            held.namespace,
            why,
            self._describe(held),
        )
        self._run(held)

    @staticmethod
    def _describe(held: _Held) -> str:
        meta = held.obj.get("metadata") or {}
        return f"{held.obj.get('kind', 'object')} {held.namespace}/{meta.get('name', '?')}"

    def _expire_loop(self) -> None:
        while True:
            self.expire()
            with self._lock:
                live = next((h for h in self._arrivals if not h.done), None)
                if live is None:
                    self._arrivals.clear()
                    self._timer = None
                    return
                wait = live.since + self._max_age - self._clock()
            # Capped: with a clock other than the real one (tests), still look again soon.
            self._wake.wait(min(max(wait, 0.01), 1.0))
