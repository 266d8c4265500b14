"""Low-level access to one API server, on plain dicts.

Requests go over urllib3 (:mod:`.transport`: TLS, credentials, a 401 retried once) and
bodies are decoded with orjson: typed models would cost ~0.5 ms per Pod and the engine
needs microseconds; the kubernetes client is not used at run time (~20 MiB of resident
memory and 0.15 s of imports for the few calls made here). Nothing here knows about
events, routing or sinks.

This module makes the requests; finding the cluster is :mod:`.kubeconfig`'s job, reading
a watch response :mod:`.watchstream`'s, and what a failed request means :mod:`.failures`'.
"""

from __future__ import annotations

import contextlib
import gc
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import orjson
import urllib3

from kubewatch.kube.failures import ApiUnreachable, describe, not_json, status_error
from kubewatch.kube.kubeconfig import load_configuration
from kubewatch.kube.transport import Transport
from kubewatch.kube.watchstream import WatchStream

CONNECT_TIMEOUT = 10.0
"""Seconds to establish a connection: an API server that takes longer is as good as down."""
REQUEST_TIMEOUT = 60.0
"""Seconds to read a non-watch response; a paged LIST answers well within it."""
ERROR_BODY_LIMIT = 64 * 1024
"""Bytes of an error response we read: a Status is small, garbage is cut short."""


@dataclass(frozen=True, slots=True)
class Query:
    """Parameters of a collection GET: a LIST page or a WATCH."""

    label_selector: str | None = None
    field_selector: str | None = None

    def params(self) -> list[tuple[str, str]]:
        out = []
        if self.label_selector:
            out.append(("labelSelector", self.label_selector))
        if self.field_selector:
            out.append(("fieldSelector", self.field_selector))
        return out


class JsonApi(Protocol):
    """What the recorder and the leader elector need of :class:`ClusterClient` (tests
    pass a fake)."""

    def get_json(
        self, path: str, params: list[tuple[str, str]] | None = None
    ) -> dict[str, Any]: ...

    def request_json(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        *,
        params: list[tuple[str, str]] | None = None,
        content_type: str = "application/json",
    ) -> dict[str, Any]: ...


