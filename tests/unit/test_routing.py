"""kubewatch.routing: object filters (namespaces, selectors, names) and event routes.

Scenario tables read as documentation: each row is an object or event and what becomes
of it. Configurations go through ``parse_config``, so the tests exercise the real model.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import pytest

from kubewatch.config import Config, parse_config
from kubewatch.events import (
    Change,
    DigestInfo,
    Event,
    EventType,
    InvolvedObject,
    KubeEventInfo,
)
from kubewatch.kube import DeletedFinalStateUnknown
from kubewatch.match.patterns import parse_selector
from kubewatch.routing import Router
from kubewatch.watch.filters import NamespaceLabels, ObjectFilter

SINKS = """
sinks:
  slack-payments: {type: stdout}
  slack-oncall: {type: stdout}
  audit: {type: stdout}
  console: {type: stdout}
"""


def config(body: str, *, resources: str = "resources: [{kind: Deployment}]\n") -> Config:
    return parse_config(resources + SINKS + body)


def ev(
    type: str = "create",
    kind: str = "Deployment",
    ns: str | None = "default",
    name: str = "web",
    *,
    labels: dict[str, str] | None = None,
    reason: str | None = None,
    changes: tuple[str, ...] = (),
    digest: bool = False,
) -> Event:
    """An event with only what routing looks at; ``changes`` are changed paths."""
    k8s = None
    if reason is not None:
        involved = InvolvedObject("Pod", ns, name)
        k8s = KubeEventInfo("Warning", reason, "message", 1, involved)
    return Event(
        type=EventType(type),
        cluster="test",
        kind=kind,
        api_version="v1",
        resource=kind.lower() + "s",
        namespace=ns,
        name="" if digest else name,
        uid="uid-1",
        resource_version="1",
        observed_at="2026-01-01T00:00:00.000Z",
        labels=labels or {},
        changes=tuple(Change(p, 1, 2) for p in changes),
        k8s_event=k8s,
        digest=DigestInfo(3, ("a", "b", "c"), ("x", "y", "z")) if digest else None,
    )


# =========================================================================== Router

ISSUE_EXAMPLE = """
drop:
  - {namespaces: ["scratch-*"]}
routes:
  - match: {kinds: [Deployment], namespaces: [payments], types: [update, delete]}
    sinks: [slack-payments]
    stop: true
  - match: {kinds: [Event], reasons: [OOMKilling, BackOff]}
    sinks: [slack-oncall, audit]
  - sinks: [console]
