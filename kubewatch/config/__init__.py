"""The configuration model: one YAML file, validated before anything starts.

Keys are camelCase in YAML (``labelSelector``) and snake_case in Python. Every model is
frozen and forbids unknown keys, so a typo is an error that names its key path.

:func:`load_config` / :func:`parse_config` read the YAML, expand ``${VAR}`` in string
values, validate, and raise :class:`~kubewatch.errors.ConfigErrors` listing *every*
mistake with its key path (``resources[2].kind``), never only the first one. No error
message ever contains the value of an environment variable: those are often secrets.

One job per module: :mod:`.fields` (field types and validators), :mod:`.resources`,
:mod:`.sinks`, :mod:`.runtime`, :mod:`.tenancy` and :mod:`.model` (the models), :mod:`.shapes` and
:mod:`.messages` (error text), :mod:`.expand` (``${VAR}``), :mod:`.loading` (YAML, limits).
"""

from kubewatch.config.chat_sinks import (
    ROBOT_RATE_LIMIT,
    DingTalkSinkConfig,
    FeishuSinkConfig,
    GoogleChatSinkConfig,
    MatrixSinkConfig,
    TelegramSinkConfig,
    WeComSinkConfig,
)
from kubewatch.config.fields import ALL_EVENTS, EventName
from kubewatch.config.loading import MAX_CONFIG_BYTES, format_errors, load_config, parse_config
from kubewatch.config.messages import validation_errors
from kubewatch.config.model import Config, MatchConfig, RouteConfig
from kubewatch.config.resources import (
    HealthConfig,
    NamesConfig,
    NamespacesConfig,
    ResourceConfig,
    UpdatesConfig,
)
from kubewatch.config.runtime import (
    DeliveryConfig,
    LeaderElectionConfig,
    ServerConfig,
    StateConfig,
    WatchConfig,
)
from kubewatch.config.shapes import format_path
from kubewatch.config.sink_types import SINK_TYPES, SinkConfig
from kubewatch.config.sinks import (
    CHAT_DIGEST,
    CHAT_RATE_LIMIT,
    CloudEventsSinkConfig,
    DigestConfig,
    RateLimitConfig,
    RetryConfig,
    SlackWebhookSinkConfig,
    SmtpSinkConfig,
    StdoutSinkConfig,
    TeamsSinkConfig,
    WebhookSinkConfig,
)
from kubewatch.config.tenancy import DEFAULT_ALLOWED_KINDS, TenancyConfig
from kubewatch.config.threaded_sinks import (
    DiscordSinkConfig,
    MattermostSinkConfig,
    SlackSinkConfig,
)

__all__ = [
    "ALL_EVENTS",
    "CHAT_DIGEST",
    "CHAT_RATE_LIMIT",
    "DEFAULT_ALLOWED_KINDS",
    "MAX_CONFIG_BYTES",
    "ROBOT_RATE_LIMIT",
    "SINK_TYPES",
    "CloudEventsSinkConfig",
    "Config",
    "DeliveryConfig",
    "DigestConfig",
    "DingTalkSinkConfig",
    "DiscordSinkConfig",
    "EventName",
    "FeishuSinkConfig",
    "GoogleChatSinkConfig",
    "HealthConfig",
    "LeaderElectionConfig",
    "MatchConfig",
    "MatrixSinkConfig",
    "MattermostSinkConfig",
    "NamesConfig",
    "NamespacesConfig",
    "RateLimitConfig",
    "ResourceConfig",
    "RetryConfig",
    "RouteConfig",
    "ServerConfig",
    "SinkConfig",
    "SlackSinkConfig",
    "SlackWebhookSinkConfig",
    "SmtpSinkConfig",
    "StateConfig",
    "StdoutSinkConfig",
    "TeamsSinkConfig",
    "TelegramSinkConfig",
    "TenancyConfig",
    "UpdatesConfig",
    "WatchConfig",
    "WeComSinkConfig",
    "WebhookSinkConfig",
    "format_errors",
    "format_path",
    "load_config",
    "parse_config",
    "validation_errors",
]
