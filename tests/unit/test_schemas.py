"""The schemas are products: the config schema accepts what kubewatch accepts, the
generated reference matches it, and every kind of event the pipeline emits matches the
Event JSON schema (docs/schema/event-v1.json)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from kubewatch.cli import main
from kubewatch.config import parse_config
from kubewatch.kube.informer import DeletedFinalStateUnknown
from kubewatch.schema import config_schema
from tests.unit.conftest import schema_errors
from tests.unit.watch.test_pipeline import cm, collect

ROOT = Path(__file__).resolve().parents[2]
EVENT_SCHEMA = json.loads((ROOT / "docs" / "schema" / "event-v1.json").read_text())
EVENTS = jsonschema.Draft202012Validator(EVENT_SCHEMA)


def event_errors(event: Any) -> list[str]:
    return [f"{list(e.absolute_path)}: {e.message}" for e in EVENTS.iter_errors(event)]


# -- the configuration's schema ----------------------------------------------------------


def test_the_config_schema_is_a_valid_draft_2020_12_schema() -> None:
    schema = config_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert config_schema() == schema and config_schema() is not schema  # a copy each call
    text = json.dumps(schema)
    assert not re.search(r'"(gt|ge|lt|le)":', text), "pydantic's keyword names leaked"


def test_the_example_configuration_validates() -> None:
    raw = yaml.safe_load((ROOT / "config.example.yaml").read_text())
    assert schema_errors(raw) == []


ACCEPTED = {
    "durations as text": "delivery: {maxAge: 1h30m}\nserver: {port: 0, stallThreshold: '3m'}",
    "duration as a number in text": "leaderElection: "
    "{enabled: true, leaseDuration: '15.5', retryPeriod: '2.5'}",
    "numbers from ${VAR}": "delivery: {workers: '${WORKERS}', queueSize: '${Q}'}",
    "a boolean from ${VAR}": "leaderElection: {enabled: '${LE}'}",
    "rateLimit shorthand and off": "sinks:\n  c: {type: slackWebhook, url: 'https://h/x', "
    "rateLimit: 2, digest: 'off'}\n  d: {type: discord, url: 'https://h/y', rateLimit: OFF}",
    "a choice from ${VAR}": "sinks:\n  c: {type: stdout, format: '${FORMAT}'}",
}


@pytest.mark.parametrize("extra", ACCEPTED.values(), ids=ACCEPTED.keys())
def test_forms_kubewatch_accepts_validate(extra: str) -> None:
    text = "resources: [{kind: ConfigMap}]\nsinks: {s: {type: stdout}}\n" + extra
    env = {"WORKERS": "8", "Q": "100", "LE": "true", "FORMAT": "text"}
    raw = yaml.safe_load(text)
    if "sinks" in yaml.safe_load(extra):
        raw["sinks"] = yaml.safe_load(extra)["sinks"]
        text = yaml.safe_dump(raw)
    parse_config(text, env)  # kubewatch accepts it (and the conftest checks the schema too)
    assert schema_errors(raw) == []


REJECTED = {
    "unknown key": {"resources": [{"kind": "cm", "lableSelector": "a=b"}]},
    "a typo in a section": {"delivery": {"wokers": 4}},
    "a wrong type": {"delivery": {"workers": "four"}},
    "out of bounds": {"delivery": {"workers": 65}},
    "a bad duration": {"delivery": {"maxAge": "1 hour"}},
    "an unknown sink type": {"sinks": {"s": {"type": "pager"}}},
    "a key of another sink type": {"sinks": {"s": {"type": "stdout", "url": "https://h"}}},
    "no resources": {"resources": None},
}


@pytest.mark.parametrize("change", REJECTED.values(), ids=REJECTED.keys())
def test_mistakes_are_marked(change: dict[str, Any]) -> None:
    raw: dict[str, Any] = {"resources": [{"kind": "ConfigMap"}], "sinks": {"s": {"type": "stdout"}}}
    raw.update(change)
    raw = {k: v for k, v in raw.items() if v is not None}
    assert schema_errors(raw), f"the schema accepts {change}"


def test_fields_carry_their_docstrings() -> None:
    props = config_schema()["$defs"]["DeliveryConfig"]["properties"]
    assert "oldest is dropped" in props["queueSize"]["description"]


# -- the generated reference -------------------------------------------------------------


def test_the_committed_reference_is_what_the_generator_writes() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "docs" / "gen_reference.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_the_reference_lists_every_section_of_the_schema() -> None:
    page = (ROOT / "docs" / "configuration.md").read_text()
    for key in config_schema()["properties"]:
        assert f"| `{key}` |" in page, key


# -- the Event JSON schema ---------------------------------------------------------------


def test_the_event_schema_is_strict() -> None:
    jsonschema.Draft202012Validator.check_schema(EVENT_SCHEMA)
    assert EVENT_SCHEMA["additionalProperties"] is False
    assert set(EVENT_SCHEMA["required"]) == set(EVENT_SCHEMA["properties"])
    for name, sub in EVENT_SCHEMA["$defs"].items():
        assert sub["additionalProperties"] is False, name
        assert set(sub["required"]) == set(sub["properties"]), name


def test_pipeline_events_of_every_type_validate() -> None:
    fanout, events = collect("[{kind: cm, notifyExisting: true}]")
    fanout.on_add(cm("a", 1, labels={"app": "x"}, x="1"), True)
    fanout.on_update(cm("a", 1, x="1"), cm("a", 2, x="2", y="new"))
    fanout.on_delete(cm("a", 2))
    fanout.on_add(cm("b", 3), False)
    fanout.on_delete(DeletedFinalStateUnknown("ns/b", cm("b", 3)))
    assert len(events) == 5
    for event in events:
        document = json.loads(json.dumps(event.to_dict()))
        assert event_errors(document) == [], document
    bad = {**events[0].to_dict(), "extra": 1}
    assert event_errors(bad), "an unknown field must be refused"
    missing = {k: v for k, v in events[0].to_dict().items() if k != "whileDown"}
    assert event_errors(missing), "whileDown is required"


def _watch(event_type: str, obj: dict[str, Any]) -> str:
    return json.dumps({"type": event_type, "object": obj})


def _kube_event(n: int, count: int) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {
            "name": f"web-{n}.17",
            "namespace": "kw-demo",
            "uid": f"e-{n}",
            "resourceVersion": str(3000 + n * 10 + count),
            "creationTimestamp": "2026-11-26T22:56:20Z",
        },
        "type": "Warning",
        "reason": "BackOff",
        "message": "Back-off restarting failed container web",
        "count": count,
        "involvedObject": {"kind": "Pod", "namespace": "kw-demo", "name": f"web-{n}", "uid": "p"},
        "source": {"component": "kubelet"},
        "firstTimestamp": "2026-11-26T22:56:20Z",
        "lastTimestamp": f"2026-11-26T22:5{6 + count}:20Z",
    }


def _secret(rv: int, value: str) -> dict[str, Any]:
    meta = {"name": "creds", "namespace": "kw-demo", "uid": "s-1", "resourceVersion": str(rv)}
    return {"apiVersion": "v1", "kind": "Secret", "metadata": meta, "data": {"pw": value}}


def test_every_event_of_a_replay_validates(tmp_path: Path) -> None:
    """The real capture plus Secrets, Kubernetes Event alerts, a cluster-scoped object and a
    burst that becomes a digest, through ``kubewatch replay`` to a JSON stdout sink."""
    lines = (ROOT / "examples" / "watch-capture.json").read_text().splitlines()
    lines += [_watch("ADDED", _secret(2000, "YQ==")), _watch("MODIFIED", _secret(2001, "Yg=="))]
    lines += [_watch("ADDED", _kube_event(1, 1)), _watch("MODIFIED", _kube_event(1, 3))]
    ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "kw-x", "uid": "n-1"}}
    lines += [_watch("ADDED", {**ns, "metadata": {**ns["metadata"], "resourceVersion": "2100"}})]
    for i in range(8):
        meta = {"name": f"p{i}", "namespace": "kw-demo", "uid": f"pod-{i}"}
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {**meta, "resourceVersion": str(2200 + i)},
        }
        lines.append(_watch("ADDED", pod))
    capture = tmp_path / "capture.json"
    capture.write_text("\n".join(lines) + "\n")
    config = tmp_path / "config.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "resources": [
                    {"kind": k} for k in ("ConfigMap", "Deployment", "Secret", "Namespace", "Pod")
                ]
                + [{"kind": "Event", "repeatWindow": 1}],
                "sinks": {
                    "json": {"type": "stdout", "digest": {"threshold": 2, "window": 3600}},
                },
            }
        )
    )
    result = subprocess.run(
        [sys.executable, "-m", "kubewatch", "replay", str(capture), "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    kinds = {
        (e["kind"], e["type"], e["digest"] is not None, e["k8sEvent"] is not None) for e in events
    }
    assert ("Pod", "create", True, False) in kinds, kinds  # a digest
    assert any(e["k8sEvent"] for e in events), kinds  # an alert
    assert any(e["namespace"] is None for e in events), kinds  # cluster-scoped
    assert any(e["changes"] for e in events), kinds
    for event in events:
        assert event_errors(event) == [], event


def test_the_examples_on_the_event_json_page_validate() -> None:
    page = (ROOT / "docs" / "event-json.md").read_text()
    blocks = re.findall(r"```json\n(.*?)```", page, re.S)
    assert len(blocks) == 4
    for block in blocks:
        document = json.loads(block)
        if document["digest"]:  # its lists are shortened with "…" on the page
            document["digest"]["ids"] = [i for i in document["digest"]["ids"] if i != "…"]
        assert event_errors(document) == [], document


# -- the README's links ------------------------------------------------------------------


def _anchors(markdown: str) -> set[str]:
    """The anchors MkDocs makes of a page's headings (Python-Markdown's slugify)."""
    out = set()
    for heading in re.findall(r"^#+ (.*)$", re.sub(r"```.*?```", "", markdown, flags=re.S), re.M):
        text = re.sub(r"[^\w\s-]", "", heading).strip().lower()
        out.add(re.sub(r"[-\s]+", "-", text))
    return out


def test_every_link_of_the_readme_resolves() -> None:
    """mkdocs build --strict checks docs/; the README lives outside it."""
    readme = (ROOT / "README.md").read_text()
    links = re.findall(r"\]\(([^)\s]+)\)", readme)
    assert len(links) > 10
    for link in links:
        if link.startswith(("http://", "https://")):
            continue
        path, _, anchor = link.partition("#")
        target = ROOT / path if path else ROOT / "README.md"
        assert target.exists(), link
        if anchor:
            assert anchor in _anchors(target.read_text()), link


def test_the_cli_prints_the_schema_the_reference_is_made_from(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["config", "schema"]) == 0
    assert json.loads(capsys.readouterr().out) == config_schema()
