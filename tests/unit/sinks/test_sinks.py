"""Sinks: stdout lines, webhook requests and how every HTTP outcome maps to an error."""

from __future__ import annotations

import email.utils
import hashlib
import hmac
import io
import re
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Literal, get_args

import httpx
import orjson
import pytest

import kubewatch
from kubewatch.config import Config, SinkConfig, StdoutSinkConfig, WebhookSinkConfig
from kubewatch.errors import (
    ConfigError,
    ConfigErrors,
    PermanentError,
    RateLimited,
    RetryableError,
)
from kubewatch.events import Change, Event, EventType
from kubewatch.sinks import StdoutSink, WebhookSink, build_sink, registered_configs
from kubewatch.sinks.webhook import (
    EVENT_ID_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    sign,
)

NOW = 1_800_000_000.0
"""A fixed Unix time for the webhook's clock (2027-01-15)."""

TOKEN = "s3cr3t-t0ken-value"

CONTRACT_FIELDS = {
    "schemaVersion",
    "id",
    "type",
    "cluster",
    "kind",
    "apiVersion",
    "resource",
    "namespace",
    "name",
    "uid",
    "resourceVersion",
    "observedAt",
    "labels",
    "changes",
    "finalStateUnknown",
    "k8sEvent",
    "digest",
    "whileDown",
    "alert",
    "summary",
}


def make_event(key: str = "default/app", rv: str = "1", **overrides: Any) -> Event:
    """An update of ConfigMap ``key`` at resourceVersion ``rv``; override any field."""
    namespace, _, name = key.rpartition("/")
    fields: dict[str, Any] = {
        "type": EventType.UPDATE,
        "cluster": "test",
        "kind": "ConfigMap",
        "api_version": "v1",
        "resource": "configmaps",
        "namespace": namespace or None,
        "name": name,
        "uid": f"uid-{key}",
        "resource_version": rv,
        "observed_at": "2026-11-26T22:10:51.123Z",
        "labels": {"app": "web"},
        "changes": (Change("data.mode", "a", "b"),),
        "summary": f"update ConfigMap {key}: data.mode a → b",
    }
    fields.update(overrides)
    return Event(**fields)


def webhook_config(url: str = "https://hooks.example/path/abc", **kw: Any) -> WebhookSinkConfig:
    return WebhookSinkConfig(type="webhook", url=url, **kw)


def mock_sink(handler: Callable[[httpx.Request], httpx.Response], **kw: Any) -> WebhookSink:
    return WebhookSink(
        "hook", webhook_config(**kw), httpx.MockTransport(handler), clock=lambda: NOW
    )


# -- registry ---------------------------------------------------------------------------


def test_every_sink_config_has_a_sink() -> None:
    """Adding a config class to SinkConfig without a registry entry fails here."""
    (union, *_) = get_args(SinkConfig)
    assert set(get_args(union)) == registered_configs()


def test_build_sink_picks_the_class_of_the_config() -> None:
    config = Config.model_validate(
        {
            "resources": [{"kind": "ConfigMap"}],
            "sinks": {"out": {"type": "stdout"}, "hook": {"type": "webhook", "url": "http://x/"}},
        }
    )
    with (
        build_sink("out", config.sinks["out"]) as out,
        build_sink("hook", config.sinks["hook"]) as hook,
    ):
        assert isinstance(out, StdoutSink)
        assert out.name == "out"
        assert isinstance(hook, WebhookSink)
        assert hook.name == "hook"


# -- stdout -----------------------------------------------------------------------------


def test_stdout_json_is_the_event_contract_on_one_line() -> None:
    stream = io.StringIO()
    event = make_event()
    with StdoutSink("out", StdoutSinkConfig(type="stdout", format="json"), stream) as sink:
        sink.send(event)
    lines = stream.getvalue().splitlines(keepends=True)
    assert len(lines) == 1
    assert lines[0].endswith("\n")
    doc = orjson.loads(lines[0])
    assert set(doc) == CONTRACT_FIELDS
    assert doc == event.to_dict()
    assert doc["id"] == event.id
    assert doc["schemaVersion"] == 1
    assert doc["type"] == "update"
    assert doc["namespace"] == "default"
    assert doc["name"] == "app"
    assert doc["resourceVersion"] == "1"
    assert doc["observedAt"] == "2026-11-26T22:10:51.123Z"
    assert doc["changes"] == [{"path": "data.mode", "op": "changed", "old": "a", "new": "b"}]
    assert doc["summary"] == "update ConfigMap default/app: data.mode a → b"


