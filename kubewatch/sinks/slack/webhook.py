"""The incoming-webhook sink: a POST of the same message, its status codes sorted."""

from __future__ import annotations

import logging
import urllib.parse
from collections.abc import Mapping
from typing import Any, cast

from slack_sdk.errors import SlackClientError
from slack_sdk.webhook import WebhookClient

from kubewatch.config import SlackWebhookSinkConfig
from kubewatch.errors import DeliveryError, PermanentError, RateLimited, RetryableError
from kubewatch.events import Event
from kubewatch.sinks.slack.bot import BODY_CHARS
from kubewatch.sinks.slack.transport import (
    TRANSPORT_ERRORS,
    SdkLog,
    SlackSinkBase,
    check_url,
    retry_after_of,
    scrubber,
    transport_error,
    url_origin,
)

# --------------------------------------------------------------------------- webhook


_WEBHOOK_HINTS: dict[str, str] = {
    "no_service": "the webhook was removed or disabled: create a new one",
    "invalid_token": "the webhook URL is not valid: copy it again from the Slack app",
    "channel_is_archived": "the webhook's channel is archived",
    "channel_not_found": "the webhook's channel was deleted",
    "action_prohibited": "a workspace admin restricts posting to this channel",
    "posting_to_general_channel_denied": "only admins may post to this channel",
    "team_disabled": "the workspace was deleted or disabled",
}
"""Reasons Slack gives in a webhook's error body, and what they mean to fix."""


class SlackWebhookSink(SlackSinkBase):
    """Post each event to a Slack incoming webhook (the channel is the webhook's).

    The URL embeds a token: messages show its origin (``https://hooks.slack.com``)
    only, and server text is scrubbed of the URL and its path.
    """

    def __init__(self, name: str, config: SlackWebhookSinkConfig) -> None:
        super().__init__(name, config.template)
        check_url(config.url, f"sinks.{name}.url")
        self.url_origin = url_origin(config.url)
        path = urllib.parse.urlsplit(config.url).path
        self._scrub = scrubber(config.url, path, *(p for p in path.split("/") if len(p) >= 8))
        self._client = WebhookClient(
            url=config.url,
            timeout=cast(int, config.timeout),  # float seconds work; see SlackSink
            logger=SdkLog(name, self._scrub),
            retry_handlers=[],  # the delivery layer retries, not the SDK
        )

    def send(self, event: Event) -> None:
        self._check_open()
        payload = self.payload(event)
        try:
            response = self._client.send(**payload)
        except TRANSPORT_ERRORS as exc:
            raise transport_error(self.name, self.url_origin, exc, self._scrub) from None
        except SlackClientError as exc:
            raise PermanentError(
                f"slack sink {self.name!r}: {type(exc).__name__}: {self._scrub(str(exc))}"
            ) from None
        status = response.status_code
        if 200 <= status < 300:
            return
        raise self._status_error(status, response.headers, response.body or "")

    def _status_error(self, status: int, headers: Mapping[str, Any], body: str) -> DeliveryError:
        reason = " ".join(self._scrub(body).split())[:BODY_CHARS]  # scrub, then cut
        said = f"HTTP {status}" + (f" {reason}" if reason else "")
        where = f"slack sink {self.name!r}: webhook at {self.url_origin}"
        if status == 429:
            return RateLimited(f"{where}: rate limited ({said})", retry_after_of(headers))
        if status >= 500 or status == 408:
            return RetryableError(f"{where}: Slack failed ({said})")
        hint = _WEBHOOK_HINTS.get(reason)
        message = f"{where}: refused ({said})" + (f": {hint}" if hint else "")
        self._once((status, reason), logging.ERROR, message)
        return PermanentError(message)
