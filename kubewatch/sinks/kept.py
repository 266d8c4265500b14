"""What the process keeps per sink name across reloads (a reload builds new sinks).

A chat sink's thread roots and an incident sink's open alerts must outlive the sink object
that a reload replaces: :class:`PerSink` holds one of them per sink name for the life of
the process, made on first use.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

__all__ = ["PerSink"]

T = TypeVar("T")


class PerSink(Generic[T]):
    """One ``T`` per sink name, made by the first caller; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._kept: dict[str, T] = {}

    def get(self, sink: str, make: Callable[[], T]) -> tuple[T, bool]:
        """The ``T`` of ``sink`` and whether it was made just now (by ``make``)."""
        with self._lock:
            if sink in self._kept:
                return self._kept[sink], False
            made = self._kept[sink] = make()
            return made, True