def test_stdout_text_is_time_and_summary() -> None:
    stream = io.StringIO()
    sink = StdoutSink("out", StdoutSinkConfig(type="stdout", format="text"), stream)
    sink.send(make_event())
    sink.send(make_event("cluster-thing", summary="two\nlines"))
    sink.send(make_event("default/quiet", summary=""))
    assert stream.getvalue().splitlines() == [
        "2026-11-26T22:10:51.123Z update ConfigMap default/app: data.mode a → b",
        "2026-11-26T22:10:51.123Z two lines",
        "2026-11-26T22:10:51.123Z update ConfigMap default/quiet",
    ]


def test_stdout_defaults_to_the_current_sys_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    StdoutSink("out", StdoutSinkConfig(type="stdout")).send(make_event())
    assert orjson.loads(capsys.readouterr().out)["name"] == "app"


def test_stdout_lines_never_interleave_across_threads() -> None:
    stream = io.StringIO()
    sink = StdoutSink("out", StdoutSinkConfig(type="stdout"), stream)

    def writer(n: int) -> None:
        for i in range(100):
            sink.send(make_event(f"ns/obj-{n}", str(i)))

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    docs = [orjson.loads(line) for line in stream.getvalue().splitlines()]
    assert len(docs) == 800


class _BrokenStream(io.StringIO):
    def write(self, s: str) -> int:
        raise BrokenPipeError(32, "Broken pipe")


def test_stdout_broken_pipe_is_permanent() -> None:
    sink = StdoutSink("out", StdoutSinkConfig(type="stdout"), _BrokenStream())
    with pytest.raises(PermanentError, match="out"):
        sink.send(make_event())


def test_stdout_close_is_idempotent_and_final() -> None:
    stream = io.StringIO()
    sink = StdoutSink("out", StdoutSinkConfig(type="stdout"), stream)
    sink.close()
    sink.close()
    assert not stream.closed  # the stream belongs to the caller
    with pytest.raises(PermanentError, match="closed"):
        sink.send(make_event())


def test_unencodable_event_is_permanent() -> None:
    event = make_event(changes=(Change("spec.huge", 1, 2**70),))
    with pytest.raises(PermanentError, match="JSON"):
        StdoutSink("out", StdoutSinkConfig(type="stdout"), io.StringIO()).send(event)


# -- webhook over MockTransport ---------------------------------------------------------


def test_webhook_posts_the_event_json_with_headers() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(204)

    event = make_event()
    with mock_sink(handler, headers={"Authorization": f"Bearer {TOKEN}", "X-Team": "a"}) as sink:
        sink.send(event)
    (request,) = seen
    assert request.method == "POST"
    assert str(request.url) == "https://hooks.example/path/abc"
    assert orjson.loads(request.content) == event.to_dict()
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["User-Agent"] == f"kubewatch/{kubewatch.__version__}"
    assert request.headers[EVENT_ID_HEADER] == event.id
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert request.headers["X-Team"] == "a"


@dataclass(frozen=True)
class Outcome:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    error: type[Exception] | None = None
    retry_after: float | None = None


HTTP_DATE_IN_90S = email.utils.formatdate(NOW + 90, usegmt=True)

