"""The content of a chat message, independent of any one chat service.

Every chat sink (Slack, Teams, Discord, Mattermost, e-mail) shows the same things: a
title line, a few labelled fields, the changes as a code block, a colour for the kind of
change, and a footer. :func:`chat_message` computes them once per event, escaped for the
service's markup; each sink only lays them out in its own format (Block Kit, Adaptive
Card, embed, attachment, HTML).
"""

from __future__ import annotations

from dataclasses import dataclass

from kubewatch.events import AlertState, Event, EventType
from kubewatch.render.escape import Markup, escape
from kubewatch.render.text import changes_block, default_text, one_line

__all__ = ["COLOURS", "ChatMessage", "chat_message"]

COLOURS = {
    EventType.CREATE: "#2EB67D",  # green
    EventType.UPDATE: "#ECB22E",  # amber
    EventType.DELETE: "#E01E5A",  # red
    EventType.ALERT: "#E01E5A",  # red; a resolved alert is green (RESOLVED_COLOUR)
}
"""Colour bar per change type; a Kubernetes Warning Event is red whatever its type."""
WARNING_COLOUR = "#E01E5A"
NORMAL_EVENT_COLOUR = "#1D9BD1"
FIRING_COLOUR = "#E01E5A"  # red
RESOLVED_COLOUR = "#2EB67D"  # green
"""Health alerts: red while firing, green once resolved."""


@dataclass(frozen=True, slots=True)
class ChatMessage:
    """What a chat message says; every text is already escaped for the markup."""

    title: str
    """One line: the summary (``[prod] Deployment shop/web updated: …``)."""
    fields: tuple[tuple[str, str], ...]
    """(label, value) pairs: cluster, namespace, kind, and reason/count for Events."""
    changes: str
    """One line per change (``path: old → new``), or a health alert's log lines, or
    ``""``: shown as a code block."""
    colour: str
    """``#RRGGBB``."""
    footer: str
    """``kubewatch · <event id>`` for tracing a message back to logs and receivers."""
    fallback: str
    """Plain one-line text for notifications and clients that show no rich layout."""


def chat_message(event: Event, markup: Markup) -> ChatMessage:
    """The chat content of ``event``, escaped for ``markup``."""
    fields = [("Cluster", event.cluster), ("Kind", event.kind)]
    if event.namespace:
        fields.append(("Namespace", event.namespace))
    colour = COLOURS[event.type]
    if event.k8s_event is not None:
        k = event.k8s_event
        obj = k.involved
        fields = [("Cluster", event.cluster), ("Object", f"{obj.kind} {obj.name}")]
        if obj.namespace:
            fields.append(("Namespace", obj.namespace))
        fields += [("Reason", k.reason), ("Count", str(k.count))]
        colour = WARNING_COLOUR if k.type == "Warning" else NORMAL_EVENT_COLOUR
    alert = event.alert
    if alert is not None:
        colour = FIRING_COLOUR if alert.state is AlertState.FIRING else RESOLVED_COLOUR
        fields += [("Alert", alert.state.value), ("Reason", alert.reason)]
        if alert.container:
            fields.append(("Container", alert.container))
        if alert.exit_code is not None:
            fields.append(("Exit code", str(alert.exit_code)))
        if alert.restart_count is not None:
            fields.append(("Restarts", str(alert.restart_count)))
    if event.digest is not None:
        fields.append(("Events", str(event.digest.count)))
    # Shown as a code block: markdown escapes would show literally there, and a ``` inside
    # would end the block. Slack still parses <!channel> and <url|text> inside code blocks,
    # and HTML is HTML: those two are escaped.
    block = alert.logs if alert is not None and alert.logs else changes_block(event, "none")
    changes = block.replace("```", "'''")
    if markup in ("slack", "html"):
        changes = escape(changes, markup)
    return ChatMessage(
        title=default_text(event, markup),
        fields=tuple((label, escape(one_line(value), markup)) for label, value in fields),
        changes=changes,
        colour=colour,
        footer=f"kubewatch · {event.id}",
        fallback=default_text(event, markup),
    )
