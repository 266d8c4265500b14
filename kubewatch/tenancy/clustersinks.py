"""Check one ClusterSink: its spec, the Secrets it names and its sink's rules → its status.

A Notifier that references a broken ClusterSink says so and points here ("its status
says why"), so the ClusterSink's own ``Ready`` condition carries the reason and the key
path: ``Invalid`` when the spec or a value from a Secret breaks the config file's rules,
``SecretNotFound`` when a Secret (in kubewatch's own namespace) or its key is missing.
Pure like :mod:`~kubewatch.tenancy.reconcile`: the Secrets come in through a lookup.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from kubewatch.config import Config, TenancyConfig, validation_errors
from kubewatch.errors import ConfigError
from kubewatch.tenancy.models import ClusterSinkSpec
from kubewatch.tenancy.results import (
    INVALID,
    Compiled,
    Reading,
    Result,
    SecretLookup,
    Stop,
    shown,
)

__all__ = ["KEY_PREFIX", "check_cluster_sink", "cluster_sink_key", "cluster_sink_name"]

KEY_PREFIX = "clustersink:"
"""Work-queue keys of ClusterSinks (a Notifier's key is ``namespace/name``; no namespace
has a ``:``)."""

_ANY_RESOURCE = {"kind": "ConfigMap"}
"""The config file needs one resource to be whole; a ClusterSink's check is about its sink."""


def cluster_sink_key(name: str) -> str:
    return KEY_PREFIX + name


def cluster_sink_name(key: str) -> str | None:
    """The ClusterSink a work-queue key is about, or None for a Notifier's key."""
    return key[len(KEY_PREFIX) :] if key.startswith(KEY_PREFIX) else None


def check_cluster_sink(
    obj: Mapping[str, Any],
    settings: TenancyConfig,
    *,
    secrets: SecretLookup,
    own_namespace: str | None = None,
) -> Result:
    """``Compiled`` (no resources, the one sink) when the ClusterSink can be used, else the
    Failure its status shows; the Secrets it read are in the result either way."""
    name = str((obj.get("metadata") or {}).get("name") or "sink")
    own = own_namespace or settings.own_namespace()
    run = Reading(namespace=own, settings=settings, secret_lookup=secrets, own_namespace=own)
    spec_data = obj.get("spec")
    try:
        try:
            ClusterSinkSpec.model_validate(spec_data if spec_data is not None else {})
        except ValidationError as e:
            raise Stop(INVALID, shown(validation_errors(e, ClusterSinkSpec))) from None
        raw = (spec_data or {}).get("sink") or {}
        filled = run.fill(name, raw, own, "spec.sink")
        document = {"resources": [_ANY_RESOURCE], "sinks": {name: filled}}
        try:
            config = Config.model_validate(document)
        except ValidationError as e:
            raise Stop(INVALID, _messages(run, name, validation_errors(e))) from None
    except Stop as stop:
        return run.failure(stop.reason, stop.messages)
    return Compiled(
        resources=(),
        sinks=config.sinks,
        routes=(),
        secrets=frozenset(run.secrets),
        values=frozenset(run.values),
        message=f"a {config.sinks[name].type} sink",
    )


def _messages(run: Reading, name: str, errors: list[ConfigError]) -> list[str]:
    """The config file's messages at the ClusterSink's key paths (``spec.sink.url``; the
    ``*From`` key for a value from a Secret, which is never shown)."""
    prefix = f"sinks.{name}"
    messages = []
    for error in errors:
        sourced = run.from_secret(error)
        path = error.path
        rest = path[len(prefix) :] if path == prefix or path.startswith(prefix + ".") else ""
        messages.append(sourced or f"spec.sink{rest}: {error.message}")
    return list(dict.fromkeys(messages))
