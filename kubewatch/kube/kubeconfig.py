"""Which cluster to talk to, and as whom: the kubeconfig (or the in-cluster config), checked.

Its own module because finding and loading the configuration is all about files and
their mistakes, not about requests. The rules are client-go's (``clientcmd``):
``--kubeconfig``, else the first file of ``$KUBECONFIG``, else ``~/.kube/config``, else
the in-cluster config when running in a Pod (``KUBERNETES_SERVICE_HOST`` set); the
context is ``--context`` or ``current-context``; relative paths in the file are relative
to the file's directory. Every mistake is one sentence naming the file and the key
(:class:`KubeconfigInvalid`: ``validate`` and ``run`` exit 2), never a traceback.

What a user entry may hold: a client certificate (``client-certificate``/``client-key``,
or ``-data``), ``token`` or ``tokenFile`` (re-read, see :mod:`.credentials`),
``username``/``password``, or an ``exec`` plugin (:mod:`.execplugin`). The legacy
``auth-provider`` plugins (gcp, oidc, azure) were removed from client-go: an error says
to use the exec plugin that replaced each.
"""

from __future__ import annotations

import base64
import binascii
import os
from dataclasses import dataclass
from typing import Any

import yaml

from kubewatch.errors import KubewatchError
from kubewatch.kube.credentials import (
    BasicAuth,
    BearerToken,
    ClientCert,
    Credentials,
    NoCredentials,
    TokenFile,
)
from kubewatch.kube.execplugin import API_VERSIONS, ExecCredentials, ExecSpec, cluster_info

__all__ = [
    "DEFAULT_KUBECONFIG",
    "SERVICE_ACCOUNT_DIR",
    "ClusterConfig",
    "ClusterConfigError",
    "KubeconfigInvalid",
    "check_kubeconfig",
    "load_configuration",
]

DEFAULT_KUBECONFIG = "~/.kube/config"
SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
"""Where a Pod's ServiceAccount token, CA bundle and namespace are mounted."""


class ClusterConfigError(KubewatchError):
    """No usable kubeconfig / in-cluster configuration, or an unknown context."""


class KubeconfigInvalid(ClusterConfigError):
    """The kubeconfig file exists but is not valid YAML or not a kubeconfig: a mistake
    to fix, not a cluster that may come back (``validate`` and ``run`` exit 2)."""


@dataclass(frozen=True, slots=True)
class ClusterConfig:
    """Where the API server is, how to trust it, and the credentials to present."""

    server: str
    """``https://host:port`` (or ``http://``), without a trailing slash."""
    ca_pem: bytes | None
    """The CA bundle to verify the server with; None: the system's."""
    insecure: bool
    """``insecure-skip-tls-verify``: the server's certificate is not checked."""
    tls_server_name: str
    """The name to expect in the server's certificate (and to send as SNI), if not its host."""
    proxy_url: str
    """``proxy-url`` of the cluster entry; empty: none (the environment's proxy applies)."""
    credentials: Credentials


def check_kubeconfig(path: str) -> dict[str, Any]:
    """Parse ``path``: a YAML error is one sentence with the file, the line and the column."""
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
    return doc


def load_configuration(kubeconfig: str | None, context: str | None) -> tuple[ClusterConfig, str]:
    """The cluster of ``kubeconfig`` (or $KUBECONFIG / ~/.kube/config), else of the
    in-cluster config, and the name of the context used (``in-cluster`` in a Pod).

    The in-cluster config is used only when no kubeconfig is named or found and the
    process runs in a Pod (``KUBERNETES_SERVICE_HOST`` set), like client-go's
    ``BuildConfigFromFlags``.
    """
    explicit = kubeconfig or os.environ.get("KUBECONFIG")
    default_file = os.path.expanduser(DEFAULT_KUBECONFIG)
    in_pod = bool(os.environ.get("KUBERNETES_SERVICE_HOST"))
    if not explicit and not os.path.exists(default_file) and in_pod:
        if context:
            raise ClusterConfigError("--context needs a kubeconfig; none was found")
        return in_cluster(), "in-cluster"
    path = default_file
    if explicit:
        path = os.path.expanduser(next((p for p in explicit.split(os.pathsep) if p), ""))
    if not path or not os.path.exists(path):
        raise ClusterConfigError(
            f"kubeconfig {path} not found and not running in a Pod (set --kubeconfig or KUBECONFIG)"
        )
    return _Kubeconfig(path, check_kubeconfig(path)).load(context)


