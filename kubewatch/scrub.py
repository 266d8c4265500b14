"""Secrets out of text: every form a credential takes on the wire, and one way to remove them.

A password reaches a message in more shapes than the one configured: a URL's userinfo is
sent percent-decoded inside ``Authorization: Basic base64(user:password)``, a receiver may
echo that header, the decoded pair, or the URL-encoded password; SMTP ``AUTH`` sends it in
base64. :func:`secret_forms` lists them all for one value, :func:`url_secret_forms` for
the credentials in a URL, and :class:`Scrubber` replaces every one of them (longest
first, so a value is removed before a part of it) by ``<redacted>``. The sinks, the
configuration's error messages and the log redactor all use these.
"""

from __future__ import annotations

import base64
import binascii
import re
import urllib.parse
from collections.abc import Iterable

__all__ = ["REDACTED", "Scrubber", "redact_secret_looking", "secret_forms", "url_secret_forms"]

REDACTED = "<redacted>"


def _b64(text: str) -> set[str]:
    """Standard base64 of ``text``, with and without its padding (a receiver may trim it)."""
    encoded = base64.b64encode(text.encode()).decode()
    return {encoded, encoded.rstrip("=")}


def _encodings(value: str) -> set[str]:
    """``value`` as itself, percent-decoded, percent-encoded (both flavours) and in base64."""
    out = {value, value.strip()}
    decoded = urllib.parse.unquote(value)
    for v in (value, decoded):
        out |= {v, urllib.parse.quote(v, safe=""), urllib.parse.quote_plus(v, safe=""), *_b64(v)}
    return out


def url_secret_forms(url: str) -> set[str]:
    """The userinfo of ``url`` in every form: password, ``user:password`` and the
    ``Basic`` credentials an HTTP client builds from them. Empty without a password."""
    try:
        parts = urllib.parse.urlsplit(url)
        password = parts.password
    except ValueError:
        return set()
    if not password:
        return set()
    username = parts.username or ""
    out = _encodings(password)
    raw_pair = f"{username}:{password}"
    pair = f"{urllib.parse.unquote(username)}:{urllib.parse.unquote(password)}"
    for p in (raw_pair, pair):
        out |= {p, *_b64(p)}
        out |= {f"Basic {b}" for b in _b64(p)}
    return out


def secret_forms(value: str) -> set[str]:
    """Every form of one secret value (a token, a password, a header value, a URL).

    A header value's words count on their own (``Bearer <token>``: the receiver may echo
    just the token), and a ``Basic`` credential's decoded ``user:password`` too.
    """
    out = _encodings(value)
    words = value.split()
    for word in words:
        out |= _encodings(word)
    if len(words) == 2 and words[0].lower() == "basic":
        try:
            decoded = base64.b64decode(words[1], validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            decoded = ""
        if decoded:
            out.add(decoded)
            out |= _encodings(decoded.partition(":")[2])
    out |= url_secret_forms(value)
    return out


class Scrubber:
    """Replaces secrets in text by ``<redacted>``; immutable, so safe for threads.

    Values shorter than ``min_length`` are ignored: they are not credentials, and
    replacing every ``admin`` would garble messages.
    """

    def __init__(self, secrets: Iterable[str], *, min_length: int = 4) -> None:
        found = {s for s in secrets if len(s) >= min_length}
        ordered = sorted(found, key=len, reverse=True)  # a value before a part of it
        self.secrets: tuple[str, ...] = tuple(ordered)
        self.pattern = re.compile("|".join(map(re.escape, ordered))) if ordered else None
        """Matches exactly the secrets, longest first; None when there are none."""

    def __call__(self, text: str) -> str:
        return text if self.pattern is None else self.pattern.sub(REDACTED, text)


_SECRET_LOOKING = (
    # a private key block, whole
    re.compile(
        r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?(?:-----END [A-Z ]*PRIVATE KEY-----|\Z)", re.S
    ),
    # Authorization: Bearer/Basic <credential>
    re.compile(r"(?i)(\b(?:bearer|basic)\s+)[A-Za-z0-9._~+/=-]{8,}"),
    # scheme://user:password@host
    re.compile(r"(://[^/\s:@]+:)[^/\s@]+(?=@)"),
    # key=value / key: value / "key": "value" where the key names a secret
    re.compile(
        r"(?i)((?:password|passwd|pwd|secret|token|api[_-]?key|access[_-]?key|private[_-]?key|"
        r"client[_-]?secret|credentials?)[\"']?\s*[:=]\s*[\"']?)[^\s\"',;&]+"
    ),
    # well-known token shapes: AWS access key ids, GitHub and Slack tokens, JWTs
    re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),
    re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{30,}|xox[abprs]-[A-Za-z0-9-]{10,})\b"),
    re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\b"),
)
"""Shapes of credentials in free text (a container's log), where no value is known up
front: the value (not its key) becomes ``<redacted>``."""


def redact_secret_looking(text: str) -> str:
    """``text`` with every secret-looking value (see :data:`_SECRET_LOOKING`) redacted:
    ``password=hunter2`` → ``password=<redacted>``. Errs towards redacting."""
    for pattern in _SECRET_LOOKING:
        if pattern.groups:
            text = pattern.sub(lambda m: m.group(1) + REDACTED, text)
        else:
            text = pattern.sub(REDACTED, text)
    return text
