"""JSON schemas of what the incident tools accept, written from each vendor's API reference.

- PagerDuty Events API v2, "Send an Alert Event" (``POST /v2/enqueue``): ``routing_key``,
  ``event_action`` (trigger / acknowledge / resolve), ``dedup_key`` (at most 255 chars,
  required for resolve); a trigger's ``payload`` needs ``summary`` (at most 1024 chars),
  ``source`` and ``severity`` (critical / error / warning / info); ``timestamp``
  (ISO 8601), ``component``, ``group``, ``class``, ``custom_details`` optional; top-level
  ``client``, ``client_url``, ``links`` (``href``, ``text``), ``images``.
- Opsgenie Alert API, "Create Alert" (``POST /v2/alerts``): ``message`` required (at
  most 130 chars), ``alias`` (512), ``description`` (15000), ``tags`` (at most 20, each
  at most 50 chars), ``details`` (string to string), ``entity`` (512), ``source`` (100),
  ``priority`` P1 to P5, ``note`` (25000), ``user`` (100); "Close Alert" (``POST
  /v2/alerts/{identifier}/close?identifierType=alias``): ``user``, ``source``, ``note``.
- Alertmanager API v2 (its OpenAPI ``postableAlerts``): an array of alerts, each with
  ``labels`` (required, string to string), ``annotations`` (string to string),
  ``startsAt`` / ``endsAt`` (date-time), ``generatorURL`` (URI).
"""

from __future__ import annotations

from typing import Any

import jsonschema

_TIME = {"type": "string", "pattern": r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$"}
_STRINGS = {"type": "object", "additionalProperties": {"type": "string"}}

PAGERDUTY_EVENT: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["routing_key", "event_action"],
    "properties": {
        "routing_key": {"type": "string", "minLength": 1},
        "event_action": {"enum": ["trigger", "acknowledge", "resolve"]},
        "dedup_key": {"type": "string", "minLength": 1, "maxLength": 255},
        "client": {"type": "string"},
        "client_url": {"type": "string"},
        "links": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["href"],
                "properties": {"href": {"type": "string"}, "text": {"type": "string"}},
            },
        },
        "images": {"type": "array"},
        "payload": {
            "type": "object",
            "additionalProperties": False,
            "required": ["summary", "source", "severity"],
            "properties": {
                "summary": {"type": "string", "minLength": 1, "maxLength": 1024},
                "source": {"type": "string", "minLength": 1},
                "severity": {"enum": ["critical", "error", "warning", "info"]},
                "timestamp": _TIME,
                "component": {"type": "string"},
                "group": {"type": "string"},
                "class": {"type": "string"},
                "custom_details": {"type": "object"},
            },
        },
    },
    "allOf": [
        {
            "if": {"properties": {"event_action": {"const": "trigger"}}},
            "then": {"required": ["payload"]},
            "else": {"required": ["dedup_key"]},
        }
    ],
}

OPSGENIE_CREATE: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["message"],
    "properties": {
        "message": {"type": "string", "minLength": 1, "maxLength": 130},
        "alias": {"type": "string", "maxLength": 512},
        "description": {"type": "string", "maxLength": 15000},
        "responders": {"type": "array"},
        "visibleTo": {"type": "array"},
        "actions": {"type": "array", "items": {"type": "string"}},
        "tags": {
            "type": "array",
            "maxItems": 20,
            "items": {"type": "string", "minLength": 1, "maxLength": 50},
        },
        "details": _STRINGS,
        "entity": {"type": "string", "maxLength": 512},
        "source": {"type": "string", "maxLength": 100},
        "priority": {"enum": ["P1", "P2", "P3", "P4", "P5"]},
        "user": {"type": "string", "maxLength": 100},
        "note": {"type": "string", "maxLength": 25000},
    },
}

OPSGENIE_CLOSE: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "user": {"type": "string", "maxLength": 100},
        "source": {"type": "string", "maxLength": 100},
        "note": {"type": "string", "maxLength": 25000},
    },
}

ALERTMANAGER_ALERTS: dict[str, Any] = {
    "type": "array",
    "items": {
        "type": "object",
        "additionalProperties": False,
        "required": ["labels"],
        "properties": {
            "labels": {
                "type": "object",
                "minProperties": 1,
                "propertyNames": {"pattern": "^[A-Za-z_][A-Za-z0-9_]*$"},
                "additionalProperties": {"type": "string", "minLength": 1},
            },
            "annotations": _STRINGS,
            "startsAt": _TIME,
            "endsAt": _TIME,
            "generatorURL": {"type": "string", "pattern": "^[a-z][a-z0-9+.-]*:"},
        },
    },
}


def check(schema: dict[str, Any], document: Any) -> Any:
    """``document`` when it validates against ``schema``; else fail naming each error."""
    errors = [
        f"{'.'.join(map(str, e.absolute_path)) or '<top>'}: {e.message}"
        for e in jsonschema.Draft202012Validator(schema).iter_errors(document)
    ]
    assert not errors, errors
    return document
