"""What a check of a Notifier or a ClusterSink comes to, and the Secret reading both do.

A check either compiles (:class:`Compiled`, reason ``Ready``) or stops at the first
problem (:class:`Failure`, a CamelCase reason and a message naming the key path); the
reasons are the API (``status.conditions[Ready].reason``). :class:`Reading` fills
``*From`` references from Secrets and remembers what it read, so a change of one queues
the check again, and no message it builds holds a value it read.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from kubewatch.config import ResourceConfig, RouteConfig, SinkConfig, TenancyConfig
from kubewatch.errors import ConfigError
from kubewatch.scrub import Scrubber, secret_forms
from kubewatch.tenancy.sinks import credentials, fill

__all__ = [
    "INVALID",
    "KIND_NOT_ALLOWED",
    "MAX_MESSAGE",
    "READY",
    "REASONS",
    "SECRET_NOT_FOUND",
    "SINK_NOT_ALLOWED",
    "SUSPENDED",
    "TOO_MANY",
    "Compiled",
    "Failure",
    "Reading",
    "Result",
    "SecretLookup",
    "Stop",
    "shown",
]

READY, INVALID, SUSPENDED = "Ready", "Invalid", "Suspended"
KIND_NOT_ALLOWED, SINK_NOT_ALLOWED = "KindNotAllowed", "SinkNotAllowed"
SECRET_NOT_FOUND, TOO_MANY = "SecretNotFound", "TooManyNotifiers"
REASONS = (
    READY,
    INVALID,
    KIND_NOT_ALLOWED,
    SINK_NOT_ALLOWED,
    SECRET_NOT_FOUND,
    SUSPENDED,
    TOO_MANY,
)
MAX_MESSAGE = 1024
"""Characters of a condition message: several mistakes fit, a status stays small."""


class SecretLookup(Protocol):
    def __call__(self, namespace: str, name: str) -> Mapping[str, Any] | None:
        """The Secret object as the API returns it (``data`` base64), or None."""


@dataclass(frozen=True)
class Compiled:
    """A Ready Notifier: what to attach to the shared informers and the dispatcher."""

    resources: tuple[ResourceConfig, ...]
    """Each limited to the Notifier's namespace (``namespaces.include``)."""
    sinks: Mapping[str, SinkConfig]
    """The spec's sinks and, under their names, the referenced ClusterSinks."""
    routes: tuple[RouteConfig, ...]
    secrets: frozenset[tuple[str, str]] = frozenset()
    """(namespace, name) of every Secret read: reconcile again when one changes."""
    cluster_sinks: frozenset[str] = frozenset()
    """ClusterSinks used: reconcile again when one changes."""
    values: frozenset[str] = field(default=frozenset(), repr=False)
    """The Secret values filled in, for the log redactor."""
    reason: str = READY
    message: str = ""


@dataclass(frozen=True)
class Failure:
    """Why a Notifier is not Ready; the message names the key path (``spec.…``)."""

    reason: str
    message: str
    secrets: frozenset[tuple[str, str]] = frozenset()
    cluster_sinks: frozenset[str] = frozenset()


Result = Compiled | Failure


class Stop(Exception):
    """The check ends here: ``reason`` and the messages that say why."""

    def __init__(self, reason: str, messages: Iterable[str]) -> None:
        self.reason, self.messages = reason, list(messages)


@dataclass
class Reading:
    """One check's inputs and what it has read so far."""

    namespace: str
    settings: TenancyConfig
    secret_lookup: SecretLookup
    own_namespace: str
    secrets: set[tuple[str, str]] = field(default_factory=set)
    cluster_sinks: set[str] = field(default_factory=set)
    values: set[str] = field(default_factory=set)
    sourced: dict[str, tuple[str, str, str]] = field(default_factory=dict)
    """Config key path of a filled-in value → (its ``*From`` path, Secret, key)."""

    def read(self, namespace: str, ref: Mapping[str, str], where: str) -> str:
        """One Secret value; SecretNotFound (or Invalid) at ``where`` when it cannot be."""
        self.secrets.add((namespace, ref["name"]))
        secret = self.secret_lookup(namespace, ref["name"])
        if secret is None:
            raise Stop(SECRET_NOT_FOUND, [f"{where}: Secret {ref['name']!r} not found"])
        data = secret.get("data") or {}
        if ref["key"] not in data:
            raise Stop(
                SECRET_NOT_FOUND, [f"{where}: Secret {ref['name']!r} has no key {ref['key']!r}"]
            )
        try:
            value = base64.b64decode(data[ref["key"]], validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError, TypeError):
            message = f"{where}: key {ref['key']!r} of Secret {ref['name']!r} is not UTF-8 text"
            raise Stop(INVALID, [message]) from None
        value = value.removesuffix("\n").removesuffix("\r")  # `echo url > file` adds one
        self.values.add(value)
        return value

    def fill(self, name: str, raw: Mapping[str, Any], namespace: str, where: str) -> dict[str, Any]:
        values: dict[tuple[str, ...], str] = {}
        for path, ref in credentials(raw):
            at = ".".join((where, *path))
            values[path] = self.read(namespace, ref, f"{at}.secretKeyRef")
            key = ("headers", path[1]) if len(path) == 2 else (path[0].removesuffix("From"),)
            self.sourced[".".join(("sinks", name, *key))] = (at, ref["name"], ref["key"])
        return fill(raw, values)

    def from_secret(self, error: ConfigError) -> str | None:
        """The message of an error about a value filled in from a Secret, at its ``*From``
        key path and without the value; None for any other error."""
        if error.path not in self.sourced:
            return None
        at, secret, key = self.sourced[error.path]
        return f"{at}: {error.message} (the value of Secret {secret!r}, key {key!r})"

    def failure(self, reason: str, messages: list[str]) -> Failure:
        """The Failure, its message never holding a Secret value it read."""
        scrub = Scrubber({f for v in self.values for f in secret_forms(v)}, min_length=4)
        text = scrub("; ".join(messages))
        if len(text) > MAX_MESSAGE:
            text = text[: MAX_MESSAGE - 3] + "..."
        return Failure(reason, text, frozenset(self.secrets), frozenset(self.cluster_sinks))


def shown(errors: Iterable[ConfigError], prefix: str = "spec") -> list[str]:
    return [
        f"{prefix}.{e.path}: {e.message}" if e.path else f"{prefix}: {e.message}" for e in errors
    ]
