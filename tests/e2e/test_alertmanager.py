"""The alertmanager sink against a real Alertmanager (Debian's ``prometheus-alertmanager``).

Alerts sent through the sink appear in ``GET /api/v2/alerts`` with kubewatch's labels; a
resolve (a health alert resolved, a delete with ``resolveOnDelete``) sets ``endsAt``,
after which Alertmanager no longer lists the alert as active; with ``urls`` one replica
down does not fail the delivery. Last, kubewatch itself: a ConfigMap created on the API
server becomes an alert.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import pytest
from kubernetes import client as k8s

from kubewatch.config.incident_sinks import AlertmanagerSinkConfig
from kubewatch.errors import RetryableError
from kubewatch.events import EventType
from kubewatch.sinks.alertmanager import AlertmanagerSink
from kubewatch.timefmt import utc_now
from tests.e2e.conftest import Kubewatch, wait_for
from tests.e2e.servers import Alertmanager, free_port
from tests.unit.sinks.alert_events import alert_event
from tests.unit.sinks.test_sinks import make_event


def labels_of(am: Alertmanager) -> list[dict[str, str]]:
    return [a["labels"] for a in am.alerts()]


def sink(*urls: str, **kw: Any) -> AlertmanagerSink:
    config = AlertmanagerSinkConfig(type="alertmanager", urls=urls, **kw)
    return AlertmanagerSink("am", config)


def test_alerts_appear_with_their_labels(alertmanager: Alertmanager) -> None:
    event = make_event("shop/web", observed_at=utc_now(), summary="<b>&</b> @everyone *x*")
    with sink(alertmanager.url, labels={"team": "shop"}) as am:
        am.send(event)
    (alert,) = wait_for(alertmanager.alerts, what="the alert")
    assert alert["labels"] == {
        "alertname": "KubewatchEvent",
        "cluster": "test",
        "namespace": "shop",
        "kind": "ConfigMap",
        "name": "web",
        "reason": "Updated",
        "team": "shop",
    }
    assert alert["annotations"]["summary"] == "<b>&</b> @everyone *x*"
    assert alert["annotations"]["diff"] == "data.mode: a → b"
    assert alert["generatorURL"].startswith("kubewatch://?")
    assert alert["status"]["state"] == "active"


def test_a_resolved_health_alert_ends_the_alert(alertmanager: Alertmanager) -> None:
    firing = alert_event("firing", observed_at=utc_now())
    with sink(alertmanager.url) as am:
        am.send(firing)
        (alert,) = wait_for(alertmanager.alerts, what="the firing alert")
        assert alert["labels"]["alertname"] == "CrashLoopBackOff"
        assert alert["labels"]["container"] == "app"
        am.send(alert_event("resolved", observed_at=utc_now()))
    wait_for(lambda: alertmanager.alerts() == [], what="the alert to be resolved")


def test_a_delete_resolves_what_the_object_fired(alertmanager: Alertmanager) -> None:
    update = make_event("shop/web", observed_at=utc_now())
    delete = dataclasses.replace(update, type=EventType.DELETE, observed_at=utc_now())
    with sink(alertmanager.url, resolve_on_delete=True) as am:
        am.send(update)
        wait_for(alertmanager.alerts, what="the alert")
        am.send(delete)
    wait_for(lambda: alertmanager.alerts() == [], what="the delete to resolve it")


def test_one_replica_down_still_delivers(alertmanager: Alertmanager) -> None:
    down = f"http://127.0.0.1:{free_port()}"
    with sink(down, alertmanager.url) as am:
        am.send(make_event(observed_at=utc_now()))
    assert len(wait_for(alertmanager.alerts, what="the alert")) == 1
    with sink(down) as am, pytest.raises(RetryableError):
        am.send(make_event(observed_at=utc_now()))


def test_kubewatch_turns_a_configmap_into_an_alert(
    alertmanager: Alertmanager,
    api: k8s.ApiClient,
    namespace: str,
    start_kubewatch: Callable[..., Kubewatch],
) -> None:
    kw = start_kubewatch(
        {
            "cluster": "e2e",
            "namespaces": {"include": [namespace]},
            "resources": [{"kind": "ConfigMap"}],
            "sinks": {"am": {"type": "alertmanager", "url": alertmanager.url}},
        }
    )
    kw.wait_synced(1)
    k8s.CoreV1Api(api).create_namespaced_config_map(
        namespace, {"metadata": {"name": "settings"}, "data": {"mode": "on"}}
    )
    wanted = {
        "alertname": "KubewatchEvent",
        "cluster": "e2e",
        "namespace": namespace,
        "kind": "ConfigMap",
        "name": "settings",
        "reason": "Created",
    }
    wait_for(lambda: wanted in labels_of(alertmanager), what="the ConfigMap's alert")
