"""A local Slack for tests: ``chat.postMessage`` and incoming webhooks over real HTTP.

Reached by slack-sdk exactly as Slack is: ``WebClient(base_url=standin.api_url)`` and
``WebhookClient(standin.webhook_url)``. It checks what Slack checks before it answers
(the bearer token, a channel, message content, the Block Kit limits kubewatch cuts to)
and records every request, so a test sees what a Slack workspace would have received.

``chat.update`` edits a message posted before (``message_not_found`` otherwise), a reply
names its root in ``thread_ts`` (``thread_not_found`` when that message is gone), and
:meth:`SlackStandIn.delete_message` deletes one as a person in the channel would.

Replies are scripted per endpoint: a persistent one (``standin.api_reply = ...``) and a
queue of one-off replies taken first (``standin.queue_api(...)``). Helpers build Slack's
own answers: :func:`api_error` (``ok: false`` with a code), :func:`ratelimited` (429 with
``Retry-After``), :func:`server_error` (an HTML 500) and :func:`webhook_error` (a status
with Slack's plain-text reason). :meth:`SlackStandIn.down` stops listening (connection
refused) and :meth:`SlackStandIn.up` listens again on the same port.

    with SlackStandIn() as slack:
        slack.api_reply = api_error("not_in_channel")
        ...
        (request,) = slack.requests
"""

from __future__ import annotations

import collections
import json
import threading
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = [
    "API_OK",
    "TOKEN",
    "WEBHOOK_OK",
    "Recorded",
    "Reply",
    "SlackStandIn",
    "api_error",
    "ratelimited",
    "server_error",
    "webhook_error",
]

TOKEN = "xoxb-1111111111-2222222222-StandInTokenValue0123"
"""The bot token the stand-in accepts by default."""

WEBHOOK_PATH = "/services/T0STANDIN/B0STANDIN/StandInWebhookSecret0123456"
"""The incoming webhook the stand-in serves by default; its last part is the secret."""

SECTION_TEXT_LIMIT = 3000
FIELD_TEXT_LIMIT = 2000
FIELDS_LIMIT = 10


@dataclass(frozen=True)
class Reply:
    """One scripted answer: status, body (a dict is sent as JSON) and headers."""

    status: int = 200
    body: dict[str, Any] | str = field(default_factory=lambda: {"ok": True})
    headers: dict[str, str] = field(default_factory=dict)


API_OK = Reply()
"""Defer to the stand-in's own checks; answer like Slack when they pass."""
WEBHOOK_OK = Reply(200, "ok")


def api_error(code: str, status: int = 200, **extra: Any) -> Reply:
    """Slack's ``{"ok": false, "error": code, ...}``; ``extra`` like ``needed="chat:write"``."""
    return Reply(status, {"ok": False, "error": code, **extra})


def ratelimited(retry_after: int = 30) -> Reply:
    """What Slack answers a client over its rate limit."""
    return Reply(429, {"ok": False, "error": "ratelimited"}, {"Retry-After": str(retry_after)})


def server_error(status: int = 500) -> Reply:
    """An HTML error page, as a load balancer in front of Slack sends."""
    return Reply(
        status, "<html><body>Internal Server Error</body></html>", {"Content-Type": "text/html"}
    )


def webhook_error(status: int, reason: str) -> Reply:
    """An incoming webhook's failure: a status and Slack's one-word reason as text."""
    return Reply(status, reason)


