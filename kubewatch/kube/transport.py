"""Authenticated HTTP to one API server over urllib3: TLS as the kubeconfig says, the
credentials on every request, a 401 retried once with fresh ones.

Its own module because trust and identity are set up once and then shared by every
watch thread: one urllib3 pool per server (rebuilt only when an exec plugin hands out a
new client certificate), TLS verified against the kubeconfig's CA (or the system's),
``tls-server-name`` checked instead of the host when set, no hidden retries and no
redirects (every caller retries on its own, behind its backoff). Query strings are
encoded as the kubernetes client did (``quote``, ``/`` kept), so selectors mean the same.
"""

from __future__ import annotations

import logging
import os
import ssl
import tempfile
import threading
from typing import Any
from urllib.parse import quote, urlsplit

import urllib3

from kubewatch._version import __version__
from kubewatch.kube.credentials import ClientCert, CredentialError
from kubewatch.kube.failures import ApiUnreachable, describe
from kubewatch.kube.kubeconfig import ClusterConfig, ClusterConfigError

__all__ = ["Transport", "encode_query", "ssl_context"]

log = logging.getLogger(__name__)

USER_AGENT = f"kubewatch/{__version__}"


def encode_query(params: list[tuple[str, str]]) -> str:
    """``k=v&…`` with each value percent-encoded except ``/`` (what the client sent)."""
    return "&".join(f"{k}={quote(str(v))}" for k, v in params)


def ssl_context(config: ClusterConfig, cert: ClientCert | None) -> ssl.SSLContext:
    """Verify the server with the kubeconfig's CA (else the system's), present ``cert``."""
    if config.ca_pem:
        try:
            ctx = ssl.create_default_context(cadata=config.ca_pem.decode("ascii", "replace"))
        except (ssl.SSLError, ValueError) as e:
            raise ClusterConfigError(
                f"cluster {config.server}: certificate-authority is not a PEM CA bundle ({e})"
            ) from None
    else:
        ctx = ssl.create_default_context()
    if config.insecure:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if cert is not None:
        _load_cert(ctx, cert, config.server)
    return ctx


def _load_cert(ctx: ssl.SSLContext, cert: ClientCert, server: str) -> None:
    """``load_cert_chain`` reads files only: the PEMs go to a private directory for the
    call and are removed at once."""
    with tempfile.TemporaryDirectory(prefix="kubewatch-") as tmp:
        cert_file, key_file = os.path.join(tmp, "tls.crt"), os.path.join(tmp, "tls.key")
        for name, data in ((cert_file, cert.cert_pem), (key_file, cert.key_pem)):
            fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
        try:
            ctx.load_cert_chain(cert_file, key_file)
        except ssl.SSLError as e:
            raise ClusterConfigError(
                f"cluster {server}: the client certificate or key is not valid PEM, "
                f"or they do not match ({e.reason or e})"
            ) from None


def _proxy(config: ClusterConfig) -> str:
    """``proxy-url``, else ``https_proxy``/``http_proxy`` unless ``no_proxy`` names the host
    (the environment is read like the kubernetes client and client-go do)."""
    if config.proxy_url:
        return config.proxy_url
    if not any(k.lower().endswith("_proxy") for k in os.environ):
        return ""
    import urllib.request  # noqa: PLC0415 (only when a proxy variable is set)

    parts = urlsplit(config.server)
    if urllib.request.proxy_bypass_environment(parts.hostname or ""):  # type: ignore[attr-defined]
        return ""
    return urllib.request.getproxies_environment().get(parts.scheme, "")


class Transport:
    """Requests to ``config.server`` with its TLS settings and credentials; thread-safe."""

    def __init__(self, config: ClusterConfig, max_connections: int) -> None:
        self.config = config
        self._max_connections = max_connections
        self._lock = threading.Lock()
        self._proxy = _proxy(config)
        if self._proxy.startswith("socks"):
            raise ClusterConfigError(f"cluster {config.server}: SOCKS proxies are not supported")
        try:
            # The first credentials now: a missing token file or a failing exec plugin is
            # a start-up error, not a retry loop.
            config.credentials.authorization()
            cert = config.credentials.client_cert()
        except CredentialError as e:
            raise ClusterConfigError(str(e)) from None
        if config.insecure and config.server.startswith("https://"):
            # Said once here: urllib3 would warn on every request, every watch.
            log.warning("cluster %s: insecure-skip-tls-verify: not checking its certificate",
                        config.server)  # fmt: skip
            urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
        self._cert = cert  # the certificate _pool presents, under _lock
        self._pool = self._build(cert)  # under _lock

    def _build(self, cert: ClientCert | None) -> urllib3.PoolManager:
        kwargs: dict[str, Any] = {
            "maxsize": self._max_connections,
            # No hidden retries. urllib3's default Retry(3) repeats a timed-out request at
            # once, so a frozen API server took four timeouts to report, behind the
            # reflector's back and its backoff. Every caller retries on its own.
            "retries": urllib3.Retry(0, redirect=False),
        }
        if self.config.server.startswith("https://"):
            kwargs["ssl_context"] = ssl_context(self.config, cert)
            if self.config.insecure:
                kwargs["cert_reqs"] = ssl.CERT_NONE
                kwargs["assert_hostname"] = False
            elif self.config.tls_server_name:
                kwargs["server_hostname"] = self.config.tls_server_name
        if self._proxy:
            return urllib3.ProxyManager(self._proxy, **kwargs)
        return urllib3.PoolManager(**kwargs)

    def _current_pool(self) -> urllib3.PoolManager:
        cert = self.config.credentials.client_cert()
        with self._lock:
            if cert != self._cert:  # an exec plugin's new certificate
                try:
                    pool = self._build(cert)
                except ClusterConfigError as e:
                    raise CredentialError(str(e)) from None
                self._pool.clear()  # idle connections close; busy ones on release
                self._pool, self._cert = pool, cert
            return self._pool

    def request(
        self,
        method: str,
        path: str,
        params: list[tuple[str, str]],
        headers: dict[str, str],
        timeout: urllib3.Timeout,
        *,
        body: bytes | None = None,
    ) -> urllib3.BaseHTTPResponse:
        """Send once, and once more after a 401 when fresh credentials may be had.

        The response is not read (``preload_content=False``): the caller reads and
        releases it. A connection that fails, and credentials that cannot be had now,
        are :class:`ApiUnreachable` (the caller's retry tries again).
        """
        url = self.config.server + path
        if params:
            url += "?" + encode_query(params)
        credentials = self.config.credentials
        for attempt in range(2):
            try:
                pool = self._current_pool()
                authorization = credentials.authorization()
            except CredentialError as e:
                raise ApiUnreachable(f"{method} {path}: {e}") from None
            sent = {"User-Agent": USER_AGENT, **headers}
            if authorization:
                sent["Authorization"] = authorization
            try:
                resp = pool.request(
                    method,
                    url,
                    body=body,
                    headers=sent,
                    timeout=timeout,
                    preload_content=False,
                    redirect=False,
                )
            except (urllib3.exceptions.HTTPError, OSError) as e:
                raise ApiUnreachable(f"{method} {path}: {describe(e)}") from e
            if resp.status == 401 and attempt == 0 and credentials.unauthorized(authorization):
                resp.drain_conn()
                resp.release_conn()
                continue
            return resp
        raise AssertionError("unreachable")  # pragma: no cover

    def close(self) -> None:
        with self._lock:
            self._pool.clear()
