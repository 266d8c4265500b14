"""The SMTP sink against a real SMTP server (aiosmtpd in a thread): what arrives, TLS in
each mode, AUTH, and how every failure maps to a retryable or a permanent error."""

from __future__ import annotations

import asyncio
import base64
import logging
import shutil
import socket
import ssl
import subprocess
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from kubewatch.config import SmtpSinkConfig, parse_config
from kubewatch.errors import ConfigErrors, PermanentError, RetryableError
from kubewatch.events import Change, DigestInfo, Event, EventType
from kubewatch.sinks.smtp import DEFAULT_PORTS, SmtpSink
from kubewatch.sinks.webhook import EVENT_ID_HEADER

USER = "alice"
PASSWORD = "pa55-w0rd-s3cret"
SENDER = "kubewatch@example.com"
OPS = "ops@example.com"
DEV = "dev@example.com"
NOW = 1_800_000_000.0


SYSTEM_CA = "/etc/ssl/certs/ca-certificates.crt"
"""A real PEM bundle (Debian's), for checks that need a valid caFile."""


def make_event(name: str = "app", **overrides: Any) -> Event:
    """An update of ConfigMap ``default/<name>``; override any field."""
    fields: dict[str, Any] = {
        "type": EventType.UPDATE,
        "cluster": "test",
        "kind": "ConfigMap",
        "api_version": "v1",
        "resource": "configmaps",
        "namespace": "default",
        "name": name,
        "uid": f"uid-{name}",
        "resource_version": "1",
        "observed_at": "2026-11-26T22:10:51.123Z",
        "labels": {"app": "web"},
        "changes": (Change("data.mode", "a", "b"),),
        "summary": f"[test] ConfigMap default/{name} updated: data.mode a → b",
    }
    fields.update(overrides)
    return Event(**fields)


def smtp_config(port: int | None, **kw: Any) -> SmtpSinkConfig:
    values: dict[str, Any] = {
        "type": "smtp",
        "host": "127.0.0.1",
        "port": port,
        "tls": "none",
        "from": f"Kubewatch <{SENDER}>",
        "to": (OPS,),
        "timeout": 10,
    }
    values.update(kw)
    return SmtpSinkConfig.model_validate(values)


def sink(port: int | None, name: str = "mail", **kw: Any) -> SmtpSink:
    return SmtpSink(name, smtp_config(port, **kw), clock=lambda: NOW)


# -- a real SMTP server -----------------------------------------------------------------


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage


@dataclass
class Mailbox:
    """An aiosmtpd handler that records what it accepts and answers as told."""

    received: list[Received] = field(default_factory=list)
    mail_reply: str | None = None
    """Answer to MAIL FROM instead of accepting it."""
    rcpt_replies: dict[str, str] = field(default_factory=dict)
    """Answer to RCPT TO per address, instead of accepting it."""
    data_reply: str | None = None
    """Answer to the end of DATA instead of accepting the message."""
    mechanisms: list[str] = field(default_factory=list)
    """AUTH mechanisms clients used, in order."""

    async def handle_MAIL(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        if self.mail_reply is not None:
            return self.mail_reply
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        if address in self.rcpt_replies:
            return self.rcpt_replies[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.data_reply is not None:
            return self.data_reply
        parsed = message_from_bytes(envelope.original_content, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        self.received.append(Received(envelope.mail_from, list(envelope.rcpt_tos), parsed))
        return "250 Message accepted for delivery"

    def authenticator(
        self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
    ) -> Any:
        """Accepts USER with PASSWORD, by any mechanism aiosmtpd offers."""
        self.mechanisms.append(mechanism)
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login == USER.encode()
            and auth_data.password == PASSWORD.encode()
        )
        return AuthResult(success=ok, handled=False)


class _Controller(Controller):
    """Listens on a free port (port 0): aiosmtpd's readiness probe needs the real one."""

    def _trigger_server(self) -> None:
        assert isinstance(self.server, asyncio.Server)
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()  # type: ignore[no-untyped-call]


@contextmanager
def serve(mailbox: Mailbox, **smtp_kwargs: Any) -> Iterator[int]:
    """Run an aiosmtpd server on 127.0.0.1 for the ``with`` block; yields its port."""
    controller = _Controller(
        mailbox, hostname="127.0.0.1", port=0, server_hostname="mail.test", **smtp_kwargs
    )
    controller.start()
    try:
        yield int(controller.port)
    finally:
        controller.stop()


@pytest.fixture
def mailbox() -> Mailbox:
    return Mailbox()


@pytest.fixture
def plain(mailbox: Mailbox) -> Iterator[int]:
    """A server without TLS or AUTH."""
    with serve(mailbox) as port:
        yield port


@pytest.fixture(scope="module")
def cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1, made with the openssl CLI."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl CLI not installed")
    d = tmp_path_factory.mktemp("smtp-tls")
    cert, key = d / "cert.pem", d / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "2",
            "-subj", "/CN=kubewatch-smtp-test", "-addext", "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


def server_context(cert: tuple[Path, Path]) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*cert)
    return context


