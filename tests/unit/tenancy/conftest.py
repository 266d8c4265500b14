"""A Notifier world in dicts: Secrets, namespace labels, ClusterSinks, discovery, DNS."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from kubewatch.config import TenancyConfig
from kubewatch.kube.discovery import ResourceTable
from kubewatch.tenancy.reconcile import Result, reconcile

DISCOVERY = Path(__file__).resolve().parents[1] / "data" / "discovery-1.20.json"
TABLE = ResourceTable.from_documents(json.loads(DISCOVERY.read_text()))
HOOK = "https://hooks.example.com/services/T0/B0/s3cr3tT0ken"
PUBLIC = {"hooks.example.com": ["93.184.216.34"], "slack.com": ["34.194.0.1"]}


def secret(**data: str) -> dict[str, Any]:
    return {"data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}}


def ref(name: str, key: str) -> dict[str, Any]:
    return {"secretKeyRef": {"name": name, "key": key}}


def notifier(spec: dict[str, Any], namespace: str = "team-a", name: str = "web") -> dict[str, Any]:
    return {
        "apiVersion": "kubewatch.io/v1alpha1",
        "kind": "Notifier",
        "metadata": {"name": name, "namespace": namespace, "generation": 1,
                     "creationTimestamp": "2024-05-01T12:00:00Z"},
        "spec": spec,
    }  # fmt: skip


@dataclass
class World:
    secrets: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    labels: dict[str, dict[str, str]] = field(default_factory=dict)
    cluster_sinks: dict[str, dict[str, Any]] = field(default_factory=dict)
    dns: dict[str, list[str]] = field(default_factory=lambda: dict(PUBLIC))
    settings: TenancyConfig = field(default_factory=lambda: TenancyConfig(enabled=True))

    def resolve(self, host: str) -> list[str]:
        if host not in self.dns:
            raise OSError(f"unknown host {host}")
        return self.dns[host]

    def run(self, obj: Mapping[str, Any], **kw: Any) -> Result:
        return reconcile(
            obj,
            kw.pop("settings", self.settings),
            cluster_sinks=self.cluster_sinks.get,
            secrets=lambda ns, name: self.secrets.get((ns, name)),
            namespace_labels=self.labels.get,
            kinds=TABLE,
            resolve=self.resolve,
            own_namespace="kubewatch",
            **kw,
        )


@pytest.fixture
def world() -> World:
    w = World()
    w.secrets[("team-a", "slack")] = secret(url=HOOK + "\n")
    w.labels["team-a"] = {"team": "a"}
    w.labels["team-b"] = {"team": "b"}
    w.secrets[("kubewatch", "teams")] = secret(url="https://hooks.example.com/teams")
    w.cluster_sinks["ops-teams"] = {
        "metadata": {"name": "ops-teams"},
        "spec": {"allowedNamespaces": {"matchLabels": {"team": "a"}},
                 "sink": {"type": "teams", "urlFrom": ref("teams", "url")}},
    }  # fmt: skip
    return w
