"""The SMTP sink: one e-mail per event, with a plain-text and an HTML part.

Each :meth:`SmtpSink.send` opens its own connection, says EHLO, secures it (``tls``),
logs in when ``username`` is set, sends one message to every ``to`` address and says
QUIT. No connection is kept between events, because:

- alert mail is low volume (chat rate limits and digests apply), so one TCP + TLS
  handshake per message costs nothing that matters;
- mail servers drop idle sessions (RFC 5321 asks for 5 minutes; many wait 60 s or
  less), so a kept connection is usually dead by the next event. Reconnecting and
  resending after a failed send is the one case where nobody knows whether the
  server already took the message;
- ``smtplib.SMTP`` is not thread-safe, so sharing connections needs a pool and locks.
  A connection per send needs neither, and a broken session never affects the next send.

TLS (``tls``):

============  ==========================================================  ============
``starttls``  plain connect, then ``STARTTLS``. If the server does not     default 587
              offer it: ``PermanentError``. Never falls back to clear text
              (a stripped STARTTLS is exactly what an attacker would send)
``implicit``  TLS from the first byte (``SMTP_SSL``, "SMTPS")              default 465
``none``      clear text, for a relay on a trusted network                 default 25
============  ==========================================================  ============

The certificate is verified against the system CAs, or against ``caFile`` only when it
is set. ``insecureSkipVerify`` turns verification off (for tests).

**A password is never sent in clear text.** ``tls: none`` with a ``username`` is a
configuration error unless ``host`` is the loopback interface (``localhost``,
``127.0.0.1``, ``::1``: a relay sidecar). Go's ``net/smtp.PlainAuth`` applies the same
rule. With ``starttls`` the login happens only after TLS is up.

How one send goes and what its failures mean (the outcome table): :mod:`.session`.
"""

from __future__ import annotations

import email.utils
import hashlib
import logging
import re
import socket
import threading
import time
from collections.abc import Callable
from email.headerregistry import Address
from email.message import EmailMessage

from kubewatch.config import SmtpSinkConfig, format_path
from kubewatch.errors import (
    ConfigError,
    ConfigErrors,
    PermanentError,
)
from kubewatch.events import Event
from kubewatch.match.shorten import shorten
from kubewatch.render import (
    chat_message,
    default_text,
    one_line,
)
from kubewatch.sinks.base import SinkBase
from kubewatch.sinks.smtp.message import SUBJECT_CHARS, clean_text, html_part, text_part
from kubewatch.sinks.smtp.session import DEFAULT_PORTS, SmtpSession, reply_text
from kubewatch.sinks.smtp.settings import (
    compile_text,
    is_loopback,
    parse_address,
    password_scrubber,
    ssl_context,
)
from kubewatch.sinks.webhook import EVENT_ID_HEADER

__all__ = ["DEFAULT_PORTS", "SmtpSink"]

log = logging.getLogger("kubewatch.sinks.smtp")


_DOT_ATOM = re.compile(r"[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*")
"""A domain usable as the right-hand side of a Message-ID."""


