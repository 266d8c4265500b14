"""The bot-token sink: ``chat.postMessage``, its error codes sorted into retryable,
rate-limited and permanent."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, cast

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web import SlackResponse

from kubewatch.config import SlackSinkConfig
from kubewatch.errors import ConfigError, DeliveryError, PermanentError, RateLimited, RetryableError
from kubewatch.events import Event
from kubewatch.sinks.slack.threads import ROOT_GONE_CODES, RootGone, with_history
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
from kubewatch.sinks.threads import ThreadBooks, ThreadRoot, object_threads

# --------------------------------------------------------------------------- bot token


_RETRYABLE_CODES = frozenset(
    {"internal_error", "fatal_error", "service_unavailable", "request_timeout"}
)
"""``ok: false`` codes that say "Slack had a problem", not "your request is wrong"."""

_ERROR_CODE = re.compile(r"[a-z0-9_.]{1,100}")
"""What Slack's ``error`` codes look like (``not_in_channel``)."""

BODY_CHARS = 200
"""Characters of Slack's explanation or an error body put into a message."""

_CONFIG_CODES: dict[str, str] = {
    "invalid_auth": "the token is not valid (invalid_auth): check token / tokenFile",
    "not_authed": "no token reached Slack (not_authed): check token / tokenFile",
    "account_inactive": "the token belongs to a deactivated user or workspace "
    "(account_inactive): reinstall the Slack app",
    "token_revoked": "the token was revoked (token_revoked): reinstall the Slack app and "
    "use its new token",
    "not_in_channel": "the bot is not a member of channel {channel} (not_in_channel): "
    "invite it (/invite @your-app in the channel), or add scope chat:write.public to post "
    "in public channels without joining",
    "channel_not_found": "channel {channel} not found (channel_not_found): check channel; "
    "a private channel needs the bot invited first",
    "is_archived": "channel {channel} is archived (is_archived): unarchive it or change channel",
    "missing_scope": "the token lacks scope {needed} (missing_scope): add it under OAuth & "
    "Permissions of the Slack app and reinstall it",
}
"""Codes that retrying cannot fix and a person must: what to do about each."""


