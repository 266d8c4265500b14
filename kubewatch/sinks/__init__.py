"""Sinks: where events go. One module per sink, one protocol (:mod:`kubewatch.sinks.base`).

Sinks come from a typed registry keyed by config class, never from a switch on strings:
adding a sink is one module plus one ``_Entry`` line in ``_REGISTRY`` below, and mypy
checks that the sink class accepts that config class. A sink that keeps something for the
life of the process (the Slack bot's thread roots) gets it from :class:`SinkServices`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from kubewatch.config import (
    CloudEventsSinkConfig,
    DingTalkSinkConfig,
    DiscordSinkConfig,
    FeishuSinkConfig,
    GoogleChatSinkConfig,
    MatrixSinkConfig,
    MattermostSinkConfig,
    SinkConfig,
    SlackSinkConfig,
    SlackWebhookSinkConfig,
    SmtpSinkConfig,
    StdoutSinkConfig,
    TeamsSinkConfig,
    TelegramSinkConfig,
    WebhookSinkConfig,
    WeComSinkConfig,
)
from kubewatch.config.incident_sinks import (
    AlertmanagerSinkConfig,
    NatsSinkConfig,
    OpsgenieSinkConfig,
    PagerDutySinkConfig,
)
from kubewatch.errors import ConfigError, ConfigErrors
from kubewatch.sinks.alertmanager import AlertmanagerSink
from kubewatch.sinks.base import Sink, SinkBase
from kubewatch.sinks.cloudevents import CloudEventsSink
from kubewatch.sinks.dingtalk import DingTalkSink
from kubewatch.sinks.discord import DiscordSink
from kubewatch.sinks.feishu import FeishuSink
from kubewatch.sinks.googlechat import GoogleChatSink
from kubewatch.sinks.matrix import MatrixSink
from kubewatch.sinks.mattermost import MattermostSink
from kubewatch.sinks.nats import NatsSink
from kubewatch.sinks.opsgenie import OpsgenieSink
from kubewatch.sinks.pagerduty import PagerDutySink
from kubewatch.sinks.slack import SlackSink, SlackWebhookSink
from kubewatch.sinks.smtp import SmtpSink
from kubewatch.sinks.stdout import StdoutSink
from kubewatch.sinks.teams import TeamsSink
from kubewatch.sinks.telegram import TelegramSink
from kubewatch.sinks.threads import ThreadBooks
from kubewatch.sinks.webhook import WebhookSink
from kubewatch.sinks.wecom import WeComSink

__all__ = [
    "Sink",
    "SinkBase",
    "SinkServices",
    "StdoutSink",
    "WebhookSink",
    "build_sink",
    "registered_configs",
]

_C = TypeVar("_C")


@dataclass(frozen=True)
class SinkServices:
    """What the process keeps for its sinks across reloads: the thread roots of chat
    sinks with ``thread: object`` (durable when there is state)."""

    books: ThreadBooks = field(default_factory=ThreadBooks)


@dataclass(frozen=True)
class _Entry(Generic[_C]):
    """Ties one config class to the factory that builds its sink; typed so they match."""

    config_type: type[_C]
    factory: Callable[[str, _C, SinkServices], Sink]

    @classmethod
    def plain(cls, config_type: type[_C], factory: Callable[[str, _C], Sink]) -> _Entry[_C]:
        """A sink that needs no services."""
        return cls(config_type, lambda name, config, _: factory(name, config))


_REGISTRY: dict[type[Any], _Entry[Any]] = {
    entry.config_type: entry
    for entry in (
        _Entry.plain(StdoutSinkConfig, StdoutSink),
        _Entry.plain(WebhookSinkConfig, WebhookSink),
        _Entry(SlackSinkConfig, lambda n, c, s: SlackSink(n, c, s.books)),
        _Entry.plain(SlackWebhookSinkConfig, SlackWebhookSink),
        _Entry.plain(SmtpSinkConfig, SmtpSink),
        _Entry.plain(TeamsSinkConfig, TeamsSink),
        _Entry.plain(DiscordSinkConfig, DiscordSink),
        _Entry.plain(MattermostSinkConfig, MattermostSink),
        _Entry.plain(CloudEventsSinkConfig, CloudEventsSink),
        _Entry.plain(GoogleChatSinkConfig, GoogleChatSink),
        _Entry.plain(TelegramSinkConfig, TelegramSink),
        _Entry.plain(MatrixSinkConfig, MatrixSink),
        _Entry.plain(DingTalkSinkConfig, DingTalkSink),
        _Entry.plain(FeishuSinkConfig, FeishuSink),
        _Entry.plain(WeComSinkConfig, WeComSink),
        _Entry.plain(PagerDutySinkConfig, PagerDutySink),
        _Entry.plain(OpsgenieSinkConfig, OpsgenieSink),
        _Entry.plain(AlertmanagerSinkConfig, AlertmanagerSink),
        _Entry.plain(NatsSinkConfig, NatsSink),
    )
}


def registered_configs() -> frozenset[type[Any]]:
    """The config classes that have a sink (a test checks it covers ``SinkConfig``)."""
    return frozenset(_REGISTRY)


def build_sink(name: str, config: SinkConfig, services: SinkServices | None = None) -> Sink:
    """Build the sink for one ``sinks:`` entry; ``name`` is its key in the config.

    Templates are compiled and checked here. Every mistake is raised as
    :class:`~kubewatch.errors.ConfigErrors` (a bad template, or a config the model did
    not validate), so a caller collects the errors of all sinks the same way.
    """
    entry = _REGISTRY.get(type(config))
    if entry is None:
        raise ConfigErrors(
            [ConfigError(f"sinks.{name}", f"no sink implements {type(config).__name__}")]
        )
    try:
        sink: Sink = entry.factory(name, config, services or SinkServices())
    except ConfigError as exc:
        raise ConfigErrors([exc]) from None
    return sink