class ClusterClient:
    """JSON GETs, LIST pages and WATCH streams against one API server.

    Thread-safe: the underlying urllib3 pool is shared by every watch; ``max_connections``
    must exceed the number of concurrent watches, as each holds a connection while it streams.
    """

    def __init__(self, transport: Transport, context_name: str) -> None:
        self._transport = transport
        self.context_name = context_name
        """The kube context used (``in-cluster`` inside a Pod): the default cluster name."""

    @property
    def host(self) -> str:
        return self._transport.config.server

    @classmethod
    def connect(
        cls,
        kubeconfig: str | None = None,
        context: str | None = None,
        max_connections: int = 64,
    ) -> ClusterClient:
        """Use ``kubeconfig`` (or $KUBECONFIG / ~/.kube/config), else the in-cluster config
        (see :func:`~kubewatch.kube.kubeconfig.load_configuration`)."""
        configuration, context_name = load_configuration(kubeconfig, context)
        return cls(Transport(configuration, max_connections), context_name)

    def close(self) -> None:
        self._transport.close()

    def credentials(self) -> list[str]:
        """The bearer token or password in use, for the log redactor."""
        return [v for v in self._transport.config.credentials.secrets() if v.strip()]

    # -- requests -----------------------------------------------------------------------

    def _request(
        self, path: str, params: list[tuple[str, str]], read_timeout: float
    ) -> urllib3.BaseHTTPResponse:
        resp = self._transport.request(
            "GET", path, params, {"Accept": "application/json"}, _timeout(read_timeout)
        )
        if resp.status >= 300:
            try:
                body = resp.read(ERROR_BODY_LIMIT)
            except (urllib3.exceptions.HTTPError, OSError):
                body = b""
            finally:
                resp.release_conn()
            raise status_error(resp.status, body)
        return resp

    def get_bytes(
        self, path: str, params: list[tuple[str, str]], read_timeout: float, limit: int
    ) -> tuple[int, bytes]:
        """GET ``path`` as bytes (a Pod's log): the status and at most ``limit`` bytes of the
        body; raise ApiError / ApiUnreachable as :meth:`get_json` does."""
        resp = self._request(path, params, read_timeout)
        try:
            return resp.status, bytes(resp.read(limit))
        except (urllib3.exceptions.HTTPError, OSError) as e:
            raise ApiUnreachable(f"GET {path}: {describe(e)}") from e
        finally:
            resp.release_conn()

    def get_json(self, path: str, params: list[tuple[str, str]] | None = None) -> dict[str, Any]:
        """GET ``path`` and decode the JSON body; raise ApiError / ApiUnreachable."""
        resp = self._request(path, params or [], REQUEST_TIMEOUT)
        try:
            data = resp.read()
        except (urllib3.exceptions.HTTPError, OSError) as e:
            raise ApiUnreachable(f"GET {path}: {describe(e)}") from e
        finally:
            resp.release_conn()
        try:
            with _gc_paused():
                doc = orjson.loads(data)
        except orjson.JSONDecodeError:
            raise not_json(f"GET {path}", resp.status, data) from None
        if not isinstance(doc, dict):
            raise not_json(f"GET {path}", resp.status, data)
        return doc

    def request_json(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        *,
        params: list[tuple[str, str]] | None = None,
        content_type: str = "application/json",
    ) -> dict[str, Any]:
        """A write (POST, PUT, PATCH, DELETE) with a JSON body; the decoded answer.

        For kubewatch's own objects (its Lease, its Events), never for watched ones.
        """
        resp = self._transport.request(
            method,
            path,
            params or [],
            {"Accept": "application/json", "Content-Type": content_type},
            _timeout(REQUEST_TIMEOUT),
            body=orjson.dumps(body) if body is not None else None,
        )
        try:
            data = resp.read()
        except (urllib3.exceptions.HTTPError, OSError) as e:
            raise ApiUnreachable(f"{method} {path}: {describe(e)}") from e
        finally:
            resp.release_conn()
        if resp.status >= 300:
            raise status_error(resp.status, data[:ERROR_BODY_LIMIT])
        try:
            doc = orjson.loads(data) if data else {}
        except orjson.JSONDecodeError:
            raise not_json(f"{method} {path}", resp.status, data) from None
        return doc if isinstance(doc, dict) else {}

    def list_page(
        self,
        path: str,
        query: Query,
        *,
        limit: int,
        continue_token: str | None = None,
    ) -> dict[str, Any]:
        """One LIST page, a consistent read (no resourceVersion): served by etcd, paginated.

        ``resourceVersion=0`` would let the watch cache answer, but the cache ignores
        ``limit``: one 20,000-object response would be held in memory at once.
        """
        params = [*query.params(), ("limit", str(limit))]
        if continue_token:
            params.append(("continue", continue_token))
        return self.get_json(path, params)

    def watch(
        self,
        path: str,
        query: Query,
        *,
        resource_version: str,
        timeout_seconds: int,
        read_timeout: float,
    ) -> WatchStream:
        """Open a WATCH from ``resource_version`` with bookmarks; never without an RV."""
        if not resource_version:
            raise ValueError(
                "a watch needs a resourceVersion (synthetic ADDED events are unordered)"
            )
        params = [
            *query.params(),
            ("watch", "true"),
            ("resourceVersion", resource_version),
            ("allowWatchBookmarks", "true"),
            ("timeoutSeconds", str(timeout_seconds)),
        ]
        resp = self._request(path, params, read_timeout)
        content_type = str(resp.headers.get("Content-Type") or "")
        if content_type and "json" not in content_type:
            # An HTML page from a proxy or a login portal, not a watch: say so once
            # instead of skipping it line by line.
            try:
                body = resp.read(ERROR_BODY_LIMIT)
            except (urllib3.exceptions.HTTPError, OSError):
                body = b""
            finally:
                resp.release_conn()
            raise not_json(f"watch {path}", resp.status, body, content_type)
        return WatchStream(resp, path, read_timeout)


def _timeout(read: float) -> urllib3.Timeout:
    return urllib3.Timeout(connect=CONNECT_TIMEOUT, read=read)


class _GcPause:
    """Pause the cyclic garbage collector while a LIST page is decoded.

    A page of 200 Pods is ~10^5 new containers: the collector would run many times over
    objects that cannot form cycles (decoded JSON never does). Measured: decoding a
    2.5 MB page took 43-95 ms with the collector on, 11-17 ms with it off. Several watch
    threads may list at once: the collector is off while any decode runs.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._depth = 0  # decodes in progress, under _lock
        self._was_enabled = True  # the collector's state when the first pause began

    @contextlib.contextmanager
    def __call__(self) -> Iterator[None]:
        with self._lock:
            self._depth += 1
            if self._depth == 1:
                self._was_enabled = gc.isenabled()
                gc.disable()
        try:
            yield
        finally:
            with self._lock:
                self._depth -= 1
                if self._depth == 0 and self._was_enabled:
                    gc.enable()


_gc_paused = _GcPause()


class ListWatch:
    """One collection (a resource in a namespace, or cluster-wide, with selectors) as the
    Reflector's ``ListerWatcher``."""

    def __init__(self, client: ClusterClient, path: str, query: Query, read_timeout: float) -> None:
        self._client = client
        self.path = path
        self._query = query
        self._read_timeout = read_timeout

    def list_page(self, *, limit: int, continue_token: str | None) -> dict[str, Any]:
        return self._client.list_page(
            self.path, self._query, limit=limit, continue_token=continue_token
        )

    def watch(self, *, resource_version: str, timeout_seconds: int) -> WatchStream:
        return self._client.watch(
            self.path,
            self._query,
            resource_version=resource_version,
            timeout_seconds=timeout_seconds,
            read_timeout=self._read_timeout,
        )
