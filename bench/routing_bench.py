"""Time kubewatch.routing: ``Router.route`` per event and ``ObjectFilter.admits`` per object.

Two configurations each:

* example: the README's routing example (a glob ``drop``, three routes with kinds,
  namespaces, types and reasons) over a mix of events; and a filter with global and
  per-resource namespace patterns, a namespace selector, a label selector and names;
* trivial: no drop, no routes, no filter conditions (the fast paths).

    python bench/routing_bench.py

The last line is ``RESULT route_us=<float> filter_us=<float>`` (the example
configuration, µs per call averaged over its mix of inputs).
"""

from __future__ import annotations

import timeit
from collections.abc import Callable
from typing import Any

from kubewatch.config import Config, parse_config
from kubewatch.events import Change, Event, EventType, InvolvedObject, KubeEventInfo
from kubewatch.routing import Router
from kubewatch.watch.filters import NamespaceLabels, ObjectFilter

REPEAT = 7
"""Best of several runs: the minimum is the least noisy estimate of the cost."""
NUMBER = 20_000
"""Calls per run: long enough to dwarf timer resolution, short enough for a quick run."""

EXAMPLE = """
namespaces: {exclude: ["kube-*"]}
namespaceSelector: "env in (prod, staging)"
resources:
  - kind: Deployment
    namespaces: {include: ["team-*", payments, "/^shop-[a-z]+$/"]}
    labels: "app, tier!=cache"
    names: {exclude: ["*-canary"]}
sinks:
  slack-payments: {type: stdout}
  slack-oncall: {type: stdout}
  audit: {type: stdout}
  console: {type: stdout}
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

TRIVIAL = """
resources: [{kind: Deployment}]
sinks: {console: {type: stdout}, audit: {type: stdout}}
"""


def event(
    type_: EventType, kind: str, namespace: str, name: str, reason: str | None = None
) -> Event:
    k8s = None
    if reason is not None:
        k8s = KubeEventInfo("Warning", reason, "", 1, InvolvedObject("Pod", namespace, name))
    return Event(
        type=type_,
        cluster="bench",
        kind=kind,
        api_version="apps/v1",
        resource="deployments.apps",
        namespace=namespace,
        name=name,
        uid="u",
        resource_version="1",
        observed_at="2026-01-01T00:00:00.000Z",
        labels={"app": name, "tier": "web"},
        changes=(Change("spec.replicas", 1, 2),) if type_ is EventType.UPDATE else (),
        k8s_event=k8s,
    )


EVENTS = [
    event(EventType.UPDATE, "Deployment", "payments", "api"),  # first route, stop
    event(EventType.CREATE, "Deployment", "payments", "api"),  # falls through to console
    event(EventType.UPDATE, "Deployment", "scratch-7", "tmp"),  # dropped
    event(EventType.CREATE, "Event", "shop", "web-1.17a", reason="BackOff"),  # alert + console
    event(EventType.CREATE, "Event", "shop", "web-1.17b", reason="Pulled"),  # console
    event(EventType.UPDATE, "Deployment", "team-a", "web"),  # console
]


def deployment(namespace: str, name: str, labels: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"namespace": namespace, "name": name, "labels": labels, "uid": "u"},
        "spec": {"replicas": 1},
    }


OBJECTS = [
    deployment("team-a", "web", {"app": "web", "tier": "web"}),  # admitted
    deployment("payments", "api", {"app": "api"}),  # admitted
    deployment("shop-eu", "web-canary", {"app": "web"}),  # name excluded
    deployment("team-b", "cache", {"app": "redis", "tier": "cache"}),  # label fails
    deployment("kube-system", "dns", {"app": "dns"}),  # namespace excluded
    deployment("team-dev", "web", {"app": "web"}),  # namespace selector fails
]


def namespace_labels() -> NamespaceLabels:
    nsl = NamespaceLabels()
    for name, env in [
        ("team-a", "prod"),
        ("team-b", "prod"),
        ("team-dev", "dev"),
        ("payments", "prod"),
        ("shop-eu", "staging"),
        ("kube-system", "prod"),
    ]:
        nsl.on_add({"metadata": {"name": name, "labels": {"env": env}}}, True)
    return nsl


def per_call_us(fn: Callable[[Any], object], inputs: list[Any]) -> float:
    """µs per call of ``fn`` over ``inputs`` in turn, best of REPEAT runs."""
    rounds = max(1, NUMBER // len(inputs))

    def run() -> None:
        for _ in range(rounds):
            for item in inputs:
                fn(item)

    best = min(timeit.repeat(run, number=1, repeat=REPEAT))
    return best / (rounds * len(inputs)) * 1e6


def measure(cfg: Config, nsl: NamespaceLabels) -> tuple[float, float]:
    router = Router.build(cfg)
    object_filter = ObjectFilter.build(cfg, cfg.resources[0], nsl)
    return per_call_us(router.route, EVENTS), per_call_us(object_filter.admits, OBJECTS)


def main() -> None:
    nsl = namespace_labels()
    example = measure(parse_config(EXAMPLE), nsl)
    trivial = measure(parse_config(TRIVIAL), nsl)
    print(f"{'config':<10}{'route µs':>10}{'admits µs':>11}")
    for label, (route_us, filter_us) in (("example", example), ("trivial", trivial)):
        print(f"{label:<10}{route_us:>10.3f}{filter_us:>11.3f}")
    print(f"RESULT route_us={example[0]:.3f} filter_us={example[1]:.3f}")


if __name__ == "__main__":
    main()
