"""Time kubewatch.match.diff on two ~5 KiB Pods, as the informer hands them over (orjson dicts).

Cases: one changed field (a container image) and identical content parsed twice (the
common "nothing we care about changed" update), both with DEFAULT_IGNORE_TREE; the same
two with ``only`` set to a typical ``updates.watch`` list (ONLY), plus a container change
outside it; a status-only update (the most common one) with and without ``only``; and
``path_matches`` of the changed path against ONLY.

    python bench/diff_bench.py

The last line is ``RESULT diff_us_per_pair=<float>`` (the changed case, µs per diff).
"""

from __future__ import annotations

import timeit
from typing import Any

import orjson
from podparts import token_volume, toleration

from kubewatch.match.diff import diff
from kubewatch.match.paths import DEFAULT_IGNORE_TREE, PathTree, compile_paths, path_matches

REPEAT = 7
"""Best of several runs: the minimum is the least noisy estimate of the cost."""

ONLY = compile_paths(["spec.containers[*].image", "metadata.labels.*", "spec.nodeName"])
"""A typical per-resource ``updates.watch`` list."""


def make_pod() -> dict[str, Any]:
    """A Pod shaped like a real Deployment replica: two containers, env, probes, status."""

    def container(name: str, image: str, port: int) -> dict[str, Any]:
        return {
            "name": name,
            "image": image,
            "imagePullPolicy": "IfNotPresent",
            "args": ["--port", str(port), "--log-level=info", "--metrics"],
            "ports": [{"name": "http", "containerPort": port, "protocol": "TCP"}],
            "env": [{"name": f"VAR_{i}", "value": f"value-{i}-{name}"} for i in range(10)]
            + [
                {
                    "name": "POD_IP",
                    "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "status.podIP"}},
                }
            ],
            "resources": {
                "limits": {"cpu": "500m", "memory": "256Mi"},
                "requests": {"cpu": "100m", "memory": "128Mi"},
            },
            "livenessProbe": {
                "httpGet": {"path": "/healthz", "port": port, "scheme": "HTTP"},
                "initialDelaySeconds": 10,
                "periodSeconds": 10,
                "timeoutSeconds": 1,
                "successThreshold": 1,
                "failureThreshold": 3,
            },
            "readinessProbe": {
                "httpGet": {"path": "/ready", "port": port, "scheme": "HTTP"},
                "periodSeconds": 5,
                "timeoutSeconds": 1,
                "successThreshold": 1,
                "failureThreshold": 3,
            },
            "volumeMounts": [
                {"name": "config", "mountPath": "/etc/app", "readOnly": True},
                {
                    "name": "kube-api-access-x7k2p",
                    "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount",
                    "readOnly": True,
                },
            ],
            "terminationMessagePath": "/dev/termination-log",
            "terminationMessagePolicy": "File",
        }

    def condition(kind: str) -> dict[str, Any]:
        return {
            "type": kind,
            "status": "True",
            "lastProbeTime": None,
            "lastTransitionTime": "2026-11-26T22:10:51Z",
        }

    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "web-7d9f8b6c5d-x2k4q",
            "generateName": "web-7d9f8b6c5d-",
            "namespace": "production",
            "uid": "1f6a3c2e-8b1d-4c5e-9f7a-2b3c4d5e6f70",
            "resourceVersion": "123456789",
            "creationTimestamp": "2026-11-26T22:10:41Z",
            "labels": {
                "app.kubernetes.io/name": "web",
                "app.kubernetes.io/instance": "web-production",
                "pod-template-hash": "7d9f8b6c5d",
            },
            "annotations": {
                "kubectl.kubernetes.io/restartedAt": "2026-11-26T22:10:00Z",
                "prometheus.io/scrape": "true",
                "prometheus.io/port": "9090",
            },
            "ownerReferences": [
                {
                    "apiVersion": "apps/v1",
                    "kind": "ReplicaSet",
                    "name": "web-7d9f8b6c5d",
                    "uid": "0a1b2c3d-4e5f-6071-8293-a4b5c6d7e8f9",
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": {
            "containers": [
                container("web", "registry.example.com/web:1.2.3", 8080),
                container("sidecar", "registry.example.com/proxy:0.9.1", 9090),
            ],
            "volumes": [
                {"name": "config", "configMap": {"name": "web-config", "defaultMode": 420}},
                token_volume("kube-api-access-x7k2p", defaultMode=420),
            ],
            "restartPolicy": "Always",
            "terminationGracePeriodSeconds": 30,
            "dnsPolicy": "ClusterFirst",
            "serviceAccountName": "web",
            "nodeName": "node-3",
            "securityContext": {"runAsNonRoot": True, "fsGroup": 2000},
            "schedulerName": "default-scheduler",
            "tolerations": [
                toleration("not-ready"),
                toleration("unreachable"),
            ],
            "priority": 0,
            "enableServiceLinks": True,
            "preemptionPolicy": "PreemptLowerPriority",
        },
        "status": {
            "phase": "Running",
            "conditions": [
                condition(k) for k in ("Initialized", "Ready", "ContainersReady", "PodScheduled")
            ],
            "hostIP": "10.0.0.13",
            "podIP": "10.244.3.17",
            "podIPs": [{"ip": "10.244.3.17"}],
            "startTime": "2026-11-26T22:10:41Z",
            "qosClass": "Burstable",
        },
    }


