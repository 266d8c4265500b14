"""The PagerDuty sink: Events API v2 (``POST /v2/enqueue``), trigger and resolve.

Each event opens (``trigger``) or closes (``resolve``) one PagerDuty alert, keyed by its
``dedup_key`` = ``<cluster>:<object>:<reason>`` (:mod:`kubewatch.sinks.incident`): the
repeats of one problem of one object land on one alert, a health alert's ``resolved``
closes what its ``firing`` opened, and with ``resolveOnDelete`` an object's delete
resolves the alerts it triggered. A trigger::

    {"routing_key": "<routingKey>", "event_action": "trigger", "dedup_key": "prod:<uid>:BackOff",
     "client": "kubewatch",
     "payload": {"summary": "<the event's line, at most 1024 characters>",
                 "source": "<cluster>", "severity": "<severity.<category>>",
                 "timestamp": "<observedAt>", "component": "Pod/shop/web-1",
                 "group": "shop", "class": "BackOff",
                 "custom_details": {id, type, kind, namespace, name, reason, changes,
                                    message, alert, labels}}}

A resolve is ``routing_key``, ``event_action: resolve`` and the ``dedup_key``.
``severity`` comes from ``severity.alert`` (health alerts firing, default ``error``),
``.warning`` (Warning Events, ``warning``), ``.normal`` (Normal Events, ``info``),
``.delete`` (``info``) or ``.change`` (creates and updates, ``info``).

PagerDuty shows ``summary`` and ``custom_details`` as plain text, so object text goes as it
is (JSON-encoded), never HTML-escaped; line breaks in ``summary`` become spaces. The
routing key is a credential: it is in the body only, never in an error, a log line or
``replay --dry-run`` (``<redacted>``). PagerDuty answers ``202``; ``400`` (an invalid
event) is permanent, ``429`` is retried after ``Retry-After`` (1 s without one).
"""

from __future__ import annotations

from typing import Any

from kubewatch.config.incident_sinks import PagerDutySinkConfig
from kubewatch.events import Event
from kubewatch.render import changes_block, default_text, one_line
from kubewatch.sinks.incident import (
    Action,
    Call,
    Incident,
    IncidentSink,
    bounded_key,
    cut,
    health_alert,
)

__all__ = ["DEDUP_KEY_CHARS", "SUMMARY_CHARS", "PagerDutySink", "details"]

DEDUP_KEY_CHARS = 255
SUMMARY_CHARS = 1024
"""PagerDuty's limits of ``dedup_key`` and ``payload.summary``."""


def details(event: Event, incident: Incident) -> dict[str, Any]:
    """``custom_details``: what a responder needs without opening kubewatch's logs."""
    found: dict[str, Any] = {
        "id": event.id,
        "type": event.type.value,
        "kind": incident.kind,
        "namespace": incident.namespace,
        "name": incident.name,
        "reason": incident.reason,
    }
    changes = changes_block(event)
    if changes:
        found["changes"] = changes.splitlines()
    if event.k8s_event is not None:
        found["message"] = event.k8s_event.message
        found["count"] = event.k8s_event.count
    alert = health_alert(event)
    if alert is not None:
        found["alert"] = alert.to_dict()
    if event.labels:
        found["labels"] = event.labels
    return found


class PagerDutySink(IncidentSink):
    """Trigger and resolve PagerDuty alerts through the Events API v2; thread-safe."""

    kind = "pagerduty"

    def configure(self, config: PagerDutySinkConfig) -> tuple[Any, tuple[str, ...]]:
        self._routing_key = config.routing_key
        self._severity = config.severity
        return config, (config.routing_key,)

    def call(self, event: Event, incident: Incident) -> Call:
        document: dict[str, Any] = {
            "routing_key": self._routing_key,
            "event_action": incident.action.value,
            "dedup_key": bounded_key(incident.key, DEDUP_KEY_CHARS),
        }
        if incident.action is Action.TRIGGER:
            where = incident.namespace or ""
            document["client"] = "kubewatch"
            document["payload"] = {
                "summary": cut(one_line(default_text(event)), SUMMARY_CHARS),
                "source": incident.cluster or "kubernetes",
                "severity": getattr(self._severity, incident.category),
                "timestamp": event.observed_at,
                "component": f"{incident.kind}/{where}/{incident.name}".replace("//", "/"),
                "group": where or incident.kind,
                "class": incident.reason,
                "custom_details": details(event, incident),
            }
        return Call(incident, "", document)
