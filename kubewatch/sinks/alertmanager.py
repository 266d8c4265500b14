"""The Alertmanager sink: each event as an alert, ``POST /api/v2/alerts`` (API v2).

One alert per event (:mod:`kubewatch.sinks.incident` decides trigger or resolve)::

    [{"labels": {"alertname": "KubewatchEvent", "cluster": "prod", "namespace": "shop",
                 "kind": "Pod", "name": "web-1", "reason": "BackOff", ...config labels},
      "annotations": {"summary": "<the event's line>", "diff": "<one line per change>"},
      "startsAt": "<observedAt, or the alert's since>",
      "endsAt": "<see below>",
      "generatorURL": "<generatorUrl?cluster=…&kind=…&namespace=…&name=…>"}]

Alertmanager identifies an alert by its label set, so the labels are the incident key:
repeats of one (object, reason) update one alert. A health alert's ``alertname`` is its
reason (``CrashLoopBackOff``) and its container is a ``container`` label.

``endsAt``: a resolve (health alert resolved; a delete with ``resolveOnDelete``) sets it
to the event's time, which resolves the alert. A firing health alert sets it
``alertTimeout`` ahead (default 24h): kubewatch sends an alert once, not every minute as
Prometheus does, so the default 5 minutes of Alertmanager's ``resolve_timeout`` would end
it too early. Other events (changes, Kubernetes Events) leave it out, and Alertmanager
resolves them after its ``resolve_timeout``.

Labels and annotations are plain text to Alertmanager (its templates escape for their
receivers), so object text goes verbatim, on one line where a line is meant. An empty
label is absent in Alertmanager's model: a cluster-scoped object has no ``namespace``.

**HA.** With ``urls``, every alert goes to every replica, as Prometheus does (replicas
share silences and the notification log, not alerts). The event is delivered when at
least one replica accepted it; otherwise the error of the most hopeful failure is raised
(rate limited, then retryable, then permanent), naming every replica's answer.
"""

from __future__ import annotations

import logging
import time
import urllib.parse
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import httpx

from kubewatch.config.incident_sinks import AlertmanagerSinkConfig
from kubewatch.errors import DeliveryError, PermanentError, RateLimited, RetryableError
from kubewatch.events import Event
from kubewatch.render import changes_block, default_text, one_line
from kubewatch.sinks.base import SinkBase
from kubewatch.sinks.http import HttpEndpoint, encode_json
from kubewatch.sinks.incident import (
    Action,
    Incident,
    OpenKeys,
    health_alert,
    incidents_for,
    record,
)
from kubewatch.timefmt import parse_time, rfc3339

__all__ = ["ALERTS_PATH", "AlertmanagerSink", "alert_of"]

ALERTS_PATH = "/api/v2/alerts"
DEFAULT_GENERATOR = "kubewatch://"
"""The ``generatorURL`` base when ``generatorUrl`` is not set: names kubewatch as the source."""

log = logging.getLogger(__name__)


def _generator_url(base: str, incident: Incident) -> str:
    query = {"cluster": incident.cluster, "kind": incident.kind, "name": incident.name}
    if incident.namespace:
        query["namespace"] = incident.namespace
    return f"{base}?{urllib.parse.urlencode(query)}"


def _later(stamp: str, seconds: float) -> str:
    moment = parse_time(stamp)
    return stamp if moment is None else rfc3339(moment + timedelta(seconds=seconds))


def alert_of(
    event: Event, incident: Incident, config: AlertmanagerSinkConfig, base: str
) -> dict[str, Any]:
    """The alert object for ``incident`` (from ``event``); see the module docstring."""
    alert = health_alert(event)
    labels = {
        **config.labels,
        "alertname": config.alertname,
        "cluster": incident.cluster,
        "kind": incident.kind,
        "name": incident.name,
        "reason": incident.reason,
    }
    if incident.namespace:
        labels["namespace"] = incident.namespace
    starts = event.observed_at
    if alert is not None:
        labels["alertname"] = alert.reason
        labels["reason"] = alert.reason
        if alert.container:
            labels["container"] = alert.container
        starts = alert.since or starts
    annotations = {"summary": one_line(default_text(event))}
    diff = changes_block(event)
    if diff:
        annotations["diff"] = diff
    document: dict[str, Any] = {
        "labels": {k: v for k, v in labels.items() if v},
        "annotations": annotations,
        "startsAt": starts,
        "generatorURL": _generator_url(base, incident),
    }
    if incident.action is Action.RESOLVE:
        document["endsAt"] = event.observed_at
        if alert is None:  # a delete: the alert began before, when it was triggered
            del document["startsAt"]
    elif alert is not None:
        document["endsAt"] = _later(event.observed_at, config.alert_timeout)
    return document


def _most_hopeful(errors: list[DeliveryError]) -> DeliveryError:
    """Rate limited beats retryable beats permanent: the delivery layer should try again
    if any replica may accept later. The message names every replica's answer."""
    text = "; ".join(str(e) for e in errors)
    limited = [e for e in errors if isinstance(e, RateLimited)]
    if limited:
        return RateLimited(text, max(e.retry_after for e in limited))
    if any(isinstance(e, RetryableError) for e in errors):
        return RetryableError(text)
    return PermanentError(text)


class AlertmanagerSink(SinkBase):
    """Post each event as an alert to every configured Alertmanager; thread-safe."""

    kind = "alertmanager"

    def __init__(
        self,
        name: str,
        config: AlertmanagerSinkConfig,
        transport: httpx.BaseTransport | None = None,
        *,
        clock: Callable[[], float] = time.time,
        open_keys: OpenKeys | None = None,
    ) -> None:
        self.name = name
        self._config = config
        self._base = config.generator_url or DEFAULT_GENERATOR
        self._open = OpenKeys() if open_keys is None else open_keys
        self._endpoints: list[HttpEndpoint] = []
        try:
            for url in config.base_urls:
                target = config.model_copy(update={"url": url.rstrip("/") + ALERTS_PATH})
                self._endpoints.append(
                    HttpEndpoint(self.kind, name, target, transport, clock=clock)  # type: ignore[arg-type]
                )
        except BaseException:
            self.close()
            raise

    def alerts(self, event: Event) -> tuple[list[Incident], list[dict[str, Any]]]:
        """The incidents of ``event`` and their alert objects (empty: nothing to send)."""
        incidents = incidents_for(
            event, self._open, resolve_on_delete=self._config.resolve_on_delete
        )
        return incidents, [alert_of(event, i, self._config, self._base) for i in incidents]

    def preview(self, event: Event) -> str:
        _, alerts = self.alerts(event)
        targets = ", ".join(f"{e.origin}{ALERTS_PATH}" for e in self._endpoints)
        body = encode_json(alerts, f"event {event.id}").decode()
        return f"POST {targets}\n{body}"

    def send(self, event: Event) -> None:
        if any(e.closed for e in self._endpoints):
            raise PermanentError(f"{self.kind} sink {self.name!r} is closed")
        incidents, alerts = self.alerts(event)
        if not alerts:
            return
        body = encode_json(alerts, f"event {event.id}")
        errors: list[DeliveryError] = []
        for endpoint in self._endpoints:
            try:
                endpoint.send(body)
            except DeliveryError as error:
                errors.append(error)
        if len(errors) == len(self._endpoints):
            raise errors[0] if len(errors) == 1 else _most_hopeful(errors)
        for failed in errors:
            log.warning("%s: delivered, but one replica failed: %s", self.name, failed)
        for incident in incidents:
            record(self._open, incident)

    def close(self) -> None:
        for endpoint in self._endpoints:
            endpoint.close()
