"""The CloudEvents sink: each event as a CloudEvents 1.0 event over HTTP.

Attributes (the same in both modes):

===================  ==================================================================
``specversion``      ``1.0``
``id``               :attr:`Event.id` (stable across restarts: receivers de-duplicate
                     on ``source`` + ``id``, as the spec intends)
``source``           ``config.source``, default ``kubewatch/<cluster>`` (a URI-reference;
                     the cluster name percent-encoded where a URI needs it)
``type``             ``io.kubewatch.resource.created`` / ``.updated`` / ``.deleted``;
                     a Kubernetes Event alert: ``io.kubewatch.k8sevent.warning`` /
                     ``.normal`` (its ``type``, so receivers can route on severity); a
                     burst digest: ``io.kubewatch.digest`` (``data.type`` says of what);
                     a health alert: ``io.kubewatch.alert.firing`` / ``.resolved``
``subject``          ``<kind>/<namespace>/<name>`` (``<kind>/<name>`` cluster-scoped); for
                     an alert, the object it is about (``Pod/shop/web-1``); none for a
                     digest, which is about many objects
``time``             ``observedAt``
``datacontenttype``  ``application/json``
``data``             the event JSON (:meth:`Event.to_dict`, README "Event JSON")
===================  ==================================================================

``mode: structured`` (default) sends the whole CloudEvent as the JSON body with
``Content-Type: application/cloudevents+json; charset=utf-8``. ``mode: binary`` sends the
event JSON as the body with ``Content-Type: application/json`` and every other attribute
as a ``ce-<name>`` header, percent-encoded as the HTTP binding requires (space, ``"``,
``%`` and anything outside printable ASCII).
"""

from __future__ import annotations

import re
import time
import urllib.parse
from collections.abc import Callable
from typing import Any

import httpx

from kubewatch.config import CloudEventsSinkConfig, format_path
from kubewatch.errors import ConfigError
from kubewatch.events import Event, EventType
from kubewatch.sinks.http import HttpSink, Request, encode_json

__all__ = [
    "DIGEST_TYPE",
    "K8S_EVENT_TYPE_PREFIX",
    "RESOURCE_TYPES",
    "STRUCTURED_CONTENT_TYPE",
    "CloudEventsSink",
    "cloud_event",
    "event_type",
    "header_value",
    "subject",
]

SPEC_VERSION = "1.0"
STRUCTURED_CONTENT_TYPE = "application/cloudevents+json; charset=utf-8"
DATA_CONTENT_TYPE = "application/json"

RESOURCE_TYPES = {
    EventType.CREATE: "io.kubewatch.resource.created",
    EventType.UPDATE: "io.kubewatch.resource.updated",
    EventType.DELETE: "io.kubewatch.resource.deleted",
}
K8S_EVENT_TYPE_PREFIX = "io.kubewatch.k8sevent."
"""Followed by the Kubernetes Event's ``type`` in lower case: ``warning`` or ``normal``."""
DIGEST_TYPE = "io.kubewatch.digest"
ALERT_TYPE_PREFIX = "io.kubewatch.alert."
"""Followed by the health alert's state: ``firing`` or ``resolved``."""

_SOURCE_SAFE = "-._~!$&'()*+,;=:@/"
"""Characters left as they are in a cluster name put into the default ``source``: RFC 3986
unreserved, sub-delims, ``:``, ``@`` and ``/`` (all valid in a URI path)."""

_HEADER_SAFE = "".join(c for c in map(chr, range(0x21, 0x7F)) if c not in '"%')
"""HTTP binding 3.1.3.2: printable ASCII stays, except ``"`` and ``%``; space and all else
is percent-encoded (UTF-8 bytes, upper-case hex)."""

_TYPE_WORD = re.compile(r"[^a-z0-9]+")


def event_type(event: Event) -> str:
    """The CloudEvents ``type`` of ``event``; see the module docstring."""
    if event.digest is not None:
        return DIGEST_TYPE
    if event.k8s_event is not None:
        word = _TYPE_WORD.sub("", event.k8s_event.type.lower()) or "normal"
        return K8S_EVENT_TYPE_PREFIX + word
    if event.alert is not None:
        return ALERT_TYPE_PREFIX + event.alert.state.value
    return RESOURCE_TYPES[event.type]


def subject(event: Event) -> str | None:
    """``kind/namespace/name`` (``kind/name`` cluster-scoped); None for a digest."""
    if event.digest is not None:
        return None
    if event.k8s_event is not None:
        obj = event.k8s_event.involved
        kind, namespace, name = obj.kind, obj.namespace, obj.name
    else:
        kind, namespace, name = event.kind, event.namespace, event.name
    return f"{kind}/{namespace}/{name}" if namespace else f"{kind}/{name}"


def cloud_event(event: Event, source: str) -> dict[str, Any]:
    """The CloudEvent of ``event`` as the JSON format's document (``data`` included)."""
    doc: dict[str, Any] = {
        "specversion": SPEC_VERSION,
        "id": event.id,
        "source": source,
        "type": event_type(event),
    }
    sub = subject(event)
    if sub is not None:
        doc["subject"] = sub
    doc |= {"time": event.observed_at, "datacontenttype": DATA_CONTENT_TYPE}
    doc["data"] = event.to_dict()
    return doc


def header_value(value: str) -> str:
    """An attribute value as a ``ce-*`` header value (HTTP binding 3.1.3.2)."""
    return urllib.parse.quote(value, safe=_HEADER_SAFE)


class CloudEventsSink(HttpSink):
    """Send each event as a CloudEvent to ``config.url`` in ``config.mode``.

    A ``source`` that is empty or holds whitespace or control characters (never a
    URI-reference) raises :class:`ConfigError` at ``sinks.<name>.source``.
    """

    kind = "cloudevents"

    def __init__(
        self,
        name: str,
        config: CloudEventsSinkConfig,
        transport: httpx.BaseTransport | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(name, config, transport, clock=clock)
        self._binary = config.mode == "binary"
        self._source = config.source
        if self._source is not None and (
            not self._source or any(c.isspace() or not c.isprintable() for c in self._source)
        ):
            raise ConfigError(
                format_path(("sinks", name, "source")),
                "must be a URI-reference (not empty, no spaces or control characters)",
            )

    def source(self, event: Event) -> str:
        """``config.source``, or ``kubewatch/<cluster>``."""
        if self._source is not None:
            return self._source
        return "kubewatch/" + urllib.parse.quote(event.cluster, safe=_SOURCE_SAFE)

    def request(self, event: Event) -> Request:
        doc = cloud_event(event, self.source(event))
        what = f"event {event.id}"
        if not self._binary:
            return Request(encode_json(doc, what), {"Content-Type": STRUCTURED_CONTENT_TYPE})
        data = doc.pop("data")
        headers = {"Content-Type": doc.pop("datacontenttype")}
        headers |= {f"ce-{key}": header_value(value) for key, value in doc.items()}
        return Request(encode_json(data, what), headers)
