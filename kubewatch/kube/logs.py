"""The last lines of a container's log, for a health alert to carry.

``GET /api/v1/namespaces/{ns}/pods/{name}/log?container=&tailLines=&previous=&limitBytes=``
through the raw API path (the API server asks the Pod's kubelet). What comes back is cut
to :data:`MAX_LOG_CHARS` (the end is kept: the last lines say why it failed) and cleaned
of secret-looking values (``password=…``, bearer tokens, URL credentials, private keys)
by :func:`kubewatch.scrub.redact_secret_looking`.

A log that cannot be had never holds an alert back: :meth:`PodLogs.fetch` returns
``None`` and the alert goes out without logs. The first refusal of each kind is one
WARNING that says why (403: ``pods/log`` is not allowed for kubewatch's account; 404, 400,
a 5xx, or a 204 (a Pod on no node): no kubelet answered — the Pod is gone, the container
not started, or the node unreachable); later ones go to DEBUG. An empty log is no logs.
After a 403, fetching pauses for :data:`FORBIDDEN_PAUSE` seconds (every alert would be
refused the same way).

Blocking I/O: call it off the informer threads (the health runtime's outbox does).
Thread-safe.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Protocol

from kubewatch.errors import ApiError
from kubewatch.kube.client import ClusterClient
from kubewatch.kube.failures import ApiUnreachable
from kubewatch.scrub import redact_secret_looking

__all__ = ["FORBIDDEN_PAUSE", "MAX_LOG_BYTES", "MAX_LOG_CHARS", "PodLogs"]

log = logging.getLogger(__name__)

MAX_LOG_BYTES = 64 * 1024
"""``limitBytes`` asked for: the kubelet stops there, whatever ``tailLines`` says."""
MAX_LOG_CHARS = 4000
"""Characters an alert carries (the end of the log): fits a chat message."""
LOG_READ_TIMEOUT = 5.0
"""Seconds to wait for a kubelet's answer: an unreachable node must not delay the next
alerts for long."""
FORBIDDEN_PAUSE = 600.0
"""Seconds without asking after a 403: permissions rarely change faster."""


class _Get(Protocol):
    def __call__(self, path: str, params: list[tuple[str, str]], read_timeout: float) -> bytes: ...


def _raw_get(client: ClusterClient) -> _Get:
    def get(path: str, params: list[tuple[str, str]], read_timeout: float) -> bytes:
        status, data = client.get_bytes(path, params, read_timeout, MAX_LOG_BYTES + 1)
        if status == 204:  # what the API server says for a Pod on no node
            raise ApiError(204, "NoContent", "the Pod runs on no node: no kubelet to ask")
        return data

    return get


class PodLogs:
    """Fetches container logs; ``get`` (default: the client's raw GET) is for tests."""

    def __init__(
        self,
        client: ClusterClient | None = None,
        *,
        get: _Get | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if get is None:
            if client is None:
                raise ValueError("PodLogs needs a client or a get function")
            get = _raw_get(client)
        self._get = get
        self._clock = clock
        self._lock = threading.Lock()
        self._warned: set[str] = set()
        """Kinds of refusal already warned about (each is one WARNING per process)."""
        self._paused_until = -float("inf")
        self.failures = 0
        """Fetches that returned no logs (informational)."""

    def fetch(
        self, namespace: str, pod: str, container: str, lines: int, *, previous: bool
    ) -> str | None:
        """The last ``lines`` lines of ``container`` (of its previous instance with
        ``previous``), redacted and cut; ``None`` when they cannot be had."""
        if lines <= 0:
            return None
        with self._lock:
            if self._clock() < self._paused_until:
                self.failures += 1
                return None
        path = f"/api/v1/namespaces/{namespace}/pods/{pod}/log"
        params = [
            ("container", container),
            ("tailLines", str(lines)),
            ("limitBytes", str(MAX_LOG_BYTES)),
            ("previous", "true" if previous else "false"),
        ]
        try:
            data = self._get(path, params, LOG_READ_TIMEOUT)
        except ApiError as e:
            self._refused(e, f"{namespace}/{pod} container {container}")
            return None
        except ApiUnreachable as e:
            self._warn(
                "unreachable",
                "health: logs of %s not fetched (%s); alerts go out without logs",
                f"{namespace}/{pod}",
                e,
            )
            return None
        text = data.decode("utf-8", "replace")
        if not text.strip():
            return None
        if len(text) > MAX_LOG_CHARS:
            text = "…" + text[-(MAX_LOG_CHARS - 1) :]
        return redact_secret_looking(text.rstrip("\n"))

    def _refused(self, error: ApiError, what: str) -> None:
        if error.status == 403:
            with self._lock:
                self._paused_until = self._clock() + FORBIDDEN_PAUSE
            self._warn(
                "forbidden",
                "health: pods/log is not allowed for kubewatch's service account (%s); "
                "alerts go out without logs (grant get on pods/log, or set logLines: 0)",
                error.message or "forbidden",
            )
            return
        self._warn(
            f"status-{error.status}",
            "health: no logs for %s: the API server answered %d (%s): no kubelet served "
            "them; alerts go out without logs",
            what,
            error.status,
            error.message or error.reason,
        )

    def _warn(self, kind: str, msg: str, *args: object) -> None:
        with self._lock:
            self.failures += 1
            first = kind not in self._warned
            self._warned.add(kind)
        log.log(logging.WARNING if first else logging.DEBUG, msg, *args)
