"""Operator mode: what teams may configure for themselves through Notifier resources."""

from __future__ import annotations

import os
from collections.abc import Mapping

from pydantic import Field, field_validator, model_validator

from kubewatch.config.fields import (
    DnsLabel,
    Model,
    NonBlank,
    Problems,
    StrictBool,
    StrictInt,
    fail,
    fail_at,
)

DEFAULT_ALLOWED_KINDS: tuple[str, ...] = (
    "Deployment",
    "StatefulSet",
    "DaemonSet",
    "Job",
    "CronJob",
    "Pod",
    "Service",
    "Ingress",
    "ConfigMap",
    "Event",
)
"""Namespaced kinds whose changes a team usually wants to hear about and may read."""


class TenancyConfig(Model):
    """The Notifier / ClusterSink controller and the limits it enforces on tenants."""

    enabled: StrictBool = False
    """Run the controller: Notifiers in any namespace add watches and sinks beside this file's."""
    allowed_kinds: tuple[NonBlank, ...] = DEFAULT_ALLOWED_KINDS
    """Kinds a Notifier may watch (``Deployment``, or ``kind.group`` for a custom resource).
    Custom resources are allowed only when listed here."""
    denied_kinds: tuple[NonBlank, ...] = ("Secret",)
    """Kinds a Notifier may never watch; wins over ``allowedKinds``."""
    allow_private_addresses: StrictBool = False
    """Let tenant sink URLs point at loopback, link-local, private ranges or
    cluster-internal names (``*.svc``, single-label hosts). ClusterSinks are always allowed."""
    max_notifiers_per_namespace: StrictInt = Field(20, ge=1, le=10_000)
    """Notifiers one namespace may have; the newer ones beyond it (by creation time) are
    not reconciled, so a team cannot make kubewatch open watches without end."""
    namespace: DnsLabel | None = None
    """kubewatch's own namespace, where ClusterSinks' Secrets live, when ``$POD_NAMESPACE``
    is unset (default then: ``default``)."""

    @field_validator("allowed_kinds", "denied_kinds")
    @classmethod
    def _distinct(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        """A kind listed twice hints at a typo in the other entry."""
        seen = [k.lower() for k in value]
        fail_at(
            "kinds",
            [
                ((i,), k, fail(f"kind {k!r} is listed twice", value=repr(k)))
                for i, k in enumerate(value)
                if seen[i] in seen[:i]
            ],
        )
        return value

    @model_validator(mode="after")
    def _not_both(self) -> TenancyConfig:
        """Denied wins, so a kind in both lists is never allowed: say so instead."""
        denied = {k.lower() for k in self.denied_kinds}
        errors: Problems = [
            (
                ("allowedKinds", i),
                k,
                fail(f"kind {k!r} is also in deniedKinds, which wins", value=repr(k)),
            )
            for i, k in enumerate(self.allowed_kinds)
            if k.lower() in denied
        ]
        fail_at("TenancyConfig", errors)
        return self

    def own_namespace(self, env: Mapping[str, str] | None = None) -> str:
        """Where kubewatch runs: ``$POD_NAMESPACE`` (the chart sets it), else ``namespace``."""
        env = os.environ if env is None else env
        return env.get("POD_NAMESPACE") or self.namespace or "default"