OUTCOMES = [
    pytest.param(Outcome(200), id="200-ok"),
    pytest.param(Outcome(202), id="202-ok"),
    pytest.param(Outcome(204), id="204-ok"),
    pytest.param(Outcome(429, error=RateLimited, retry_after=1.0), id="429-default-1s"),
    pytest.param(Outcome(429, {"Retry-After": "7"}, RateLimited, 7.0), id="429-seconds"),
    pytest.param(
        Outcome(429, {"Retry-After": HTTP_DATE_IN_90S}, RateLimited, 90.0), id="429-http-date"
    ),
    pytest.param(
        Outcome(429, {"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}, RateLimited, 0.0),
        id="429-date-in-past",
    ),
    pytest.param(Outcome(429, {"Retry-After": "soon"}, RateLimited, 1.0), id="429-garbage"),
    pytest.param(Outcome(503, {"Retry-After": "30"}, RateLimited, 30.0), id="503-retry-after"),
    pytest.param(Outcome(503, error=RetryableError), id="503-plain"),
    pytest.param(Outcome(500, error=RetryableError), id="500"),
    pytest.param(Outcome(502, error=RetryableError), id="502"),
    pytest.param(Outcome(504, error=RetryableError), id="504"),
    pytest.param(Outcome(408, error=RetryableError), id="408-request-timeout"),
    pytest.param(Outcome(425, error=RetryableError), id="425-too-early"),
    pytest.param(Outcome(400, error=PermanentError), id="400"),
    pytest.param(Outcome(401, error=PermanentError), id="401"),
    pytest.param(Outcome(403, error=PermanentError), id="403"),
    pytest.param(Outcome(404, error=PermanentError), id="404"),
    pytest.param(Outcome(413, error=PermanentError), id="413"),
    pytest.param(Outcome(422, error=PermanentError), id="422"),
    pytest.param(Outcome(301, {"Location": "https://x/"}, PermanentError), id="301-not-followed"),
]


@pytest.mark.parametrize("case", OUTCOMES)
def test_webhook_status_mapping(case: Outcome) -> None:
    """Every status class lands on exactly the documented error type."""
    sink = mock_sink(lambda _: httpx.Response(case.status, headers=case.headers, text="nope"))
    if case.error is None:
        sink.send(make_event())
        return
    with pytest.raises(case.error) as info:
        sink.send(make_event())
    assert type(info.value) is case.error  # a 503 without Retry-After is not RateLimited
    assert f"HTTP {case.status}" in str(info.value)
    assert "'hook'" in str(info.value)
    if case.retry_after is not None:
        assert isinstance(info.value, RateLimited)
        assert info.value.retry_after == pytest.approx(case.retry_after)


def test_permanent_error_carries_status_and_200_chars_of_body() -> None:
    body = "x" * 199 + "END" + "y" * 5000
    sink = mock_sink(lambda _: httpx.Response(400, text=body))
    with pytest.raises(PermanentError) as info:
        sink.send(make_event())
    message = str(info.value)
    assert "HTTP 400" in message
    assert "x" * 199 + "E" in message
    assert "ND" not in message
    assert "y" not in message.split("HTTP 400")[1]


def test_secrets_never_appear_in_errors() -> None:
    """A receiver echoing the request (headers, URL) back cannot leak the token."""

    def echo(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            401, text=f"bad {request.headers['Authorization']} for {request.url.path}"
        )

    url = f"https://hooks.example/services/{TOKEN}-path"
    sink = mock_sink(echo, url=url, headers={"Authorization": f"Bearer {TOKEN}"})
    with pytest.raises(PermanentError) as info:
        sink.send(make_event())
    message = str(info.value)
    assert TOKEN not in message
    assert "services" not in message
    assert "https://hooks.example" in message
    assert "<redacted>" in message


@pytest.mark.parametrize(
    "exc",
    [
        httpx.ConnectError("connection refused"),
        httpx.ConnectTimeout("timed out"),
        httpx.ReadTimeout("timed out"),
        httpx.WriteTimeout("timed out"),
        httpx.PoolTimeout("timed out"),
        httpx.RemoteProtocolError("peer closed connection"),
        httpx.ReadError("reset"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_transport_errors_are_retryable(exc: httpx.TransportError) -> None:
    def fail(_: httpx.Request) -> httpx.Response:
        raise exc

    with pytest.raises(RetryableError) as info:
        mock_sink(fail, headers={"Authorization": f"Bearer {TOKEN}"}).send(make_event())
    assert not isinstance(info.value, RateLimited)
    assert type(exc).__name__ in str(info.value)
    assert TOKEN not in str(info.value)


def test_webhook_close_is_idempotent_and_final() -> None:
    sink = mock_sink(lambda _: httpx.Response(200))
    sink.close()
    sink.close()
    with pytest.raises(PermanentError, match="closed"):
        sink.send(make_event())


@pytest.mark.parametrize(
    ("kw", "path"),
    [
        pytest.param({"url": "ftp://x/"}, "sinks.hook.url", id="scheme"),
        pytest.param({"url": "/relative"}, "sinks.hook.url", id="relative"),
        pytest.param({"ca_file": "/nonexistent/ca.pem"}, "sinks.hook.caFile", id="ca-missing"),
    ],
)
def test_webhook_config_mistakes_name_their_key(kw: dict[str, Any], path: str) -> None:
    """The config model rejects these first; the sink still refuses an unvalidated config."""
    fields: dict[str, Any] = {"type": "webhook", "url": "https://hooks.example/", **kw}
    with pytest.raises(ConfigError) as info:
        WebhookSink("hook", WebhookSinkConfig.model_construct(**fields))
    assert info.value.path == path


# -- webhook against real local servers -------------------------------------------------


@dataclass(frozen=True)
class Reply:
    """What a :class:`Receiver` answers: status, headers and body."""

    status: int = 204
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


@dataclass(frozen=True)
class Received:
    """One request as a :class:`Receiver` saw it (``headers`` keep the sender's case)."""

    method: str
    target: str
    """Path and query, as sent."""
    headers: dict[str, str]
    body: bytes

    def header(self, name: str) -> str | None:
        """A header by case-insensitive name."""
        return next((v for k, v in self.headers.items() if k.lower() == name.lower()), None)


@dataclass
class Receiver:
    """A real HTTP(S) server on 127.0.0.1 recording each request and answering ``reply``.

    ``respond``, when set, decides the reply per request instead (e.g. a receiver that
    verifies a signature and answers 401 when it does not hold).
    """

    server: ThreadingHTTPServer
    scheme: str
    requests: list[Received] = field(default_factory=list)
    reply: Reply = Reply()
    respond: Callable[[Received], Reply] | None = None

    @property
    def status(self) -> int:
        return self.reply.status

    @status.setter
    def status(self, value: int) -> None:
        self.reply = Reply(value)

    @property
    def received(self) -> list[tuple[dict[str, str], bytes]]:
        """(headers, body) of each request, in arrival order."""
        return [(r.headers, r.body) for r in self.requests]

    @property
    def base(self) -> str:
        host, port = self.server.server_address[:2]
        return f"{self.scheme}://{host!s}:{port}"

    @property
    def url(self) -> str:
        return f"{self.base}/hook"


def serve(tls: ssl.SSLContext | None) -> Iterator[Receiver]:
    class Handler(BaseHTTPRequestHandler):
        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            request = Received(
                self.command, self.path, dict(self.headers.items()), self.rfile.read(length)
            )
            state.requests.append(request)
            reply = state.respond(request) if state.respond is not None else state.reply
            self.send_response(reply.status)
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(reply.body)))
            self.end_headers()
            self.wfile.write(reply.body)

        do_POST = do_PUT = do_PATCH = _handle

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    state = Receiver(server, "https" if tls else "http")
    thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture(scope="module")
def cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1, made with the openssl CLI."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl CLI not installed")
    d = tmp_path_factory.mktemp("tls")
    cert, key = d / "cert.pem", d / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "2",
            "-subj", "/CN=kubewatch-test", "-addext", "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


@pytest.fixture
def tls_receiver(cert: tuple[Path, Path]) -> Iterator[Receiver]:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*cert)
    yield from serve(context)


def test_webhook_posts_to_a_real_server(receiver: Receiver) -> None:
    event = make_event()
    with WebhookSink("hook", webhook_config(receiver.url, headers={"X-Token": TOKEN})) as sink:
        sink.send(event)
        sink.send(make_event(rv="2"))
    assert len(receiver.received) == 2
    headers, body = receiver.received[0]
    assert orjson.loads(body) == event.to_dict()
    assert headers["Content-Type"] == "application/json"
    assert headers[EVENT_ID_HEADER] == event.id
    assert headers["X-Token"] == TOKEN


def test_real_server_error_is_retryable(receiver: Receiver) -> None:
    receiver.status = 500
    with (
        WebhookSink("hook", webhook_config(receiver.url)) as sink,
        pytest.raises(RetryableError, match="HTTP 500"),
    ):
        sink.send(make_event())


def test_connection_refused_is_retryable() -> None:
    with socket.socket() as s:  # a port that was free a moment ago: nobody listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with (
        WebhookSink("hook", webhook_config(f"http://127.0.0.1:{port}/", timeout=5)) as sink,
        pytest.raises(RetryableError, match="ConnectError"),
    ):
        sink.send(make_event())


