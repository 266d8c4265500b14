"""reconcile(): a Notifier, its Secrets and ClusterSinks → compiled entries or one reason."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from kubewatch.config import SlackWebhookSinkConfig, TenancyConfig, WebhookSinkConfig
from kubewatch.tenancy.reconcile import REASONS, Compiled, Failure

from .conftest import HOOK, World, notifier, ref, secret

SPEC: dict[str, Any] = {
    "resources": [
        {"kind": "Deployment", "updates": {"watch": ["spec.template.spec.containers"]}},
        {"kind": "Event", "types": ["Warning"]},
    ],
    "sinks": {"chat": {"type": "slackWebhook", "urlFrom": ref("slack", "url")}},
    "sinkRefs": [{"kind": "ClusterSink", "name": "ops-teams"}],
    "routes": [{"match": {"kinds": ["Event"]}, "sinks": ["ops-teams"]}],
}


def spec(**changes: Any) -> dict[str, Any]:
    out = copy.deepcopy(SPEC)
    out.update(changes)
    return out


def failed(result: Any, reason: str) -> str:
    assert isinstance(result, Failure), result
    assert result.reason == reason, result.message
    assert result.reason in REASONS
    message: str = result.message
    return message


def test_the_example_compiles(world: World) -> None:
    result = world.run(notifier(SPEC))
    assert isinstance(result, Compiled), result
    assert [r.kind for r in result.resources] == ["Deployment", "Event"]
    assert all(r.namespaces and r.namespaces.include == ("team-a",) for r in result.resources)
    chat = result.sinks["chat"]
    assert isinstance(chat, SlackWebhookSinkConfig)
    assert chat.url == HOOK  # the trailing newline of the Secret is not part of it
    assert result.sinks["ops-teams"].type == "teams"
    assert result.routes[0].sinks == ("ops-teams",)
    assert result.secrets == {("team-a", "slack"), ("kubewatch", "teams")}
    assert result.cluster_sinks == {"ops-teams"}
    assert HOOK in result.values
    assert result.reason == "Ready"


def test_it_is_idempotent(world: World) -> None:
    assert world.run(notifier(SPEC)) == world.run(notifier(SPEC))


@pytest.mark.parametrize(
    ("change", "reason", "fragment"),
    [
        ({"resources": [{"kind": "Secret"}]}, "KindNotAllowed",
         "spec.resources[0].kind: Secret is not allowed"),
        ({"resources": [{"kind": "Pod"}, {"kind": "secrets"}]}, "KindNotAllowed",
         "spec.resources[1].kind: Secret is not allowed"),
        ({"resources": [{"kind": "Secret", "apiVersion": "v1"}]}, "KindNotAllowed", "Secret"),
        ({"resources": [{"kind": "Role"}]}, "KindNotAllowed", "Role is not allowed"),
        ({"resources": [{"kind": "deploy"}, {"kind": "deployments.apps"}]}, None, ""),
        ({"resources": [{"kind": "Widgit"}]}, "Invalid", "spec.resources[0].kind: unknown"),
        ({"resources": [{"kind": "Pod", "namespaces": {"include": ["kube-system"]}}]},
         "Invalid", "spec.resources[0].namespaces: is not available in a Notifier"),
        ({"resources": [{"kind": "Pod"}, {"kind": "Pod"}]}, "Invalid",
         "spec.resources[1]: duplicate of resources[0]"),
        ({"routes": [{"sinks": ["chatt"]}]}, "Invalid",
         "spec.routes[0].sinks[0]: unknown sink 'chatt' (did you mean 'chat'?)"),
        ({"sinks": {"chat": {"type": "slackWebhook", "urlFrom": ref("slack", "nope")}}},
         "SecretNotFound", "urlFrom.secretKeyRef: Secret 'slack' has no key 'nope'"),
        ({"sinks": {"chat": {"type": "slackWebhook", "urlFrom": ref("gone", "url")}}},
         "SecretNotFound", "spec.sinks.chat.urlFrom.secretKeyRef: Secret 'gone' not found"),
        ({"sinkRefs": [{"kind": "ClusterSink", "name": "nope"}], "routes": []}, "SinkNotAllowed",
         "spec.sinkRefs[0].name: ClusterSink 'nope' does not exist or does not admit"),
        ({"suspend": True}, "Suspended", "spec.suspend"),
        ({"suspend": True, "resources": [{"kind": "Secret"}]}, "Suspended", "spec.suspend"),
        ({"suspend": True, "resources": []}, "Invalid", "at least one resource"),
    ],
)  # fmt: skip
def test_reasons(world: World, change: dict[str, Any], reason: str | None, fragment: str) -> None:
    result = world.run(notifier(spec(**change)))
    if reason is None:
        assert isinstance(result, Compiled), result
    else:
        assert fragment in failed(result, reason)


def test_denied_wins_and_custom_resources_need_their_group(world: World) -> None:
    deny = TenancyConfig(allowed_kinds=("Deployment", "ConfigMap"), denied_kinds=("configmaps",))
    msg = failed(
        world.run(notifier(spec(resources=[{"kind": "cm"}])), settings=deny), "KindNotAllowed"
    )
    assert "ConfigMap is not allowed" in msg
    crd = "Deployment.apps"  # a dotted entry names a group
    dotted = TenancyConfig(allowed_kinds=(crd,), denied_kinds=())
    assert isinstance(
        world.run(notifier(spec(resources=[{"kind": "Deployment"}])), settings=dotted), Compiled
    )


def test_cluster_scoped_kinds_are_never_a_notifiers(world: World) -> None:
    settings = TenancyConfig(allowed_kinds=("Node", "Namespace"))
    msg = failed(
        world.run(notifier(spec(resources=[{"kind": "Node"}])), settings=settings), "KindNotAllowed"
    )
    assert "Node is cluster-scoped" in msg


def test_a_cluster_sink_admits_only_the_namespaces_it_selects(world: World) -> None:
    world.secrets[("team-b", "slack")] = secret(url=HOOK)
    other = world.run(notifier(SPEC, namespace="team-b"))
    same = failed(other, "SinkNotAllowed")
    world.cluster_sinks.pop("ops-teams")
    missing = failed(world.run(notifier(SPEC, namespace="team-b")), "SinkNotAllowed")
    assert same == missing, "a tenant must not tell a missing ClusterSink from a refusing one"
    world.cluster_sinks["open"] = {"spec": {"sink": {"type": "stdout"}}}
    refs = [{"kind": "ClusterSink", "name": "open"}]
    empty = world.run(notifier(spec(sinkRefs=refs, routes=[])))
    assert "ClusterSink 'open' does not exist" in failed(empty, "SinkNotAllowed")


def test_a_cluster_sinks_secret_comes_from_kubewatchs_namespace(world: World) -> None:
    world.secrets[("team-a", "teams")] = world.secrets.pop(("kubewatch", "teams"))
    assert "ClusterSink 'ops-teams'" in failed(world.run(notifier(SPEC)), "SecretNotFound")


def test_a_cluster_sink_may_point_inside_the_cluster(world: World) -> None:
    world.secrets[("kubewatch", "teams")] = secret(url="http://teams-relay.ops.svc:8080/")
    assert isinstance(world.run(notifier(SPEC)), Compiled)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9000/hook",
        "http://localhost/hook",
        "http://[::1]/hook",
        "http://[::ffff:10.0.0.1]/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://10.1.2.3/",
        "http://172.16.0.1/",
        "http://192.168.1.1/",
        "http://100.64.0.1/",
        "http://0.0.0.0/",
        "http://[fd00::1]/",
        "http://[fe80::1]/",
        "http://kubernetes.default.svc/api",
        "http://web.team-b.svc.cluster.local/",
        "http://kubernetes/",
        "http://metadata.google.internal/",
        "http://rebind.example.com/",
        "http://nxdomain.example.com/",
    ],
)
def test_tenant_sinks_may_not_point_inside(world: World, url: str) -> None:
    world.dns["rebind.example.com"] = ["93.184.216.34", "10.0.0.7"]
    sinks = {"hook": {"type": "webhook", "url": url}}
    result = world.run(notifier(spec(sinks=sinks, sinkRefs=[], routes=[])))
    assert "spec.sinks.hook.url: host" in failed(result, "SinkNotAllowed")
    allowed = world.run(
        notifier(spec(sinks=sinks, sinkRefs=[], routes=[])),
        settings=TenancyConfig(allow_private_addresses=True),
    )
    assert isinstance(allowed, Compiled)


def test_a_url_from_a_secret_is_checked_without_being_shown(world: World) -> None:
    world.secrets[("team-a", "slack")] = secret(url="http://127.0.0.1:9/s3cr3tT0kenValue")
    message = failed(world.run(notifier(SPEC)), "SinkNotAllowed")
    assert message.startswith("spec.sinks.chat.urlFrom: the host is a loopback address")
    assert "127.0.0.1" not in message and "s3cr3t" not in message


def test_other_hosts_are_checked_too(world: World) -> None:
    sinks = {
        "bot": {"type": "slack", "channel": "#a", "token": "xoxb-1", "apiUrl": "http://10.0.0.1/"},
        "mail": {"type": "smtp", "host": "smtp", "from": "a@example.com", "to": ["b@example.com"]},
    }
    message = failed(
        world.run(notifier(spec(sinks=sinks, sinkRefs=[], routes=[]))), "SinkNotAllowed"
    )
    assert "spec.sinks.bot.apiUrl: host '10.0.0.1' is a private address" in message
    assert "spec.sinks.mail.host: host 'smtp' is a single-label name" in message


def test_a_bad_value_from_a_secret_is_reported_at_its_from_key_and_never_shown(
    world: World,
) -> None:
    world.secrets[("team-a", "slack")] = secret(url="ftp://user:s3cr3tT0kenValue@example.com/")
    sinks = {"chat": {"type": "webhook", "urlFrom": ref("slack", "url")}}
    message = failed(world.run(notifier(spec(sinks=sinks))), "Invalid")
    assert message.startswith("spec.sinks.chat.urlFrom: must be an http:// or https:// URL")
    assert "(the value of Secret 'slack', key 'url')" in message
    assert "s3cr3t" not in message


def test_header_values_and_signing_secrets_come_from_secrets(world: World) -> None:
    world.secrets[("team-a", "hook")] = secret(url=HOOK, token="Bearer abc123", key="k3y")
    sinks = {"hook": {"type": "webhook", "urlFrom": ref("hook", "url"),
                      "secretFrom": ref("hook", "key"),
                      "headersFrom": {"Authorization": ref("hook", "token")}}}  # fmt: skip
    result = world.run(notifier(spec(sinks=sinks, sinkRefs=[], routes=[])))
    assert isinstance(result, Compiled), result
    hook = result.sinks["hook"]
    assert isinstance(hook, WebhookSinkConfig)
    assert (hook.url, hook.secret, hook.headers) == (
        HOOK,
        "k3y",
        {"Authorization": "Bearer abc123"},
    )
    world.secrets[("team-a", "hook")] = secret(url=HOOK, token="Bearer a\nb", key="k3y")
    message = failed(world.run(notifier(spec(sinks=sinks, sinkRefs=[], routes=[]))), "Invalid")
    assert message.startswith("spec.sinks.hook.headersFrom.Authorization: header value contains")


def test_a_secret_that_is_not_text(world: World) -> None:
    world.secrets[("team-a", "slack")] = {"data": {"url": "//79"}}
    assert "is not UTF-8 text" in failed(world.run(notifier(SPEC)), "Invalid")


def test_the_oldest_notifiers_of_a_namespace_are_served(world: World) -> None:
    settings = TenancyConfig(max_notifiers_per_namespace=2)
    peers = [notifier(SPEC, name=n) for n in ("a", "b", "c")]
    for p, stamp in zip(
        peers, ("2024-01-03T00:00:00Z", "2024-01-01T00:00:00Z", "2024-01-02T00:00:00Z"), strict=True
    ):
        p["metadata"]["creationTimestamp"] = stamp
    verdicts = {p["metadata"]["name"]: world.run(p, settings=settings, peers=peers) for p in peers}
    assert isinstance(verdicts["b"], Compiled) and isinstance(verdicts["c"], Compiled)
    assert "maxNotifiersPerNamespace allows 2" in failed(verdicts["a"], "TooManyNotifiers")


def test_a_notifier_without_namespace_or_spec(world: World) -> None:
    obj = notifier(SPEC)
    del obj["metadata"]["namespace"]
    assert "metadata.namespace" in failed(world.run(obj), "Invalid")
    obj = notifier(SPEC)
    del obj["spec"]
    assert "spec.resources: at least one resource" in failed(world.run(obj), "Invalid")


def test_several_mistakes_are_reported_together(world: World) -> None:
    bad = spec(resources=[{"kind": "Pod", "evnts": []}, {"kind": ""}], suspend="no")
    message = failed(world.run(notifier(bad)), "Invalid")
    for path in ("spec.resources[0].evnts", "spec.resources[1].kind", "spec.suspend"):
        assert path in message
