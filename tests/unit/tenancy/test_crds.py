"""The CRDs: generated from the models, committed as the chart installs them, structural.

The e2e twin (tests/e2e/test_tenancy_crds.py) has a real API server accept them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from kubewatch.cli import main
from kubewatch.tenancy.crds import crd_documents, render, structural

CRDS = Path(__file__).resolve().parents[3] / "helm" / "kubewatch" / "crds"
FORBIDDEN = {"$ref", "$defs", "anyOf", "oneOf", "allOf", "not", "default", "const", "title",
             "pattern", "prefixItems", "discriminator", "uniqueItems"}  # fmt: skip
"""Keys a structural schema may not hold (or that OpenAPI 3.0 spells otherwise), and
``default``: the API server would write defaults into every stored object."""


def nodes(schema: dict[str, Any], path: str = "") -> list[tuple[str, dict[str, Any]]]:
    """Every schema node below ``schema`` with its path."""
    out = [(path, schema)]
    for key, sub in schema.get("properties", {}).items():
        out += nodes(sub, f"{path}.{key}")
    if isinstance(schema.get("additionalProperties"), dict):
        out += nodes(schema["additionalProperties"], f"{path}.*")
    if "items" in schema:
        out += nodes(schema["items"], f"{path}[]")
    return out


def test_the_committed_files_are_what_kubewatch_crds_writes() -> None:
    """After changing a model: ``kubewatch crds --dir helm/kubewatch/crds``."""
    expected = {f"{d['metadata']['name']}.yaml": render(d) for d in crd_documents()}
    committed = {p.name: p.read_text() for p in CRDS.glob("*.yaml")}
    assert committed == expected, "run: kubewatch crds --dir helm/kubewatch/crds"


def test_kubewatch_crds_prints_both(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["crds"]) == 0
    printed = [d for d in yaml.safe_load_all(capsys.readouterr().out) if d]
    assert [d["spec"]["names"]["kind"] for d in printed] == ["Notifier", "ClusterSink"]
    assert printed == crd_documents()


def test_kubewatch_crds_writes_a_directory(tmp_path: Path) -> None:
    assert main(["crds", "--dir", str(tmp_path)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "clustersinks.kubewatch.io.yaml",
        "notifiers.kubewatch.io.yaml",
    ]


@pytest.mark.parametrize("document", crd_documents(), ids=lambda d: d["metadata"]["name"])
def test_the_schema_is_structural(document: dict[str, Any]) -> None:
    [version] = document["spec"]["versions"]
    assert document["spec"]["group"] == "kubewatch.io"
    assert version["name"] == "v1alpha1" and version["subresources"] == {"status": {}}
    columns = [c["name"].upper() for c in version["additionalPrinterColumns"]]
    assert columns == ["READY", "REASON", "AGE"]
    root = version["schema"]["openAPIV3Schema"]
    for path, node in nodes(root):
        assert not FORBIDDEN & set(node), f"{path}: {sorted(FORBIDDEN & set(node))}"
        typed = "type" in node or node.get("x-kubernetes-preserve-unknown-fields") is True
        assert typed, f"{path} has no type"
        if node.get("type") == "object" and path != ".metadata":  # the API server's own
            assert ("properties" in node) != ("additionalProperties" in node) or node.get(
                "x-kubernetes-preserve-unknown-fields"
            ), path
            assert node.get("additionalProperties") is not False, path
        if isinstance(node.get("exclusiveMinimum"), int | float) and not isinstance(
            node.get("exclusiveMinimum"), bool
        ):
            pytest.fail(f"{path}: exclusiveMinimum must be a flag in OpenAPI 3.0")


def test_notifier_keys_come_from_the_config_models() -> None:
    spec = crd_documents()[0]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"][
        "spec"
    ]
    resource = spec["properties"]["resources"]["items"]["properties"]
    assert {"kind", "apiVersion", "events", "labels", "updates", "types", "reasons"} <= set(
        resource
    )
    assert "namespaces" not in resource and "namespaceSelector" not in resource
    sink = spec["properties"]["sinks"]["additionalProperties"]["properties"]
    assert {"urlFrom", "tokenFrom", "passwordFrom", "secretFrom", "headersFrom"} <= set(sink)
    assert "caFile" not in sink and "tokenFile" not in sink
    assert spec["properties"]["sinks"]["additionalProperties"]["required"] == ["type"]
    assert sink["timeout"]["minimum"] == 0 and sink["timeout"]["exclusiveMinimum"] is True


@pytest.mark.parametrize(
    ("node", "expected"),
    [
        ({"anyOf": [{"type": "string"}, {"type": "null"}]}, {"type": "string", "nullable": True}),
        ({"anyOf": [{"type": "number"}, {"type": "string"}]},
         {"x-kubernetes-preserve-unknown-fields": True}),
        ({"anyOf": [{"type": "integer"}, {"type": "number"}]}, {"type": "number"}),
        ({"const": "x"}, {"type": "string", "enum": ["x"]}),
        ({"type": "number", "exclusiveMinimum": 0},
         {"type": "number", "minimum": 0, "exclusiveMinimum": True}),
        ({"$ref": "#/$defs/A", "description": "d"}, {"type": "boolean", "description": "d"}),
        ({"type": "object"}, {"type": "object", "x-kubernetes-preserve-unknown-fields": True}),
        ({"type": "object", "additionalProperties": {"type": "string"}},
         {"type": "object", "additionalProperties": {"type": "string"}}),
        ({"oneOf": [
            {"type": "object", "properties": {"t": {"const": "a"}, "x": {"type": "string"}},
             "required": ["t", "x"]},
            {"type": "object", "properties": {"t": {"const": "b"}}, "required": ["t"]}]},
         {"type": "object", "required": ["t"], "properties": {
             "t": {"type": "string", "enum": ["a", "b"]}, "x": {"type": "string"}}}),
    ],
)  # fmt: skip
def test_structural_rewrites(node: dict[str, Any], expected: dict[str, Any]) -> None:
    assert structural(node, {"A": {"type": "boolean"}}) == expected