def test_tls_verified_with_ca_file(tls_receiver: Receiver, cert: tuple[Path, Path]) -> None:
    with WebhookSink("hook", webhook_config(tls_receiver.url, ca_file=str(cert[0]))) as sink:
        sink.send(make_event())
    assert len(tls_receiver.received) == 1


def test_tls_untrusted_certificate_is_permanent(tls_receiver: Receiver) -> None:
    """A wrong CA does not fix itself within a retry window: fail at once, say why."""
    with (
        WebhookSink("hook", webhook_config(tls_receiver.url)) as sink,
        pytest.raises(PermanentError, match="certificate"),
    ):
        sink.send(make_event())
    assert tls_receiver.received == []


def test_tls_insecure_skip_verify(tls_receiver: Receiver) -> None:
    with WebhookSink("hook", webhook_config(tls_receiver.url, insecure_skip_verify=True)) as sink:
        sink.send(make_event())
    assert len(tls_receiver.received) == 1


# -- webhook signing --------------------------------------------------------------------

SECRET = "whsec-0123456789abcdef"

# From here to the end of verify(): the README's verification snippet, verbatim, so the
# receivers below check signatures exactly as the README tells receivers to.
TOLERANCE = 300  # seconds either way: older (replayed) or far-future requests are refused


def verify(
    secret: bytes, body: bytes, timestamp: str, signature: str, now: float | None = None
) -> bool:
    """True when kubewatch signed exactly this body, within TOLERANCE seconds of now."""
    try:
        sent = int(timestamp)
    except ValueError:
        return False
    if abs((time.time() if now is None else now) - sent) > TOLERANCE:
        return False
    mac = hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256)
    return hmac.compare_digest("v1=" + mac.hexdigest(), signature)


