"""Logging to stderr, as text for people or JSON for log pipelines, with secrets redacted.

Text (``--log-format text``, the default), UTC::

    2026-11-26T22:10:51Z INFO    kubewatch.app: watching deployments.apps in shop

JSON (``--log-format json``), one object per line::

    {"time":"2026-11-26T22:10:51.123Z","level":"INFO","logger":"kubewatch.app",
     "message":"watching deployments.apps in shop","thread":"MainThread","sink":"slack"}

with every ``extra={…}`` field of the call as a key of its own, ``exception`` holding the
traceback and ``stack`` a ``stack_info``.

:class:`SecretRedactor` is the last line of defence against a token, a password or a
webhook URL in a log line: whoever learns a secret (config loading, the cluster client)
registers it with :func:`register_secret`, and every line the handler writes has it
replaced by ``<redacted>``: the message and its arguments, exception and stack text, and
``extra`` fields. It is process-wide on purpose: secrets are learnt in many places and a
registry threaded through each of them would be the one place someone forgets.
"""

from __future__ import annotations

import logging
import re
import sys
import threading
import time
from datetime import datetime, timezone
from typing import IO, Any, Literal

import orjson

from kubewatch.scrub import REDACTED, Scrubber, secret_forms

__all__ = [
    "REDACTED",
    "JsonFormatter",
    "LogFormat",
    "SecretRedactor",
    "TextFormatter",
    "default_redactor",
    "register_secret",
    "setup_logging",
]

LogFormat = Literal["text", "json"]

MIN_SECRET_LENGTH = 8
"""Shorter values are not registered: redacting every ``admin`` or ``1234`` in every line
would mangle the log, and would tell a reader where the short secret appears anyway."""

NOISY_LIBRARIES = {"urllib3": logging.ERROR, "httpx": logging.WARNING, "httpcore": logging.WARNING}
"""urllib3 warns about every discarded pooled connection and httpx logs every request at
INFO; kubewatch's own lines say what matters (failures, retries, with the sink's name)."""

_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")

_RECORD_FIELDS = frozenset(logging.LogRecord("", logging.INFO, "", 0, "", (), None).__dict__) | {
    "message",
    "asctime",
    "taskName",
}
"""Attributes every LogRecord has: anything else on a record came from ``extra``."""


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in record.__dict__.items() if k not in _RECORD_FIELDS}


class SecretRedactor(logging.Filter):
    """A handler filter that replaces every registered secret with ``<redacted>``.

    It rewrites the record before any formatter sees it: the message is merged with its
    arguments and redacted, the exception and stack text are rendered and redacted, and so
    is every ``extra`` field that contains a secret (a non-string one becomes its redacted
    ``str``). The record is shared with the handlers after this one, which therefore see
    the redacted text too. Thread-safe; never drops a record.
    """

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._secrets: set[str] = set()  # under _lock; _pattern matches exactly these
        self._pattern: re.Pattern[str] | None = None  # replaced whole, read without the lock

    def register(self, value: str) -> bool:
        """Redact ``value`` from now on, in every form it travels in (URL-encoded, base64,
        a URL's password and ``Basic`` credentials: :func:`kubewatch.scrub.secret_forms`);
        False (and nothing registered) when it is shorter than 8 characters. Surrounding
        whitespace is not part of the secret."""
        value = value.strip()
        if len(value) < MIN_SECRET_LENGTH:
            return False
        forms = {f for f in secret_forms(value) if len(f) >= MIN_SECRET_LENGTH}
        with self._lock:
            if not forms <= self._secrets:
                self._secrets |= forms
                # Longest first, so that a secret containing another is redacted whole.
                self._pattern = Scrubber(self._secrets, min_length=MIN_SECRET_LENGTH).pattern
        return True

    def redact(self, text: str) -> str:
        """``text`` with every registered secret replaced by ``<redacted>``."""
        pattern = self._pattern
        return text if pattern is None else pattern.sub(REDACTED, text)

    def filter(self, record: logging.LogRecord) -> bool:
        pattern = self._pattern
        if pattern is None:  # nothing registered: the common case costs one attribute read
            return True
        try:
            message = record.getMessage()
        except Exception:  # bad arguments: keep what can be shown, without the arguments
            message = f"{record.msg} (unformattable log arguments)"
        record.msg, record.args = self.redact(message), ()
        if record.exc_info and not record.exc_text:
            record.exc_text = _EXCEPTION_FORMATTER.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        for key, value in _extras(record).items():
            text = value if isinstance(value, str) else str(value)
            if pattern.search(text) or (not isinstance(value, str) and pattern.search(repr(value))):
                setattr(record, key, self.redact(text))
        return True


_EXCEPTION_FORMATTER = logging.Formatter()
"""Renders tracebacks exactly as both formatters below would."""

_DEFAULT_REDACTOR = SecretRedactor()


def default_redactor() -> SecretRedactor:
    """The process-wide redactor that :func:`setup_logging` installs by default."""
    return _DEFAULT_REDACTOR


def register_secret(value: str) -> bool:
    """Never log ``value`` (a token, a password, a webhook URL): see :class:`SecretRedactor`.
    False when it is too short (under 8 characters) to be redacted."""
    return _DEFAULT_REDACTOR.register(value)


class TextFormatter(logging.Formatter):
    """``2026-11-26T22:10:51Z INFO    kubewatch.app: message``, times in UTC."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s")

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(record.created))


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, thread, the ``extra``
    fields, and ``exception`` / ``stack`` when present. Values JSON cannot hold are
    written as their ``str``."""

    def format(self, record: logging.LogRecord) -> str:
        created = datetime.fromtimestamp(record.created, timezone.utc)
        entry: dict[str, Any] = {
            "time": created.strftime("%Y-%m-%dT%H:%M:%S.") + f"{created.microsecond // 1000:03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "thread": record.threadName,
        }
        for key, value in _extras(record).items():
            entry.setdefault(key, value)  # an extra never hides one of the fields above
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = record.stack_info
        return orjson.dumps(entry, default=str).decode()


class _Handler(logging.StreamHandler):  # type: ignore[type-arg]
    """Marks the handler setup_logging installed, so that a second call replaces it."""


def setup_logging(
    level: str = "info",
    fmt: LogFormat = "text",
    *,
    stream: IO[str] | None = None,
    redactor: SecretRedactor | None = None,
) -> logging.Handler:
    """Log records of ``level`` and above to ``stream`` (default: stderr) as ``fmt``.

    Installs one handler on the root logger (replacing one installed by an earlier call,
    leaving others alone), with ``redactor`` (default: the process-wide one that
    :func:`register_secret` fills) as its filter, and quiets noisy libraries. Returns the
    handler. ``level`` is a level name in any case (``info``, ``DEBUG``); anything else
    raises ValueError.
    """
    name = level.upper()
    if name not in _LEVELS:
        raise ValueError(f"unknown log level {level!r}; use one of {', '.join(_LEVELS).lower()}")
    if fmt not in ("text", "json"):
        raise ValueError(f"unknown log format {fmt!r}; use text or json")
    handler = _Handler(sys.stderr if stream is None else stream)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(redactor if redactor is not None else _DEFAULT_REDACTOR)
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _Handler)]:
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    root.setLevel(name)
    for library, threshold in NOISY_LIBRARIES.items():
        logging.getLogger(library).setLevel(threshold)
    return handler