@pytest.fixture
def starttls(mailbox: Mailbox, cert: tuple[Path, Path]) -> Iterator[int]:
    """A server that offers STARTTLS and refuses mail without it."""
    with serve(mailbox, tls_context=server_context(cert), require_starttls=True) as port:
        yield port


@pytest.fixture
def implicit(mailbox: Mailbox, cert: tuple[Path, Path]) -> Iterator[int]:
    """A server that speaks TLS from the first byte (SMTPS)."""
    with serve(mailbox, ssl_context=server_context(cert)) as port:
        yield port


@pytest.fixture
def with_auth(mailbox: Mailbox, cert: tuple[Path, Path]) -> Iterator[int]:
    """STARTTLS, then AUTH (LOGIN or PLAIN) required for any mail."""
    with serve(
        mailbox,
        tls_context=server_context(cert),
        require_starttls=True,
        auth_required=True,
        authenticator=mailbox.authenticator,
    ) as port:
        yield port


def free_port() -> int:
    """A port that was free a moment ago: nobody listens there."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def raw_server(on_connect: Callable[[socket.socket], None]) -> Iterator[int]:
    """A TCP server on 127.0.0.1 that runs ``on_connect`` for every connection."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                if stop.is_set():  # the wake-up connection below
                    return
                on_connect(conn)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield int(listener.getsockname()[1])
    finally:
        stop.set()
        with socket.create_connection(listener.getsockname()):  # wakes accept()
            pass
        thread.join()
        listener.close()


def parts(message: EmailMessage) -> tuple[str, str]:
    """The text and the HTML part of a received message."""
    text = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert isinstance(text, EmailMessage) and isinstance(html, EmailMessage)
    # Line ends are CRLF on the wire; compare them as Python text.
    return text.get_content().replace("\r\n", "\n"), html.get_content().replace("\r\n", "\n")


def kubewatch_log(caplog: pytest.LogCaptureFixture) -> str:
    return "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("kubewatch"))


# -- delivery and the message -----------------------------------------------------------


def test_plain_delivery(plain: int, mailbox: Mailbox) -> None:
    event = make_event()
    with sink(plain, to=(OPS, f"Dev Team <{DEV}>", OPS)) as s:
        s.send(event)
    [got] = mailbox.received
    assert got.mail_from == SENDER
    assert got.rcpt_tos == [OPS, DEV]  # each recipient once
    m = got.message
    assert m["From"] == f"Kubewatch <{SENDER}>"
    assert m["To"] == f"{OPS}, Dev Team <{DEV}>, {OPS}"
    # The default subject template shows the summary. Python's header folding may double a
    # space before an encoded word ("a  → b"), which is cosmetic: compare spaces normalized.
    assert event.summary in " ".join(m["Subject"].split())
    assert parsedate_to_datetime(m["Date"]).timestamp() == NOW  # the injected clock
    assert m["Message-ID"].startswith(f"<{event.id}.") and m["Message-ID"].endswith("@example.com>")
    assert m[EVENT_ID_HEADER] == event.id
    assert m["Auto-Submitted"] == "auto-generated"


