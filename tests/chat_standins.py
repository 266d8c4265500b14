"""A local Mattermost (REST API v4 posts) and a local Discord (webhooks) for thread tests.

Each is a real HTTP server on 127.0.0.1 that keeps the messages a channel would show and
answers as the service does: Mattermost's ``POST /api/v4/posts`` (``root_id`` of a reply
must name a live post, else 400), ``PUT /api/v4/posts/{id}/patch`` and
``GET /api/v4/posts/{id}`` (404 for a deleted post), with a Bearer token (401 otherwise);
Discord's ``POST /api/webhooks/{id}/{token}`` (``?wait=true`` answers the message;
``thread_name`` creates a forum post, only in a forum channel, 400 code 220003 elsewhere;
``?thread_id=`` of a deleted post is 404 code 10003) and ``PATCH …/messages/{id}`` (404
code 10008 when gone). ``delete`` removes a message as a person in the channel would;
``queue`` scripts one-off answers (status, JSON body) taken before the service's own.
"""

from __future__ import annotations

import collections
import json
import threading
import urllib.parse
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["MM_CHANNEL", "MM_TOKEN", "DiscordStandIn", "MattermostStandIn", "Seen"]

MM_TOKEN = "mmStandInToken0123456789abcd"
MM_CHANNEL = "chan0123456789abcdefghijkl"
DISCORD_HOOK = "/api/webhooks/112233445566778899/StandInDiscordWebhookToken0123456789"

Answer = tuple[int, dict[str, Any] | None]


@dataclass(frozen=True)
class Seen:
    """One request as received: method, path, query (one value each), JSON body."""

    method: str
    path: str
    query: dict[str, str]
    body: dict[str, Any]
    status: int


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _any(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        parts = urllib.parse.urlsplit(self.path)
        query = dict(urllib.parse.parse_qsl(parts.query))
        body = json.loads(raw) if raw else {}
        standin = self.server.standin
        status, doc, queued = standin.handle(
            self.command, parts.path, query, self.headers.get("Authorization", ""), body
        )
        data = b"" if doc is None else json.dumps(doc).encode()
        self.send_response(status)
        for name, value in (standin.answers_headers if queued else {}).items():
            self.send_header(name, value)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_PATCH = _any


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    standin: _StandIn


class _StandIn:
    """The shared part: the server, the record, the queue, the messages."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.seen: list[Seen] = []
        self.messages: dict[str, dict[str, Any]] = {}  # id → the message as shown now
        self._queue: collections.deque[Answer] = collections.deque()
        self.answers_headers: dict[str, str] = {}
        """Headers of every queued answer (``Retry-After`` of a scripted 429)."""
        self._next = 0
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.standin = self
        self.port = self._server.server_address[1]
        threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        ).start()

    def __enter__(self) -> _StandIn:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def queue(self, *answers: Answer) -> None:
        with self._lock:
            self._queue.extend(answers)

    def delete(self, message_id: str) -> None:
        with self._lock:
            del self.messages[message_id]

    def new_id(self) -> str:
        self._next += 1
        return f"{self._next:026d}"

    def handle(
        self, method: str, path: str, query: dict[str, str], auth: str, body: dict[str, Any]
    ) -> tuple[int, dict[str, Any] | None, bool]:
        with self._lock:
            queued = bool(self._queue)
            answer = (
                self._queue.popleft() if queued else self.answer(method, path, query, auth, body)
            )
            self.seen.append(Seen(method, path, query, body, answer[0]))
            return (*answer, queued)

    def answer(
        self, method: str, path: str, query: dict[str, str], auth: str, body: dict[str, Any]
    ) -> Answer:
        raise NotImplementedError

    def accepted(self, method: str) -> list[Seen]:
        return [s for s in self.seen if s.method == method and 200 <= s.status < 300]


class MattermostStandIn(_StandIn):
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def answer(
        self, method: str, path: str, query: dict[str, str], auth: str, body: dict[str, Any]
    ) -> Answer:
        if auth != f"Bearer {MM_TOKEN}":
            return 401, {"id": "api.context.session_expired.app_error", "status_code": 401}
        post_id = path.removeprefix("/api/v4/posts/").removesuffix("/patch")
        if method == "POST" and path == "/api/v4/posts":
            if body.get("channel_id") != MM_CHANNEL:
                return 403, {"id": "api.context.permissions.app_error", "status_code": 403}
            if body.get("root_id") and body["root_id"] not in self.messages:
                return 400, {"id": "api.post.create_post.root_id.app_error", "status_code": 400}
            post = {**body, "id": self.new_id(), "channel_id": MM_CHANNEL}
            self.messages[post["id"]] = post
            return 201, post
        if post_id not in self.messages:
            return 404, {"id": "app.post.get.app_error", "status_code": 404}
        if method == "PUT" and path.endswith("/patch"):
            self.messages[post_id] = {**self.messages[post_id], **body}
        return 200, self.messages[post_id]


class DiscordStandIn(_StandIn):
    def __init__(self, *, forum: bool = True) -> None:
        self.forum = forum
        self.threads: set[str] = set()
        super().__init__()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{DISCORD_HOOK}"

    def answer(
        self, method: str, path: str, query: dict[str, str], auth: str, body: dict[str, Any]
    ) -> Answer:
        thread = query.get("thread_id")
        if thread is not None and thread not in self.threads:
            return 404, {"message": "Unknown Channel", "code": 10003}
        if method == "PATCH":
            message_id = path.rsplit("/", 1)[-1]
            if path != f"{DISCORD_HOOK}/messages/{message_id}" or message_id not in self.messages:
                return 404, {"message": "Unknown Message", "code": 10008}
            self.messages[message_id] = {**self.messages[message_id], **body}
            return 200, self.messages[message_id]
        if path != DISCORD_HOOK:
            return 401, {"message": "Invalid Webhook Token", "code": 50027}
        name = body.get("thread_name")
        if name is not None and not self.forum:
            return 400, {
                "message": "Webhooks can only create threads in forum channels",
                "code": 220003,
            }
        if self.forum and name is None and thread is None:
            return 400, {
                "message": "Webhooks posted to forum channels must have a thread_name or thread_id",
                "code": 220001,
            }
        if name is not None and not 1 <= len(name) <= 100:
            return 400, {"message": "Invalid Form Body", "code": 50035}
        message_id = self.new_id()
        channel = thread or (message_id if name is not None else "text-channel")
        if name is not None:
            self.threads.add(channel)  # a forum post's id is its first message's
        self.messages[message_id] = {**body, "id": message_id, "channel_id": channel}
        return (200, self.messages[message_id]) if query.get("wait") == "true" else (204, None)

    def delete(self, message_id: str) -> None:
        """Delete a forum post: its thread and its first message go."""
        with self._lock:
            self.threads.discard(message_id)
            self.messages.pop(message_id, None)