"""

ISSUE_CASES = [
    pytest.param(
        ev("update", "Deployment", "payments"), ("slack-payments",), id="payments-update-stops"
    ),
    pytest.param(ev("delete", "Deployment", "payments"), ("slack-payments",), id="payments-delete"),
    pytest.param(
        ev("create", "Deployment", "payments"), ("console",), id="payments-create-falls-through"
    ),
    pytest.param(ev("update", "deployment", "payments"), ("slack-payments",), id="kind-any-case"),
    pytest.param(ev("update", "Deployment", "shop"), ("console",), id="other-namespace"),
    pytest.param(
        ev("create", "Event", "shop", reason="BackOff"),
        ("slack-oncall", "audit", "console"),
        id="backoff-alert-and-console",
    ),
    pytest.param(
        ev("create", "Event", "shop", reason="OOMKilling"),
        ("slack-oncall", "audit", "console"),
        id="oom-alert",
    ),
    pytest.param(
        ev("create", "Event", "shop", reason="BackOffLimit"),
        ("console",),
        id="reason-is-full-match",
    ),
    pytest.param(ev("create", "Event", "shop"), ("console",), id="event-without-k8s-info"),
    pytest.param(ev("update", "Deployment", "scratch-42"), (), id="scratch-dropped"),
    pytest.param(
        ev("create", "Event", "scratch-1", reason="BackOff"), (), id="drop-beats-every-route"
    ),
    pytest.param(ev("create", "Node", None), ("console",), id="cluster-scoped-not-dropped"),
]


@pytest.mark.parametrize(("event", "sinks"), ISSUE_CASES)
def test_issue_example(event: Event, sinks: tuple[str, ...]) -> None:
    """The routing example of the README, event by event."""
    assert Router.build(config(ISSUE_EXAMPLE)).route(event) == sinks


def one_route(match: str) -> Router:
    """A router with a single route ``match`` → audit."""
    return Router.build(config(f"routes:\n  - match: {match}\n    sinks: [audit]\n"))


MATCH_KEYS = [
    # kinds
    pytest.param("{kinds: [Pod, Service]}", ev(kind="Service"), True, id="kinds-any-of"),
    pytest.param("{kinds: [pod]}", ev(kind="Pod"), True, id="kinds-case-insensitive"),
    pytest.param("{kinds: [Pod]}", ev(kind="PodTemplate"), False, id="kinds-whole-name"),
    pytest.param("{kinds: [Deployment]}", ev(digest=True), True, id="kinds-digest"),
    # namespaces
    pytest.param("{namespaces: [shop]}", ev(ns="shop"), True, id="ns-exact"),
    pytest.param("{namespaces: [shop]}", ev(ns="shop-2"), False, id="ns-exact-not-prefix"),
    pytest.param("{namespaces: ['team-*']}", ev(ns="team-a"), True, id="ns-glob"),
    pytest.param("{namespaces: ['team-*']}", ev(ns="ateam-a"), False, id="ns-glob-anchored"),
    pytest.param("{namespaces: ['/^prod-(eu|us)$/']}", ev(ns="prod-eu"), True, id="ns-regex"),
    pytest.param("{namespaces: ['/^prod-(eu|us)$/']}", ev(ns="prod-ap"), False, id="ns-regex-no"),
    pytest.param("{namespaces: ['/prod/']}", ev(ns="my-prod-1"), True, id="ns-regex-searched"),
    pytest.param("{namespaces: ['*']}", ev(ns=None), False, id="ns-none-never-matches"),
    # names
    pytest.param("{names: [web]}", ev(name="web"), True, id="names-exact"),
    pytest.param("{names: ['web-?']}", ev(name="web-1"), True, id="names-glob"),
    pytest.param("{names: ['web-?']}", ev(name="web-12"), False, id="names-glob-one-char"),
    pytest.param("{names: ['/^api/']}", ev(name="api-gw"), True, id="names-regex"),
    pytest.param("{names: ['*']}", ev(digest=True), False, id="names-digest-never"),
    # types
    pytest.param("{types: [delete]}", ev("delete"), True, id="types-delete"),
    pytest.param("{types: [create, update]}", ev("delete"), False, id="types-not-listed"),
    # labels
    pytest.param("{labels: 'app=web'}", ev(labels={"app": "web"}), True, id="labels-eq"),
    pytest.param("{labels: 'app==web'}", ev(labels={"app": "db"}), False, id="labels-eq-no"),
    pytest.param("{labels: 'app!=web'}", ev(labels={"app": "db"}), True, id="labels-ne"),
    pytest.param("{labels: 'app!=web'}", ev(labels={}), True, id="labels-ne-absent"),
    pytest.param(
        "{labels: 'env in (prod, staging)'}", ev(labels={"env": "staging"}), True, id="labels-in"
    ),
    pytest.param("{labels: 'env in (prod)'}", ev(labels={}), False, id="labels-in-absent"),
    pytest.param(
        "{labels: 'env notin (dev)'}", ev(labels={"env": "dev"}), False, id="labels-notin"
    ),
    pytest.param("{labels: 'env notin (dev)'}", ev(labels={}), True, id="labels-notin-absent"),
    pytest.param("{labels: canary}", ev(labels={"canary": ""}), True, id="labels-exists"),
    pytest.param("{labels: canary}", ev(labels={}), False, id="labels-exists-no"),
    pytest.param("{labels: '!canary'}", ev(labels={}), True, id="labels-not-exists"),
    pytest.param(
        "{labels: '!canary'}", ev(labels={"canary": "1"}), False, id="labels-not-exists-no"
    ),
    pytest.param(
        "{labels: 'app=web,tier!=cache'}",
        ev(labels={"app": "web", "tier": "cache"}),
        False,
        id="labels-all-terms",
    ),
    # reasons
    pytest.param("{reasons: [BackOff]}", ev(reason="BackOff"), True, id="reasons-plain"),
    pytest.param("{reasons: ['Fail.*']}", ev(reason="FailedMount"), True, id="reasons-regex"),
    pytest.param("{reasons: ['Fail']}", ev(reason="FailedMount"), False, id="reasons-full-match"),
    pytest.param("{reasons: ['Back|OOM']}", ev(reason="BackOff"), False, id="reasons-alt-whole"),
    pytest.param("{reasons: ['.*']}", ev(), False, id="reasons-no-k8s-event"),
    # changed
    pytest.param(
        "{changed: [spec.replicas]}", ev("update", changes=("spec.replicas",)), True, id="changed"
    ),
    pytest.param(
        "{changed: [spec.template.spec.containers]}",
        ev("update", changes=("spec.template.spec.containers[web].image",)),
        True,
        id="changed-below",
    ),
    pytest.param(
        "{changed: ['spec.template.**']}",
        ev("update", changes=("metadata.labels.app", "spec.template.spec.containers[web].image")),
        True,
        id="changed-double-star",
    ),
    pytest.param(
        "{changed: ['spec.template.spec.containers[*].image']}",
        ev("update", changes=("spec.template.spec.containers[sidecar].image",)),
        True,
        id="changed-star",
    ),
    pytest.param(
        "{changed: ['spec.template.spec.containers[*].image']}",
        ev("update", changes=("spec.template.spec.containers[web].env[A].value",)),
        False,
        id="changed-star-other-leaf",
    ),
    pytest.param(
        "{changed: ['metadata.labels.*']}",
        ev("update", changes=('metadata.labels["app.kubernetes.io/name"]',)),
        True,
        id="changed-quoted-key",
    ),
    pytest.param(
        "{changed: [spec.rep]}", ev("update", changes=("spec.replicas",)), False, id="changed-seg"
    ),
    pytest.param("{changed: ['**']}", ev("create"), False, id="changed-create-never"),
    pytest.param(
        "{changed: ['**']}",
        ev("update", changes=("spec.replicas",), digest=True),
        False,
        id="changed-digest-never",
    ),
    # several keys: all must hold
    pytest.param(
        "{kinds: [Deployment], types: [update], labels: 'app=web'}",
        ev("update", labels={"app": "web"}),
        True,
        id="all-keys-hold",
    ),
    pytest.param(
        "{kinds: [Deployment], types: [update], labels: 'app=web'}",
        ev("create", labels={"app": "web"}),
        False,
        id="one-key-fails",
    ),
    pytest.param("{}", ev(), True, id="empty-match-everything"),
]


@pytest.mark.parametrize(("match", "event", "matches"), MATCH_KEYS)
def test_match_keys(match: str, event: Event, matches: bool) -> None:
    """Each match key alone (and a few combined): does the event reach the route's sink?"""
    assert one_route(match).route(event) == (("audit",) if matches else ())