def test_message_is_two_alternative_parts_with_escaped_html(plain: int, mailbox: Mailbox) -> None:
    script = "<script>alert(1)</script>"
    event = make_event(
        changes=(Change("metadata.annotations.note", None, script, "added"),),
        summary=f"[test] ConfigMap default/app updated: metadata.annotations.note added ({script})",
    )
    with sink(plain) as s:
        s.send(event)
    m = mailbox.received[0].message
    assert m.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in m.iter_parts()] == ["text/plain", "text/html"]
    text, html = parts(m)

    assert script in text  # plain text shows the value as it is
    assert text.splitlines()[0] == event.summary
    assert "Namespace: default" in text
    assert "metadata.annotations.note: (added) <script>alert(1)</script>" in text
    assert event.id in text

    assert "<script" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<pre" in html and "<table" in html
    assert "border-left:4px solid #ECB22E" in html  # amber: an update
    for external in ("http:", "https:", "src=", "url(", "<link", "<img"):
        assert external not in html


def test_delete_is_red_and_a_digest_lists_its_count(plain: int, mailbox: Mailbox) -> None:
    digest = DigestInfo(count=12, ids=("a", "b"), names=("default/a", "default/b"))
    with sink(plain) as s:
        s.send(make_event(type=EventType.DELETE, changes=()))
        s.send(make_event(name="", digest=digest, summary="[test] 12 ConfigMaps updated"))
    _, deleted = parts(mailbox.received[0].message)
    assert "border-left:4px solid #E01E5A" in deleted
    assert "<pre" not in deleted  # no changes, no empty block
    text, html = parts(mailbox.received[1].message)
    assert "Events:" in text and "12" in text
    assert ">Events</th>" in html


def test_subject_comes_from_its_template(plain: int, mailbox: Mailbox) -> None:
    with sink(plain, subject="{{ kind }} {{ name }} in {{ namespace }} ({{ type }})") as s:
        s.send(make_event())
    assert mailbox.received[0].message["Subject"] == "ConfigMap app in default (update)"


@pytest.mark.parametrize(
    "subject",
    [
        pytest.param("[{{ cluster }}] {{ summary }}", id="default"),
        pytest.param("{{ name }}", id="name-only"),
        pytest.param("{{ name }}\nX-Literal: from the template", id="newline-in-template"),
    ],
)
def test_no_header_injection_through_the_subject(
    plain: int, mailbox: Mailbox, subject: str
) -> None:
    """A name holding CR/LF stays text on the subject line; it never becomes a header."""
    name = "web\r\nBcc: evil@example.net\r\n\r\nbody"
    event = make_event(name=name, summary=f"[test] ConfigMap default/{name} updated")
    with sink(plain, subject=subject) as s:
        s.send(event)
    [got] = mailbox.received
    assert got.rcpt_tos == [OPS]
    m = got.message
    assert m["Bcc"] is None and m["X-Literal"] is None
    assert len(m.get_all("Subject") or []) == 1
    assert "web Bcc: evil@example.net body" in m["Subject"]
    assert "\r" not in m["Subject"] and "\n" not in m["Subject"]


def test_long_subject_is_cut(plain: int, mailbox: Mailbox) -> None:
    with sink(plain, subject="{{ name }}") as s:
        s.send(make_event(name="x" * 500))
    subject = mailbox.received[0].message["Subject"]
    assert subject.startswith("x" * 200) and subject.endswith("(+300 chars)")


