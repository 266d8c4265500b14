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
and responses), and the SDK's own log lines go through :class:`_SdkLog`.
"""

from __future__ import annotations

import http.client
import logging
import re
import ssl
import threading
import time
import urllib.parse
from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast
from urllib.error import URLError

import orjson
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web import SlackResponse
from slack_sdk.webhook import WebhookClient

from kubewatch.config import SlackSinkConfig, SlackWebhookSinkConfig
from kubewatch.errors import ConfigError, DeliveryError, PermanentError, RateLimited, RetryableError
from kubewatch.events import Event
from kubewatch.render import ChatMessage, Template, chat_message, compile_template
from kubewatch.scrub import Scrubber, secret_forms
from kubewatch.sinks.base import SinkBase
from kubewatch.sinks.http import DEFAULT_RETRY_AFTER, parse_retry_after

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

log = logging.getLogger(__name__)

SECTION_CHARS = 3000
"""Slack's limit on a section's text (and on the fallback text we send)."""
FIELD_CHARS = 2000
"""Slack's limit on one section field's text."""
MAX_FIELDS = 10
"""Slack's limit on fields per section."""

_CUT = "… (cut: Slack allows {limit} characters)"
"""Ends a text cut to a Slack limit, so a reader knows there was more."""

_PARTIAL_ENTITY = re.compile(r"&[#a-zA-Z0-9]*$")
"""An escape sequence (``&amp;``) cut in half at the end of a text: drop the half."""

_MIN_SECRET_LEN = 4
"""Shorter strings are not credentials, and scrubbing them would garble messages."""


# --------------------------------------------------------------------------- layout


