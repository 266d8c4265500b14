"""Memory per cached object: RSS of kubewatch with 10,000 and 50,000 real Pods cached.

Creates ~5 KiB Pods (bench/throughput.py's Pod as a client POSTs it; they stay Pending)
in a namespace of its own on a real API server, then measures, for each count N:

* **subprocess** — ``python -m kubewatch run`` watching Pods in that namespace with a
  stdout sink to /dev/null, after it logged ``synced``: its VmRSS minus the VmRSS of the
  same command watching an empty namespace, divided by N. VmHWM is the peak of the list.
* **in-process** — a fresh interpreter running kubewatch's own SharedInformer over
  ListWatch with the ``compact`` transform (what ``run`` uses), listing once through the
  Reflector: the RSS delta per object, ``Store.nbytes()`` per object (the cached JSON),
  the Store's Python objects counted exactly (keys, StoredObject, strings, bytes, the dict),
  and, in a second interpreter, tracemalloc's count of what the list left allocated.

Compared with the objects' own JSON as the API server serves it (GET the list, with and
without managedFields).

    source /tmp/kube-bench/env   # ../shared/kube/up.sh /tmp/kube-bench
    python bench/memory.py [--kubeconfig FILE] [--counts 10000,50000] [--env 12]
                           [--page-size N]   # watch.pageSize; default: kubewatch's (500)
    python bench/memory.py --base-only       # only the baseline: RSS watching nothing

The last line is ``RESULT pods=… rss_per_pod_kib=… json_per_pod_kib=… …`` for the
largest count (subprocess figure first; in-process figures follow).
"""

from __future__ import annotations

import argparse
import gc
import json
import subprocess
import sys
import time
import tracemalloc
from typing import Any

import benchlib

from kubewatch.config import WatchConfig
from kubewatch.kube import ReflectorSettings, SharedInformer
from kubewatch.kube.client import ListWatch, Query
from kubewatch.watch.normalize import compact, significant

SETTLE = 2.0
"""Seconds to let a subprocess settle after ``synced`` before reading its RSS."""


def config_yaml(namespace: str, page_size: int) -> str:
    return f"""
cluster: bench
namespaces: {{include: [{namespace}]}}
resources:
  - kind: Pod
sinks:
  devnull: {{type: stdout, format: json}}
watch: {{pageSize: {page_size}}}
"""


def subprocess_rss(kubeconfig: str, namespace: str, page_size: int) -> dict[str, Any]:
    """RSS and peak of ``kubewatch run`` watching ``namespace``, after sync."""
    started = time.perf_counter()
    with benchlib.KubewatchProcess(config_yaml(namespace, page_size), kubeconfig) as kw:
        (count,) = kw.wait_synced()
        synced = time.perf_counter() - started
        time.sleep(SETTLE)
        return {
            "objects": count,
            "rss_kib": benchlib.rss_kib(kw.pid),
            "hwm_kib": benchlib.status_kib("VmHWM", kw.pid),
            "start_to_synced_s": synced,
        }


def store_python_bytes(store: Any) -> int:
    """Bytes of the Store's Python objects: its dict, keys, StoredObjects and their fields."""
    items = store._items
    total = sys.getsizeof(items)
    for key, stored in items.items():
        total += sys.getsizeof(key) + sys.getsizeof(stored)
        total += sys.getsizeof(stored.uid) + sys.getsizeof(stored.resource_version)
        total += sys.getsizeof(stored.data)
        if getattr(stored, "rest", None) is not None:
            total += sys.getsizeof(stored.rest)
    return total


def child(kubeconfig: str, namespace: str, page_size: int, trace: bool) -> dict[str, Any]:
    """In a fresh interpreter: list the namespace's Pods once through kubewatch's informer."""
    client = benchlib.connect(kubeconfig)
    path = f"/api/v1/namespaces/{namespace}/pods"
    informer = SharedInformer(
        f"pods in {namespace}",
        ListWatch(client, path, Query(), 90.0),
        kind="Pod",
        api_version="v1",
        settings=ReflectorSettings(page_size=page_size),
        transform=compact,
        significant=significant,
    )
    client.get_json("/version")  # the connection pool and TLS context exist before the baseline
    gc.collect()
    if trace:
        tracemalloc.start()
    before = benchlib.rss_kib()
    traced_before = tracemalloc.get_traced_memory()[0] if trace else 0
    benchlib.reset_peak()
    started = time.perf_counter()
    informer.reflector._list()  # the LIST the informer runs at start (and on a relist)
    elapsed = time.perf_counter() - started
    gc.collect()
    out: dict[str, Any] = {
        "objects": len(informer.store),
        "list_s": elapsed,
        "rss_before_kib": before,
        "rss_after_kib": benchlib.rss_kib(),
        "hwm_kib": benchlib.status_kib("VmHWM"),
        "nbytes": informer.store.nbytes(),
        "python_bytes": store_python_bytes(informer.store),
    }
    if trace:
        out["traced_bytes"] = tracemalloc.get_traced_memory()[0] - traced_before
        tracemalloc.stop()
    client.close()
    return out


