"""Slack sinks: a bot token (``chat.postMessage``) and an incoming webhook.

Both post the same Block Kit message, built by small pure functions from the shared
chat content (:func:`kubewatch.render.chat_message`, escaped for Slack mrkdwn):

- top-level ``blocks``: one mrkdwn section with the title (the event summary), or the
  sink's ``template`` rendered (it then replaces the title and the changes);
- one ``attachment`` whose ``color`` is the bar (create green, update amber, delete red,
  Kubernetes Warning Events red), holding a fields section (cluster, kind, namespace, …),
  the changes as a code block and a context line with ``kubewatch · <event id>``;
- ``text``: the plain one-line fallback for notifications.

Slack's limits are respected by cutting, with a visible marker, never by failing: 3000
characters per section text, 2000 per field, 10 fields per section.

Both sinks call slack-sdk with its own retry handlers off (``retry_handlers=[]``): the
delivery layer decides about retries. How one attempt ends:

==========================================  ============================================
``chat.postMessage``                        outcome
==========================================  ============================================
``ok: true``                                delivered
HTTP 429 / ``ratelimited``                  ``RateLimited`` (``Retry-After`` or 1 s)
``invalid_auth``, ``not_authed``,           ``PermanentError`` with what to fix; logged
``account_inactive``, ``token_revoked``,    once per sink and error code (ERROR), not
``not_in_channel``, ``channel_not_found``,  once per event
``is_archived``, ``missing_scope``
HTTP 5xx, 408, ``internal_error``,          ``RetryableError``
``fatal_error``, ``service_unavailable``,
``request_timeout``
any other ``ok: false``                     ``PermanentError`` (logged once per code,
                                            WARNING)
connection refused, reset, timeout          ``RetryableError``
TLS certificate not trusted                 ``PermanentError`` (as in the webhook sink)
==========================================  ============================================

==========================================  ============================================
incoming webhook                            outcome
==========================================  ============================================
2xx                                         delivered
429                                         ``RateLimited`` (``Retry-After`` or 1 s)
5xx, 408                                    ``RetryableError``
other 4xx (``404 no_service``,              ``PermanentError`` naming Slack's reason;
``403 invalid_token``,                      logged once per sink, status and reason
``410 channel_is_archived``, …)
connection refused, reset, timeout          ``RetryableError``
==========================================  ============================================

Secrets: the bot token and the webhook URL (it embeds a token) never appear in a log
line or an error message. Messages name the receiver by origin only; server-supplied
text is scrubbed of both; the SDK's exceptions are not chained (their text quotes URLs
and responses), and the SDK's own log lines go through :class:`_SdkLog`."""

from kubewatch.sinks.slack.blocks import (
    FIELD_CHARS,
    MAX_FIELDS,
    SECTION_CHARS,
    fit_code_block,
    fit_text,
    slack_attachments,
    slack_blocks,
    slack_payload,
)
from kubewatch.sinks.slack.bot import SlackSink
from kubewatch.sinks.slack.webhook import SlackWebhookSink

__all__ = [
    "FIELD_CHARS",
    "MAX_FIELDS",
    "SECTION_CHARS",
    "SlackSink",
    "SlackWebhookSink",
    "fit_code_block",
    "fit_text",
    "slack_attachments",
    "slack_blocks",
    "slack_payload",
]
