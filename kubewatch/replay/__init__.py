"""Replay: captured watch output → the same events a live run would have produced.

:mod:`.reader` reads the capture, :mod:`.offline` stands in for discovery, :mod:`.feeds`
holds one replayed collection, :mod:`.replayer` runs it all through the live pipeline
(what differs from a live run, and why, is in its docstring).
"""

from kubewatch.replay.offline import resource_type
from kubewatch.replay.reader import WATCH_EVENT_TYPES, iter_watch_events
from kubewatch.replay.replayer import DEFAULT_CLUSTER, Replayer, ReplayStats
from kubewatch.watch.pipeline import build_entry, needs_namespace_labels

__all__ = [
    "DEFAULT_CLUSTER",
    "WATCH_EVENT_TYPES",
    "ReplayStats",
    "Replayer",
    "build_entry",
    "iter_watch_events",
    "needs_namespace_labels",
    "resource_type",
]
