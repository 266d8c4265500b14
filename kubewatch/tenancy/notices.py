"""What a Notifier's owner (or a ClusterSink's) sees of a check: status and Events.

The status goes through the status subresource (one merge PATCH), only when
:func:`~kubewatch.tenancy.status.desired_status` says it changed and it is not what was
written last (the informer's copy lags our own write by a moment). An Event is recorded
when the Ready condition's reason or message changes: ``Ready`` (Normal) when it becomes
ready, a Warning named after the reason otherwise (``Invalid``, ``KindNotAllowed``...),
and ``SinkFailed`` for a permanent delivery failure; the EventRecorder aggregates and
rate limits them as it does kubewatch's own.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from typing import Any

from kubewatch.errors import ApiError
from kubewatch.kube.client import JsonApi
from kubewatch.kube.recorder import EventRecorder
from kubewatch.tenancy.clustersinks import cluster_sink_name
from kubewatch.tenancy.results import READY, Result
from kubewatch.tenancy.status import desired_status

__all__ = ["GROUP_VERSION", "Notices", "cluster_sink_ref", "notifier_ref"]

GROUP_VERSION = "kubewatch.io/v1alpha1"


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


def notifier_ref(obj: Mapping[str, Any]) -> dict[str, str]:
    """The Notifier as an Event's involved object."""
    meta = obj.get("metadata") or {}
    about = {
        "apiVersion": GROUP_VERSION,
        "kind": "Notifier",
        "name": str(meta.get("name")),
        "namespace": str(meta.get("namespace")),
    }
    if meta.get("uid"):
        about["uid"] = str(meta["uid"])
    return about


def cluster_sink_ref(obj: Mapping[str, Any]) -> dict[str, str]:
    """A ClusterSink as an Event's involved object (cluster-scoped: its Events go to
    kubewatch's own namespace)."""
    meta = obj.get("metadata") or {}
    about = {"apiVersion": GROUP_VERSION, "kind": "ClusterSink", "name": str(meta.get("name"))}
    if meta.get("uid"):
        about["uid"] = str(meta["uid"])
    return about


class Notices:
    """Writes the status of Notifiers and ClusterSinks and records Events about them.
    Thread-safe."""

    def __init__(
        self,
        client: JsonApi,
        recorder: EventRecorder | None,
        *,
        wall: Callable[[], datetime] = _utc_now,
    ) -> None:
        self._client = client
        self._recorder = recorder
        self._wall = wall
        self._lock = threading.Lock()
        self._written: dict[str, dict[str, Any]] = {}  # under _lock: the last status written
        self.writes = 0
        """Status writes so far (informational)."""

    def write(self, key: str, status: dict[str, Any]) -> None:
        """One merge PATCH of ``key``'s status subresource; a Notifier gone is fine."""
        sink = cluster_sink_name(key)
        if sink is not None:
            path = f"/apis/{GROUP_VERSION}/clustersinks/{sink}/status"
        else:
            namespace, _, name = key.partition("/")
            path = f"/apis/{GROUP_VERSION}/namespaces/{namespace}/notifiers/{name}/status"
        try:
            self._client.request_json(
                "PATCH", path, {"status": status}, content_type="application/merge-patch+json"
            )
        except ApiError as e:
            if e.status != 404:
                raise
        with self._lock:
            self.writes += 1

    def reconciled(self, key: str, obj: Mapping[str, Any], result: Result) -> None:
        """Say ``result`` on the Notifier ``obj``: its status if that changed, and an Event
        if its Ready condition did. Raises ApiError when the write fails (retried)."""
        old = obj.get("status") or {}
        generation = int((obj.get("metadata") or {}).get("generation") or 0)
        status = desired_status(old, result, generation, self._wall())
        with self._lock:
            if status is not None and self._written.get(key) == status:
                status = None
        if status is None:
            return
        self.write(key, status)
        with self._lock:
            self._written[key] = status
        conditions = old.get("conditions") or ()
        previous = next((c for c in conditions if c.get("type") == READY), None)
        said = None if previous is None else (previous.get("reason"), previous.get("message"))
        if said == (result.reason, result.message) or self._recorder is None:
            return
        if cluster_sink_name(key) is not None:
            about, ready = cluster_sink_ref(obj), "usable by the namespaces it selects"
        else:
            about, ready = notifier_ref(obj), "watching and delivering"
        if result.reason == READY:
            self._recorder.normal(READY, ready, about)
        else:
            self._recorder.warning(result.reason, result.message, about)

    def sink_failed(self, obj: Mapping[str, Any], sink: str, reason: str) -> None:
        if self._recorder is not None:
            self._recorder.warning("SinkFailed", f"sink {sink}: {reason}", notifier_ref(obj))

    def forget(self, key: str) -> None:
        with self._lock:
            self._written.pop(key, None)
