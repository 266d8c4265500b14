"""The sample events every template renders for when it is loaded: one of each kind of
event (create, update with changes, delete, Kubernetes Event, digest), so a template
that fails on any of them fails at load, not at 3 a.m."""

from __future__ import annotations

from typing import Any

from kubewatch.events import (
    Change,
    DigestInfo,
    Event,
    EventType,
    InvolvedObject,
    KubeEventInfo,
)

# --------------------------------------------------------------------------- samples


def _samples() -> tuple[tuple[str, Event], ...]:
    """Events every template is rendered for at load: one of each shape the contract has.

    Their values carry what breaks naive templates: quotes, backslashes, line breaks,
    ``<!channel>`` and markdown, a null namespace, numbers and null change values.
    """
    base: dict[str, Any] = {"cluster": "prod-eu", "observed_at": "2026-11-26T22:10:51.123Z"}
    deployment: dict[str, Any] = {
        **base,
        "kind": "Deployment",
        "api_version": "apps/v1",
        "resource": "deployments.apps",
        "namespace": "shop",
    }
    backoff = KubeEventInfo(
        type="Warning",
        reason="BackOff",
        message='Back-off restarting failed container web in pod "web-7d4b9c-x2k4p"',
        count=5,
        involved=InvolvedObject("Pod", "shop", "web-7d4b9c-x2k4p", "5b0e6c1a-pod"),
        source="kubelet",
        first_seen="2026-11-26T22:01:10Z",
        last_seen="2026-11-26T22:10:50Z",
    )
    burst = DigestInfo(
        count=12,
        ids=tuple(f"{i:032x}" for i in range(12)),
        names=tuple(f"shop/web-{i}" for i in range(12)),
    )
    changes = (
        Change("spec.replicas", 1, 3),
        Change(
            'spec.template.metadata.annotations["note"]',
            'say "hi" \\ <!channel>',
            "line 1\nline 2 [click](https://evil.example) @everyone",
        ),
        Change("metadata.labels.tier", None, "web", "added"),
        Change("spec.template.spec.containers[web].args", ["--debug", "-v"], None, "removed"),
    )
    return (
        (
            "create",
            Event(
                type=EventType.CREATE,
                **deployment,
                name="web",
                uid="8c3f9a52-0b7e-4b8e-9d55-2f6b1c1e7a10",
                resource_version="48211",
                labels={"app": "web", "app.kubernetes.io/name": "web"},
                summary="[prod-eu] Deployment shop/web created",
            ),
        ),
        (
            "update",
            Event(
                type=EventType.UPDATE,
                **deployment,
                name="web",
                uid="8c3f9a52-0b7e-4b8e-9d55-2f6b1c1e7a10",
                resource_version="48213",
                labels={"app": "web"},
                changes=changes,
                summary="[prod-eu] Deployment shop/web updated: spec.replicas 1 → 3, spec.temp"
                'late.metadata.annotations["note"] say "hi" \\ <!channel> → line 1\nline 2 '
                "[click](https://e… (+2 more)",
            ),
        ),
        (
            "delete (final state unknown)",
            Event(
                type=EventType.DELETE,
                **base,
                kind="Namespace",
                api_version="v1",
                resource="namespaces",
                namespace=None,
                name="team-old",
                uid="0f1e2d3c-ns",
                resource_version="47001",
                summary="[prod-eu] Namespace team-old deleted (seen after a watch gap; "
                "last known state)",
                final_state_unknown=True,
            ),
        ),
        (
            "Kubernetes Event",
            Event(
                type=EventType.UPDATE,
                **base,
                kind="Event",
                api_version="v1",
                resource="events",
                namespace="shop",
                name="web-7d4b9c-x2k4p.17a2b3c4d5e6f708",
                uid="3a4b5c6d-event",
                resource_version="48300",
                summary="[prod-eu] Warning BackOff Pod shop/web-7d4b9c-x2k4p: Back-off "
                'restarting failed container web in pod "web-7d4b9c-x2k4p" (×5)',  # noqa: RUF001
                k8s_event=backoff,
            ),
        ),
        (
            "digest",
            Event(
                type=EventType.DELETE,
                **{**deployment, "kind": "Pod", "api_version": "v1", "resource": "pods"},
                name="",
                uid="",
                resource_version="",
                summary="[prod-eu] 12 Pods deleted in namespace shop: web-0, web-1, web-2 … "
                "and 9 more",
                digest=burst,
            ),
        ),
        (
            "all fields set",
            Event(
                type=EventType.UPDATE,
                **deployment,
                name="web",
                uid="8c3f9a52-0b7e-4b8e-9d55-2f6b1c1e7a10",
                resource_version="48214",
                labels={"app": "web"},
                changes=changes,
                summary="[prod-eu] Deployment shop/web updated: spec.replicas 1 → 3",
                final_state_unknown=True,
                k8s_event=backoff,
                digest=burst,
            ),
        ),
    )


SAMPLES: tuple[tuple[str, Event], ...] = _samples()
"""(name, event) pairs every template renders for at load (see the module docstring)."""