ROUTE_TABLES = [
    pytest.param(
        "",
        ev(),
        ("slack-payments", "slack-oncall", "audit", "console"),
        id="no-routes-every-sink",
    ),
    pytest.param(
        "drop: [{types: [delete]}]\n",
        ev("update"),
        ("slack-payments", "slack-oncall", "audit", "console"),
        id="drop-only-rest-to-every-sink",
    ),
    pytest.param("drop: [{types: [delete]}]\n", ev("delete"), (), id="drop-only-dropped"),
    pytest.param(
        "drop: [{kinds: [Pod]}, {namespaces: [kube-system]}]\n",
        ev(ns="kube-system"),
        (),
        id="any-drop-entry",
    ),
    pytest.param(
        """
routes:
  - {match: {kinds: [Pod]}, sinks: [audit]}
""",
        ev(kind="Deployment"),
        (),
        id="no-route-matches",
    ),
    pytest.param(
        """
routes:
  - {sinks: [console, audit]}
  - {sinks: [audit, slack-payments]}
  - {sinks: [console]}
""",
        ev(),
        ("slack-payments", "audit", "console"),
        id="at-most-once-config-order",
    ),
    pytest.param(
        """
routes:
  - {match: {types: [update]}, sinks: [audit], stop: true}
  - {sinks: [console]}
""",
        ev("update"),
        ("audit",),
        id="stop-ends-evaluation",
    ),
    pytest.param(
        """
routes:
  - {match: {types: [update]}, sinks: [audit], stop: true}
  - {sinks: [console]}
""",
        ev("create"),
        ("console",),
        id="stop-only-when-matched",
    ),
    pytest.param(
        """
routes:
  - {match: {kinds: [Deployment]}, sinks: [slack-oncall]}
  - {match: {types: [update]}, sinks: [audit], stop: true}
  - {sinks: [console]}
""",
        ev("update"),
        ("slack-oncall", "audit"),
        id="stop-keeps-earlier-sinks",
    ),
]


