"""Who kubewatch is to the API server: the ``Authorization`` header and the client certificate.

Its own module because credentials change while kubewatch runs and every watch thread
asks for them: a bound ServiceAccount token is rotated on disk (re-read every
:data:`TOKEN_FILE_PERIOD`, like client-go), an exec plugin's token expires (see
:mod:`.execplugin`), and a 401 means "try fresh credentials once" for the sources that
can have fresh ones. Every source is safe to share between threads.
"""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from kubewatch.errors import KubewatchError

__all__ = [
    "TOKEN_FILE_PERIOD",
    "BasicAuth",
    "BearerToken",
    "ClientCert",
    "CredentialError",
    "Credentials",
    "NoCredentials",
    "TokenFile",
]

TOKEN_FILE_PERIOD = 60.0
"""Seconds a token read from a file is used before the file is read again: kubelet rotates a
bound ServiceAccount token well before it expires (80 % of its life, an hour at least), and
client-go re-reads the file about every minute."""


class CredentialError(KubewatchError):
    """Credentials could not be obtained (a token file gone, an exec plugin that failed):
    one line that names the kubeconfig or the file."""


@dataclass(frozen=True, slots=True)
class ClientCert:
    """A client certificate and its key, PEM (from a file, the kubeconfig or a plugin)."""

    cert_pem: bytes
    key_pem: bytes


class Credentials(Protocol):
    """What a request asks before it is sent, and after a 401."""

    def authorization(self) -> str | None:
        """The ``Authorization`` header value, or None to send none."""

    def client_cert(self) -> ClientCert | None:
        """The certificate to present in the TLS handshake, or None."""

    def unauthorized(self, sent: str | None) -> bool:
        """The server answered 401 to a request sent with ``sent``: forget it and say
        whether fresh credentials may be had (the request is then sent once more)."""

    def secrets(self) -> list[str]:
        """The secret values known now, for the log redactor."""


class NoCredentials:
    """Anonymous, or a client certificate alone."""

    def __init__(self, cert: ClientCert | None = None) -> None:
        self._cert = cert

    def authorization(self) -> str | None:
        return None

    def client_cert(self) -> ClientCert | None:
        return self._cert

    def unauthorized(self, sent: str | None) -> bool:
        return False

    def secrets(self) -> list[str]:
        return []


class BearerToken(NoCredentials):
    """A fixed token (the kubeconfig's ``token``), with or without a client certificate."""

    def __init__(self, token: str, cert: ClientCert | None = None) -> None:
        super().__init__(cert)
        self._token = token

    def authorization(self) -> str | None:
        return f"Bearer {self._token}"

    def secrets(self) -> list[str]:
        return [self._token]


class BasicAuth(NoCredentials):
    """``username`` and ``password`` (HTTP basic), as old clusters and proxies accept."""

    def __init__(self, username: str, password: str, cert: ClientCert | None = None) -> None:
        super().__init__(cert)
        self._password = password
        pair = f"{username}:{password}".encode()
        self._header = "Basic " + base64.b64encode(pair).decode("ascii")

    def authorization(self) -> str | None:
        return self._header

    def secrets(self) -> list[str]:
        return [self._password, self._header.removeprefix("Basic ")]


class TokenFile(NoCredentials):
    """A token read from ``path`` (``tokenFile``, the in-cluster ServiceAccount token),
    read again every ``period`` seconds and after a 401, so a rotated token is picked up.

    Reading the file fails with :class:`CredentialError` only when no token was read yet;
    later, the last token read is kept (a file being replaced is briefly missing).
    """

    def __init__(
        self,
        path: str,
        *,
        cert: ClientCert | None = None,
        period: float = TOKEN_FILE_PERIOD,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(cert)
        self.path = path
        self._period = period
        self._clock = clock
        self._lock = threading.Lock()
        self._token: str | None = None  # under _lock; None until read once
        self._read_at = 0.0  # clock() of the last read, under _lock

    def token(self) -> str:
        with self._lock:
            now = self._clock()
            if self._token is None or now - self._read_at >= self._period:
                self._read(now)
            assert self._token is not None
            return self._token

    def _read(self, now: float) -> None:
        try:
            with open(self.path, encoding="utf-8") as f:
                token = f.read().strip()
        except (OSError, UnicodeDecodeError) as e:
            if self._token is None:
                cause = getattr(e, "strerror", None) or str(e)
                raise CredentialError(f"token file {self.path}: {cause}") from None
            return  # keep the token we have; try again at the next request
        if not token:
            if self._token is None:
                raise CredentialError(f"token file {self.path}: empty")
            return
        self._token = token
        self._read_at = now

    def authorization(self) -> str | None:
        return f"Bearer {self.token()}"

    def unauthorized(self, sent: str | None) -> bool:
        with self._lock:
            self._read(self._clock())
            return self._token is not None and f"Bearer {self._token}" != sent

    def secrets(self) -> list[str]:
        with self._lock:
            return [self._token] if self._token else []
