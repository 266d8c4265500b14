"""One series as a core/v1 Event object: created, its count PATCHed, created again.

Its own module because these are the recorder's only API calls and their failure
policy: a 404 on a PATCH (the Event expired by its TTL, or was deleted) creates a new
Event carrying the count; an unreachable API server, 429 and 5xx are retried at the
key's next turn up to :data:`MAX_ATTEMPTS` times; a refusal (403, 422…) is given up at
once, logged once at WARNING and then at DEBUG. Nothing here raises into the caller.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from kubewatch.errors import ApiError
from kubewatch.kube.client import JsonApi
from kubewatch.kube.eventseries import Series
from kubewatch.kube.failures import ApiUnreachable

__all__ = ["MAX_ATTEMPTS", "EventWriter"]

log = logging.getLogger("kubewatch.kube.recorder")  # one story with the recorder's lines

MAX_ATTEMPTS = 12
"""Calls tried for one pending update before it is given up (client-go's
``maxTriesPerEvent``): with the 10 s interval, two minutes of an unreachable API server."""


class EventWriter:
    """Writes series as Events about ``involved`` in ``namespace``, from ``component``;
    ``wall`` is the UTC time Event names are made of. Used by one thread at a time."""

    def __init__(
        self,
        client: JsonApi,
        *,
        namespace: str,
        involved: dict[str, str],
        component: str,
        wall: Callable[[], datetime],
    ) -> None:
        self._client = client
        self.namespace = namespace
        self.involved = involved
        """The involved object; its ``uid`` may be learnt later (:meth:`lookup_uid`)."""
        self._component = component
        self._wall = wall
        self._last_name_ns = 0
        self._refusal_logged = False

    def write(self, series: Series) -> None:
        """One call for ``series``: create its Event, or PATCH the count. Errors are
        logged; a retryable one leaves the series dirty for its next turn."""
        count = series.count
        try:
            if series.name is None:
                series.name = self._create(series, count)
            else:
                try:
                    self._client.request_json(
                        "PATCH",
                        f"{_events_path(self._about(series)[1])}/{series.name}",
                        {"count": count, "lastTimestamp": series.last},
                        content_type="application/strategic-merge-patch+json",
                    )
                except ApiError as e:
                    if e.status != 404:
                        raise
                    # Expired (event TTL) or deleted: start a new Event with the count.
                    series.name = self._create(series, count)
        except ApiUnreachable as e:
            self._failed(series, e, retry=True)
            return
        except ApiError as e:
            retry = e.status == 429 or e.status >= 500
            self._failed(series, e, retry=retry)
            return
        except Exception as e:
            log.debug("Kubernetes Event %s: unexpected error", series.reason, exc_info=True)
            self._failed(series, e, retry=False)
            return
        series.sent = count
        series.failures = 0

    def _failed(self, series: Series, error: Exception, *, retry: bool) -> None:
        series.failures += 1
        if retry and series.failures < MAX_ATTEMPTS:
            log.debug("Kubernetes Event %s not recorded yet: %s", series.reason, error)
            return
        series.sent = series.count  # given up: the next occurrence tries again
        series.failures = 0
        if not retry and not self._refusal_logged:
            self._refusal_logged = True
            log.warning(
                "cannot record Kubernetes Event %s on %s/%s (further failures at DEBUG): %s",
                series.reason,
                self.involved["namespace"],
                self.involved["name"],
                error,
            )
        else:
            log.debug("Kubernetes Event %s given up: %s", series.reason, error)

    def _create(self, series: Series, count: int) -> str:
        """POST a new Event for ``series`` carrying ``count``; its name."""
        involved, namespace = self._about(series)
        name = f"{involved['name']}.{self._unique_suffix()}"
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": name, "namespace": namespace},
            "involvedObject": involved,
            "reason": series.reason,
            "message": series.message,
            "type": series.type,
            "source": {"component": self._component},
            "reportingComponent": self._component,
            "reportingInstance": self.involved["name"],
            "firstTimestamp": series.first,
            "lastTimestamp": series.last,
            "count": count,
        }
        created = self._client.request_json("POST", _events_path(namespace), body)
        metadata = created.get("metadata")
        if isinstance(metadata, dict) and metadata.get("name"):
            return str(metadata["name"])
        return name

    def _about(self, series: Series) -> tuple[dict[str, str], str]:
        """The involved object of ``series`` and the namespace its Events go to (its own)."""
        if not series.about:
            return dict(self.involved), self.namespace
        about = dict(series.about)
        return about, about.get("namespace", self.namespace)

    def _unique_suffix(self) -> str:
        """Nanoseconds of the wall time in hex, as client-go names Events; strictly
        increasing within this writer, so two Events never share a name."""
        ns = int(self._wall().timestamp() * 1e9)
        self._last_name_ns = max(ns, self._last_name_ns + 1)
        return f"{self._last_name_ns:x}"

    def lookup_uid(self) -> None:
        """Learn the Pod's UID once, so that ``kubectl describe pod`` finds the Events."""
        if self.involved["kind"] != "Pod":
            return
        path = f"/api/v1/namespaces/{self.involved['namespace']}/pods/{self.involved['name']}"
        try:
            pod = self._client.get_json(path)
            uid = (pod.get("metadata") or {}).get("uid")
        except Exception as e:
            log.info(
                "cannot read Pod %s/%s for its UID (set POD_UID from metadata.uid): its "
                "Events are recorded but `kubectl describe pod` does not list them: %s",
                self.involved["namespace"],
                self.involved["name"],
                e,
            )
            return
        if uid:
            self.involved["uid"] = str(uid)


def _events_path(namespace: str) -> str:
    return f"/api/v1/namespaces/{namespace}/events"
