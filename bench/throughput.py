"""Watch events per second through the whole pipeline, on one core, to a null sink.

Decode (orjson, per JSON line) → Reflector → Store (compact) → diff → Event → the same
per-event path as ``kubewatch run`` (``Fanout`` → ``EntryHandler`` with its filter → metrics
→ ``Router`` → ``Dispatcher`` with the default 4 workers and the delivery metric) → null
sink, for ~5 KiB Pods with a realistic mix of updates: status-only churn (not reported), an
image change, a label change. In the same run, a baseline consumes the same lines with the
kubernetes client's ``watch.Watch`` and its typed models (``V1Pod``). The process is pinned
to one core (``sched_setaffinity``), so the dispatcher's threads share it with the watch.

    python bench/throughput.py [--pods 2000] [--events 40000]

The last line printed is ``RESULT events_per_s=… baseline_per_s=… ratio=… events_per_cpu_s=…``
(CPU time of the process, all threads: steadier than wall time on a shared machine).
"""

from __future__ import annotations

import argparse
import copy
import os
import time
from datetime import datetime, timezone
from typing import Any

import orjson
from kubernetes import watch
from podparts import token_volume, toleration

from kubewatch.config import Config
from kubewatch.delivery import Dispatcher, sink_policies
from kubewatch.events import Event
from kubewatch.kube import SharedInformer
from kubewatch.kube.discovery import ResourceType
from kubewatch.kube.watchstream import decode_line
from kubewatch.observability.metrics import Metrics, seconds_since
from kubewatch.routing import Router
from kubewatch.watch.filters import NamespaceLabels
from kubewatch.watch.normalize import compact, significant
from kubewatch.watch.pipeline import Fanout, build_entry
from kubewatch.watch.plan import WatchPlan

PODS = ResourceType(
    group="",
    version="v1",
    kind="Pod",
    plural="pods",
    singular="pod",
    namespaced=True,
    short_names=("po",),
    verbs=frozenset({"list", "watch"}),
)