class SmtpSink(SinkBase):
    """Send each event as an e-mail through ``config.host``; see the module docstring.

    The message has ``From``, ``To`` (every recipient), ``Subject`` (the ``subject``
    template, on one line), ``Date``, ``Message-ID``, ``Auto-Submitted: auto-generated``
    (RFC 3834: no vacation replies), and ``X-Kubewatch-Event-Id``. The body is
    ``multipart/alternative``:

    - ``text/plain``: the ``template`` rendering when set, else the title, the fields
      and the changes;
    - ``text/html``: the same content laid out with the colour of the change as a left
      border: title, a table of fields and the changes in a ``<pre>``. With ``template``
      the HTML shows that rendering instead of fields and changes. The two parts of
      ``multipart/alternative`` must say the same thing, and most clients show only
      the HTML part. Every piece of cluster-object text is HTML-escaped. No external
      resources.

    Bad templates, addresses that do not parse, an unreadable ``caFile``, and a
    password that would go out in clear text raise
    :class:`~kubewatch.errors.ConfigErrors` here.
    Thread-safe: every send has its own connection.
    """

    def __init__(
        self,
        name: str,
        config: SmtpSinkConfig,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.name = name
        self._clock = clock
        self._closed = False  # once True, send fails permanently; close is a no-op
        self.host = config.host
        """The mail server's host name or address."""
        self.port = config.port if config.port is not None else DEFAULT_PORTS[config.tls]
        """The port connected to (``port``, or the default of the ``tls`` mode)."""
        self._server = f"{self.host}:{self.port}"
        self._secrets = password_scrubber(config.username, config.password)

        errors: list[ConfigError] = []
        self._subject = compile_text(errors, name, "subject", config.subject)
        self._template = (
            compile_text(errors, name, "template", config.template)
            if config.template is not None
            else None
        )
        self._from = parse_address(errors, name, ("from",), config.from_)
        self._to: list[Address] = []
        for i, value in enumerate(config.to):
            self._to += parse_address(errors, name, ("to", i), value)
        context = ssl_context(errors, name, config)
        if config.username is not None and config.tls == "none" and not is_loopback(self.host):
            errors.append(
                ConfigError(
                    format_path(("sinks", name, "tls")),
                    "none would send the password in clear text; use starttls or implicit "
                    "(tls: none with a login is allowed only for a server on localhost)",
                )
            )
        if errors:
            raise ConfigErrors(errors)

        self._sender = self._from[0].addr_spec
        # Each recipient once, in the configured order: the envelope is what gets delivered.
        self._recipients = list(dict.fromkeys(a.addr_spec for a in self._to))
        domain = self._from[0].domain
        self._msgid_domain = domain if _DOT_ATOM.fullmatch(domain) else "kubewatch.invalid"
        # Sink names may hold any character; a digest of the name is a safe msg-id atom.
        self._msgid_tag = hashlib.blake2b(name.encode(), digest_size=4).hexdigest()
        self._session = SmtpSession(
            name,
            host=self.host,
            port=self.port,
            tls=config.tls,
            context=context,
            timeout=config.timeout,
            username=config.username,
            password=config.password,
            # Computed once: smtplib would call getfqdn() (a reverse DNS lookup) per
            # connection.
            local_hostname=socket.getfqdn(),
            scrub=self._secrets,
        )

        self._lock = threading.Lock()
        self._refused_before: set[str] = set()
        """Recipients refused at least once, their WARNING logged (guarded by ``_lock``);
        a subset of the configured ``to``, so it stays small."""

        if config.insecure_skip_verify:
            log.warning(
                "sink %r: insecureSkipVerify is set: the certificate of %s is not checked",
                name,
                self._server,
            )

    # ------------------------------------------------------------------ construction

    def _scrub(self, text: str) -> str:
        return self._secrets(text)

    # ------------------------------------------------------------------ rendering

    def preview(self, event: Event) -> str:
        return self.build_message(event).as_string()

    def build_message(self, event: Event) -> EmailMessage:
        """The e-mail for ``event``, exactly as :meth:`send` would send it."""
        chat = chat_message(event, "html")
        text: str | None = None
        if self._template is not None:
            text = clean_text(self._template.render_or(event, text_part))

        message = EmailMessage()
        message["From"] = self._from
        message["To"] = self._to
        message["Subject"] = self.subject(event)
        message["Date"] = email.utils.formatdate(self._clock(), usegmt=True)
        message["Message-ID"] = f"<{event.id}.{self._msgid_tag}@{self._msgid_domain}>"
        message["Auto-Submitted"] = "auto-generated"
        message[EVENT_ID_HEADER] = event.id
        # Quoted-printable: 7-bit safe for any server, and readable in the raw message.
        message.set_content(text if text is not None else text_part(event), cte="quoted-printable")
        message.add_alternative(html_part(chat, text), subtype="html", cte="quoted-printable")
        for part in message.iter_parts():
            del part["MIME-Version"]  # add_alternative copies it into the parts; it belongs on top
        return message

    def subject(self, event: Event) -> str:
        """The subject line for ``event``: the template, on one line, at most 200 chars.

        Line breaks become spaces and other control characters ``\\xNN``. A name
        holding ``"\\r\\nBcc: …"`` therefore stays text in the subject. It never becomes
        a header of its own. An empty rendering falls back to the event summary.
        """
        assert self._subject is not None  # checked at construction
        line = " ".join(one_line(self._subject.render_or(event, default_text)).split())
        return str(shorten(line or default_text(event), SUBJECT_CHARS))

    # ------------------------------------------------------------------ sending

    def send(self, event: Event) -> None:
        if self._closed:
            raise PermanentError(f"smtp sink {self.name!r} is closed")
        message = self.build_message(event)
        refused = self._session.deliver(message, self._sender, self._recipients)
        for recipient, (code, reply) in refused.items():
            with self._lock:
                first = recipient not in self._refused_before
                self._refused_before.add(recipient)
            log.log(
                logging.WARNING if first else logging.DEBUG,
                "sink %r: %s refused recipient %s of event %s (%s %s %s): %d %s%s",
                self.name,
                self._server,
                recipient,
                event.id,
                event.type.value,
                event.kind,
                event.key,
                code,
                self._scrub(reply_text(reply)),
                "; the other recipients got it (later refusals of this recipient are "
                "logged at DEBUG)"
                if first
                else "",
            )

    def close(self) -> None:
        """Idempotent; sends fail permanently after. No connection is held between sends."""
        self._closed = True
