"""A relist after 410 Gone with 20,000 objects cached: its time and its peak memory.

Creates ``--objects`` ~5 KiB Pods (bench/throughput.py's Pod as a client POSTs it) in a
namespace of its own on a real API server, then, in a fresh interpreter, runs kubewatch's
SharedInformer over ListWatch with the ``compact`` transform (what ``run`` uses) and a
handler that counts callbacks:

1. the initial LIST (the Reflector's ``_list``), then the steady RSS;
2. a gap the watch did not see: ``--gap`` Pods relabelled, as many deleted, as many created;
3. the relist, measured: wall time, and peak RSS from a thread sampling VmRSS every 10 ms
   plus VmHWM (reset before the relist through ``/proc/self/clear_refs``).

``--via direct`` (default) calls the Reflector's list-and-reconcile (``_list``, what its
``run`` loop calls after a ``WatchExpired``) with no watch running. ``--via restart`` runs
the informer as ``kubewatch run`` does, restarts kube-apiserver with
``../shared/kube/restart.sh`` (``$KUBE_LOCAL_DIR``) and measures the relist the Reflector
does when its next watch gets 410 (if it gets one: a watch that resumes is reported so).

    source /tmp/kube-bench/env   # ../shared/kube/up.sh /tmp/kube-bench
    python bench/relist.py [--kubeconfig FILE] [--objects 20000] [--via direct|restart]

The last line is ``RESULT objects=… relist_s=… steady_mib=… peak_mib=… peak_ratio=…``.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import threading
import time
from typing import Any

import benchlib

from kubewatch.kube import SharedInformer
from kubewatch.kube.client import ListWatch, Query
from kubewatch.watch.normalize import compact

RESTART = os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "kube", "restart.sh"
)


class Counter:
    """A handler that counts callbacks (and touches nothing, like a cheap real one)."""

    def __init__(self) -> None:
        self.adds = self.updates = self.deletes = 0

    def on_add(self, obj: dict[str, Any], is_initial_list: bool) -> None:
        self.adds += 1

    def on_update(self, old: dict[str, Any], new: dict[str, Any]) -> None:
        self.updates += 1

    def on_delete(self, obj: object) -> None:
        self.deletes += 1


def make_gap(client: Any, namespace: str, gap: int, total: int, env: int) -> None:
    """Changes the informer does not see through a watch: relabel, delete, create."""
    path = f"/api/v1/namespaces/{namespace}/pods"
    names = [benchlib.pod_for_create(i, namespace, env)["metadata"]["name"] for i in range(2 * gap)]
    for name in names[:gap]:
        client.request_json(
            "PATCH",
            f"{path}/{name}",
            {"metadata": {"labels": {"relisted": "yes"}}},
            content_type="application/merge-patch+json",
        )
    for name in names[gap:]:
        client.request_json("DELETE", f"{path}/{name}", {"gracePeriodSeconds": 0})
    benchlib.post_many(
        client,
        path,
        (benchlib.pod_for_create(i, namespace, env) for i in range(total, total + gap)),
    )


def child(kubeconfig: str, namespace: str, args: argparse.Namespace) -> dict[str, Any]:
    client = benchlib.connect(kubeconfig)
    path = f"/api/v1/namespaces/{namespace}/pods"
    informer = SharedInformer(
        f"pods in {namespace}",
        ListWatch(client, path, Query(), 90.0),
        kind="Pod",
        api_version="v1",
        transform=compact,
    )
    counter = Counter()
    informer.add_handler(counter)
    reflector = informer.reflector
    lists: list[tuple[float, float]] = []
    listed = threading.Condition()
    plain_list = reflector._list

    def timed_list() -> None:  # the Reflector's own list, with a stopwatch around it
        started = time.perf_counter()
        plain_list()
        with listed:
            lists.append((started, time.perf_counter()))
            listed.notify_all()

    reflector._list = timed_list  # type: ignore[method-assign]
    client.get_json("/version")
    gc.collect()
    empty = benchlib.rss_kib()
    if args.via == "direct":
        reflector._list()
    else:
        informer.start()
        informer.wait_for_sync(600)
    gc.collect()
    time.sleep(1.0)
    synced = benchlib.rss_kib()
    initial_s = lists[0][1] - lists[0][0]
    out: dict[str, Any] = {"objects": len(informer.store), "initial_list_s": initial_s}

    if args.via == "direct":
        make_gap(client, namespace, args.gap, args.objects, args.env)
    gc.collect()
    steady = benchlib.rss_kib()
    benchlib.reset_peak()
    added_before = counter.adds
    with benchlib.RssSampler(interval=0.01) as sampler:
        if args.via == "direct":
            reflector._list()
        else:
            subprocess.run(
                ["bash", RESTART, os.environ["KUBE_LOCAL_DIR"]], check=True, capture_output=True
            )
            with listed:
                listed.wait_for(lambda: len(lists) >= 2, timeout=60)
    hwm = benchlib.status_kib("VmHWM")
    gc.collect()
    after = benchlib.rss_kib()
    if len(lists) < 2:
        out["relisted"] = False
    else:
        out |= {"relisted": True, "relist_s": lists[1][1] - lists[1][0]}
    out |= {
        "rss_empty_kib": empty,
        "rss_synced_kib": synced,
        "rss_steady_kib": steady,
        "rss_peak_sampled_kib": sampler.peak_kib,
        "rss_hwm_kib": hwm,
        "rss_after_kib": after,
        "samples": sampler.samples,
        "relists_counted": reflector.relists,
        "adds": counter.adds - added_before,
        "updates": counter.updates,
        "deletes": counter.deletes,
        "objects_after": len(informer.store),
        "nbytes": informer.store.nbytes(),
    }
    informer.stop()
    client.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kubeconfig", help="default: $KUBECONFIG")
    parser.add_argument("--objects", type=int, default=20000, help="Pods cached")
    parser.add_argument("--gap", type=int, default=200, help="Pods changed/deleted/created")
    parser.add_argument("--env", type=int, default=benchlib.POD_ENV, help="env entries per Pod")
    parser.add_argument("--via", choices=["direct", "restart"], default="direct")
    parser.add_argument("--child", metavar="NAMESPACE", help=argparse.SUPPRESS)
    args = parser.parse_args()
    kubeconfig = benchlib.kubeconfig_path(args.kubeconfig)
    if args.child:
        print(json.dumps(child(kubeconfig, args.child, args)))
        return
    if args.via == "restart" and not os.environ.get("KUBE_LOCAL_DIR"):
        sys.exit("--via restart needs $KUBE_LOCAL_DIR (source the kube-local env file)")

    print(f"machine: {benchlib.machine()}")
    client = benchlib.connect(kubeconfig)
    with benchlib.namespace(client, "kubewatch-bench-relist") as ns:
        started = time.perf_counter()
        benchlib.post_many(
            client,
            f"/api/v1/namespaces/{ns}/pods",
            (benchlib.pod_for_create(i, ns, args.env) for i in range(args.objects)),
        )
        print(f"{args.objects} Pods created in {time.perf_counter() - started:.1f}s")
        objects, with_mf, _ = benchlib.list_json_bytes(client, f"/api/v1/namespaces/{ns}/pods")
        print(f"served JSON: {with_mf / objects / 1024:.2f} KiB/Pod")
        cmd = [sys.executable, __file__, "--kubeconfig", kubeconfig, "--child", ns]
        cmd += ["--objects", str(args.objects), "--gap", str(args.gap), "--env", str(args.env)]
        cmd += ["--via", args.via]
        done = subprocess.run(cmd, check=True, capture_output=True, text=True)
        r = json.loads(done.stdout.strip().splitlines()[-1])
    client.close()

    mib = 1024.0
    peak = max(r["rss_peak_sampled_kib"], r["rss_hwm_kib"])
    print(
        f"initial list of {r['objects']} Pods: {r['initial_list_s']:.2f}s; RSS "
        f"{r['rss_empty_kib'] / mib:.0f} MiB before, {r['rss_synced_kib'] / mib:.0f} MiB after"
    )
    print(
        f"store payload {r['nbytes'] / r['objects_after'] / 1024:.2f} KiB/Pod; steady RSS "
        f"before the relist {r['rss_steady_kib'] / mib:.0f} MiB"
    )
    if not r["relisted"]:
        print(f"no relist happened (the watch resumed after the restart); {r['relists_counted']=}")
        print(f"RESULT objects={r['objects']} relisted=no")
        return
    print(
        f"relist ({args.via}): {r['relist_s']:.2f}s; callbacks: {r['adds']} adds, "
        f"{r['updates']} updates, {r['deletes']} deletes (gap: {args.gap} each)"
    )
    print(
        f"peak RSS during the relist: {r['rss_peak_sampled_kib'] / mib:.0f} MiB sampled "
        f"({r['samples']} samples), VmHWM {r['rss_hwm_kib'] / mib:.0f} MiB; "
        f"after: {r['rss_after_kib'] / mib:.0f} MiB"
    )
    print(
        f"RESULT objects={r['objects']} relist_s={r['relist_s']:.2f} "
        f"steady_mib={r['rss_steady_kib'] / mib:.0f} peak_mib={peak / mib:.0f} "
        f"peak_ratio={peak / r['rss_steady_kib']:.2f}"
    )


if __name__ == "__main__":
    main()