def make_pod(i: int) -> dict[str, Any]:
    """A Pod as a real cluster serves it (~5 KiB of JSON, managedFields included)."""
    name = f"web-7d9f8b6c5d-{i:05d}"
    env = [{"name": f"SETTING_{k}", "value": f"value-{k}-{i}"} for k in range(40)]
    return {
        "kind": "Pod",
        "apiVersion": "v1",
        "metadata": {
            "name": name,
            "namespace": f"team-{i % 20}",
            "uid": f"6f1c2b8e-0000-4000-8000-{i:012d}",
            "resourceVersion": str(100000 + i),
            "creationTimestamp": "2026-11-26T10:00:00Z",
            "generateName": "web-7d9f8b6c5d-",
            "labels": {"app": "web", "pod-template-hash": "7d9f8b6c5d", "tier": "frontend"},
            "annotations": {"prometheus.io/scrape": "true", "prometheus.io/port": "9090"},
            "ownerReferences": [
                {
                    "apiVersion": "apps/v1",
                    "kind": "ReplicaSet",
                    "name": "web-7d9f8b6c5d",
                    "uid": "a-b-c-d",
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
            "managedFields": [
                {
                    "manager": "kube-controller-manager",
                    "operation": "Update",
                    "apiVersion": "v1",
                    "time": "2026-11-26T10:00:00Z",
                    "fieldsType": "FieldsV1",
                    "fieldsV1": {
                        "f:metadata": {"f:labels": {".": {}, "f:app": {}}},
                        "f:spec": {
                            "f:containers": {f'k:{{"name":"web{k}"}}': {} for k in range(6)}
                        },
                    },
                },
                {
                    "manager": "kubelet",
                    "operation": "Update",
                    "apiVersion": "v1",
                    "time": "2026-11-26T10:00:05Z",
                    "fieldsType": "FieldsV1",
                    "fieldsV1": {
                        "f:status": {
                            "f:conditions": {},
                            "f:containerStatuses": {},
                            "f:podIP": {},
                            "f:startTime": {},
                        }
                    },
                },
            ],
        },
        "spec": {
            "containers": [
                {
                    "name": "web",
                    "image": "registry.example.com/shop/web:1.25.3",
                    "ports": [{"containerPort": 8080, "protocol": "TCP", "name": "http"}],
                    "env": env,
                    "resources": {
                        "limits": {"cpu": "500m", "memory": "256Mi"},
                        "requests": {"cpu": "100m", "memory": "128Mi"},
                    },
                    "volumeMounts": [
                        {"name": "config", "mountPath": "/etc/web"},
                        {
                            "name": "kube-api-access-abcde",
                            "readOnly": True,
                            "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount",
                        },
                    ],
                    "livenessProbe": {
                        "httpGet": {"path": "/healthz", "port": 8080, "scheme": "HTTP"},
                        "periodSeconds": 10,
                        "timeoutSeconds": 1,
                    },
                    "terminationMessagePath": "/dev/termination-log",
                    "imagePullPolicy": "IfNotPresent",
                }
            ],
            "volumes": [
                {"name": "config", "configMap": {"name": "web-config", "defaultMode": 420}},
                token_volume("kube-api-access-abcde"),
            ],
            "restartPolicy": "Always",
            "terminationGracePeriodSeconds": 30,
            "dnsPolicy": "ClusterFirst",
            "serviceAccountName": "default",
            "nodeName": f"node-{i % 50}",
            "schedulerName": "default-scheduler",
            "tolerations": [toleration("not-ready")],
        },
        "status": {
            "phase": "Running",
            "conditions": [
                {"type": t, "status": "True", "lastTransitionTime": "2026-11-26T10:00:05Z"}
                for t in ("Initialized", "Ready", "ContainersReady", "PodScheduled")
            ],
            "hostIP": "10.0.0.1",
            "podIP": f"10.1.{i // 250}.{i % 250}",
            "startTime": "2026-11-26T10:00:00Z",
            "containerStatuses": [
                {
                    "name": "web",
                    "ready": True,
                    "restartCount": 0,
                    "image": "registry.example.com/shop/web:1.25.3",
                    "imageID": "registry.example.com/shop/web@sha256:" + "ab" * 32,
                    "containerID": "containerd://" + "cd" * 32,
                    "state": {"running": {"startedAt": "2026-11-26T10:00:04Z"}},
                }
            ],
            "qosClass": "Burstable",
        },
    }


def make_stream(pods: int, events: int) -> tuple[list[dict[str, Any]], list[bytes]]:
    """Initial Pods, then watch lines: 70% status churn, 15% image, 15% label changes."""
    objects = [make_pod(i) for i in range(pods)]
    current = [copy.deepcopy(p) for p in objects]
    rv = 200000
    lines = []
    for n in range(events):
        pod = current[n % pods]
        rv += 1
        pod["metadata"]["resourceVersion"] = str(rv)
        kind = n % 20
        if kind < 14:
            pod["status"]["containerStatuses"][0]["restartCount"] += 1
        elif kind < 17:
            pod["spec"]["containers"][0]["image"] = f"registry.example.com/shop/web:1.{rv}"
        else:
            pod["metadata"]["labels"]["rollout"] = str(rv)
        lines.append(orjson.dumps({"type": "MODIFIED", "object": pod}) + b"\n")
    return objects, lines


class NullSink:
    name = "null"

    def __init__(self) -> None:
        self.count = 0

    def send(self, event: Event) -> None:
        self.count += 1

    def close(self) -> None:
        pass


class Pipeline:
    """What ``App`` wires for one informer: its Fanout, then ``App.deliver``'s steps."""

    def __init__(self, queue_size: int) -> None:
        self.config = Config.model_validate(
            {
                "cluster": "bench",
                "resources": [{"kind": "Pod"}],
                "sinks": {"devnull": {"type": "stdout"}},
                "delivery": {"queueSize": queue_size},
            }
        )
        self.sink = NullSink()
        self.metrics = Metrics()
        self.router = Router.build(self.config)
        self.dispatcher = Dispatcher(
            {"devnull": self.sink},
            self.config.delivery,
            policies=sink_policies(self.config),
            on_delivered=self._delivered,
        )
        plan = WatchPlan(0, self.config.resources[0], PODS, (None,), None)
        entry = build_entry(
            self.config, plan, "bench", NamespaceLabels(), datetime.now(timezone.utc)
        )
        self.fanout = Fanout([entry], self.deliver)
        self.reported = 0

    def deliver(self, event: Event) -> None:  # App.deliver, leader
        self.reported += 1
        self.metrics.observe_event(event.resource, event.type.value)
        sinks = self.router.route(event)
        if sinks:
            self.dispatcher.submit(event, sinks)

    def _delivered(self, sink: str, event: Event) -> None:  # App._delivered
        self.metrics.observe_delivery(sink, seconds_since(event.observed_at))


def run_pipeline(
    objects: list[dict[str, Any]], lines: list[bytes]
) -> tuple[float, int, int, float]:
    pipeline = Pipeline(queue_size=len(lines) + 1)
    pipeline.dispatcher.start()
    informer = SharedInformer(
        "pods",
        None,  # type: ignore[arg-type]
        kind="Pod",
        api_version="v1",
        transform=compact,
        significant=significant,
    )
    informer.add_handler(pipeline.fanout)
    informer.replace_begin()
    for pod in copy.deepcopy(objects):
        informer.replace_item(pod)
    informer.replace_end()
    informer._on_listed(len(objects))

    def stream() -> Any:
        for line in lines:
            event = decode_line(line, "/api/v1/pods")
            if event is not None:
                yield event

    started, cpu = time.perf_counter(), time.process_time()
    consumed = informer.reflector._consume(stream())
    pipeline.dispatcher.close(timeout=60)
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    stats = pipeline.dispatcher.stats()["devnull"]
    assert consumed == len(lines) and pipeline.sink.count == pipeline.reported, stats
    return elapsed, pipeline.reported, informer.store.nbytes(), cpu


def run_baseline(lines: list[bytes]) -> float:
    w = watch.Watch()
    texts = [line.decode() for line in lines]
    started = time.perf_counter()
    for text in texts:
        w.unmarshal_event(text, "V1Pod")
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pods", type=int, default=2000)
    parser.add_argument("--events", type=int, default=40000)
    parser.add_argument("--baseline-events", type=int, default=5000)
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core
    objects, lines = make_stream(args.pods, args.events)
    size = sum(len(orjson.dumps(p)) for p in objects) / len(objects)
    elapsed, reported, cached, cpu = run_pipeline(objects, lines)
    per_s = len(lines) / elapsed
    base_elapsed = run_baseline(lines[: args.baseline_events])
    base_per_s = args.baseline_events / base_elapsed
    per_pod = cached / len(objects) / 1024
    print(f"pod JSON size: {size / 1024:.1f} KiB; cache payload {per_pod:.1f} KiB/pod")
    print(
        f"pipeline: {len(lines)} events in {elapsed:.2f}s, {reported} reported "
        f"({len(lines) - reported} status-only skipped): {per_s:,.0f} events/s, "
        f"{elapsed / len(lines) * 1e6:.0f} µs/event; CPU {cpu:.2f}s "
        f"({len(lines) / cpu:,.0f} events per CPU-s, all threads)"
    )
    print(f"baseline (watch.Watch + V1Pod): {base_per_s:,.0f} events/s")
    print(
        f"RESULT events_per_s={per_s:.0f} baseline_per_s={base_per_s:.0f} "
        f"ratio={per_s / base_per_s:.1f} events_per_cpu_s={len(lines) / cpu:.0f}"
    )


if __name__ == "__main__":
    main()
