"""The two-team example of docs/self-service.md is what kubewatch accepts: every Notifier
and ClusterSink in it validates, and reconciles to the outcome the page shows."""

from __future__ import annotations

import base64
import re
from pathlib import Path
from typing import Any

import yaml

from kubewatch.config import parse_config
from kubewatch.tenancy.models import ClusterSinkSpec, NotifierSpec
from kubewatch.tenancy.reconcile import Compiled, Failure

from .conftest import World

PAGE = Path(__file__).resolve().parents[3] / "docs" / "self-service.md"


def documents() -> list[dict[str, Any]]:
    blocks = re.findall(r"```yaml\n(.*?)```", PAGE.read_text(), re.S)
    return [d for block in blocks for d in yaml.safe_load_all(block) if d]


def test_every_object_on_the_page_validates() -> None:
    kinds = []
    for doc in documents():
        kinds.append(doc.get("kind"))
        if doc.get("kind") == "Notifier":
            NotifierSpec.model_validate(doc["spec"])
        elif doc.get("kind") == "ClusterSink":
            ClusterSinkSpec.model_validate(doc["spec"])
        elif "config" in doc:
            text = "resources: [{kind: Pod}]\nsinks: {o: {type: stdout}}\n"
            assert parse_config(text + yaml.safe_dump({"tenancy": doc["config"]["tenancy"]}), {})
    assert kinds.count("Notifier") == 2 and kinds.count("ClusterSink") == 1


def test_the_example_reconciles_as_the_page_says(world: World) -> None:
    world.secrets.clear()
    world.cluster_sinks.clear()
    world.dns.update({h: ["93.184.216.34"] for h in ("example.webhook.office.com",
                      "hooks.slack.com", "ci.team-b.example.com")})  # fmt: skip
    notifiers = []
    for doc in documents():
        kind, meta = doc.get("kind"), doc.get("metadata", {})
        if kind == "Secret":
            data = {k: base64.b64encode(v.encode()).decode() for k, v in doc["stringData"].items()}
            namespace = "kubewatch" if meta["namespace"] == "monitoring" else meta["namespace"]
            world.secrets[(namespace, meta["name"])] = {"data": data}
        elif kind == "ClusterSink":
            world.cluster_sinks[meta["name"]] = doc
        elif kind == "Notifier":
            notifiers.append(doc)
    results = {n["metadata"]["name"]: world.run(n) for n in notifiers}
    assert all(isinstance(r, Compiled) for r in results.values()), results
    team_b = next(n for n in notifiers if n["metadata"]["namespace"] == "team-b")
    team_b["spec"]["sinkRefs"] = [{"kind": "ClusterSink", "name": "ops-teams"}]
    refused = world.run(team_b)
    assert isinstance(refused, Failure) and refused.reason == "SinkNotAllowed"


def test_the_readme_notifiers_validate() -> None:
    """The README's two-team example is the short form of the page's: it validates too."""
    readme = PAGE.parents[1] / "README.md"
    blocks = re.findall(r"```yaml\n(.*?)```", readme.read_text(), re.S)
    notifiers = [
        d
        for block in blocks
        for d in yaml.safe_load_all(block)
        if d and d.get("kind") == "Notifier"
    ]
    assert [n["metadata"]["namespace"] for n in notifiers] == ["team-a", "team-b"]
    for notifier in notifiers:
        NotifierSpec.model_validate(notifier["spec"])