class SlackSink(SlackSinkBase):
    """Post each event with ``chat.postMessage`` as a bot (scope ``chat:write``).

    The token comes from ``token`` or is read once from ``tokenFile`` here, at build
    time; a missing or unreadable file is a :class:`~kubewatch.errors.ConfigError`. One
    slack-sdk ``WebClient`` serves all workers (it opens a connection per request, so it
    is thread-safe). A bad ``template`` is a ConfigError too.

    With ``thread: object`` events go into per-object threads
    (:class:`~kubewatch.sinks.threads.ObjectThreads`); ``books`` keeps the thread roots across
    reloads (and, with state, restarts), else this sink keeps its own.
    """

    def __init__(
        self, name: str, config: SlackSinkConfig, books: ThreadBooks | None = None
    ) -> None:
        super().__init__(name, config.template)
        self._channel = config.channel
        token = self._read_token(name, config)
        check_url(config.api_url, f"sinks.{name}.apiUrl")
        base_url = config.api_url if config.api_url.endswith("/") else config.api_url + "/"
        self.url_origin = url_origin(base_url)
        self._scrub = scrubber(token)
        self._client = WebClient(
            token=token,
            base_url=base_url,
            # urllib takes float seconds; slack-sdk's annotation says int.
            timeout=cast(int, config.timeout),
            logger=SdkLog(name, self._scrub),
            retry_handlers=[],  # the delivery layer retries, not the SDK
        )
        self._threads = object_threads(
            books, name, config, post=self._post, update=self._update, with_history=with_history
        )

    @staticmethod
    def _read_token(name: str, config: SlackSinkConfig) -> str:
        """The token, stripped; mistakes name the key and never show the token."""
        if config.token_file is None:
            token = (config.token or "").strip()
            where = f"sinks.{name}.token"
        else:
            where = f"sinks.{name}.tokenFile"
            shown = repr(config.token_file)
            try:
                token = Path(config.token_file).expanduser().read_text(encoding="utf-8").strip()
            except FileNotFoundError:
                raise ConfigError(where, f"file {shown} does not exist") from None
            except IsADirectoryError:
                raise ConfigError(where, f"{shown} is a directory, not a file") from None
            except PermissionError:
                raise ConfigError(where, f"file {shown} is not readable") from None
            except UnicodeDecodeError:
                raise ConfigError(where, f"file {shown} is not UTF-8 text") from None
            except OSError as exc:
                raise ConfigError(where, f"cannot read {shown}: {exc.strerror or exc}") from None
            if not token:
                raise ConfigError(where, f"file {shown} is empty")
        if not token:
            raise ConfigError(where, "must not be empty")
        if any(c.isspace() for c in token):
            raise ConfigError(where, "the token contains whitespace (a token is one word)")
        return token

    def send(self, event: Event) -> None:
        self._check_open()
        payload = self.payload(event)
        if self._threads is None:
            self._post(payload, None)
        else:
            self._threads.send(event, payload)

    def _post(self, payload: dict[str, Any], root: ThreadRoot | None) -> tuple[str, str]:
        """``chat.postMessage`` (a reply under ``root`` if given): (channel ID, ts)."""
        if root is None:
            response = self._call(self._client.chat_postMessage, channel=self._channel, **payload)
        else:
            response = self._call(
                self._client.chat_postMessage, channel=root.channel, thread_ts=root.ts, **payload
            )
        data = response.data if isinstance(response.data, dict) else {}
        return str(data.get("channel") or self._channel), str(data.get("ts") or "")

    def _update(self, root: ThreadRoot, payload: dict[str, Any]) -> None:
        """``chat.update`` of the root message (scope ``chat:write`` covers it)."""
        content = {k: v for k, v in payload.items() if not k.startswith("unfurl_")}
        self._call(self._client.chat_update, channel=root.channel, ts=root.ts, **content)

    def _call(self, method: Callable[..., SlackResponse], **kwargs: Any) -> SlackResponse:
        """One Web API call, its failures sorted into delivery errors (or RootGone)."""
        try:
            return method(**kwargs)
        except SlackApiError as exc:
            data = exc.response.data if isinstance(exc.response.data, dict) else {}
            if self._threads is not None and data.get("error") in ROOT_GONE_CODES:
                raise RootGone(str(data.get("error"))) from None
            # `from None`: the SDK's text quotes the URL and the response; ours is scrubbed.
            raise self._api_error(exc.response) from None
        except TRANSPORT_ERRORS as exc:
            raise transport_error(self.name, self.url_origin, exc, self._scrub) from None
        except SlackClientError as exc:  # SlackRequestError: a request the SDK refuses
            raise PermanentError(
                f"slack sink {self.name!r}: {type(exc).__name__}: {self._scrub(str(exc))}"
            ) from None

    def _api_error(self, response: SlackResponse) -> DeliveryError:
        data = response.data if isinstance(response.data, dict) else {}
        status = response.status_code
        code = str(data.get("error") or "")
        if not _ERROR_CODE.fullmatch(code):
            code = ""  # the SDK's own note on a body that was not JSON: the status says it
        where = f"slack sink {self.name!r}"
        said = self._scrub(f"HTTP {status}" + (f" {code}" if code else ""))
        if status == 429 or code == "ratelimited":
            wait = retry_after_of(response.headers)
            return RateLimited(f"{where}: rate limited by Slack ({said})", wait)
        if code in _CONFIG_CODES:
            needed = self._scrub(str(data.get("needed") or "chat:write"))
            detail = _CONFIG_CODES[code].format(channel=self._channel, needed=needed)
            message = f"{where}: {detail}"
            self._once(code, logging.ERROR, message)
            return PermanentError(message)
        if status >= 500 or status == 408 or code in _RETRYABLE_CODES:
            return RetryableError(f"{where}: Slack failed ({said})")
        message = f"{where}: Slack refused the message ({said}{self._details(data)})"
        self._once(code or status, logging.WARNING, message)
        return PermanentError(message)

    def _details(self, data: Mapping[str, Any]) -> str:
        """Slack's explanation of a refusal (``invalid_blocks`` says which block), cut."""
        meta = data.get("response_metadata")
        notes = meta.get("messages") if isinstance(meta, dict) else None
        if not isinstance(notes, list) or not notes:
            return ""
        text = self._scrub(" ".join(" ".join(str(n) for n in notes).split()))
        return f": {text[:BODY_CHARS]}"  # scrubbed before the cut: no half secret left