@dataclass(frozen=True)
class Recorded:
    """One request as the stand-in received it (the body parsed from JSON or form)."""

    method: str
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    accepted: bool
    """Whether the answer was a success: the message would be in the channel."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    standin: SlackStandIn


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass  # tests read the recorded requests, not stderr

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        reply = self.server.standin.handle(self.command, self.path, dict(self.headers), raw)
        body = (
            json.dumps(reply.body).encode() if isinstance(reply.body, dict) else reply.body.encode()
        )
        self.send_response(reply.status)
        default_type = "application/json" if isinstance(reply.body, dict) else "text/plain"
        headers = {"Content-Type": default_type, **reply.headers}
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def _parse(headers: dict[str, str], raw: bytes) -> dict[str, Any] | None:
    """A JSON or form body as a dict (``blocks``/``attachments`` decoded); None if broken."""
    kind = next((v for k, v in headers.items() if k.lower() == "content-type"), "")
    try:
        if kind.startswith("application/json"):
            doc = json.loads(raw or b"{}")
            return doc if isinstance(doc, dict) else None
        form = dict(urllib.parse.parse_qsl(raw.decode(), keep_blank_values=True))
        out: dict[str, Any] = dict(form)
        for key in ("blocks", "attachments"):
            if key in form:
                out[key] = json.loads(form[key])
        return out
    except ValueError:
        return None


def _block_problem(body: dict[str, Any]) -> str | None:
    """The first Block Kit limit a message breaks, as Slack would refuse it."""
    blocks = list(body.get("blocks") or [])
    for attachment in body.get("attachments") or []:
        blocks += attachment.get("blocks") or []
    for block in blocks:
        text = (block.get("text") or {}).get("text", "")
        if block.get("type") == "section" and len(text) > SECTION_TEXT_LIMIT:
            return "section text over 3000 characters"
        fields = block.get("fields") or []
        if len(fields) > FIELDS_LIMIT:
            return "more than 10 fields"
        if any(len(f.get("text", "")) > FIELD_TEXT_LIMIT for f in fields):
            return "field text over 2000 characters"
    return None


class SlackStandIn:
    """A threaded HTTP server on 127.0.0.1 speaking enough Slack for kubewatch's sinks."""

    def __init__(self, token: str = TOKEN, webhook_path: str = WEBHOOK_PATH) -> None:
        self.token = token
        self.webhook_path = webhook_path
        self._lock = threading.Lock()
        self._requests: list[Recorded] = []  # every request received, in order
        self.api_reply: Reply = API_OK
        """Answer to ``chat.postMessage`` once the queue is empty."""
        self.webhook_reply: Reply = WEBHOOK_OK
        """Answer to the webhook once the queue is empty."""
        self._api_queue: collections.deque[Reply] = collections.deque()
        self._webhook_queue: collections.deque[Reply] = collections.deque()
        self._posted: dict[str, dict[str, Any]] = {}  # ts → the message as it is now
        self._next_ts = 0
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.port = 0
        self.up()

    # -- lifecycle

    def up(self) -> None:
        """Listen (again, on the same port after :meth:`down`)."""
        if self._server is not None:
            return
        server = _Server(("127.0.0.1", self.port), _Handler)
        server.standin = self
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.01}, name="slack-standin"
        )
        self._thread.daemon = True
        self._thread.start()

    def down(self) -> None:
        """Stop listening: connections are refused until :meth:`up`."""
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is not None:
            server.shutdown()
            server.server_close()
        if thread is not None:
            thread.join()

    def __enter__(self) -> SlackStandIn:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.down()

    # -- addresses

    @property
    def api_url(self) -> str:
        """For ``apiUrl`` (slack-sdk's ``base_url``)."""
        return f"http://127.0.0.1:{self.port}/api/"

    @property
    def webhook_url(self) -> str:
        """For a ``slackWebhook`` sink's ``url``."""
        return f"http://127.0.0.1:{self.port}{self.webhook_path}"

    # -- script and record

    def queue_api(self, *replies: Reply) -> None:
        """Answer the next ``chat.postMessage`` calls with these, then ``api_reply``."""
        with self._lock:
            self._api_queue.extend(replies)

    def queue_webhook(self, *replies: Reply) -> None:
        with self._lock:
            self._webhook_queue.extend(replies)

    @property
    def requests(self) -> list[Recorded]:
        with self._lock:
            return list(self._requests)

    @property
    def messages(self) -> list[dict[str, Any]]:
        """Bodies of the messages Slack would have shown (accepted requests only)."""
        with self._lock:
            return [r.body for r in self._requests if r.accepted]

    def handle(self, method: str, path: str, headers: dict[str, str], raw: bytes) -> Reply:
        """Record one request and choose its answer (runs on the server's threads)."""
        body = _parse(headers, raw)
        with self._lock:
            if path.startswith("/api/"):
                reply = self._api_queue.popleft() if self._api_queue else self.api_reply
                if reply is API_OK:
                    reply = self._api(path, headers, body)
            else:
                reply = self._webhook_queue.popleft() if self._webhook_queue else self.webhook_reply
                if reply is WEBHOOK_OK:
                    reply = self._webhook(path, body)
            accepted = 200 <= reply.status < 300 and (
                reply.body.get("ok") is True if isinstance(reply.body, dict) else True
            )
            self._requests.append(Recorded(method, path, headers, body or {}, accepted))
            if accepted and path in ("/api/chat.postMessage", "/api/chat.update"):
                return self._store(path, body or {})
        return reply

    def _store(self, path: str, body: dict[str, Any]) -> Reply:
        """Keep the channel's messages as Slack would show them; answer with their ts."""
        if path == "/api/chat.update":
            self._posted[body["ts"]] = body
            return Reply(200, {"ok": True, "channel": "C0STANDIN", "ts": body["ts"]})
        self._next_ts += 1
        ts = f"1700000000.{self._next_ts:06d}"
        self._posted[ts] = body
        return Reply(200, {"ok": True, "channel": "C0STANDIN", "ts": ts})

    def delete_message(self, ts: str) -> None:
        """Someone deleted message ``ts`` in the channel."""
        with self._lock:
            del self._posted[ts]

    def message(self, ts: str) -> dict[str, Any]:
        """Message ``ts`` as the channel shows it now (after any ``chat.update``)."""
        with self._lock:
            return self._posted[ts]

    def _api(self, path: str, headers: dict[str, str], body: dict[str, Any] | None) -> Reply:
        """Slack's own checks, in Slack's order: method, auth, arguments, content."""
        if path not in ("/api/chat.postMessage", "/api/chat.update"):
            return api_error("unknown_method", 404)
        auth = next((v for k, v in headers.items() if k.lower() == "authorization"), None)
        token = auth.removeprefix("Bearer ") if auth else (body or {}).get("token")
        if not token:
            return api_error("not_authed")
        if token != self.token:
            return api_error("invalid_auth")
        if body is None:
            return api_error("invalid_json")
        if not body.get("channel"):
            return api_error("channel_not_found")
        if not body.get("text") and not body.get("blocks") and not body.get("attachments"):
            return api_error("no_text")
        if path == "/api/chat.update" and body.get("ts") not in self._posted:
            return api_error("message_not_found")
        if body.get("thread_ts") and body["thread_ts"] not in self._posted:
            return api_error("thread_not_found")
        problem = _block_problem(body)
        if problem is not None:
            return api_error("invalid_blocks", errors=[problem])
        return API_OK

    def _webhook(self, path: str, body: dict[str, Any] | None) -> Reply:
        if path != self.webhook_path:
            return webhook_error(404, "no_service")
        if body is None:
            return webhook_error(400, "invalid_payload")
        if not body.get("text") and not body.get("blocks") and not body.get("attachments"):
            return webhook_error(400, "no_text")
        if _block_problem(body) is not None:
            return webhook_error(400, "invalid_blocks")
        return WEBHOOK_OK