def verifying(secret: str, now: float = NOW) -> Callable[[Received], Reply]:
    """A receiver's handler: 204 when the signature holds, 401 (naming why) when not."""

    def respond(request: Received) -> Reply:
        timestamp = request.header(TIMESTAMP_HEADER) or ""
        signature = request.header(SIGNATURE_HEADER) or ""
        if verify(secret.encode(), request.body, timestamp, signature, now=now):
            return Reply(204)
        return Reply(401, body=f"bad signature {signature} for secret {secret}".encode())

    return respond


def test_signed_webhook_verifies_at_a_real_receiver(receiver: Receiver) -> None:
    receiver.respond = verifying(SECRET)
    event = make_event()
    config = webhook_config(receiver.url, secret=SECRET)
    with WebhookSink("hook", config, clock=lambda: NOW + 0.9) as sink:
        sink.send(event)
    (request,) = receiver.requests
    assert request.header(TIMESTAMP_HEADER) == str(int(NOW))
    assert re.fullmatch(r"v1=[0-9a-f]{64}", request.header(SIGNATURE_HEADER) or "")
    assert request.header(EVENT_ID_HEADER) == event.id
    assert orjson.loads(request.body) == event.to_dict()


def test_signature_covers_body_timestamp_and_key(receiver: Receiver) -> None:
    """What the receiver's check refuses: any change to what was signed, or old news."""
    with WebhookSink(
        "hook", webhook_config(receiver.url, secret=SECRET), clock=lambda: NOW
    ) as sink:
        sink.send(make_event())
    (request,) = receiver.requests
    body, ts = request.body, request.header(TIMESTAMP_HEADER) or ""
    sig = request.header(SIGNATURE_HEADER) or ""
    key = SECRET.encode()
    assert verify(key, body, ts, sig, now=NOW)
    assert verify(key, body, ts, sig, now=NOW + TOLERANCE - 1)
    assert verify(key, body, ts, sig, now=NOW - TOLERANCE + 1)  # a receiver's clock behind
    assert not verify(key, body.replace(b'"b"', b'"c"'), ts, sig, now=NOW)  # tampered body
    assert not verify(key, body + b" ", ts, sig, now=NOW)
    assert not verify(key, body, str(int(NOW) + 1), sig, now=NOW)  # tampered timestamp
    assert not verify(b"another-secret", body, ts, sig, now=NOW)
    assert not verify(key, body, ts, sig, now=NOW + TOLERANCE + 1)  # replayed later
    assert not verify(key, body, "soon", sig, now=NOW)
    assert sig == sign(SECRET, ts, body)


def test_wrong_secret_is_permanent_and_never_shown(receiver: Receiver) -> None:
    """The receiver answers 401 quoting the secret it expected: that must not reach logs."""
    other = "whsec-the-receivers-own-secret"
    receiver.respond = verifying(other)
    config = webhook_config(receiver.url, secret=SECRET)
    with (
        WebhookSink("hook", config, clock=lambda: NOW) as sink,
        pytest.raises(PermanentError, match="HTTP 401") as info,
    ):
        sink.send(make_event())
    assert SECRET not in str(info.value)

    receiver.respond = lambda r: Reply(401, body=f"expected key {SECRET}".encode())
    with (
        WebhookSink("hook", config, clock=lambda: NOW) as sink,
        pytest.raises(PermanentError) as info,
    ):
        sink.send(make_event())
    assert SECRET not in str(info.value)
    assert "<redacted>" in str(info.value)