def in_cluster() -> ClusterConfig:
    """The Pod's API server (``KUBERNETES_SERVICE_HOST``/``PORT``) and ServiceAccount."""
    host = os.environ.get("KUBERNETES_SERVICE_HOST", "")
    port = os.environ.get("KUBERNETES_SERVICE_PORT", "")
    if not host or not port:
        raise ClusterConfigError(
            "in-cluster configuration: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT "
            "must both be set"
        )
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"  # IPv6
    ca_file = os.path.join(SERVICE_ACCOUNT_DIR, "ca.crt")
    token = TokenFile(os.path.join(SERVICE_ACCOUNT_DIR, "token"))
    if not os.path.isfile(token.path):
        raise ClusterConfigError(f"in-cluster configuration: no token file {token.path}")
    return ClusterConfig(
        server=f"https://{host}:{port}",
        ca_pem=_read(ca_file, "in-cluster configuration: CA file"),
        insecure=False,
        tls_server_name="",
        proxy_url="",
        credentials=token,
    )


def _read(path: str, what: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise ClusterConfigError(f"{what} {path}: {e.strerror or e}") from None


class _Kubeconfig:
    """One parsed kubeconfig file, read entry by entry with its mistakes named."""

    def __init__(self, path: str, doc: dict[str, Any]) -> None:
        self.path = path
        self.doc = doc
        self.base = os.path.dirname(os.path.abspath(path))

    def invalid(self, key: str, problem: str) -> KubeconfigInvalid:
        return KubeconfigInvalid(f"kubeconfig {self.path}: {key}: {problem}")

    def entries(self, key: str, inner: str) -> dict[str, dict[str, Any]]:
        """``clusters``/``users``/``contexts`` as name → the ``cluster``/``user``/``context``."""
        items = self.doc.get(key) or []
        if not isinstance(items, list):
            raise self.invalid(key, f"expected a list, not {type(items).__name__}")
        out: dict[str, dict[str, Any]] = {}
        for i, item in enumerate(items):
            if not isinstance(item, dict) or not isinstance(item.get("name"), str):
                raise self.invalid(f"{key}[{i}]", "expected a mapping with a name")
            body = item.get(inner) or {}
            if not isinstance(body, dict):
                raise self.invalid(f"{key}[{item['name']}].{inner}", "expected a mapping")
            out[item["name"]] = body
        return out

    def text(self, entry: dict[str, Any], key: str, field: str) -> str:
        value = entry.get(field)
        if value is None:
            return ""
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise self.invalid(f"{key}.{field}", f"expected a string, not {type(value).__name__}")
        return str(value)

    def file_or_data(self, entry: dict[str, Any], key: str, field: str) -> bytes | None:
        """``field-data`` (base64) wins over ``field`` (a file, relative to the kubeconfig)."""
        data = self.text(entry, key, f"{field}-data")
        if data:
            try:
                return base64.b64decode("".join(data.split()), validate=True)
            except (binascii.Error, ValueError):
                raise self.invalid(f"{key}.{field}-data", "not base64") from None
        name = self.text(entry, key, field)
        if not name:
            return None
        return _read(self.resolve(name), f"kubeconfig {self.path}: {key}.{field}:")

    def resolve(self, name: str) -> str:
        return os.path.normpath(os.path.join(self.base, os.path.expanduser(name)))

    def load(self, wanted: str | None) -> tuple[ClusterConfig, str]:
        contexts = self.entries("contexts", "context")
        if wanted and wanted not in contexts:
            raise ClusterConfigError(
                f"context {wanted!r} not in {self.path}; contexts: {', '.join(contexts)}"
            )
        name = wanted or self.text(self.doc, "", "current-context")
        if not name:
            raise ClusterConfigError(
                f"kubeconfig {self.path}: no current-context; choose one with --context "
                f"(contexts: {', '.join(contexts) or 'none'})"
            )
        if name not in contexts:
            raise self.invalid("current-context", f"{name!r} is not in contexts")
        ctx = contexts[name]
        cluster_name = self.text(ctx, f"contexts[{name}].context", "cluster")
        clusters = self.entries("clusters", "cluster")
        if cluster_name not in clusters:
            raise self.invalid(
                f"contexts[{name}].context.cluster", f"{cluster_name!r} is not in clusters"
            )
        user_name = self.text(ctx, f"contexts[{name}].context", "user")
        users = self.entries("users", "user")
        if user_name and user_name not in users:
            raise self.invalid(f"contexts[{name}].context.user", f"{user_name!r} is not in users")
        key = f"clusters[{cluster_name}].cluster"
        cluster = clusters[cluster_name]
        server = self.text(cluster, key, "server").rstrip("/")
        if not server:
            raise self.invalid(f"{key}.server", "missing")
        if not server.startswith(("https://", "http://")):
            raise self.invalid(f"{key}.server", f"{server!r} is not an http(s):// URL")
        insecure = cluster.get("insecure-skip-tls-verify", False)
        if not isinstance(insecure, bool):
            raise self.invalid(f"{key}.insecure-skip-tls-verify", "expected true or false")
        ca_pem = self.file_or_data(cluster, key, "certificate-authority")
        tls_server_name = self.text(cluster, key, "tls-server-name")
        info = cluster_info(server, ca_pem, insecure, tls_server_name)
        user = users.get(user_name, {})
        config = ClusterConfig(
            server=server,
            ca_pem=ca_pem,
            insecure=insecure,
            tls_server_name=tls_server_name,
            proxy_url=self.text(cluster, key, "proxy-url"),
            credentials=self.credentials(user, f"users[{user_name}].user", info),
        )
        return config, name

    def credentials(self, user: dict[str, Any], key: str, info: dict[str, Any]) -> Credentials:
        provider = user.get("auth-provider")
        if provider:
            kind = provider.get("name", "?") if isinstance(provider, dict) else "?"
            raise self.invalid(
                f"{key}.auth-provider",
                f"the {kind!r} auth-provider is not supported (client-go removed it); "
                "use an exec credential plugin (users[].user.exec), e.g. "
                "gke-gcloud-auth-plugin, kubelogin",
            )
        cert_pem = self.file_or_data(user, key, "client-certificate")
        key_pem = self.file_or_data(user, key, "client-key")
        if (cert_pem is None) != (key_pem is None):
            raise self.invalid(key, "client-certificate and client-key go together")
        cert = ClientCert(cert_pem, key_pem) if cert_pem and key_pem else None
        token = self.text(user, key, "token")
        token_file = self.text(user, key, "tokenFile")
        username = self.text(user, key, "username")
        password = self.text(user, key, "password")
        exec_spec = user.get("exec")
        ways = [bool(token or token_file), bool(username or password), bool(exec_spec)]
        if sum(ways) > 1:
            raise self.invalid(
                key, "set one of token/tokenFile, username/password and exec, not several"
            )
        if token:
            return BearerToken(token, cert)
        if token_file:
            source = TokenFile(self.resolve(token_file), cert=cert)
            if not os.path.isfile(source.path):
                raise self.invalid(f"{key}.tokenFile", f"{source.path}: no such file")
            return source
        if username or password:
            return BasicAuth(username, password, cert)
        if exec_spec:
            return ExecCredentials(self.exec_spec(exec_spec, f"{key}.exec", info), cert=cert)
        return NoCredentials(cert)

    def exec_spec(self, spec: Any, key: str, info: dict[str, Any]) -> ExecSpec:
        if not isinstance(spec, dict):
            raise self.invalid(key, "expected a mapping")
        command = self.text(spec, key, "command")
        if not command:
            raise self.invalid(f"{key}.command", "missing")
        if os.sep in command and not os.path.isabs(command):
            command = self.resolve(command)  # client-go: a path relative to the kubeconfig
        api_version = self.text(spec, key, "apiVersion")
        if api_version not in API_VERSIONS:
            raise self.invalid(
                f"{key}.apiVersion", f"{api_version!r} is not one of {', '.join(API_VERSIONS)}"
            )
        if self.text(spec, key, "interactiveMode") == "Always":
            raise self.invalid(
                f"{key}.interactiveMode",
                "Always needs a terminal; kubewatch runs unattended (use Never or IfAvailable)",
            )
        args = spec.get("args") or []
        if not isinstance(args, list):
            raise self.invalid(f"{key}.args", "expected a list of strings")
        env = spec.get("env") or []
        if not isinstance(env, list) or not all(
            isinstance(e, dict) and isinstance(e.get("name"), str) for e in env
        ):
            raise self.invalid(f"{key}.env", "expected a list of {name, value}")
        return ExecSpec(
            where=f"kubeconfig {self.path}: {key}",
            command=command,
            args=tuple(str(a) for a in args),
            env=tuple((e["name"], str(e.get("value", ""))) for e in env),
            api_version=api_version,
            install_hint=self.text(spec, key, "installHint"),
            cluster_info=info if spec.get("provideClusterInfo") else None,
        )
