"""Planning: which watches a configured resource becomes, and contradictions caught early."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kubewatch.config import parse_config
from kubewatch.errors import ConfigErrors
from kubewatch.kube.discovery import ResourceTable
from kubewatch.watch.plan import resolve_resources

TABLE = ResourceTable.from_documents(
    json.loads((Path(__file__).parents[1] / "data" / "discovery-1.20.json").read_text())
)
SINKS = "sinks: {c: {type: stdout}}\n"


def plan(yaml_text: str):  # type: ignore[no-untyped-def]
    return resolve_resources(parse_config(yaml_text + SINKS), TABLE)


@pytest.mark.parametrize(
    ("config", "namespaces", "field_selector"),
    [
        pytest.param("resources: [{kind: cm}]\n", (None,), None, id="cluster-wide"),
        pytest.param(
            "namespaces: {exclude: [kube-system, 'team-*']}\nresources: [{kind: cm}]\n",
            (None,),
            "metadata.namespace!=kube-system",
            id="plain-excludes-become-field-selectors-patterns-do-not",
        ),
        pytest.param(
            "namespaces: {include: [a, b]}\n"
            "resources: [{kind: cm, fieldSelector: 'metadata.name=x'}]\n",
            ("a", "b"),
            "metadata.name=x",
            id="plain-includes-one-watch-each",
        ),
        pytest.param(
            "namespaces: {include: [a, b, c]}\n"
            "resources: [{kind: cm, namespaces: {include: [c, b, z]}}]\n",
            ("c", "b"),
            None,
            id="global-and-resource-includes-intersect",
        ),
        pytest.param(
            "namespaces: {include: [a, b]}\nresources: [{kind: cm, namespaces: {exclude: [b]}}]\n",
            ("a",),
            None,
            id="excluded-names-leave-the-include-list",
        ),
        pytest.param(
            "namespaces: {include: ['team-*']}\nresources: [{kind: cm}]\n",
            (None,),
            None,
            id="include-pattern-means-cluster-wide-and-filtered",
        ),
        pytest.param(
            "namespaces: {include: [a]}\nresources: [{kind: Namespace}]\n",
            (None,),
            None,
            id="cluster-scoped-ignores-namespaces",
        ),
    ],
)
def test_watches(
    config: str, namespaces: tuple[str | None, ...], field_selector: str | None
) -> None:
    [watch] = plan(config).watches
    assert watch.namespaces == namespaces
    assert watch.field_selector == field_selector


@pytest.mark.parametrize(
    ("config", "path", "fragment"),
    [
        pytest.param(
            "namespaces: {include: [a]}\nresources: [{kind: cm, namespaces: {include: [b]}}]\n",
            "resources[0].namespaces.include",
            "none of these namespaces",
            id="disjoint-includes",
        ),
        pytest.param(
            "resources: [{kind: cm, reasons: [BackOff]}]\n",
            "resources[0].reasons",
            "applies only to kind Event",
            id="event-key-on-configmap",
        ),
        pytest.param(
            "resources: [{kind: cm, repeatWindow: 5m}]\n",
            "resources[0].repeatWindow",
            "applies only to kind Event",
            id="repeat-window-on-configmap",
        ),
        pytest.param(
            "resources: [{kind: cm}, {kind: Deploymnet}]\n",
            "resources[1].kind",
            "Deployment",
            id="unknown-kind-suggests",
        ),
    ],
)
def test_contradictions_are_config_errors(config: str, path: str, fragment: str) -> None:
    with pytest.raises(ConfigErrors) as info:
        plan(config)
    [error] = info.value.errors
    assert error.path == path
    assert fragment in error.message


def test_event_keys_are_fine_on_events_and_crds_wait() -> None:
    result = plan(
        "resources:\n"
        "  - {kind: Event, reasons: [BackOff], repeatWindow: 1m}\n"
        "  - {kind: Gadget, apiVersion: gadgets.example.org/v1}\n"
    )
    assert [w.is_kube_event for w in result.watches] == [True]
    assert [i for i, _ in result.pending] == [1]
    assert result.namespaces is not None and result.namespaces.plural == "namespaces"
