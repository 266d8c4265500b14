"""Credentials from an exec plugin (``users[].user.exec``), as client-go runs them.

Its own module because a plugin is a child process with its own failure modes: missing,
failing, hanging, printing something that is not an ExecCredential. Each is one line
naming the kubeconfig and the key, with the plugin's stderr trimmed to one line.

The plugin is run with the kubeconfig's ``args`` and ``env`` added to kubewatch's
environment, and ``KUBERNETES_EXEC_INFO`` holding an ExecCredential of the configured
``apiVersion`` (``client.authentication.k8s.io/v1`` or ``v1beta1``) whose spec says
``interactive: false``: kubewatch runs unattended, so stdin is never a terminal and a
plugin with ``interactiveMode: Always`` is refused. Its answer is used until its
``expirationTimestamp`` (for ever when it has none) and dropped on a 401, so the next
request runs the plugin again. One run at a time: the threads that need credentials
meanwhile wait for its answer.
"""

from __future__ import annotations

import base64
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from kubewatch.kube.credentials import ClientCert, CredentialError
from kubewatch.timefmt import parse_time

__all__ = ["API_VERSIONS", "EXEC_TIMEOUT", "ExecCredentials", "ExecSpec"]

API_VERSIONS = ("client.authentication.k8s.io/v1", "client.authentication.k8s.io/v1beta1")
"""The ExecCredential versions client-go speaks today (v1alpha1 was removed in 1.24)."""
EXEC_TIMEOUT = 60.0
"""Seconds a plugin may take: a plugin waiting for a browser login that nobody will do
must not hang every watch; a cloud CLI fetching a token takes a few seconds."""
STDERR_LIMIT = 300
"""Characters of a failed plugin's stderr quoted in the error (its last ones: the cause)."""


@dataclass(frozen=True, slots=True)
class ExecSpec:
    """``users[].user.exec`` as written, checked; ``where`` names the file and key."""

    where: str
    command: str
    args: tuple[str, ...]
    env: tuple[tuple[str, str], ...]
    api_version: str
    install_hint: str
    cluster_info: Mapping[str, Any] | None
    """The cluster for ``KUBERNETES_EXEC_INFO`` when ``provideClusterInfo`` is true."""


@dataclass(frozen=True, slots=True)
class _Answer:
    authorization: str | None
    cert: ClientCert | None
    expires: float | None  # time.time() after which the answer is stale; None: never
    secret: str | None


