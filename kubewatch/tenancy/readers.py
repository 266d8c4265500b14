"""Who read what: the Secrets and ClusterSinks each check (a Notifier's, a ClusterSink's)
read last, so that a change of one queues exactly those checks again.

A change that lands while a check runs, before its reads are indexed, would be missed:
:meth:`Readers.remember` says so (the change counter moved since the check began), and the
controller runs that check once more.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from typing import Protocol

__all__ = ["Readers"]


class _Read(Protocol):
    @property
    def secrets(self) -> frozenset[tuple[str, str]]: ...
    @property
    def cluster_sinks(self) -> frozenset[str]: ...


class Readers:
    """The index of what each check key read. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # Under _lock: what each key read, who read each thing, changes seen so far.
        self._read: dict[str, tuple[frozenset[tuple[str, str]], frozenset[str]]] = {}
        self._by_secret: dict[tuple[str, str], set[str]] = defaultdict(set)
        self._by_cluster_sink: dict[str, set[str]] = defaultdict(set)
        self._changes = 0

    def changes(self) -> int:
        """Read before a check runs, for :meth:`remember`."""
        with self._lock:
            return self._changes

    def secret_changed(self, ref: tuple[str, str]) -> list[str]:
        """The keys whose last check read Secret ``(namespace, name)``."""
        with self._lock:
            self._changes += 1
            return list(self._by_secret.get(ref, ()))

    def cluster_sink_changed(self, name: str) -> list[str]:
        """The keys whose last check read ClusterSink ``name``."""
        with self._lock:
            self._changes += 1
            return list(self._by_cluster_sink.get(name, ()))

    def remember(self, key: str, result: _Read | None, changes: int = 0) -> bool:
        """Index what ``result`` read (None: forget ``key``); True if a Secret or
        ClusterSink changed since ``changes`` was read (before the index was in place:
        that change may have been missed)."""
        secrets, sinks = (result.secrets, result.cluster_sinks) if result else ((), ())
        with self._lock:
            old_secrets, old_sinks = self._read.pop(key, (frozenset(), frozenset()))
            for ref in old_secrets:
                self._by_secret[ref].discard(key)
                if not self._by_secret[ref]:
                    del self._by_secret[ref]
            for name in old_sinks:
                self._by_cluster_sink[name].discard(key)
                if not self._by_cluster_sink[name]:
                    del self._by_cluster_sink[name]
            if result is None:
                return False
            self._read[key] = (frozenset(secrets), frozenset(sinks))
            for ref in secrets:
                self._by_secret[ref].add(key)
            for name in sinks:
                self._by_cluster_sink[name].add(key)
            return bool(secrets or sinks) and self._changes != changes