@pytest.mark.parametrize(("body", "event", "sinks"), ROUTE_TABLES)
def test_routes(body: str, event: Event, sinks: tuple[str, ...]) -> None:
    """drop, stop, at-most-once, and the defaults without routes."""
    assert Router.build(config(body)).route(event) == sinks


def test_router_sinks_in_config_order() -> None:
    router = Router.build(config(""))
    assert router.sinks == ("slack-payments", "slack-oncall", "audit", "console")


def test_route_logs_why(caplog: pytest.LogCaptureFixture) -> None:
    """At DEBUG, a dropped event names its drop entry and an unrouted one says so."""
    router = Router.build(
        config(
            """
drop: [{kinds: [Secret]}, {namespaces: ["scratch-*"]}]
routes: [{match: {kinds: [Pod]}, sinks: [audit]}]
"""
        )
    )
    with caplog.at_level(logging.DEBUG, logger="kubewatch.routing"):
        assert router.route(ev("update", ns="scratch-1", name="web")) == ()
        assert router.route(ev("update", ns="shop", name="web")) == ()
    assert "update Deployment scratch-1/web dropped by drop[1]" in caplog.text
    assert "update Deployment shop/web matched no route" in caplog.text


def test_route_result_is_shared_and_stable() -> None:
    """The same sinks come back as the same tuple (memoized by sink set)."""
    router = Router.build(config("routes: [{sinks: [audit, console]}]\n"))
    first = router.route(ev(name="a"))
    assert first == ("audit", "console")
    assert router.route(ev(name="b")) is first


# =========================================================================== NamespaceLabels


def namespace(name: str, **labels: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}}


def test_namespace_labels_follow_the_informer() -> None:
    """add → known; update → new labels; delete (plain or tombstone) → unknown again."""
    nsl = NamespaceLabels()
    assert nsl.labels("shop") is None
    nsl.on_add(namespace("shop", env="prod"), True)
    nsl.on_add(namespace("dev"), False)
    assert nsl.labels("shop") == {"env": "prod"}
    assert nsl.labels("dev") == {}
    assert len(nsl) == 2
    assert "dev" in nsl
    nsl.on_update(namespace("shop", env="prod"), namespace("shop", env="staging"))
    assert nsl.labels("shop") == {"env": "staging"}
    nsl.on_delete(namespace("dev"))
    assert nsl.labels("dev") is None
    nsl.on_delete(DeletedFinalStateUnknown("shop", namespace("shop", env="staging")))
    assert nsl.labels("shop") is None
    assert len(nsl) == 0