def fit_text(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters with a marker; never half an escape sequence."""
    if len(text) <= limit:
        return text
    marker = _CUT.format(limit=limit)
    head = _PARTIAL_ENTITY.sub("", text[: max(0, limit - len(marker))])
    return head + marker


def fit_code_block(changes: str, limit: int = SECTION_CHARS) -> str:
    """``changes`` as a ``` block of at most ``limit`` characters, cut at whole lines.

    Lines that do not fit are counted in a last line (``… 7 more lines cut``); a single
    line longer than the whole block is cut like :func:`fit_text`.
    """
    fence = "```\n{}\n```"
    room = limit - len(fence.format(""))
    if len(changes) <= room:
        return fence.format(changes)
    lines = changes.split("\n")
    kept: list[str] = []
    used = 0
    for i, line in enumerate(lines):
        rest = len(lines) - i
        marker = (
            f"… {rest} more line{'' if rest == 1 else 's'} cut (Slack allows {limit} characters)"
        )
        last = i == len(lines) - 1  # the last line needs no marker after it
        if used + len(line) + (0 if last else 1 + len(marker)) > room:
            if not kept:  # not even the first line fits: cut inside it
                return fence.format(fit_text(line, room))
            kept.append(marker)
            break
        kept.append(line)
        used += len(line) + 1
    return fence.format("\n".join(kept))


def _mrkdwn(text: str, limit: int = SECTION_CHARS, *, verbatim: bool = True) -> dict[str, Any]:
    """A mrkdwn text object. ``verbatim``: Slack turns no plain text into links or
    mentions; object text is escaped already, this is a second line of defence."""
    return {"type": "mrkdwn", "text": fit_text(text, limit), "verbatim": verbatim}


def slack_blocks(message: ChatMessage, text: str | None = None) -> list[dict[str, Any]]:
    """The top-level blocks: one section with the title, or with ``text`` (a template's
    rendering, the user's own mrkdwn, so Slack may link and format it)."""
    if text is None:
        return [{"type": "section", "text": _mrkdwn(message.title)}]
    return [{"type": "section", "text": _mrkdwn(text, verbatim=False)}]


def slack_attachments(message: ChatMessage, *, changes: bool = True) -> list[dict[str, Any]]:
    """One attachment: the colour bar around fields, the changes (unless ``changes`` is
    False: a template replaced them) and the footer."""
    blocks: list[dict[str, Any]] = []
    if message.fields:
        blocks.append(
            {
                "type": "section",
                "fields": [
                    _mrkdwn(f"*{label}*\n{value}", FIELD_CHARS)
                    for label, value in message.fields[:MAX_FIELDS]
                ],
            }
        )
    if changes and message.changes:
        blocks.append(
            {
                "type": "section",
                "text": {
                    "type": "mrkdwn",
                    "text": fit_code_block(message.changes),
                    "verbatim": True,
                },
            }
        )
    blocks.append({"type": "context", "elements": [_mrkdwn(message.footer)]})
    return [{"color": message.colour, "blocks": blocks}]


def slack_payload(message: ChatMessage, text: str | None = None) -> dict[str, Any]:
    """``text`` / ``blocks`` / ``attachments`` of one message, for either API.

    ``text`` is a template's rendering; it replaces the title and the changes. Link
    previews are off: a URL in object text must not make Slack fetch it.
    """
    return {
        "text": fit_text(text if text is not None else message.fallback, SECTION_CHARS),
        "blocks": slack_blocks(message, text),
        "attachments": slack_attachments(message, changes=text is None),
        "unfurl_links": False,
        "unfurl_media": False,
    }


# --------------------------------------------------------------------------- shared plumbing


def _scrubber(*secrets: str) -> Scrubber:
    """Removes secrets (in every form they travel in) from text that may reach a log line."""
    return Scrubber({f for s in secrets for f in secret_forms(s)}, min_length=_MIN_SECRET_LEN)


class _SdkLog(logging.Logger):
    """The logger handed to slack-sdk: its lines reach ours at DEBUG, scrubbed.

    slack-sdk logs every failed attempt at ERROR (the delivery layer logs the outcome
    already) and, when its logger's own level is DEBUG, request URLs and bodies — for an
    incoming webhook the URL is the credential. This logger's level is INFO, so those
    dumps are never even built, and it belongs to no logging hierarchy: nothing
    configured elsewhere can turn them on.
    """

    def __init__(self, sink: str, scrub: Scrubber) -> None:
        super().__init__(f"{log.name}.sdk", logging.INFO)
        self._sink = sink
        self._scrub = scrub

    def handle(self, record: logging.LogRecord) -> None:
        if log.isEnabledFor(logging.DEBUG):
            text = self._scrub(record.getMessage())
            log.debug("sink %r: slack-sdk %s: %s", self._sink, record.levelname, text)


class _OnceLog:
    """Logs an explanation once per key (an error code), then stays quiet: one broken
    token fails every event alike, and the log should say so once, not flood."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seen: set[object] = set()  # keys already logged; only grows

    def __call__(self, key: object, level: int, message: str) -> None:
        with self._lock:
            if key in self._seen:
                return
            self._seen.add(key)
        log.log(level, "%s (logged once; later events fail alike)", message)


def _origin(url: str) -> str:
    """``scheme://host[:port]`` of ``url``: all of it that a message may show."""
    parts = urllib.parse.urlsplit(url)
    port = f":{parts.port}" if parts.port is not None else ""
    return f"{parts.scheme}://{parts.hostname}{port}"


def _check_url(url: str, path: str) -> None:
    """An http(s) URL with a host, checked at start; the URL itself is never echoed."""
    try:
        parts = urllib.parse.urlsplit(url)
        _ = parts.port  # raises on a non-numeric or out-of-range port
    except ValueError:
        raise ConfigError(path, "is not a valid URL (bad port or brackets)") from None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ConfigError(path, "must be an http:// or https:// URL with a host")
    if any(c.isspace() for c in url):
        raise ConfigError(path, "is not a valid URL (contains whitespace)")


def _is_cert_failure(exc: BaseException) -> bool:
    reason = exc.reason if isinstance(exc, URLError) else exc
    return isinstance(reason, ssl.SSLCertVerificationError)


def _transport_error(sink: str, origin: str, exc: BaseException, scrub: Scrubber) -> DeliveryError:
    """A failure before any HTTP status: retryable, except an untrusted certificate."""
    reason = exc.reason if isinstance(exc, URLError) else exc
    kind = type(reason).__name__ if isinstance(reason, BaseException) else type(exc).__name__
    detail = scrub(str(reason)) or kind
    message = f"slack sink {sink!r}: cannot reach {origin}: {kind}: {detail}"
    if _is_cert_failure(exc):
        return PermanentError(f"{message} (TLS certificate not trusted)")
    return RetryableError(message)


_TRANSPORT_ERRORS = (OSError, http.client.HTTPException)
"""What urllib raises before a status arrives: URLError, ConnectionError, TimeoutError
(socket.timeout) and the rest of OSError, and HTTPException (IncompleteRead,
RemoteDisconnected)."""


def _header(headers: Mapping[str, Any] | None, name: str) -> str | None:
    for key, value in (headers or {}).items():
        if key.lower() == name.lower():
            return str(value[0] if isinstance(value, list) and value else value)
    return None


def _retry_after(headers: Mapping[str, Any] | None) -> float:
    wait = parse_retry_after(_header(headers, "Retry-After"), time.time())
    return DEFAULT_RETRY_AFTER if wait is None else wait


class _SlackSinkBase(SinkBase):
    """What both Slack sinks share: the message, the template, close."""

    def __init__(self, name: str, template_source: str | None) -> None:
        self.name = name
        self._closed = False  # once True, send fails permanently; close is a no-op
        self._once = _OnceLog()
        self._template: Template | None = None
        if template_source is not None:
            self._template = compile_template(
                template_source, markup="slack", kind="text", path=f"sinks.{name}.template"
            )

    def preview(self, event: Event) -> str:
        return orjson.dumps(self.payload(event), option=orjson.OPT_INDENT_2).decode()

    def payload(self, event: Event) -> dict[str, Any]:
        """The message for ``event``; a failing or blank template gives the default one."""
        message = chat_message(event, "slack")
        if self._template is None:
            return slack_payload(message)
        fell_back = False

        def default(_: Event) -> str:
            nonlocal fell_back
            fell_back = True
            return message.title

        text = self._template.render_or(event, default)
        if fell_back or not text.strip():  # Slack rejects an empty section
            return slack_payload(message)
        return slack_payload(message, text)

    def _check_open(self) -> None:
        if self._closed:
            raise PermanentError(f"slack sink {self.name!r} is closed")

    def close(self) -> None:
        # slack-sdk's clients open a connection per request and keep none: nothing to
        # release, only later sends to refuse.
        self._closed = True


# --------------------------------------------------------------------------- bot token


_RETRYABLE_CODES = frozenset(
    {"internal_error", "fatal_error", "service_unavailable", "request_timeout"}
)
"""``ok: false`` codes that say "Slack had a problem", not "your request is wrong"."""

_ERROR_CODE = re.compile(r"[a-z0-9_.]{1,100}")
"""What Slack's ``error`` codes look like (``not_in_channel``)."""

_BODY_CHARS = 200
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


class SlackSink(_SlackSinkBase):
    """Post each event with ``chat.postMessage`` as a bot (scope ``chat:write``).

    The token comes from ``token`` or is read once from ``tokenFile`` here, at build
    time; a missing or unreadable file is a :class:`~kubewatch.errors.ConfigError`. One
    slack-sdk ``WebClient`` serves all workers (it opens a connection per request, so it
    is thread-safe). A bad ``template`` is a ConfigError too.
    """

    def __init__(self, name: str, config: SlackSinkConfig) -> None:
        super().__init__(name, config.template)
        self._channel = config.channel
        token = self._read_token(name, config)
        _check_url(config.api_url, f"sinks.{name}.apiUrl")
        base_url = config.api_url if config.api_url.endswith("/") else config.api_url + "/"
        self._origin = _origin(base_url)
        self._scrub = _scrubber(token)
        self._client = WebClient(
            token=token,
            base_url=base_url,
            # urllib takes float seconds; slack-sdk's annotation says int.
            timeout=cast(int, config.timeout),
            logger=_SdkLog(name, self._scrub),
            retry_handlers=[],  # the delivery layer retries, not the SDK
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
        try:
            self._client.chat_postMessage(channel=self._channel, **payload)
        except SlackApiError as exc:
            # `from None`: the SDK's text quotes the URL and the response; ours is scrubbed.
            raise self._api_error(exc.response) from None
        except _TRANSPORT_ERRORS as exc:
            raise _transport_error(self.name, self._origin, exc, self._scrub) from None
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
            wait = _retry_after(response.headers)
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
        return f": {text[:_BODY_CHARS]}"  # scrubbed before the cut: no half secret left


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


class SlackWebhookSink(_SlackSinkBase):
    """Post each event to a Slack incoming webhook (the channel is the webhook's).

    The URL embeds a token: messages show its origin (``https://hooks.slack.com``)
    only, and server text is scrubbed of the URL and its path.
    """

    def __init__(self, name: str, config: SlackWebhookSinkConfig) -> None:
        super().__init__(name, config.template)
        _check_url(config.url, f"sinks.{name}.url")
        self._origin = _origin(config.url)
        path = urllib.parse.urlsplit(config.url).path
        self._scrub = _scrubber(config.url, path, *(p for p in path.split("/") if len(p) >= 8))
        self._client = WebhookClient(
            url=config.url,
            timeout=cast(int, config.timeout),  # float seconds work; see SlackSink
            logger=_SdkLog(name, self._scrub),
            retry_handlers=[],  # the delivery layer retries, not the SDK
        )

    def send(self, event: Event) -> None:
        self._check_open()
        payload = self.payload(event)
        try:
            response = self._client.send(**payload)
        except _TRANSPORT_ERRORS as exc:
            raise _transport_error(self.name, self._origin, exc, self._scrub) from None
        except SlackClientError as exc:
            raise PermanentError(
                f"slack sink {self.name!r}: {type(exc).__name__}: {self._scrub(str(exc))}"
            ) from None
        status = response.status_code
        if 200 <= status < 300:
            return
        raise self._status_error(status, response.headers, response.body or "")

    def _status_error(self, status: int, headers: Mapping[str, Any], body: str) -> DeliveryError:
        reason = " ".join(self._scrub(body).split())[:_BODY_CHARS]  # scrub, then cut
        said = f"HTTP {status}" + (f" {reason}" if reason else "")
        where = f"slack sink {self.name!r}: webhook at {self._origin}"
        if status == 429:
            return RateLimited(f"{where}: rate limited ({said})", _retry_after(headers))
        if status >= 500 or status == 408:
            return RetryableError(f"{where}: Slack failed ({said})")
        hint = _WEBHOOK_HINTS.get(reason)
        message = f"{where}: refused ({said})" + (f": {hint}" if hint else "")
        self._once((status, reason), logging.ERROR, message)
        return PermanentError(message)
