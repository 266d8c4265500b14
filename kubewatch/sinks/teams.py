"""The Microsoft Teams sink: an Adaptive Card posted to a Workflows webhook.

Teams retired the Office 365 connectors and their MessageCard; a channel now receives
webhooks through a Workflows (Power Automate) flow, "Post to a channel when a webhook
request is received", which posts the Adaptive Cards of the request's ``attachments``.
The flow answers ``202 Accepted`` once it has taken the request: whether the card was
then posted shows in the flow's run history, not in the HTTP answer.

The card (Adaptive Card 1.4, which every Teams client renders)::

    {"type": "message", "attachments": [{
      "contentType": "application/vnd.microsoft.card.adaptive", "contentUrl": null,
      "content": {"$schema": ..., "type": "AdaptiveCard", "version": "1.4",
        "msteams": {"width": "Full"},
        "body": [
          TextBlock   the title (``template`` when set), bold, wrapped, coloured by change
          FactSet     Cluster, Kind, Namespace (Reason, Count for Kubernetes Events, ...)
          Container   the changes, one monospace TextBlock per line
          TextBlock   footer ``kubewatch · <event id>``, subtle, small
        ]}}]}

TextBlocks and fact values render a markdown subset in Teams, so all object text is
escaped for markdown — the changes too: they are monospace lines, not a code block. One
TextBlock per change keeps every line a line (a newline inside a TextBlock is not
rendered alike by all Teams clients). A Teams mention needs an explicit ``msteams``
entity, which kubewatch never sends: no object text can ping anyone.
"""

from __future__ import annotations

from typing import Any

from kubewatch.events import AlertState, Event, EventType
from kubewatch.render import ChatMessage, escape
from kubewatch.sinks.http import ChatSink

__all__ = ["CARD_VERSION", "TeamsSink", "adaptive_card"]

CARD_VERSION = "1.4"
"""1.4 renders in Teams desktop, web and mobile alike; nothing here needs a later one."""

_SCHEMA = "http://adaptivecards.io/schemas/adaptive-card.json"

_TONE = {EventType.CREATE: "Good", EventType.UPDATE: "Warning", EventType.DELETE: "Attention"}
"""Title colour per change type (Adaptive Cards have named colours, not #RRGGBB)."""


def _tone(event: Event) -> str:
    """The title colour: like the other chat sinks' colour bar, in Teams' named colours."""
    if event.k8s_event is not None:
        return "Attention" if event.k8s_event.type == "Warning" else "Accent"
    if event.alert is not None:
        return "Attention" if event.alert.state is AlertState.FIRING else "Good"
    return _TONE.get(event.type, "Attention")


def adaptive_card(event: Event, message: ChatMessage, title: str) -> dict[str, Any]:
    """The Adaptive Card of ``message`` (escaped for markdown) with ``title`` on top."""
    body: list[dict[str, Any]] = [
        {
            "type": "TextBlock",
            "text": title,
            "weight": "Bolder",
            "size": "Medium",
            "wrap": True,
            "color": _tone(event),
        },
        {
            "type": "FactSet",
            "facts": [{"title": label, "value": value} for label, value in message.fields],
        },
    ]
    if message.changes:
        body.append(
            {
                "type": "Container",
                "items": [
                    {
                        "type": "TextBlock",
                        "text": escape(line, "markdown"),
                        "fontType": "Monospace",
                        "size": "Small",
                        "wrap": True,
                        "spacing": "None",
                    }
                    for line in message.changes.splitlines()
                ],
            }
        )
    body.append(
        {
            "type": "TextBlock",
            "text": message.footer,
            "isSubtle": True,
            "size": "Small",
            "wrap": True,
        }
    )
    return {
        "$schema": _SCHEMA,
        "type": "AdaptiveCard",
        "version": CARD_VERSION,
        "msteams": {"width": "Full"},
        "body": body,
    }


class TeamsSink(ChatSink):
    """Post each event as an Adaptive Card to a Teams Workflows webhook.

    Built from a :class:`~kubewatch.config.TeamsSinkConfig`; ``template`` renders the
    title. The URL carries the flow's signature (``sig=``) in its query: it is a credential,
    and never appears in a message (:mod:`kubewatch.sinks.endpoint`).
    """

    kind = "teams"

    def payload(self, event: Event, message: ChatMessage, text: str | None) -> dict[str, Any]:
        card = adaptive_card(event, message, message.title if text is None else text)
        return {
            "type": "message",
            "attachments": [
                {
                    "contentType": "application/vnd.microsoft.card.adaptive",
                    "contentUrl": None,
                    "content": card,
                }
            ],
        }
