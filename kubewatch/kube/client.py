"""Low-level access to one API server, on plain dicts.

The kubernetes client loads the kubeconfig (or the in-cluster config) and authenticates
each request (tokens, client certificates, exec plugins, token refresh); everything else
is ours: requests go through ``ApiClient.param_serialize``/``call_api`` and bodies are
decoded with orjson, because the client's typed models cost ~0.5 ms per Pod and the
engine needs microseconds. Nothing here knows about events, routing or sinks.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson
import urllib3
import yaml
from kubernetes import client as k8s_client
from kubernetes import config as k8s_config

from kubewatch.errors import ApiError, KubewatchError, WatchExpired

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 10.0
"""Seconds to establish a connection: an API server that takes longer is as good as down."""
REQUEST_TIMEOUT = 60.0
"""Seconds to read a non-watch response; a paged LIST answers well within it."""
READ_SIZE = 256 * 1024
"""Bytes asked per read of a watch stream: larger than any one event line, so one read
usually carries several events when the stream is busy."""
ERROR_BODY_LIMIT = 64 * 1024
"""Bytes of an error response we read: a Status is small, garbage is cut short."""
MAX_LINE_BYTES = 16 * 1024 * 1024
"""Longest watch line (one event) kept while it is not finished: etcd refuses objects above
1.5 MiB, so a real event is far below this; a stream that sends more without a newline is
broken (a proxy gone astray) and would otherwise grow without limit. It is logged and the
stream ends as broken, so the Reflector opens a new watch."""


class ApiUnreachable(KubewatchError, ConnectionError):
    """The API server could not be reached, or a connection to it broke or went silent."""


class ClusterConfigError(KubewatchError):
    """No usable kubeconfig / in-cluster configuration, or an unknown context."""


class KubeconfigInvalid(ClusterConfigError):
    """The kubeconfig file exists but is not valid YAML or not a kubeconfig: a mistake
    to fix, not a cluster that may come back (``validate`` and ``run`` exit 2)."""


def check_kubeconfig(path: str) -> None:
    """Parse ``path`` once ourselves: the kubernetes client lets a YAML error escape as a
    long traceback; this says the file, the line and the column in one sentence."""
    try:
        with open(path, encoding="utf-8") as f:
            doc = yaml.safe_load(f)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
        where = f", line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(e, "problem", None) or type(e).__name__
        raise KubeconfigInvalid(f"kubeconfig {path}{where}: invalid YAML: {problem}") from None
    except UnicodeDecodeError as e:
        raise KubeconfigInvalid(f"kubeconfig {path}: not UTF-8 text (byte {e.start})") from None
    except OSError as e:
        raise ClusterConfigError(f"kubeconfig {path}: {e.strerror or e}") from None
    if not isinstance(doc, dict):
        kind = "empty" if doc is None else f"a {type(doc).__name__}, not a mapping"
        raise KubeconfigInvalid(f"kubeconfig {path}: not a kubeconfig (the document is {kind})")


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


class ClusterClient:
    """JSON GETs, LIST pages and WATCH streams against one API server.

    Thread-safe: the underlying urllib3 pool is shared by every watch; ``max_connections``
    must exceed the number of concurrent watches, as each holds a connection while it streams.
    """

    def __init__(self, api_client: Any, context_name: str) -> None:
        self._api = api_client
        self.context_name = context_name
        """The kube context used (``in-cluster`` inside a Pod): the default cluster name."""

    @property
    def host(self) -> str:
        return str(self._api.configuration.host)

    @classmethod
    def connect(
        cls,
        kubeconfig: str | None = None,
        context: str | None = None,
        max_connections: int = 64,
    ) -> ClusterClient:
        """Use ``kubeconfig`` (or $KUBECONFIG / ~/.kube/config), else the in-cluster config.

        The in-cluster config is used only when no kubeconfig is named or found and the
        process runs in a Pod (``KUBERNETES_SERVICE_HOST`` set), like client-go's
        ``BuildConfigFromFlags``.
        """
        configuration = k8s_client.Configuration()
        explicit = kubeconfig or os.environ.get("KUBECONFIG")
        default_file = os.path.expanduser(k8s_config.KUBE_CONFIG_DEFAULT_LOCATION)
        use_incluster = (
            not explicit
            and not os.path.exists(default_file)
            and bool(os.environ.get("KUBERNETES_SERVICE_HOST"))
        )
        try:
            if use_incluster:
                if context:
                    raise ClusterConfigError("--context needs a kubeconfig; none was found")
                k8s_config.load_incluster_config(client_configuration=configuration)
                context_name = "in-cluster"
            else:
                path = explicit.split(os.pathsep)[0] if explicit else default_file
                if not os.path.exists(path):
                    raise ClusterConfigError(
                        f"kubeconfig {path} not found and not running in a Pod "
                        "(set --kubeconfig or KUBECONFIG)"
                    )
                check_kubeconfig(path)
                contexts, current = k8s_config.list_kube_config_contexts(config_file=path)
                names = [c["name"] for c in contexts]
                if context and context not in names:
                    raise ClusterConfigError(
                        f"context {context!r} not in {path}; contexts: {', '.join(names)}"
                    )
                context_name = context or (current or {}).get("name", "default")
                k8s_config.load_kube_config(
                    config_file=path,
                    context=context,
                    client_configuration=configuration,
                    persist_config=False,
                )
        except k8s_config.ConfigException as e:
            raise ClusterConfigError(f"cannot load cluster configuration: {e}") from e
        except (AttributeError, KeyError, TypeError, ValueError) as e:
            # A YAML mapping of the wrong shape (``contexts: 3``): the client trips over it.
            where = "in-cluster configuration" if use_incluster else f"kubeconfig {path}"
            raise KubeconfigInvalid(
                f"{where}: not a valid kubeconfig ({type(e).__name__}: {e})"
            ) from None
        configuration.connection_pool_maxsize = max_connections
        # No hidden retries. urllib3's default Retry(3) repeats a timed-out request at
        # once, so a frozen or black-holed API server took four timeouts to report (a
        # watch being opened: 32-40 s instead of the read timeout; a LIST: 4 minutes),
        # behind the reflector's back and its backoff. Every caller retries on its own.
        configuration.retries = urllib3.Retry(0, redirect=False)
        return cls(k8s_client.ApiClient(configuration), context_name)

    def close(self) -> None:
        self._api.close()

    def credentials(self) -> list[str]:
        """Bearer token and client key passphrase-like values, for the log redactor."""
        keys = self._api.configuration.api_key or {}
        out = []
        for value in keys.values():
            if isinstance(value, str):
                out.append(value.removeprefix("Bearer ").strip())
        return [v for v in out if v]

    # -- requests -----------------------------------------------------------------------

    def _request(self, path: str, params: list[tuple[str, str]], read_timeout: float) -> Any:
        method, url, headers, _body, _post = self._api.param_serialize(
            "GET",
            path,
            query_params=params,
            header_params={"Accept": "application/json"},
            auth_settings=["BearerToken"],
        )
        try:
            resp = self._api.call_api(
                method, url, header_params=headers, _request_timeout=(CONNECT_TIMEOUT, read_timeout)
            )
        except (urllib3.exceptions.HTTPError, OSError) as e:
            raise ApiUnreachable(f"GET {path}: {_describe(e)}") from e
        except k8s_client.ApiException as e:  # TLS errors are reported this way
            raise ApiUnreachable(f"GET {path}: {e.reason}") from e
        if resp.status >= 300:
            try:
                body = resp.response.read(ERROR_BODY_LIMIT)
            except (urllib3.exceptions.HTTPError, OSError):
                body = b""
            finally:
                resp.response.release_conn()
            raise status_error(resp.status, body)
        return resp

    def get_json(self, path: str, params: list[tuple[str, str]] | None = None) -> dict[str, Any]:
        """GET ``path`` and decode the JSON body; raise ApiError / ApiUnreachable."""
        resp = self._request(path, params or [], REQUEST_TIMEOUT)
        try:
            data = resp.response.read()
        except (urllib3.exceptions.HTTPError, OSError) as e:
            raise ApiUnreachable(f"GET {path}: {_describe(e)}") from e
        finally:
            resp.response.release_conn()
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
        method_, url, headers, _body, _post = self._api.param_serialize(
            method,
            path,
            query_params=params or [],
            header_params={"Accept": "application/json", "Content-Type": content_type},
            auth_settings=["BearerToken"],
        )
        try:
            resp = self._api.rest_client.pool_manager.request(
                method_,
                url,
                body=orjson.dumps(body) if body is not None else None,
                headers=headers,
                timeout=urllib3.Timeout(connect=CONNECT_TIMEOUT, read=REQUEST_TIMEOUT),
                preload_content=False,
            )
        except (urllib3.exceptions.HTTPError, OSError) as e:
            raise ApiUnreachable(f"{method} {path}: {_describe(e)}") from e
        try:
            data = resp.read()
        except (urllib3.exceptions.HTTPError, OSError) as e:
            raise ApiUnreachable(f"{method} {path}: {_describe(e)}") from e
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
        content_type = str(resp.response.headers.get("Content-Type") or "")
        if content_type and "json" not in content_type:
            # An HTML page from a proxy or a login portal, not a watch: say so once
            # instead of skipping it line by line.
            try:
                body = resp.response.read(ERROR_BODY_LIMIT)
            except (urllib3.exceptions.HTTPError, OSError):
                body = b""
            finally:
                resp.response.release_conn()
            raise not_json(f"watch {path}", resp.status, body, content_type)
        return WatchStream(resp.response, path, read_timeout)


class WatchStream:
    """The events of one WATCH response as decoded dicts, one per JSON line.

    ``close()`` may be called from any thread and unblocks a read in progress; iteration
    raises ApiUnreachable when the connection breaks or stays silent past the read timeout.
    A line that is not a JSON object is logged and skipped (garbage is survived).
    """

    def __init__(self, response: Any, path: str, read_timeout: float) -> None:
        self._response = response
        self._path = path
        self._read_timeout = read_timeout
        self._closed = False

    def __iter__(self) -> Iterator[dict[str, Any]]:
        # The pieces of a line not finished yet, joined once when its newline arrives:
        # re-joining the whole unfinished line at every chunk would be quadratic in a
        # large object cut into small chunks (a re-chunking proxy, a slow link).
        # Invariant: pending_bytes == sum(map(len, pending)) <= MAX_LINE_BYTES.
        pending: list[bytes] = []
        pending_bytes = 0
        try:
            for chunk in self._chunks():
                if b"\n" not in chunk:
                    if chunk:
                        pending.append(chunk)
                        pending_bytes += len(chunk)
                        if pending_bytes > MAX_LINE_BYTES:
                            self._line_too_long(pending_bytes)
                    continue
                lines = chunk.split(b"\n")
                if pending:
                    if pending_bytes + len(lines[0]) > MAX_LINE_BYTES:
                        self._line_too_long(pending_bytes + len(lines[0]))
                    pending.append(lines[0])
                    lines[0] = b"".join(pending)
                tail = lines.pop()
                pending = [tail] if tail else []
                pending_bytes = len(tail)
                if pending_bytes > MAX_LINE_BYTES:
                    self._line_too_long(pending_bytes)
                for line in lines:
                    event = decode_line(line, self._path)
                    if event is not None:
                        yield event
            rest = b"".join(pending)
            if rest.strip():
                event = decode_line(rest, self._path)
                if event is not None:
                    yield event
        except ApiUnreachable:
            raise
        except urllib3.exceptions.ReadTimeoutError as e:
            if self._closed:
                return
            raise ApiUnreachable(
                f"watch {self._path}: no data for {self._read_timeout:g}s, presumed dead"
            ) from e
        except (urllib3.exceptions.HTTPError, OSError, ValueError) as e:
            if self._closed:
                return
            raise ApiUnreachable(f"watch {self._path}: {_describe(e)}") from e
        finally:
            self.close()

    def _line_too_long(self, size: int) -> None:
        log.error(
            "watch %s: a line grew past %d bytes (%d) without ending; the stream is broken",
            self._path,
            MAX_LINE_BYTES,
            size,
        )
        raise ApiUnreachable(
            f"watch {self._path}: a line longer than {MAX_LINE_BYTES} bytes, stream broken"
        )

    def _chunks(self) -> Iterator[bytes]:
        """Bytes as they arrive: per HTTP chunk (the API server flushes one per event), or
        whatever ``read1`` has for a stream that is not chunked; never waits to fill a buffer."""
        if self._response.chunked:
            yield from self._response.stream(READ_SIZE, decode_content=True)
            return
        while chunk := self._response.read1(READ_SIZE):
            yield chunk

    def close(self) -> None:
        """Idempotent; safe from another thread while the iterating thread is blocked."""
        if self._closed:
            return
        self._closed = True
        # shutdown() unblocks a read in another thread (urllib3 >= 2.3); it refuses when
        # the stream already ended and the connection went back to the pool
        # (RuntimeError), or when urllib3 closed the response itself, e.g. after a
        # connection cut mid-stream ("Response ended prematurely": ValueError).
        with contextlib.suppress(OSError, urllib3.exceptions.HTTPError, RuntimeError, ValueError):
            shutdown = getattr(self._response, "shutdown", None)
            if shutdown is not None:
                shutdown()
        with contextlib.suppress(OSError, urllib3.exceptions.HTTPError, RuntimeError):
            self._response.close()
            self._response.release_conn()


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


def decode_line(line: bytes, path: str) -> dict[str, Any] | None:
    """Decode one watch line; log and drop anything that is not a JSON object."""
    if not line.strip():
        return None
    try:
        event = orjson.loads(line)
    except orjson.JSONDecodeError:
        log.warning("watch %s: skipping a line that is not JSON: %.120r", path, line)
        return None
    if not isinstance(event, dict):
        log.warning("watch %s: skipping a line that is not an object: %.120r", path, line)
        return None
    return event


def status_error(status: int, body: bytes) -> ApiError:
    """Turn an error response (a ``Status`` object, or anything) into the right ApiError."""
    reason, message = "", ""
    try:
        doc = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        doc = None
    if isinstance(doc, dict):
        reason = str(doc.get("reason") or "")
        message = str(doc.get("message") or "")
    else:
        message = body[:200].decode("utf-8", "replace")
    if status == 410:
        return WatchExpired(message or "resource version too old")
    return ApiError(status, reason, message)


def not_json(what: str, status: int, body: bytes, content_type: str = "") -> ApiError:
    """An answer that is not the JSON object asked for (an HTML page from a proxy, a
    login portal): an API error with the start of what came, never a decoding traceback."""
    start = " ".join(body[:200].decode("utf-8", "replace").split())
    kind = f" ({content_type})" if content_type else ""
    return ApiError(status, "NotJSON", f"{what}: the answer is not a JSON object{kind}: {start!r}")


def _describe(error: BaseException) -> str:
    """A short cause for a log line: urllib3 nests the useful part in ``reason``."""
    reason = getattr(error, "reason", None)
    if isinstance(reason, BaseException):
        return f"{type(reason).__name__}: {reason}"
    return f"{type(error).__name__}: {error}"


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
