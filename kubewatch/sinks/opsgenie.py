"""The Opsgenie sink: Alert API v2, create and close alerts by ``alias``.

Each event creates or closes one Opsgenie alert whose ``alias`` is
``<cluster>:<object>:<reason>`` (:mod:`kubewatch.sinks.incident`): Opsgenie
de-duplicates a create on an open alert with the same alias (its count goes up), a
health alert's ``resolved`` closes what its ``firing`` created, and with
``resolveOnDelete`` an object's delete closes the alerts it created.

- create: ``POST <apiUrl>/v2/alerts`` with ``message`` (the event's line, at most 130
  characters), ``alias``, ``description`` (the line, the changes, the Event's message, a
  health alert's logs; at most 15,000), ``tags`` (``kubewatch``, the cluster, kind and
  reason, then ``tags``; at most 20 of 50 characters), ``details`` (strings), ``entity``
  (``Pod/shop/web-1``), ``source`` (``kubewatch``) and ``priority`` from the
  ``priority`` mapping;
- close: ``POST <apiUrl>/v2/alerts/<alias>/close?identifierType=alias`` with ``source``
  and ``note``.

The API key goes in ``Authorization: GenieKey <apiKey>`` and, as every header value,
never into an error, a log line or ``replay --dry-run``. Opsgenie shows these fields as
plain text, so object text is sent as it is (JSON-encoded). It answers ``202`` (the
request is then processed asynchronously); ``400``/``401``/``403``/``422`` are
permanent, ``429`` is retried after ``Retry-After``.
"""

from __future__ import annotations

import urllib.parse
from typing import Any

from kubewatch.config.incident_sinks import OpsgenieSinkConfig
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

__all__ = ["ALIAS_CHARS", "MESSAGE_CHARS", "OpsgenieSink"]

MESSAGE_CHARS = 130
ALIAS_CHARS = 512
DESCRIPTION_CHARS = 15_000
TAG_CHARS = 50
TAGS = 20
"""Opsgenie's limits of ``message``, ``alias``, ``description`` and ``tags``."""


def _description(event: Event) -> str:
    parts = [one_line(default_text(event))]
    changes = changes_block(event)
    if changes:
        parts.append(changes)
    if event.k8s_event is not None:
        parts.append(one_line(event.k8s_event.message))
    alert = health_alert(event)
    if alert is not None and alert.logs:
        parts.append(alert.logs)
    return cut("\n\n".join(parts), DESCRIPTION_CHARS)


class OpsgenieSink(IncidentSink):
    """Create and close Opsgenie alerts through the Alert API v2; thread-safe."""

    kind = "opsgenie"

    def configure(self, config: OpsgenieSinkConfig) -> tuple[Any, tuple[str, ...]]:
        self._priority = config.priority
        self._tags = config.tags
        headers = {**config.headers, "Authorization": f"GenieKey {config.api_key}"}
        base = config.url.rstrip("/") + "/"
        return config.model_copy(update={"url": base, "headers": headers}), (config.api_key,)

    def call(self, event: Event, incident: Incident) -> Call:
        alias = bounded_key(incident.key, ALIAS_CHARS)
        if incident.action is Action.RESOLVE:
            path = f"v2/alerts/{urllib.parse.quote(alias, safe='')}/close?identifierType=alias"
            note = cut(one_line(default_text(event)), 25_000)
            return Call(incident, path, {"source": "kubewatch", "note": note})
        where = f"{incident.namespace}/" if incident.namespace else ""
        tags = ["kubewatch", incident.cluster, incident.kind, incident.reason, *self._tags]
        unique = [cut(t, TAG_CHARS) for t in dict.fromkeys(t for t in tags if t)][:TAGS]
        details = {
            "id": event.id,
            "cluster": incident.cluster,
            "kind": incident.kind,
            "namespace": incident.namespace or "",
            "name": incident.name,
            "reason": incident.reason,
            "type": event.type.value,
        }
        document: dict[str, Any] = {
            "message": cut(one_line(default_text(event)), MESSAGE_CHARS),
            "alias": alias,
            "description": _description(event),
            "tags": unique,
            "details": {k: v for k, v in details.items() if v},
            "entity": cut(f"{incident.kind}/{where}{incident.name}", ALIAS_CHARS),
            "source": "kubewatch",
            "priority": getattr(self._priority, incident.category),
        }
        return Call(incident, "v2/alerts", document)