def per_call_us(old: dict[str, Any], new: dict[str, Any], only: PathTree | None = None) -> float:
    return _best_us(lambda: diff(old, new, DEFAULT_IGNORE_TREE, only=only))


def _best_us(call: Any) -> float:
    timer = timeit.Timer(call)
    number, _ = timer.autorange()
    return min(timer.repeat(REPEAT, number)) / number * 1e6


def main() -> None:
    raw = orjson.dumps(make_pod())
    old = orjson.loads(raw)
    same = orjson.loads(raw)  # equal content, distinct objects: what a no-op update looks like
    changed = orjson.loads(raw)
    changed["spec"]["containers"][0]["image"] = "registry.example.com/web:1.2.4"

    found = diff(old, changed, DEFAULT_IGNORE_TREE)
    assert [c.path for c in found] == ["spec.containers[web].image"], found
    assert diff(old, same, DEFAULT_IGNORE_TREE) == []
    assert diff(old, changed, DEFAULT_IGNORE_TREE, only=ONLY) == found
    assert diff(old, same, DEFAULT_IGNORE_TREE, only=ONLY) == []
    unwatched = orjson.loads(raw)
    unwatched["spec"]["containers"][0]["args"].append("--verbose")
    assert diff(old, unwatched, DEFAULT_IGNORE_TREE, only=ONLY) == []
    status = orjson.loads(raw)  # the most common update: a controller writes status
    status["metadata"]["resourceVersion"] = "123456790"
    status["status"]["conditions"][1]["lastTransitionTime"] = "2026-11-26T22:11:02Z"
    assert diff(old, status, DEFAULT_IGNORE_TREE) == []
    assert diff(old, status, DEFAULT_IGNORE_TREE, only=ONLY) == []
    assert path_matches(found[0].path, ONLY)

    changed_us = per_call_us(old, changed)
    identical_us = per_call_us(old, same)
    only_changed_us = per_call_us(old, changed, ONLY)
    only_identical_us = per_call_us(old, same, ONLY)
    only_unwatched_us = per_call_us(old, unwatched, ONLY)
    status_us = per_call_us(old, status)
    only_status_us = per_call_us(old, status, ONLY)
    matches_us = _best_us(lambda: path_matches("spec.containers[web].image", ONLY))
    print(f"pod size: {len(raw)} bytes of JSON")
    print(f"changed (one container image): {changed_us:.2f} us/pair")
    print(f"identical content, distinct objects: {identical_us:.2f} us/pair")
    print(f"only, changed (watched image): {only_changed_us:.2f} us/pair")
    print(f"only, identical content: {only_identical_us:.2f} us/pair")
    print(f"only, changed outside watched paths: {only_unwatched_us:.2f} us/pair")
    print(f"status-only update: {status_us:.2f} us/pair, with only: {only_status_us:.2f}")
    print(f"path_matches (cached parse): {matches_us:.3f} us/call")
    print(f"RESULT diff_us_per_pair={changed_us:.2f}")


if __name__ == "__main__":
    main()
