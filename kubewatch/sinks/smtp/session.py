"""One SMTP session: connect, EHLO, TLS, login, one message, QUIT; and what failed means.

Its own module because talking to a mail server and classifying its replies is one job,
and building the message and deciding who gets it is another (:mod:`.sink`). A session
is opened per message (see :mod:`.sink` for why) and never shared between threads.

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
import smtplib
import ssl
from collections.abc import Callable
from email.message import EmailMessage
from typing import Literal

from kubewatch.errors import DeliveryError, PermanentError, RetryableError
from kubewatch.match.shorten import shorten
from kubewatch.render import one_line

__all__ = ["DEFAULT_PORTS", "REPLY_EXCERPT_CHARS", "SmtpSession", "TlsMode", "reply_text"]

TlsMode = Literal["starttls", "implicit", "none"]

DEFAULT_PORTS: dict[TlsMode, int] = {"starttls": 587, "implicit": 465, "none": 25}
"""Submission (RFC 6409), submissions (RFC 8314) and relay ports, by TLS mode."""

REPLY_EXCERPT_CHARS = 200
"""Characters of a server reply put into an error message or a log line."""


def reply_text(reply: bytes | str) -> str:
    """A server reply as one line of at most ``REPLY_EXCERPT_CHARS`` characters."""
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else reply
    return str(shorten(" ".join(one_line(text).split()), REPLY_EXCERPT_CHARS))


def _is_transient(code: int) -> bool:
    """4xx: "not now" (RFC 5321 4.2.1). Codes outside 2xx-5xx are protocol noise, also
    worth another try; only 5xx means the server refuses for good."""
    return not 500 <= code < 600


class SmtpSession:
    """Sends one message per :meth:`deliver` through ``host:port`` as sink ``name``.

    ``tls`` and ``context`` secure the connection, ``username``/``password`` (both or
    neither) log in, ``local_hostname`` is said in EHLO, ``scrub`` takes every secret out
    of a message. Thread-safe: every :meth:`deliver` has its own connection.
    """

    def __init__(
        self,
        name: str,
        *,
        host: str,
        port: int,
        tls: TlsMode,
        context: ssl.SSLContext | None,
        timeout: float,
        username: str | None,
        password: str | None,
        local_hostname: str,
        scrub: Callable[[str], str],
    ) -> None:
        self.name = name
        self.host = host
        self.port = port
        self._server = f"{host}:{port}"
        self._tls = tls
        self._context = context
        self._timeout = timeout
        self._username = username
        self._password = password
        self._local_hostname = local_hostname
        self._scrub = scrub

    def deliver(
        self, message: EmailMessage, sender: str, recipients: list[str]
    ) -> dict[str, tuple[int, bytes]]:
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
            refused = client.send_message(message, sender, recipients)
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

    def _login(self, client: smtplib.SMTP, username: str, password: str) -> None:
        try:
            client.login(username, password)
        except smtplib.SMTPAuthenticationError as exc:
            message = (
                f"smtp sink {self.name!r}: SMTP login failed for user {username!r} at "
                f"{self._server}: {exc.smtp_code} {self._scrub(reply_text(exc.smtp_error))}"
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

    def _message(self, stage: str, exc: BaseException) -> str:
        if isinstance(exc, smtplib.SMTPResponseException):
            detail = f"{exc.smtp_code} {reply_text(exc.smtp_error)}"
            if isinstance(exc, smtplib.SMTPSenderRefused):
                detail = f"sender {exc.sender} refused: {detail}"
        else:
            detail = reply_text(str(exc)) or "no detail"
        what = type(exc).__name__
        return self._scrub(f"smtp sink {self.name!r}: {what} {stage} {self._server}: {detail}")

    def _refused_error(self, recipients: dict[str, tuple[int, bytes]]) -> DeliveryError:
        """Every recipient refused: retry if any of them may accept later."""
        detail = "; ".join(
            f"{rcpt}: {code} {reply_text(reply)}" for rcpt, (code, reply) in recipients.items()
        )
        message = self._scrub(
            f"smtp sink {self.name!r}: {self._server} refused every recipient: {detail}"
        )
        if any(_is_transient(code) for code, _ in recipients.values()):
            return RetryableError(message)
        return PermanentError(message)
