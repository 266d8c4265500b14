"""Operator mode at scale: 100 Notifiers on ConfigMaps in 100 namespaces.

On a real API server (the chart's CRDs are applied first), ``python -m kubewatch run`` with
``tenancy.enabled`` is started and synced; then N namespaces with one Notifier each
(ConfigMaps, one webhook sink) are created at once. Measured:

* **reconcile** — seconds from the first create until every Notifier's status says
  ``Ready`` for its generation (kubewatch checked, compiled, attached it and wrote the
  status), and that divided by N;
* **RSS** — kubewatch's VmRSS before the Notifiers and once all are Ready: the delta per
  Notifier (its router, dispatcher, entries; the ConfigMap informer is shared);
* **informers** — ``kubewatch_informers{resource="configmaps"}`` from ``/metrics``: 1.

    source /tmp/kube-bench/env   # ../shared/kube/up.sh /tmp/kube-bench
    python bench/tenancy.py [--kubeconfig FILE] [--notifiers 100]

The last line is ``RESULT notifiers=… reconcile_s=… per_notifier_ms=… rss_delta_kib=…
rss_per_notifier_kib=… configmap_informers=…``.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
import urllib.request
from pathlib import Path
from typing import Any

import benchlib
import yaml

from kubewatch.errors import ApiError
from kubewatch.kube.client import ClusterClient

CRDS = Path(__file__).resolve().parents[1] / "helm" / "kubewatch" / "crds"
NOTIFIERS = "/apis/kubewatch.io/v1alpha1"
PORT = re.compile(r"serving /metrics, /healthz, /readyz on port (\d+)")
SETTLE = 2.0
"""Seconds to let kubewatch settle before an RSS reading."""


def apply_crds(client: ClusterClient) -> None:
    path = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
    for file in sorted(CRDS.glob("*.yaml")):
        body = yaml.safe_load(file.read_text())
        with contextlib.suppress(ApiError):  # 409: installed already
            client.request_json("POST", path, body)
        name = body["metadata"]["name"]
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            conditions = client.get_json(f"{path}/{name}").get("status", {}).get("conditions", [])
            if any(c["type"] == "Established" and c["status"] == "True" for c in conditions):
                break
            time.sleep(0.2)


def config(home: str) -> str:
    # The sinks point at 127.0.0.1 (nothing is delivered here): private addresses allowed.
    return f"""
cluster: bench
namespaces: {{include: [{home}]}}
resources: [{{kind: Service}}]
sinks: {{devnull: {{type: stdout, format: json}}}}
server: {{port: 0, address: 127.0.0.1}}
tenancy: {{enabled: true, allowPrivateAddresses: true, namespace: {home}}}
"""


def notifier(namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "kubewatch.io/v1alpha1",
        "kind": "Notifier",
        "metadata": {"name": "alerts", "namespace": namespace},
        "spec": {
            "resources": [{"kind": "ConfigMap"}],
            "sinks": {"hook": {"type": "webhook", "url": "http://127.0.0.1:9/hook"}},
        },
    }


def ready_count(client: ClusterClient, namespaces: set[str]) -> int:
    items = client.get_json(f"{NOTIFIERS}/notifiers").get("items", [])
    count = 0
    for item in items:
        meta, status = item["metadata"], item.get("status") or {}
        if meta["namespace"] not in namespaces:
            continue
        if status.get("observedGeneration") != meta["generation"]:
            continue
        conditions = status.get("conditions") or []
        count += any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)
    return count


def scrape(port: str) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        return str(response.read().decode())


def main() -> None:
    parser = benchlib.arguments(__doc__ or "")
    parser.add_argument("--notifiers", type=int, default=100)
    args = parser.parse_args()
    kubeconfig, client = benchlib.cluster(args.kubeconfig)
    apply_crds(client)
    names = [f"bench-tn-{os.getpid()}-{i}" for i in range(args.notifiers)]
    with benchlib.namespace(client, "bench-tn-home") as home:
        try:
            with benchlib.KubewatchProcess(config(home), kubeconfig) as kw:
                kw.wait_synced(1)
                time.sleep(SETTLE)
                before = benchlib.rss_kib(kw.pid)
                start = time.monotonic()
                for name in names:
                    client.request_json(
                        "POST",
                        "/api/v1/namespaces",
                        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}},
                    )
                    client.request_json(
                        "POST", f"{NOTIFIERS}/namespaces/{name}/notifiers", notifier(name)
                    )
                wanted = set(names)
                while ready_count(client, wanted) < len(names):
                    if time.monotonic() - start > 600:
                        raise SystemExit("not every Notifier became Ready within 600 s")
                    time.sleep(0.1)
                elapsed = time.monotonic() - start
                time.sleep(SETTLE)
                after = benchlib.rss_kib(kw.pid)
                port = next(m.group(1) for line in kw.log if (m := PORT.search(line)))
                metrics = scrape(port)
        finally:
            for name in names:
                with contextlib.suppress(ApiError):
                    client.request_json("DELETE", f"{NOTIFIERS}/namespaces/{name}/notifiers")
                benchlib.delete_namespace(client, name)
    found = re.search(r'^kubewatch_informers\{resource="configmaps"\} (\S+)$', metrics, re.M)
    informers = int(float(found.group(1))) if found else 0
    n = len(names)
    print(f"{n} Notifiers Ready in {elapsed:.2f} s ({1000 * elapsed / n:.1f} ms each)")
    print(f"RSS {before} KiB before, {after} KiB after: {(after - before) / n:.0f} KiB each")
    print(f"ConfigMap informers: {informers}")
    print(
        f"RESULT notifiers={n} reconcile_s={elapsed:.2f} per_notifier_ms={1000 * elapsed / n:.1f} "
        f"rss_delta_kib={after - before} rss_per_notifier_kib={(after - before) / n:.0f} "
        f"configmap_informers={informers}"
    )


if __name__ == "__main__":
    main()