def test_every_attempt_is_signed_with_its_own_time(receiver: Receiver) -> None:
    """A retry is a new attempt: a fresh timestamp, so a slow retry still verifies."""
    times = iter([NOW, NOW + 600])
    event = make_event()
    with WebhookSink(
        "hook", webhook_config(receiver.url, secret=SECRET), clock=lambda: next(times)
    ) as sink:
        sink.send(event)
        sink.send(event)
    first, second = receiver.requests
    assert first.body == second.body
    assert (first.header(TIMESTAMP_HEADER), second.header(TIMESTAMP_HEADER)) == (
        str(int(NOW)),
        str(int(NOW + 600)),
    )
    for request, now in ((first, NOW), (second, NOW + 600)):
        ts, sig = request.header(TIMESTAMP_HEADER) or "", request.header(SIGNATURE_HEADER) or ""
        assert verify(SECRET.encode(), request.body, ts, sig, now=now)


def test_configured_headers_cannot_forge_the_signature(receiver: Receiver) -> None:
    receiver.respond = verifying(SECRET)
    forged = {"x-kubewatch-signature": "v1=forged", "X-Kubewatch-Timestamp": "1"}
    config = webhook_config(receiver.url, secret=SECRET, headers=forged)
    with WebhookSink("hook", config, clock=lambda: NOW) as sink:
        sink.send(make_event())
    (request,) = receiver.requests
    names = [k.lower() for k in request.headers]
    assert names.count("x-kubewatch-signature") == 1
    assert names.count("x-kubewatch-timestamp") == 1
    assert request.header(SIGNATURE_HEADER) != "v1=forged"


def test_unsigned_webhook_sends_no_signature_headers(receiver: Receiver) -> None:
    with WebhookSink("hook", webhook_config(receiver.url)) as sink:
        sink.send(make_event())
    (request,) = receiver.requests
    assert request.header(TIMESTAMP_HEADER) is None
    assert request.header(SIGNATURE_HEADER) is None


def test_signature_covers_the_rendered_body_template(receiver: Receiver) -> None:
    receiver.respond = verifying(SECRET)
    config = webhook_config(
        receiver.url, secret=SECRET, markup="slack", body_template='{"text": "{{ summary }}"}'
    )
    with WebhookSink("hook", config, clock=lambda: NOW) as sink:
        sink.send(make_event(summary="<!here> ok"))
    (request,) = receiver.requests
    assert orjson.loads(request.body) == {"text": "&lt;!here&gt; ok"}


@pytest.mark.parametrize("method", ["PUT", "PATCH", "POST"])
def test_webhook_method(receiver: Receiver, method: Literal["POST", "PUT", "PATCH"]) -> None:
    receiver.respond = verifying(SECRET)
    event = make_event()
    config = webhook_config(receiver.url, method=method, secret=SECRET)
    with WebhookSink("hook", config, clock=lambda: NOW) as sink:
        sink.send(event)
    (request,) = receiver.requests
    assert request.method == method
    assert request.target == "/hook"
    assert orjson.loads(request.body) == event.to_dict()


def test_webhook_secret_is_kept_out_of_repr() -> None:
    config = webhook_config(secret=SECRET, headers={"Authorization": f"Bearer {TOKEN}"})
    assert SECRET not in repr(config)
    assert TOKEN not in repr(config)


# -- templates --------------------------------------------------------------------------


def test_stdout_text_template() -> None:
    stream = io.StringIO()
    config = StdoutSinkConfig(
        type="stdout",
        format="text",
        template="{{ observedAt }} {{ type | upper }} {{ kind }} {{ namespace }}/{{ name }}\n"
        "{% for c in changes %} {{ c.path }}={{ c.new }}{% endfor %}",
    )
    with StdoutSink("out", config, stream) as sink:
        sink.send(make_event(changes=(Change("data.mode", "a", "b\nc\x1b[2J"),)))
    assert stream.getvalue() == (
        "2026-11-26T22:10:51.123Z UPDATE ConfigMap default/app  data.mode=b c\\x1b[2J\n"
    )