class ExecCredentials:
    """The :class:`~kubewatch.kube.credentials.Credentials` of an exec plugin."""

    def __init__(
        self,
        spec: ExecSpec,
        *,
        cert: ClientCert | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.spec = spec
        self._cert = cert  # the kubeconfig's own, when the plugin gives none
        self._clock = clock
        self._lock = threading.Lock()
        self._answer: _Answer | None = None  # under _lock; None: run the plugin first
        self.runs = 0
        """How many times the plugin ran (read by tests and the log)."""

    def _current(self) -> _Answer:
        with self._lock:
            answer = self._answer
            if answer is None or (answer.expires is not None and self._clock() >= answer.expires):
                answer = self._answer = self._run()
            return answer

    def authorization(self) -> str | None:
        return self._current().authorization

    def client_cert(self) -> ClientCert | None:
        return self._current().cert or self._cert

    def unauthorized(self, sent: str | None) -> bool:
        with self._lock:
            if self._answer is not None and self._answer.authorization == sent:
                self._answer = None  # not one another thread fetched since
        return True

    def secrets(self) -> list[str]:
        with self._lock:
            answer = self._answer
        return [answer.secret] if answer is not None and answer.secret else []

    # -- running the plugin --------------------------------------------------------------

    def _run(self) -> _Answer:
        import subprocess  # noqa: PLC0415 (only a kubeconfig with an exec plugin needs it)

        spec = self.spec
        info: dict[str, Any] = {"interactive": False}
        if spec.cluster_info is not None:
            info["cluster"] = dict(spec.cluster_info)
        env = dict(os.environ)
        env.update(spec.env)
        env["KUBERNETES_EXEC_INFO"] = orjson.dumps(
            {"apiVersion": spec.api_version, "kind": "ExecCredential", "spec": info}
        ).decode()
        hint = f" ({' '.join(spec.install_hint.split())})" if spec.install_hint else ""
        self.runs += 1
        try:
            done = subprocess.run(
                [spec.command, *spec.args],
                env=env,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=EXEC_TIMEOUT,
                check=False,
            )
        except FileNotFoundError:
            raise CredentialError(
                f"{spec.where}: command {spec.command!r} not found{hint}"
            ) from None
        except PermissionError:
            raise CredentialError(
                f"{spec.where}: command {spec.command!r} is not executable"
            ) from None
        except subprocess.TimeoutExpired:
            raise CredentialError(
                f"{spec.where}: command {spec.command!r} gave no answer in {EXEC_TIMEOUT:g}s"
            ) from None
        except OSError as e:
            raise CredentialError(
                f"{spec.where}: command {spec.command!r}: {e.strerror or e}"
            ) from None
        if done.returncode != 0:
            stderr = " ".join(done.stderr.decode("utf-8", "replace").split())
            if len(stderr) > STDERR_LIMIT:
                stderr = "…" + stderr[-STDERR_LIMIT:]
            raise CredentialError(
                f"{spec.where}: command {spec.command!r} failed (exit {done.returncode})"
                + (f": {stderr}" if stderr else hint)
            )
        return self._parse(done.stdout)

    def _parse(self, stdout: bytes) -> _Answer:
        where = f"{self.spec.where}: command {self.spec.command!r}"
        try:
            doc = orjson.loads(stdout)
        except orjson.JSONDecodeError:
            start = " ".join(stdout[:80].decode("utf-8", "replace").split())
            raise CredentialError(f"{where} printed no ExecCredential JSON: {start!r}") from None
        if not isinstance(doc, dict) or doc.get("kind") != "ExecCredential":
            raise CredentialError(f"{where} printed JSON that is not an ExecCredential")
        if doc.get("apiVersion") != self.spec.api_version:
            raise CredentialError(
                f"{where} answered apiVersion {doc.get('apiVersion')!r}, "
                f"not {self.spec.api_version!r} as asked"
            )
        status = doc.get("status")
        if not isinstance(status, dict):
            raise CredentialError(f"{where}: the ExecCredential has no status")
        token = status.get("token")
        cert_data, key_data = status.get("clientCertificateData"), status.get("clientKeyData")
        if bool(cert_data) != bool(key_data):
            raise CredentialError(
                f"{where}: status.clientCertificateData and clientKeyData go together"
            )
        if not token and not cert_data:
            raise CredentialError(f"{where}: the ExecCredential has no token and no certificate")
        expires: float | None = None
        stamp = status.get("expirationTimestamp")
        if stamp:
            moment = parse_time(stamp)
            if moment is None:
                raise CredentialError(
                    f"{where}: status.expirationTimestamp {stamp!r} is not an RFC 3339 time"
                )
            expires = moment.timestamp()
        cert = ClientCert(str(cert_data).encode(), str(key_data).encode()) if cert_data else None
        return _Answer(
            authorization=f"Bearer {token}" if token else None,
            cert=cert,
            expires=expires,
            secret=str(token) if token else None,
        )


def cluster_info(
    server: str, ca_pem: bytes | None, insecure: bool, tls_server_name: str
) -> dict[str, Any]:
    """The ``spec.cluster`` client-go gives a plugin with ``provideClusterInfo: true``."""
    out: dict[str, Any] = {"server": server}
    if ca_pem:
        out["certificate-authority-data"] = base64.b64encode(ca_pem).decode("ascii")
    if insecure:
        out["insecure-skip-tls-verify"] = True
    if tls_server_name:
        out["tls-server-name"] = tls_server_name
    return out