def run_child(kubeconfig: str, namespace: str, page_size: int, trace: bool) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--kubeconfig", kubeconfig, "--child", namespace]
    cmd += ["--page-size", str(page_size)]
    if trace:
        cmd.append("--trace")
    done = subprocess.run(cmd, check=True, capture_output=True, text=True)
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kubeconfig", help="default: $KUBECONFIG")
    parser.add_argument("--counts", default="10000,50000", help="Pods cached, ascending")
    parser.add_argument("--env", type=int, default=benchlib.POD_ENV, help="env entries per Pod")
    parser.add_argument("--threads", type=int, default=16, help="parallel POSTs")
    parser.add_argument(
        "--page-size",
        type=int,
        default=WatchConfig().page_size,
        help="watch.pageSize, LIST page size (default: kubewatch's)",
    )
    parser.add_argument("--no-trace", action="store_true", help="skip the tracemalloc pass")
    parser.add_argument(
        "--base-only", action="store_true", help="only the RSS watching an empty namespace"
    )
    parser.add_argument("--child", metavar="NAMESPACE", help=argparse.SUPPRESS)
    parser.add_argument("--trace", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    kubeconfig = benchlib.kubeconfig_path(args.kubeconfig)
    if args.child:
        print(json.dumps(child(kubeconfig, args.child, args.page_size, args.trace)))
        return

    counts = sorted(int(c) for c in args.counts.split(","))
    print(f"machine: {benchlib.machine()}; LIST page size {args.page_size}")
    client = benchlib.connect(kubeconfig)
    rows = []
    with (
        benchlib.namespace(client, "kubewatch-bench-memory") as ns,
        benchlib.namespace(client, "kubewatch-bench-memory-empty") as empty,
    ):
        base = subprocess_rss(kubeconfig, empty, args.page_size)
        print(f"baseline: kubewatch run watching an empty namespace: RSS {base['rss_kib']} KiB")
        if args.base_only:
            print(
                f"RESULT base_rss_mib={base['rss_kib'] / 1024:.1f} "
                f"start_to_synced_s={base['start_to_synced_s']:.2f}"
            )
            return
        created = 0
        for n in counts:
            started = time.perf_counter()
            created += benchlib.post_many(
                client,
                f"/api/v1/namespaces/{ns}/pods",
                (benchlib.pod_for_create(i, ns, args.env) for i in range(created, n)),
                threads=args.threads,
            )
            took = time.perf_counter() - started
            print(f"{n} Pods in the namespace ({took:.1f}s to create the new ones)")
            objects, with_mf, without_mf = benchlib.list_json_bytes(
                client, f"/api/v1/namespaces/{ns}/pods"
            )
            assert objects == n, (objects, n)
            sub = subprocess_rss(kubeconfig, ns, args.page_size)
            inproc = run_child(kubeconfig, ns, args.page_size, trace=False)
            traced = None if args.no_trace else run_child(kubeconfig, ns, args.page_size, True)
            row = {
                "n": n,
                "json_kib": with_mf / n / 1024,
                "json_no_mf_kib": without_mf / n / 1024,
                "sub_rss_kib": sub["rss_kib"],
                "sub_hwm_kib": sub["hwm_kib"],
                "sub_per_kib": (sub["rss_kib"] - base["rss_kib"]) / n,
                "sub_sync_s": sub["start_to_synced_s"],
                "in_per_kib": (inproc["rss_after_kib"] - inproc["rss_before_kib"]) / n,
                "in_peak_kib": inproc["hwm_kib"] - inproc["rss_before_kib"],
                "in_list_s": inproc["list_s"],
                "nbytes_kib": inproc["nbytes"] / n / 1024,
                "python_kib": inproc["python_bytes"] / n / 1024,
                "traced_kib": traced["traced_bytes"] / n / 1024 if traced else float("nan"),
            }
            rows.append(row)
            print(
                f"  served JSON {row['json_kib']:.2f} KiB/Pod "
                f"({row['json_no_mf_kib']:.2f} KiB without managedFields)\n"
                f"  subprocess: RSS {sub['rss_kib'] / 1024:.0f} MiB "
                f"(peak {sub['hwm_kib'] / 1024:.0f} MiB), baseline {base['rss_kib'] / 1024:.0f} "
                f"MiB: {row['sub_per_kib']:.2f} KiB/Pod; "
                f"synced {row['sub_sync_s']:.1f}s after start\n"
                f"  in-process: RSS delta {row['in_per_kib']:.2f} KiB/Pod (list peak +"
                f"{row['in_peak_kib'] / 1024:.0f} MiB, list {row['in_list_s']:.1f}s); "
                f"Store.nbytes {row['nbytes_kib']:.2f} KiB/Pod; Store Python objects "
                f"{row['python_kib']:.2f} KiB/Pod; tracemalloc {row['traced_kib']:.2f} KiB/Pod"
            )
    client.close()
    last = rows[-1]
    print(
        f"RESULT pods={last['n']} rss_per_pod_kib={last['sub_per_kib']:.2f} "
        f"json_per_pod_kib={last['json_kib']:.2f} "
        f"inprocess_rss_per_pod_kib={last['in_per_kib']:.2f} "
        f"store_nbytes_per_pod_kib={last['nbytes_kib']:.2f} "
        f"store_python_per_pod_kib={last['python_kib']:.2f} "
        f"traced_per_pod_kib={last['traced_kib']:.2f} page_size={args.page_size} "
        + " ".join(f"rss_per_pod_kib_{r['n']}={r['sub_per_kib']:.2f}" for r in rows[:-1])
    )


if __name__ == "__main__":
    main()