def test_namespace_labels_are_snapshots() -> None:
    """A reader's mapping never changes under it, and cannot be changed through it."""
    nsl = NamespaceLabels()
    obj = namespace("shop", env="prod")
    nsl.on_add(obj, True)
    seen = nsl.labels("shop")
    assert seen is not None
    obj["metadata"]["labels"]["env"] = "mutated"
    nsl.on_update(obj, namespace("shop", env="dev"))
    assert seen == {"env": "prod"}
    with pytest.raises(TypeError):
        seen["env"] = "x"  # type: ignore[index]


def test_namespace_labels_ignore_nameless() -> None:
    nsl = NamespaceLabels()
    nsl.on_add({"metadata": {}}, True)
    nsl.on_delete({})
    assert len(nsl) == 0


def test_namespace_labels_concurrent_writers() -> None:
    """Writers on several threads leave exactly the namespaces not deleted."""
    nsl = NamespaceLabels()

    def work(offset: int) -> None:
        for i in range(offset, offset + 200):
            nsl.on_add(namespace(f"ns-{i}", n=str(i)), False)
            if i % 2:
                nsl.on_delete(namespace(f"ns-{i}"))

    threads = [threading.Thread(target=work, args=(k * 200,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(nsl) == 400
    assert nsl.labels("ns-10") == {"n": "10"}


# =========================================================================== ObjectFilter


def obj(
    ns: str | None = "default",
    name: str = "web",
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if ns is not None:
        meta["namespace"] = ns
    if labels is not None:
        meta["labels"] = labels
    if annotations is not None:
        meta["annotations"] = annotations
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta}


def object_filter(
    resource: str, global_: str = "", namespace_labels: NamespaceLabels | None = None
) -> ObjectFilter:
    """The filter of the single resource ``resource`` (a YAML flow mapping)."""
    cfg = config(global_, resources=f"resources:\n  - {resource}\n")
    return ObjectFilter.build(cfg, cfg.resources[0], namespace_labels)


FILTERS = [
    pytest.param("{kind: ConfigMap}", "", obj(), True, id="no-conditions"),
    # global namespaces ∩ resource namespaces
    pytest.param(
        "{kind: ConfigMap}", "namespaces: {include: [shop]}\n", obj("shop"), True, id="g-include"
    ),
    pytest.param(
        "{kind: ConfigMap}", "namespaces: {include: [shop]}\n", obj("dev"), False, id="g-include-no"
    ),
    pytest.param(
        "{kind: ConfigMap}", "namespaces: {exclude: [dev]}\n", obj("dev"), False, id="g-exclude"
    ),
    pytest.param(
        "{kind: ConfigMap, namespaces: {include: ['team-*']}}",
        "namespaces: {include: ['team-*', shop]}\n",
        obj("shop"),
        False,
        id="resource-narrows-global",
    ),
    pytest.param(
        "{kind: ConfigMap, namespaces: {include: ['team-*']}}",
        "namespaces: {include: ['team-*', shop]}\n",
        obj("team-a"),
        True,
        id="both-admit",
    ),
    pytest.param(
        "{kind: ConfigMap, namespaces: {include: [shop, dev]}}",
        "namespaces: {include: [shop]}\n",
        obj("dev"),
        False,
        id="resource-cannot-widen-global",
    ),
    pytest.param(
        "{kind: ConfigMap, namespaces: {exclude: [team-b]}}",
        "namespaces: {include: ['team-*']}\n",
        obj("team-b"),
        False,
        id="resource-exclude-within-global",
    ),
    pytest.param(
        "{kind: ConfigMap, namespaces: {include: ['team-*']}}",
        "namespaces: {exclude: [team-b]}\n",
        obj("team-b"),
        False,
        id="global-exclude-beats-resource-include",
    ),
    pytest.param(
        "{kind: ConfigMap, namespaces: {include: ['/^prod-[a-z]+$/']}}",
        "",
        obj("prod-eu"),
        True,
        id="regex",
    ),
    pytest.param(
        "{kind: ConfigMap, namespaces: {include: ['/^prod-[a-z]+$/']}}",
        "",
        obj("prod-1"),
        False,
        id="regex-no",
    ),
    pytest.param(
        "{kind: ConfigMap, namespaces: {exclude: ['kube-*']}}",
        "",
        obj("kube-system"),
        False,
        id="glob-exclude",
    ),
    pytest.param(
        "{kind: ConfigMap}",
        "namespaces: {include: [shop]}\n",
        obj(None, "cluster-thing"),
        True,
        id="cluster-scoped-skips-namespaces",
    ),
    # names
    pytest.param(
        "{kind: ConfigMap, names: {include: ['web-*']}}", "", obj(name="web-1"), True, id="names-in"
    ),
    pytest.param(
        "{kind: ConfigMap, names: {include: ['web-*']}}", "", obj(name="db"), False, id="names-out"
    ),
    pytest.param(
        "{kind: ConfigMap, names: {include: ['web-*'], exclude: [web-canary]}}",
        "",
        obj(name="web-canary"),
        False,
        id="names-exclude-wins",
    ),
    pytest.param(
        "{kind: ConfigMap, names: {exclude: ['/-tmp$/']}}",
        "",
        obj(name="build-tmp"),
        False,
        id="names-exclude-regex",
    ),
    pytest.param(
        "{kind: ConfigMap, names: {exclude: ['/-tmp$/']}}",
        "",
        obj(None, "build-tmp"),
        False,
        id="names-apply-cluster-scoped",
    ),
    # labels / annotations
    pytest.param(
        "{kind: ConfigMap, labels: 'app=web'}", "", obj(labels={"app": "web"}), True, id="labels"
    ),
    pytest.param("{kind: ConfigMap, labels: 'app=web'}", "", obj(), False, id="labels-none"),
    pytest.param(
        "{kind: ConfigMap, labels: '!temp'}", "", obj(labels={"temp": "1"}), False, id="labels-not"
    ),
    pytest.param(
        "{kind: ConfigMap, annotations: 'kubewatch/notify in (yes, true)'}",
        "",
        obj(annotations={"kubewatch/notify": "yes"}),
        True,
        id="annotations",
    ),
    pytest.param(
        "{kind: ConfigMap, annotations: 'kubewatch/notify'}",
        "",
        obj(labels={"kubewatch/notify": "yes"}),
        False,
        id="annotations-not-labels",
    ),
    pytest.param(
        "{kind: ConfigMap, labels: 'app=web', names: {include: [web]}}",
        "namespaces: {include: [shop]}\n",
        obj("shop", "web", labels={"app": "web"}),
        True,
        id="all-conditions-hold",
    ),
]


@pytest.mark.parametrize(("resource", "global_", "object", "admitted"), FILTERS)
def test_object_filter(resource: str, global_: str, object: dict[str, Any], admitted: bool) -> None:
    """Global and per-resource conditions on raw objects."""
    f = object_filter(resource, global_)
    assert not f.needs_namespace_labels
    assert f.admits(object) is admitted
    assert f.admits(object) is admitted  # the cached namespace verdict agrees


def test_trivial_filter_admits_anything() -> None:
    f = object_filter("{kind: ConfigMap}")
    assert f.admits_everything
    assert f.admits({})


SELECTOR_CASES = [
    pytest.param("{kind: ConfigMap}", "namespaceSelector: env=prod\n", "prod", True, id="global"),
    pytest.param(
        "{kind: ConfigMap}", "namespaceSelector: env=prod\n", "dev", False, id="global-no"
    ),
    pytest.param(
        "{kind: ConfigMap, namespaceSelector: 'team in (a, b)'}", "", "prod", True, id="resource"
    ),
    pytest.param(
        "{kind: ConfigMap, namespaceSelector: 'team in (b)'}", "", "prod", False, id="resource-no"
    ),
    pytest.param(
        "{kind: ConfigMap, namespaceSelector: team=a}",
        "namespaceSelector: env=prod\n",
        "prod",
        True,
        id="both-hold",
    ),
    pytest.param(
        "{kind: ConfigMap, namespaceSelector: team=a}",
        "namespaceSelector: env=dev\n",
        "prod",
        False,
        id="global-fails",
    ),
    pytest.param(
        "{kind: ConfigMap}", "namespaceSelector: '!frozen'\n", "ghost", False, id="unknown-ns"
    ),
    pytest.param(
        "{kind: ConfigMap, namespaces: {exclude: [prod]}}",
        "namespaceSelector: env=prod\n",
        "prod",
        False,
        id="and-namespace-patterns",
    ),
]


@pytest.mark.parametrize(("resource", "global_", "ns", "admitted"), SELECTOR_CASES)
def test_namespace_selector(resource: str, global_: str, ns: str, admitted: bool) -> None:
    """Global and resource namespaceSelector, both against the namespace's labels."""
    nsl = NamespaceLabels()
    nsl.on_add(namespace("prod", env="prod", team="a"), True)
    nsl.on_add(namespace("dev", env="dev", team="b"), True)
    f = object_filter(resource, global_, nsl)
    assert f.needs_namespace_labels
    assert f.admits(obj(ns)) is admitted


def test_namespace_selector_follows_label_changes() -> None:
    """The filter sees a namespace's labels as the Namespace informer reports them."""
    nsl = NamespaceLabels()
    f = object_filter("{kind: ConfigMap}", "namespaceSelector: notify=yes\n", nsl)
    cm = obj("shop")
    assert not f.admits(cm)  # namespace not known yet
    nsl.on_add(namespace("shop"), True)
    assert not f.admits(cm)
    nsl.on_update(namespace("shop"), namespace("shop", notify="yes"))
    assert f.admits(cm)
    nsl.on_update(namespace("shop", notify="yes"), namespace("shop", notify="no"))
    assert not f.admits(cm)
    nsl.on_add(namespace("shop", notify="yes"), False)
    assert f.admits(cm)
    nsl.on_delete(DeletedFinalStateUnknown("shop", namespace("shop", notify="yes")))
    assert not f.admits(cm)
    assert f.admits(obj(None, "node-1"))  # cluster-scoped: no namespace conditions


def test_namespace_selector_needs_namespace_labels() -> None:
    """Building without NamespaceLabels when a selector applies fails loudly."""
    with pytest.raises(ValueError, match="namespaceSelector"):
        object_filter("{kind: ConfigMap, namespaceSelector: env=prod}")


def test_filter_correct_for_server_side_excluded_namespaces() -> None:
    """Plain excluded names also become field selectors; the filter still rejects them."""
    f = object_filter("{kind: ConfigMap}", "namespaces: {exclude: [kube-system, default]}\n")
    assert not f.admits(obj("kube-system"))
    assert not f.admits(obj("default"))
    assert f.admits(obj("shop"))


SELECTORS = [
    "app=web",
    "app==web",
    "app!=web",
    "env in (prod, staging)",
    "env notin (dev)",
    "canary",
    "!canary",
    "app=web, env notin (dev), !canary",
    "example.com/team=a",
    "app=",
]
LABEL_SETS = [
    {},
    {"app": "web"},
    {"app": "db", "env": "dev"},
    {"app": "web", "env": "prod", "canary": ""},
    {"env": "staging", "example.com/team": "a"},
    {"app": ""},
]


@pytest.mark.parametrize("selector", SELECTORS)
def test_filter_selectors_agree_with_patterns(selector: str) -> None:
    """The filter's flattened selectors decide exactly as kubewatch.match.patterns does."""
    reference = parse_selector(selector)
    by_labels = object_filter(f"{{kind: ConfigMap, labels: '{selector}'}}")
    by_annotations = object_filter(f"{{kind: ConfigMap, annotations: '{selector}'}}")
    for labels in [*LABEL_SETS, None]:
        expected = reference(labels)
        assert by_labels.admits(obj(labels=labels)) is expected, labels
        assert by_annotations.admits(obj(annotations=labels)) is expected, labels