def test_template_is_the_text_and_shows_in_html(plain: int, mailbox: Mailbox) -> None:
    template = (
        "Changed: {{ name }}\n{% for c in changes %}- {{ c.path }} = {{ c.new }}\n{% endfor %}"
    )
    event = make_event(changes=(Change("data.x", "1", "<b>2</b>"),))
    with sink(plain, template=template) as s:
        s.send(event)
    text, html = parts(mailbox.received[0].message)
    assert text == "Changed: app\n- data.x = <b>2</b>\n"
    assert "Changed: app\n- data.x = &lt;b&gt;2&lt;/b&gt;" in html
    assert "<b>" not in html


def test_message_id_is_stable_per_event_and_sink() -> None:
    """A retried event carries the same Message-ID, so de-duplicating mail systems show it
    once; another sink or another event gets another one."""
    a, b = sink(None, name="a"), sink(None, name="b")
    event = make_event()
    assert a.build_message(event)["Message-ID"] == a.build_message(event)["Message-ID"]
    assert a.build_message(event)["Message-ID"] != b.build_message(event)["Message-ID"]
    other = make_event(resource_version="2")
    assert a.build_message(event)["Message-ID"] != a.build_message(other)["Message-ID"]


def test_concurrent_sends_each_arrive(plain: int, mailbox: Mailbox) -> None:
    with sink(plain, subject="{{ name }}") as s:
        threads = [
            threading.Thread(target=s.send, args=(make_event(name=f"cm{i}"),)) for i in range(8)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert sorted(r.message["Subject"] for r in mailbox.received) == [f"cm{i}" for i in range(8)]


# -- TLS --------------------------------------------------------------------------------


@pytest.mark.parametrize(("tls", "port"), [("starttls", 587), ("implicit", 465), ("none", 25)])
def test_default_port_follows_the_tls_mode(tls: str, port: int) -> None:
    assert sink(None, tls=tls).port == port == DEFAULT_PORTS[tls]  # type: ignore[index]


def test_starttls_with_ca_file(starttls: int, mailbox: Mailbox, cert: tuple[Path, Path]) -> None:
    with sink(starttls, tls="starttls", ca_file=str(cert[0])) as s:
        s.send(make_event())
    assert len(mailbox.received) == 1  # the server refuses mail before STARTTLS


def test_starttls_not_offered_is_permanent(plain: int, mailbox: Mailbox) -> None:
    """Never fall back to clear text: a stripped STARTTLS is what an attacker would send."""
    with sink(plain, tls="starttls") as s, pytest.raises(PermanentError, match="STARTTLS"):
        s.send(make_event())
    assert mailbox.received == []


def test_implicit_tls(implicit: int, mailbox: Mailbox, cert: tuple[Path, Path]) -> None:
    with sink(implicit, tls="implicit", ca_file=str(cert[0])) as s:
        s.send(make_event())
    assert len(mailbox.received) == 1


def test_implicit_tls_to_a_plain_port_is_permanent(plain: int) -> None:
    with (
        sink(plain, tls="implicit") as s,
        pytest.raises(PermanentError, match="no TLS on this port"),
    ):
        s.send(make_event())


@pytest.mark.parametrize("tls", ["starttls", "implicit"])
def test_untrusted_certificate_is_permanent(
    tls: str, mailbox: Mailbox, cert: tuple[Path, Path]
) -> None:
    """A wrong CA does not fix itself within a retry window: fail at once and say why."""
    kwargs: dict[str, Any] = (
        {"tls_context": server_context(cert), "require_starttls": True}
        if tls == "starttls"
        else {"ssl_context": server_context(cert)}
    )
    with (
        serve(mailbox, **kwargs) as port,
        sink(port, tls=tls) as s,
        pytest.raises(PermanentError, match="certificate not trusted"),
    ):
        s.send(make_event())
    assert mailbox.received == []


@pytest.mark.parametrize("tls", ["starttls", "implicit"])
def test_insecure_skip_verify(
    tls: str, mailbox: Mailbox, cert: tuple[Path, Path], caplog: pytest.LogCaptureFixture
) -> None:
    kwargs: dict[str, Any] = (
        {"tls_context": server_context(cert), "require_starttls": True}
        if tls == "starttls"
        else {"ssl_context": server_context(cert)}
    )
    with serve(mailbox, **kwargs) as port, sink(port, tls=tls, insecure_skip_verify=True) as s:
        s.send(make_event())
    assert len(mailbox.received) == 1
    assert "insecureSkipVerify" in kubewatch_log(caplog)


# -- AUTH -------------------------------------------------------------------------------


@pytest.mark.parametrize("mechanism", ["LOGIN", "PLAIN"])
def test_login_after_starttls(mechanism: str, mailbox: Mailbox, cert: tuple[Path, Path]) -> None:
    other = "PLAIN" if mechanism == "LOGIN" else "LOGIN"
    with (
        serve(
            mailbox,
            tls_context=server_context(cert),
            require_starttls=True,
            auth_required=True,
            authenticator=mailbox.authenticator,
            auth_exclude_mechanism=[other],
        ) as port,
        sink(port, tls="starttls", ca_file=str(cert[0]), username=USER, password=PASSWORD) as s,
    ):
        s.send(make_event())
    assert mailbox.mechanisms == [mechanism]
    assert len(mailbox.received) == 1


def test_bad_password_is_permanent_and_never_shown(
    with_auth: int, mailbox: Mailbox, cert: tuple[Path, Path], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "wr0ng-pa55word"
    with (
        sink(with_auth, tls="starttls", ca_file=str(cert[0]), username=USER, password=wrong) as s,
        pytest.raises(PermanentError, match="SMTP login failed for user 'alice'") as info,
    ):
        s.send(make_event())
    assert "535" in str(info.value)
    shown = f"{info.value!s} {info.value!r} {info.value.__cause__!s} {kubewatch_log(caplog)}"
    for secret in (wrong, base64.b64encode(wrong.encode()).decode()):
        assert secret not in shown
    assert mailbox.received == []


def test_scrubs_the_password_if_the_server_echoes_it(cert: tuple[Path, Path]) -> None:
    def echo(conn: socket.socket) -> None:
        f = conn.makefile("rwb")
        f.write(b"220 mail.test ESMTP\r\n")
        f.flush()
        f.readline()  # EHLO
        f.write(b"250-mail.test\r\n250 AUTH PLAIN\r\n")
        f.flush()
        line = f.readline().decode().strip()  # AUTH PLAIN <base64>
        f.write(f"535 5.7.8 bad credentials {line.split()[-1]} ({PASSWORD})\r\n".encode())
        f.flush()

    with (
        raw_server(echo) as port,
        sink(port, username=USER, password=PASSWORD) as s,  # tls: none is allowed on loopback
        pytest.raises(PermanentError, match="SMTP login failed") as info,
    ):
        s.send(make_event())
    assert PASSWORD not in str(info.value)
    assert base64.b64encode(f"\0{USER}\0{PASSWORD}".encode()).decode() not in str(info.value)
    assert "<redacted>" in str(info.value)


def test_auth_required_without_credentials_is_permanent(
    with_auth: int, mailbox: Mailbox, cert: tuple[Path, Path]
) -> None:
    with (
        sink(with_auth, tls="starttls", ca_file=str(cert[0])) as s,
        pytest.raises(PermanentError, match="530"),
    ):
        s.send(make_event())


def test_login_without_auth_offered_is_permanent(plain: int, mailbox: Mailbox) -> None:
    """aiosmtpd offers AUTH only over TLS; on loopback the sink may try in clear text."""
    with (
        sink(plain, username=USER, password=PASSWORD) as s,
        pytest.raises(PermanentError, match="offers no AUTH"),
    ):
        s.send(make_event())
    assert mailbox.received == []


def test_clear_text_password_to_a_remote_server_is_refused_at_load() -> None:
    with pytest.raises(ConfigErrors) as info:
        SmtpSink("mail", smtp_config(25, host="mail.example.com", username=USER, password=PASSWORD))
    [error] = info.value.errors
    assert error.path == "sinks.mail.tls"
    assert "clear text" in error.message
    assert PASSWORD not in str(info.value)


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_clear_text_login_to_localhost_is_allowed(mailbox: Mailbox) -> None:
    """A relay sidecar on loopback: the password never leaves the host."""
    with (
        serve(
            mailbox, auth_require_tls=False, auth_required=True, authenticator=mailbox.authenticator
        ) as port,
        sink(port, username=USER, password=PASSWORD) as s,
    ):
        s.send(make_event())
    assert len(mailbox.received) == 1


# -- failures ---------------------------------------------------------------------------


def test_server_down_is_retryable() -> None:
    with sink(free_port()) as s, pytest.raises(RetryableError, match="ConnectionRefused"):
        s.send(make_event())


def test_server_hanging_up_is_retryable() -> None:
    with (
        raw_server(lambda conn: None) as port,
        sink(port) as s,
        pytest.raises(RetryableError, match="SMTPServerDisconnected"),
    ):
        s.send(make_event())


def test_silent_server_is_a_retryable_timeout() -> None:
    """Accepted by the kernel, never greeted: the read times out."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        with sink(port, timeout=0.2) as s, pytest.raises(RetryableError, match="timed out"):
            s.send(make_event())


def test_busy_greeting_is_retryable() -> None:
    def busy(conn: socket.socket) -> None:
        conn.sendall(b"421 4.3.2 mail.test too busy, try later\r\n")

    with (
        raw_server(busy) as port,
        sink(port) as s,
        pytest.raises(RetryableError, match=r"421 4\.3\.2 mail\.test too busy"),
    ):
        s.send(make_event())


@dataclass(frozen=True)
class Reply:
    """The server answers ``reply`` at one step; the send raises ``error``."""

    step: str
    reply: str
    error: type[Exception]
    match: str


REPLIES = [
    pytest.param(Reply("data", "451 4.3.0 local error", RetryableError, "451"), id="data-451"),
    pytest.param(Reply("data", "452 4.3.1 storage full", RetryableError, "452"), id="data-452"),
    pytest.param(Reply("data", "554 5.6.0 rejected", PermanentError, "554"), id="data-554"),
    pytest.param(Reply("mail", "421 4.7.0 closing", RetryableError, "421"), id="mail-421"),
    pytest.param(Reply("mail", "553 5.1.8 bad sender", PermanentError, "553"), id="mail-553"),
    pytest.param(Reply("rcpt", "450 4.2.1 try later", RetryableError, "450"), id="rcpt-450"),
    pytest.param(Reply("rcpt", "550 5.1.1 no such user", PermanentError, "550"), id="rcpt-550"),
]


@pytest.mark.parametrize("case", REPLIES)
def test_server_replies_map_to_errors(case: Reply, mailbox: Mailbox) -> None:
    if case.step == "data":
        mailbox.data_reply = case.reply
    elif case.step == "mail":
        mailbox.mail_reply = case.reply
    else:
        mailbox.rcpt_replies = {OPS: case.reply, DEV: case.reply}
    with (
        serve(mailbox) as port,
        sink(port, to=(OPS, DEV)) as s,
        pytest.raises(case.error, match=case.match) as info,
    ):
        s.send(make_event())
    if case.error is RetryableError:  # 4xx: retry; never "permanent" by inheritance
        assert not isinstance(info.value, PermanentError)
    assert mailbox.received == []


def test_all_refused_with_one_temporary_is_retryable(mailbox: Mailbox) -> None:
    """Nobody got the message yet, and one recipient may accept it later."""
    mailbox.rcpt_replies = {OPS: "550 5.1.1 no such user", DEV: "452 4.2.2 mailbox full"}
    with (
        serve(mailbox) as port,
        sink(port, to=(OPS, DEV)) as s,
        pytest.raises(RetryableError, match="refused every recipient"),
    ):
        s.send(make_event())


def test_some_recipients_refused_is_delivered_and_warned_once(
    mailbox: Mailbox, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="kubewatch")
    mailbox.rcpt_replies = {DEV: "550 5.1.1 no such user"}
    with serve(mailbox) as port, sink(port, to=(OPS, DEV)) as s:
        s.send(make_event(resource_version="1"))
        s.send(make_event(resource_version="2"))
    assert [r.rcpt_tos for r in mailbox.received] == [[OPS], [OPS]]
    refusals = [r for r in caplog.records if r.name == "kubewatch.sinks.smtp" and DEV in r.message]
    assert [r.levelno for r in refusals] == [logging.WARNING, logging.DEBUG]
    assert "550 5.1.1 no such user" in refusals[0].message
    assert "'mail'" in refusals[0].message


# -- configuration and lifecycle --------------------------------------------------------


@pytest.mark.parametrize(
    ("kw", "path", "message"),
    [
        pytest.param({"subject": "{{ nmae }}"}, "sinks.mail.subject", "did you mean", id="subj"),
        pytest.param({"template": "{% if %}"}, "sinks.mail.template", "line 1", id="template"),
        pytest.param({"from": "kubewatch"}, "sinks.mail.from", "not an e-mail", id="from"),
        pytest.param({"to": (OPS, "a@x, b@y")}, "sinks.mail.to[1]", "exactly one", id="to"),
        pytest.param(
            {"tls": "starttls", "ca_file": SYSTEM_CA, "insecure_skip_verify": True},
            "sinks.mail.insecureSkipVerify",
            "together with caFile",
            id="ca-and-skip",
        ),
        pytest.param(
            {"tls": "none", "insecure_skip_verify": True},
            "sinks.mail.insecureSkipVerify",
            "applies to tls",
            id="skip-without-tls",
        ),
    ],
)
def test_config_mistakes_name_their_key(kw: dict[str, Any], path: str, message: str) -> None:
    with pytest.raises(ConfigErrors) as info:
        SmtpSink("mail", smtp_config(None, **kw))
    assert [e.path for e in info.value.errors] == [path]
    assert message in info.value.errors[0].message


def test_a_missing_ca_file_is_a_config_error() -> None:
    text = """
resources: [{kind: ConfigMap}]
sinks:
  mail: {type: smtp, host: mail.example.com, from: k@example.com, to: [o@example.com],
         caFile: ca.pem}
"""
    with pytest.raises(ConfigErrors) as info:
        parse_config(text, base_dir="/nonexistent")
    [error] = info.value.errors
    assert error.path == "sinks.mail.caFile"
    assert "/nonexistent/ca.pem" in error.message and "does not exist" in error.message


def test_every_mistake_is_reported_at_once() -> None:
    with pytest.raises(ConfigErrors) as info:
        SmtpSink("mail", smtp_config(None, subject="{{ nmae }}", to=("nobody",)))
    assert [e.path for e in info.value.errors] == ["sinks.mail.subject", "sinks.mail.to[0]"]


def test_readme_config_validates_and_builds() -> None:
    """The minimal configuration of the README section "E-mail (SMTP)"."""
    text = """
resources: [{kind: Deployment}]
sinks:
  mail:
    type: smtp
    host: smtp.example.com
    username: kubewatch@example.com
    password: ${SMTP_PASSWORD}
    from: "Kubewatch <kubewatch@example.com>"
    to: [ops@example.com]
"""
    config = parse_config(text, {"SMTP_PASSWORD": PASSWORD})
    mail = config.sinks["mail"]
    assert isinstance(mail, SmtpSinkConfig)
    with SmtpSink("mail", mail) as s:
        assert (s.host, s.port) == ("smtp.example.com", 587)
    assert PASSWORD not in repr(mail)


def test_close_is_idempotent_and_final(plain: int, mailbox: Mailbox) -> None:
    s = sink(plain)
    s.close()
    s.close()
    with pytest.raises(PermanentError, match="closed"):
        s.send(make_event())
    assert mailbox.received == []
