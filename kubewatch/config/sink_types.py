"""The set of sink types: one discriminated union over every sink model.

Sink models live beside their kin (:mod:`kubewatch.config.sinks` for the first ones); a new
sink type joins the config by being added to :data:`SinkConfig` here, and everything else
(the ``type`` enum, the JSON Schema, error messages) follows from it.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from kubewatch.config.chat_sinks import (
    DingTalkSinkConfig,
    FeishuSinkConfig,
    GoogleChatSinkConfig,
    MatrixSinkConfig,
    TelegramSinkConfig,
    WeComSinkConfig,
)
from kubewatch.config.incident_sinks import (
    AlertmanagerSinkConfig,
    NatsSinkConfig,
    OpsgenieSinkConfig,
    PagerDutySinkConfig,
)
from kubewatch.config.shapes import union_members, unwrap
from kubewatch.config.sinks import (
    CloudEventsSinkConfig,
    SlackWebhookSinkConfig,
    SmtpSinkConfig,
    StdoutSinkConfig,
    TeamsSinkConfig,
    WebhookSinkConfig,
)
from kubewatch.config.threaded_sinks import (
    DiscordSinkConfig,
    MattermostSinkConfig,
    SlackSinkConfig,
)

SinkConfig = Annotated[
    StdoutSinkConfig
    | WebhookSinkConfig
    | SlackSinkConfig
    | SlackWebhookSinkConfig
    | TeamsSinkConfig
    | DiscordSinkConfig
    | MattermostSinkConfig
    | CloudEventsSinkConfig
    | SmtpSinkConfig
    | GoogleChatSinkConfig
    | TelegramSinkConfig
    | MatrixSinkConfig
    | DingTalkSinkConfig
    | FeishuSinkConfig
    | WeComSinkConfig
    | PagerDutySinkConfig
    | OpsgenieSinkConfig
    | AlertmanagerSinkConfig
    | NatsSinkConfig,
    Field(discriminator="type"),
]


SINK_TYPES: tuple[str, ...] = tuple(union_members(unwrap(SinkConfig)[0], "type"))
"""Every ``type`` a sink may have, derived from :data:`SinkConfig` (no list to keep in sync)."""
