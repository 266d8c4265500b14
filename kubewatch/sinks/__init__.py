"""Sinks: where events go. One module per sink, one protocol (:mod:`kubewatch.sinks.base`).

Sinks come from a typed registry keyed by config class, never from a switch on strings:
adding a sink is one module plus one factory and one ``_Entry`` line in ``_REGISTRY``
below, and mypy checks that the sink class accepts that config class. Each factory
imports its sink's module when it is first called: a run imports only the sinks it
configures (the NATS, Slack, SMTP and CloudEvents stacks cost ~0.3 s and ~15 MiB). A
sink that keeps something for the life of the process (the thread roots of chat sinks) gets
it from :class:`SinkServices`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, TypeVar

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
from kubewatch.sinks.base import Sink, SinkBase
from kubewatch.sinks.kept import PerSink
from kubewatch.sinks.threads import ThreadBooks, ThreadMemory

if TYPE_CHECKING:
    from kubewatch.sinks.incident import OpenKeys
    from kubewatch.sinks.stdout import StdoutSink
    from kubewatch.sinks.webhook import WebhookSink

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
    sinks with ``thread: object`` and the open alerts of incident sinks (both durable
    when there is state: ``memo`` gives a space of the state database)."""

    books: ThreadBooks = field(default_factory=ThreadBooks)
    memo: Callable[[str], ThreadMemory] | None = None
    incidents: PerSink[OpenKeys] = field(default_factory=PerSink)

    def open_keys(self, sink: str) -> OpenKeys:
        """The alerts incident sink ``sink`` triggered (``resolveOnDelete``)."""
        from kubewatch.sinks.incident import OpenKeys

        def make() -> OpenKeys:
            return OpenKeys(memory=None if self.memo is None else self.memo(f"incidents/{sink}"))

        return self.incidents.get(sink, make)[0]


@dataclass(frozen=True)
class _Entry(Generic[_C]):
    """Ties one config class to the factory that builds its sink; typed so they match."""

    config_type: type[_C]
    factory: Callable[[str, _C, SinkServices], Sink]


# --------------------------------------------------------------------------- factories
# One per sink, importing its module on first use.


def _stdout(name: str, config: StdoutSinkConfig, _: SinkServices) -> Sink:
    from kubewatch.sinks.stdout import StdoutSink

    return StdoutSink(name, config)


def _webhook(name: str, config: WebhookSinkConfig, _: SinkServices) -> Sink:
    from kubewatch.sinks.webhook import WebhookSink

    return WebhookSink(name, config)


def _slack(name: str, config: SlackSinkConfig, services: SinkServices) -> Sink:
    from kubewatch.sinks.slack import SlackSink

    return SlackSink(name, config, services.books)


def _slack_webhook(name: str, config: SlackWebhookSinkConfig, _: SinkServices) -> Sink:
    from kubewatch.sinks.slack import SlackWebhookSink

    return SlackWebhookSink(name, config)


def _smtp(name: str, config: SmtpSinkConfig, _: SinkServices) -> Sink:
    from kubewatch.sinks.smtp import SmtpSink

    return SmtpSink(name, config)


def _teams(name: str, config: TeamsSinkConfig, _: SinkServices) -> Sink:
    from kubewatch.sinks.teams import TeamsSink

    return TeamsSink(name, config)


def _discord(name: str, config: DiscordSinkConfig, services: SinkServices) -> Sink:
    from kubewatch.sinks.discord import DiscordSink

    return DiscordSink(name, config, books=services.books)


def _mattermost(name: str, config: MattermostSinkConfig, services: SinkServices) -> Sink:
    from kubewatch.sinks.mattermost import MattermostSink

    return MattermostSink(name, config, books=services.books)


def _cloudevents(name: str, config: CloudEventsSinkConfig, _: SinkServices) -> Sink:
    from kubewatch.sinks.cloudevents import CloudEventsSink

    return CloudEventsSink(name, config)


def _googlechat(name: str, config: GoogleChatSinkConfig, _: SinkServices) -> Sink:
    from kubewatch.sinks.googlechat import GoogleChatSink

    return GoogleChatSink(name, config)


def _telegram(name: str, config: TelegramSinkConfig, _: SinkServices) -> Sink:
    from kubewatch.sinks.telegram import TelegramSink

    return TelegramSink(name, config)


def _matrix(name: str, config: MatrixSinkConfig, _: SinkServices) -> Sink:
    from kubewatch.sinks.matrix import MatrixSink

    return MatrixSink(name, config)


def _dingtalk(name: str, config: DingTalkSinkConfig, _: SinkServices) -> Sink:
    from kubewatch.sinks.dingtalk import DingTalkSink

    return DingTalkSink(name, config)


def _feishu(name: str, config: FeishuSinkConfig, _: SinkServices) -> Sink:
    from kubewatch.sinks.feishu import FeishuSink

    return FeishuSink(name, config)


def _wecom(name: str, config: WeComSinkConfig, _: SinkServices) -> Sink:
    from kubewatch.sinks.wecom import WeComSink

    return WeComSink(name, config)


def _pagerduty(name: str, config: PagerDutySinkConfig, services: SinkServices) -> Sink:
    from kubewatch.sinks.pagerduty import PagerDutySink

    return PagerDutySink(name, config, open_keys=services.open_keys(name))


def _opsgenie(name: str, config: OpsgenieSinkConfig, services: SinkServices) -> Sink:
    from kubewatch.sinks.opsgenie import OpsgenieSink

    return OpsgenieSink(name, config, open_keys=services.open_keys(name))


def _alertmanager(name: str, config: AlertmanagerSinkConfig, services: SinkServices) -> Sink:
    from kubewatch.sinks.alertmanager import AlertmanagerSink

    return AlertmanagerSink(name, config, open_keys=services.open_keys(name))


def _nats(name: str, config: NatsSinkConfig, _: SinkServices) -> Sink:
    from kubewatch.sinks.nats import NatsSink

    return NatsSink(name, config)


_REGISTRY: dict[type[Any], _Entry[Any]] = {
    entry.config_type: entry
    for entry in (
        _Entry(StdoutSinkConfig, _stdout),
        _Entry(WebhookSinkConfig, _webhook),
        _Entry(SlackSinkConfig, _slack),
        _Entry(SlackWebhookSinkConfig, _slack_webhook),
        _Entry(SmtpSinkConfig, _smtp),
        _Entry(TeamsSinkConfig, _teams),
        _Entry(DiscordSinkConfig, _discord),
        _Entry(MattermostSinkConfig, _mattermost),
        _Entry(CloudEventsSinkConfig, _cloudevents),
        _Entry(GoogleChatSinkConfig, _googlechat),
        _Entry(TelegramSinkConfig, _telegram),
        _Entry(MatrixSinkConfig, _matrix),
        _Entry(DingTalkSinkConfig, _dingtalk),
        _Entry(FeishuSinkConfig, _feishu),
        _Entry(WeComSinkConfig, _wecom),
        _Entry(PagerDutySinkConfig, _pagerduty),
        _Entry(OpsgenieSinkConfig, _opsgenie),
        _Entry(AlertmanagerSinkConfig, _alertmanager),
        _Entry(NatsSinkConfig, _nats),
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


def __getattr__(name: str) -> Any:
    """``StdoutSink`` and ``WebhookSink`` stay importable from here, imported on use."""
    if name == "StdoutSink":
        from kubewatch.sinks.stdout import StdoutSink

        return StdoutSink
    if name == "WebhookSink":
        from kubewatch.sinks.webhook import WebhookSink

        return WebhookSink
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
