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

Outcome of one send (the delivery layer retries, this module only classifies):

=====================================================  ================================
server accepted the message for all recipients         delivered
accepted for some, refused for others                  delivered; a WARNING per refused
                                                       recipient, the first time it is
                                                       refused (then DEBUG)
connection refused or reset, timeout, DNS failure,     ``RetryableError``
server disconnected, greeting other than 220
4xx reply (421, 450, 451, 452, 454), or every          ``RetryableError``
recipient refused and at least one of them with 4xx
5xx reply (535 login failed, 550/553 recipient,        ``PermanentError`` (the reply,
554 transaction failed, 530 auth required)             one line, 200 chars)
no STARTTLS offered, no AUTH offered, no usable AUTH   ``PermanentError``
mechanism, SMTPUTF8 needed but not offered
TLS certificate not trusted, or no TLS on the port     ``PermanentError``
=====================================================  ================================

If the connection breaks after the message's final ``.`` but before the server's
reply, the delivery is retried and the recipients may get the message twice. This
is at-least-once delivery. The ``Message-ID`` is the same on every attempt
(derived from the event id and the sink), so mail systems that de-duplicate on it
show one message.

Error messages name the server as ``host:port`` and the user. They never contain the
password, nor its base64 forms (``AUTH PLAIN`` / ``AUTH LOGIN``), even if a server
echoes them.
"""

from __future__ import annotations

import contextlib
import email.utils
import hashlib
import logging
import re
import smtplib
import socket
import ssl
import threading
import time
from collections.abc import Callable
from email.headerregistry import Address
from email.message import EmailMessage
from typing import Literal

from kubewatch.config import SmtpSinkConfig, format_path
from kubewatch.errors import (
    ConfigError,
    ConfigErrors,
    DeliveryError,
    PermanentError,
    RetryableError,
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

TlsMode = Literal["starttls", "implicit", "none"]

DEFAULT_PORTS: dict[TlsMode, int] = {"starttls": 587, "implicit": 465, "none": 25}
"""Submission (RFC 6409), submissions (RFC 8314) and relay ports, by TLS mode."""

REPLY_EXCERPT_CHARS = 200
"""Characters of a server reply put into an error message or a log line."""


_DOT_ATOM = re.compile(r"[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*")
"""A domain usable as the right-hand side of a Message-ID."""


def _reply_text(reply: bytes | str) -> str:
    """A server reply as one line of at most ``REPLY_EXCERPT_CHARS`` characters."""
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else reply
    return str(shorten(" ".join(one_line(text).split()), REPLY_EXCERPT_CHARS))


def _is_transient(code: int) -> bool:
    """4xx: "not now" (RFC 5321 4.2.1). Codes outside 2xx-5xx are protocol noise, also
    worth another try; only 5xx means the server refuses for good."""
    return not 500 <= code < 600


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
        self._tls: TlsMode = config.tls
        self.host = config.host
        """The mail server's host name or address."""
        self.port = config.port if config.port is not None else DEFAULT_PORTS[config.tls]
        """The port connected to (``port``, or the default of the ``tls`` mode)."""
        self._server = f"{self.host}:{self.port}"
        self._timeout = config.timeout
        self._username = config.username
        self._password = config.password
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
        self._context = ssl_context(errors, name, config)
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
        # Computed once: smtplib would call getfqdn() (a reverse DNS lookup) per connection.
        self._local_hostname = socket.getfqdn()

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
        refused = self._deliver(message)
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
                self._scrub(_reply_text(reply)),
                "; the other recipients got it (later refusals of this recipient are "
                "logged at DEBUG)"
                if first
                else "",
            )

    def _login(self, client: smtplib.SMTP, username: str, password: str) -> None:
        try:
            client.login(username, password)
        except smtplib.SMTPAuthenticationError as exc:
            message = (
                f"smtp sink {self.name!r}: SMTP login failed for user {username!r} at "
                f"{self._server}: {exc.smtp_code} {self._scrub(_reply_text(exc.smtp_error))}"
            )
            error = RetryableError if _is_transient(exc.smtp_code) else PermanentError
            raise error(message) from None
        except smtplib.SMTPNotSupportedError:
            raise PermanentError(
                f"smtp sink {self.name!r}: {self._server} offers no AUTH; cannot log in as "
                f"user {username!r}"
            ) from None
        except smtplib.SMTPResponseException:
            raise  # classified by code like any other reply
        except smtplib.SMTPServerDisconnected:
            raise
        except smtplib.SMTPException as exc:  # "No suitable authentication method found."
            raise PermanentError(
                f"smtp sink {self.name!r}: cannot log in as user {username!r} at "
                f"{self._server}: {self._scrub(str(exc))}"
            ) from None

    def _deliver(self, message: EmailMessage) -> dict[str, tuple[int, bytes]]:
        """Send ``message`` in one session; the recipients refused while others got it."""
        stage = "connecting to"
        client: smtplib.SMTP | None = None
        try:
            # Connecting in the constructor: it reads the greeting (SMTPConnectError
            # unless 220) and is the only public way to give SMTP_SSL the host name that
            # TLS verifies the certificate against.
            if self._tls == "implicit":
                client = smtplib.SMTP_SSL(
                    self.host,
                    self.port,
                    local_hostname=self._local_hostname,
                    timeout=self._timeout,
                    context=self._context,
                )
            else:
                client = smtplib.SMTP(
                    self.host, self.port, local_hostname=self._local_hostname, timeout=self._timeout
                )
            client.ehlo_or_helo_if_needed()
            if self._tls == "starttls":
                stage = "starting TLS with"
                if not client.has_extn("starttls"):
                    raise PermanentError(
                        f"smtp sink {self.name!r}: {self._server} does not offer STARTTLS; "
                        "not sending in clear text (tls: implicit is for port 465, "
                        "tls: none for a trusted relay)"
                    )
                client.starttls(context=self._context)
                client.ehlo_or_helo_if_needed()  # STARTTLS forgets the EHLO (RFC 3207)
            if self._username is not None and self._password is not None:
                stage = "logging in to"
                self._login(client, self._username, self._password)
            stage = "sending to"
            refused = client.send_message(message, self._sender, self._recipients)
            # The server took the message: how the session ends changes nothing.
            with contextlib.suppress(smtplib.SMTPException, OSError):
                client.quit()
        except DeliveryError:
            raise
        except smtplib.SMTPRecipientsRefused as exc:
            raise self._refused_error(exc.recipients) from exc
        except (smtplib.SMTPConnectError, smtplib.SMTPServerDisconnected) as exc:
            raise RetryableError(self._message(stage, exc)) from exc
        except smtplib.SMTPResponseException as exc:
            error = RetryableError if _is_transient(exc.smtp_code) else PermanentError
            raise error(self._message(stage, exc)) from exc
        except smtplib.SMTPException as exc:  # SMTPUTF8 needed but not offered, ...
            raise PermanentError(self._message(stage, exc)) from exc
        except ssl.SSLCertVerificationError as exc:
            raise PermanentError(
                f"{self._message(stage, exc)} (TLS certificate not trusted: check caFile)"
            ) from exc
        except ssl.SSLError as exc:
            if exc.reason == "WRONG_VERSION_NUMBER":
                raise PermanentError(
                    f"{self._message(stage, exc)} (no TLS on this port: is tls: "
                    f"{self._tls} right for port {self.port}?)"
                ) from exc
            raise RetryableError(self._message(stage, exc)) from exc
        except OSError as exc:  # refused, reset, timeout, DNS
            raise RetryableError(self._message(stage, exc)) from exc
        finally:
            if client is not None:
                client.close()
        return refused

    def _message(self, stage: str, exc: BaseException) -> str:
        if isinstance(exc, smtplib.SMTPResponseException):
            detail = f"{exc.smtp_code} {_reply_text(exc.smtp_error)}"
            if isinstance(exc, smtplib.SMTPSenderRefused):
                detail = f"sender {exc.sender} refused: {detail}"
        else:
            detail = _reply_text(str(exc)) or "no detail"
        what = type(exc).__name__
        return self._scrub(f"smtp sink {self.name!r}: {what} {stage} {self._server}: {detail}")

    def _refused_error(self, recipients: dict[str, tuple[int, bytes]]) -> DeliveryError:
        """Every recipient refused: retry if any of them may accept later."""
        detail = "; ".join(
            f"{rcpt}: {code} {_reply_text(reply)}" for rcpt, (code, reply) in recipients.items()
        )
        message = self._scrub(
            f"smtp sink {self.name!r}: {self._server} refused every recipient: {detail}"
        )
        if any(_is_transient(code) for code, _ in recipients.values()):
            return RetryableError(message)
        return PermanentError(message)

    def close(self) -> None:
        """Idempotent; sends fail permanently after. No connection is held between sends."""
        self._closed = True
