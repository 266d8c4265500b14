"""Notifier / ClusterSink specs: the config file's rules and messages, minus what would let
a tenant reach outside its namespace or into kubewatch's Pod."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from kubewatch.config import SINK_TYPES, parse_config, validation_errors
from kubewatch.tenancy.models import ClusterSinkSpec, LabelSelector, NotifierSpec
from kubewatch.tenancy.sinks import TENANT_SINKS, credentials, fill

REF = {"secretKeyRef": {"name": "slack", "key": "url"}}
CHAT = {"type": "slackWebhook", "urlFrom": REF}


def spec(**changes: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"resources": [{"kind": "Deployment"}], "sinks": {"chat": CHAT}}
    out.update(changes)
    return out


def errors(model: Any, data: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(ValidationError) as info:
        model.model_validate(data)
    return {e.path: e.message for e in validation_errors(info.value, model)}


def test_the_example_of_the_api_is_valid() -> None:
    parsed = NotifierSpec.model_validate(
        spec(
            resources=[
                {"kind": "Deployment", "updates": {"watch": ["spec.template.spec.containers"]}},
                {"kind": "Event", "types": ["Warning"]},
            ],
            sinkRefs=[{"kind": "ClusterSink", "name": "ops-teams"}],
            routes=[],
        )
    )
    assert parsed.suspend is False
    assert parsed.resources[1].types == ("Warning",)


def test_every_sink_type_of_the_config_has_a_tenant_twin() -> None:
    assert tuple(TENANT_SINKS) == SINK_TYPES


@pytest.mark.parametrize(
    ("data", "path", "fragment"),
    [
        (spec(resources=[{"kind": "Pod", "namespaces": {"include": ["kube-system"]}}]),
         "resources[0].namespaces", "its own namespace only"),
        (spec(resources=[{"kind": "Pod", "namespaceSelector": "team=b"}]),
         "resources[0].namespaceSelector", "its own namespace only"),
        (spec(resources=[]), "resources", "at least one resource"),
        (spec(resources=[{"kind": "Pod", "lableSelector": "a"}]),
         "resources[0].lableSelector", "did you mean 'labelSelector'"),
        (spec(sinks={}), "sinks", "at least one sink or sinkRef"),
        (spec(sinks={"x": {"type": "webhok", "url": "https://a.example"}}),
         "sinks.x.type", "did you mean 'webhook'"),
        (spec(sinks={"x": {"type": "webhook"}}), "sinks.x.url", "set url or urlFrom"),
        (spec(sinks={"x": {"type": "webhook", "url": "https://a.example", "urlFrom": REF}}),
         "sinks.x.urlFrom", "not both"),
        (spec(sinks={"x": {"type": "slack", "channel": "#a", "tokenFile": "/var/run/token"}}),
         "sinks.x.tokenFile", "kubewatch's own Pod"),
        (spec(sinks={"x": {"type": "webhook", "url": "https://a.example", "caFile": "/etc/x"}}),
         "sinks.x.caFile", "kubewatch's own Pod"),
        (spec(sinks={"x": {"type": "slack", "channel": "#a"}}), "sinks.x.token",
         "set token or tokenFrom"),
        (spec(sinks={"x": {"type": "webhook", "url": "ftp://a"}}), "sinks.x.url",
         "http:// or https://"),
        (spec(sinks={"x": {"type": "webhook", "urlFrom": {"secretKeyRef": {"name": "A_b",
         "key": "u"}}}}), "sinks.x.urlFrom.secretKeyRef.name", "not a valid Secret name"),
        (spec(sinks={"x": {"type": "webhook", "urlFrom": {"secretKeyRef": {"name": "a"}}}}),
         "sinks.x.urlFrom.secretKeyRef.key", "missing"),
        (spec(sinks={"x": {"type": "webhook", "url": "https://a.example",
         "headers": {"Authorization": "a"}, "headersFrom": {"authorization": REF}}}),
         'sinks.x.headersFrom.authorization', "also in headers"),
        (spec(sinkRefs=[{"kind": "ClusterSink", "name": "chat"}]), "sinkRefs[0].name",
         "also the name of a sink"),
        (spec(sinkRefs=[{"kind": "Sink", "name": "a"}]), "sinkRefs[0].kind", "'ClusterSink'"),
        (spec(suspend="yes"), "suspend", "expected true or false"),
        (spec(routes=[{"sinks": []}]), "routes[0].sinks", "at least one sink"),
    ],
)  # fmt: skip
def test_mistakes_are_reported_at_their_key_path(
    data: dict[str, Any], path: str, fragment: str
) -> None:
    found = errors(NotifierSpec, data)
    assert path in found, found
    assert fragment in found[path]


def test_every_credential_takes_a_secret() -> None:
    parsed = NotifierSpec.model_validate(
        spec(
            sinks={
                "hook": {"type": "webhook", "urlFrom": REF, "secretFrom": REF,
                         "headersFrom": {"X-Token": REF}},
                "bot": {"type": "slack", "channel": "#a", "tokenFrom": REF},
                "mail": {"type": "smtp", "host": "smtp.example.com", "from": "a@example.com",
                         "to": ["b@example.com"], "username": "u", "passwordFrom": REF},
            }
        )
    )  # fmt: skip
    assert set(parsed.sinks) == {"hook", "bot", "mail"}


def test_fill_gives_the_config_files_form() -> None:
    raw = {"type": "webhook", "urlFrom": REF, "headers": {"A": "1"}, "headersFrom": {"B": REF}}
    found = credentials(raw)
    assert [path for path, _ in found] == [("urlFrom",), ("headersFrom", "B")]
    filled = fill(raw, {("urlFrom",): "https://hooks.example.com/x", ("headersFrom", "B"): "2"})
    assert filled == {"type": "webhook", "url": "https://hooks.example.com/x",
                      "headers": {"A": "1", "B": "2"}}  # fmt: skip
    config = parse_config(f"resources: [{{kind: Pod}}]\nsinks: {{h: {filled}}}\n".replace("'", '"'))
    assert config.sinks["h"].url == "https://hooks.example.com/x"  # type: ignore[union-attr]


def test_cluster_sink_spec() -> None:
    parsed = ClusterSinkSpec.model_validate(
        {"allowedNamespaces": {"matchLabels": {"team": "a"}},
         "sink": {"type": "teams", "urlFrom": {"secretKeyRef": {"name": "teams", "key": "url"}}}}
    )  # fmt: skip
    assert parsed.allowed_namespaces.selects({"team": "a", "x": "y"})
    assert not parsed.allowed_namespaces.selects({"team": "b"})
    bad = errors(ClusterSinkSpec, {"sink": {"type": "teams", "urlFrom": REF},
                                   "allowedNamespaces": {"matchExpressions": [
                                       {"key": "a", "operator": "In"}]}})  # fmt: skip
    assert "needs values" in bad["allowedNamespaces.matchExpressions[0].values"]


@pytest.mark.parametrize(
    ("selector", "labels", "selected"),
    [
        ({}, {"team": "a"}, False),
        ({"matchLabels": {}}, {}, False),
        ({"matchLabels": {"team": "a"}}, {"team": "a"}, True),
        ({"matchLabels": {"team": "a"}}, {}, False),
        ({"matchExpressions": [{"key": "team", "operator": "In", "values": ["a", "b"]}]},
         {"team": "b"}, True),
        ({"matchExpressions": [{"key": "team", "operator": "NotIn", "values": ["a"]}]},
         {}, True),
        ({"matchExpressions": [{"key": "team", "operator": "Exists"}]}, {"team": ""}, True),
        ({"matchExpressions": [{"key": "team", "operator": "DoesNotExist"}]},
         {"team": "a"}, False),
    ],
)  # fmt: skip
def test_label_selector(selector: dict[str, Any], labels: dict[str, str], selected: bool) -> None:
    assert LabelSelector.model_validate(selector).selects(labels) is selected