def test_stdout_template_falls_back_to_the_default_line(caplog: pytest.LogCaptureFixture) -> None:
    stream = io.StringIO()
    config = StdoutSinkConfig(type="stdout", format="text", template="team {{ labels.team }}")
    with StdoutSink("out", config, stream) as sink:
        sink.send(make_event())
        sink.send(make_event(labels={"team": "shop"}))
    assert stream.getvalue().splitlines() == [
        "2026-11-26T22:10:51.123Z update ConfigMap default/app: data.mode a → b",
        "team shop",
    ]
    assert [r.levelname for r in caplog.records] == ["WARNING"]


@pytest.mark.parametrize(
    ("sink", "path", "message"),
    [
        pytest.param(
            {"type": "stdout", "template": "{{ summary }}"},
            "sinks.bad.template",
            "template applies to format: text",
            id="stdout-json-with-template",
        ),
        pytest.param(
            {"type": "stdout", "format": "text", "template": "{{ event.nmae }}"},
            "sinks.bad.template",
            "line 1: unknown field 'nmae' in event (did you mean 'name'?)",
            id="stdout-unknown-field",
        ),
        pytest.param(
            {"type": "webhook", "url": "http://x/", "bodyTemplate": '{"text": "{{ summary }"}'},
            "sinks.bad.bodyTemplate",
            "line 1: unexpected '}'",
            id="webhook-syntax",
        ),
    ],
)
def test_bad_templates_fail_at_build(sink: dict[str, Any], path: str, message: str) -> None:
    config = Config.model_validate({"resources": [{"kind": "ConfigMap"}], "sinks": {"bad": sink}})
    with pytest.raises(ConfigErrors) as info:
        build_sink("bad", config.sinks["bad"])
    assert [(e.path, e.message) for e in info.value.errors] == [(path, message)]


def test_build_sink_reports_other_config_mistakes_as_config_errors() -> None:
    config = WebhookSinkConfig.model_construct(type="webhook", url="ftp://x/", headers={})
    with pytest.raises(ConfigErrors) as info:
        build_sink("hook", config)
    assert [e.path for e in info.value.errors] == ["sinks.hook.url"]


SLACK_BODY = (
    '{"text": "{{ summary }}", "username": "kubewatch", '
    '"attachments": [{"fields": [{% for c in changes %}'
    '{"title": "{{ c.path }}", "value": {{ c.new | tojson }}}{% if not loop.last %},{% endif %}'
    "{% endfor %}]}]}"
)


def test_webhook_body_template_is_posted_with_escaped_values() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, text="ok")

    event = make_event(
        summary='deploy "web" <!channel> \\ done\nnext @here',
        changes=(Change("data.note", "a", "<https://evil|click>"), Change("spec.replicas", 1, 3)),
    )
    with mock_sink(handler, markup="slack", body_template=SLACK_BODY) as sink:
        sink.send(event)
    (request,) = seen
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers[EVENT_ID_HEADER] == event.id
    assert orjson.loads(request.content) == {
        "text": 'deploy "web" &lt;!channel&gt; \\ done\nnext @\u200bhere',
        "username": "kubewatch",
        "attachments": [
            {
                "fields": [
                    {"title": "data.note", "value": "&lt;https://evil|click&gt;"},
                    {"title": "spec.replicas", "value": 3},
                ]
            }
        ],
    }


def test_webhook_body_template_failure_sends_the_event_json() -> None:
    bodies: list[bytes] = []

    def handler(request: httpx.Request) -> httpx.Response:
        bodies.append(request.content)
        return httpx.Response(204)

    event = make_event()
    with mock_sink(handler, body_template='{"team": "{{ labels.team }}"}') as sink:
        sink.send(event)
        sink.send(make_event(labels={"team": "shop"}))
    assert orjson.loads(bodies[0]) == event.to_dict()
    assert orjson.loads(bodies[1]) == {"team": "shop"}


def test_webhook_body_template_to_a_real_server(receiver: Receiver) -> None:
    config = webhook_config(receiver.url, markup="slack", body_template='{"text": "{{ summary }}"}')
    with WebhookSink("hook", config) as sink:
        sink.send(make_event(summary="<!here> ok"))
    ((headers, body),) = receiver.received
    assert headers["Content-Type"] == "application/json"
    assert orjson.loads(body) == {"text": "&lt;!here&gt; ok"}
