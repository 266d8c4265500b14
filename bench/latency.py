"""End-to-end latency: API write returned → the webhook receiver has the event.

Runs ``python -m kubewatch run`` as a subprocess watching ConfigMaps in a namespace of
its own, with a webhook sink pointed at an HTTP receiver in this process. Then makes
``--changes`` sequential changes against the real API server, half creates and half
updates (a data key patched), with ``--pause`` seconds between them. For each change the
clock is read just after the create/patch call returns; the receiver reads it when the
event's body has arrived and matches it by object name + resourceVersion.

    source /tmp/kube-bench/env   # ../shared/kube/up.sh /tmp/kube-bench
    python bench/latency.py [--kubeconfig FILE] [--changes 1000] [--pause 0.01]

Latency from the call's start is printed too (it adds the API server's write), and the
CPU time the kubewatch process spent over the measured changes (``/proc/PID/stat``, user +
system, all threads) per change. The last line is ``RESULT changes=… p50_ms=… p95_ms=…
p99_ms=… max_ms=… missing=… cpu_ms_per_change=…``.
"""

from __future__ import annotations

import http.server
import os
import threading
import time

import benchlib
import orjson

WARMUP = 20
"""Changes made and awaited before measuring: connections and caches are warm."""


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far, all its threads."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as f:
        fields = f.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Receiver(http.server.ThreadingHTTPServer):
    """Records ``(name, resourceVersion) -> perf_counter()`` of every event received."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.arrived: dict[tuple[str, str], float] = {}
        self.cond = threading.Condition()
        self.bodies = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/hook"

    def wait_for(self, keys: list[tuple[str, str]], timeout: float) -> int:
        """Wait until every key arrived or ``timeout`` passed; the number missing."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                missing = sum(1 for k in keys if k not in self.arrived)
                left = deadline - time.monotonic()
                if not missing or left <= 0:
                    return missing
                self.cond.wait(min(left, 0.2))


class _Handler(benchlib.QuietHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: kubewatch's client reuses its connection
    server: Receiver

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        now = time.perf_counter()
        event = orjson.loads(body)
        with self.server.cond:
            self.server.bodies += 1
            self.server.arrived.setdefault((event["name"], event["resourceVersion"]), now)
            self.server.cond.notify_all()
        self.answer(200)


def config_yaml(namespace: str, url: str) -> str:
    return benchlib.receiver_config(
        namespace, "{kind: ConfigMap}", f'hook: {{type: webhook, url: "{url}"}}'
    )


def main() -> None:
    parser = benchlib.arguments(__doc__)
    parser.add_argument("--changes", type=int, default=1000, help="measured changes")
    parser.add_argument("--pause", type=float, default=0.01, help="seconds between changes")
    args = parser.parse_args()
    kubeconfig, client = benchlib.cluster(args.kubeconfig)
    receiver = Receiver()
    threading.Thread(target=receiver.serve_forever, name="receiver", daemon=True).start()
    after: dict[tuple[str, str], float] = {}
    before: dict[tuple[str, str], float] = {}
    with (
        benchlib.namespace(client, "kubewatch-bench-latency") as ns,
        benchlib.KubewatchProcess(config_yaml(ns, receiver.url), kubeconfig) as kw,
    ):
        kw.wait_synced()
        path = f"/api/v1/namespaces/{ns}/configmaps"

        def change(n: int) -> tuple[str, str, float, float]:
            name = f"cm-{n // 2:05d}"
            started = time.perf_counter()
            if n % 2 == 0:
                body = {"metadata": {"name": name}, "data": {"value": "0"}}
                obj = client.request_json("POST", path, body)
            else:
                patch = {"data": {"value": str(n)}}
                obj = client.request_json(
                    "PATCH", f"{path}/{name}", patch, content_type="application/merge-patch+json"
                )
            returned = time.perf_counter()
            return name, obj["metadata"]["resourceVersion"], started, returned

        warm = [change(n) for n in range(WARMUP)]
        receiver.wait_for([(name, rv) for name, rv, _, _ in warm], 30.0)
        cpu_before = cpu_seconds(kw.pid)
        for n in range(WARMUP, WARMUP + args.changes):
            name, rv, started, returned = change(n)
            before[(name, rv)] = started
            after[(name, rv)] = returned
            if args.pause:
                time.sleep(args.pause)
        missing = receiver.wait_for(list(after), 30.0)
        cpu_ms = (cpu_seconds(kw.pid) - cpu_before) * 1000 / args.changes
    receiver.shutdown()
    client.close()

    got = [k for k in after if k in receiver.arrived]
    lat = sorted((receiver.arrived[k] - after[k]) * 1000 for k in got)
    lat_start = sorted((receiver.arrived[k] - before[k]) * 1000 for k in got)
    early = sum(1 for v in lat if v < 0)
    p = {q: benchlib.percentile(lat, q) for q in (50, 95, 99)}
    print(
        f"{len(got)} of {args.changes} changes received ({missing} missing); "
        f"{early} arrived before the write call returned (negative latency)"
    )
    print(
        "from the write returning: "
        + ", ".join(f"p{q} {v:.1f} ms" for q, v in p.items())
        + f", max {lat[-1]:.1f} ms, min {lat[0]:.1f} ms"
    )
    print(
        "from the write starting:  "
        + ", ".join(f"p{q} {benchlib.percentile(lat_start, q):.1f} ms" for q in (50, 95, 99))
        + f", max {lat_start[-1]:.1f} ms"
    )
    print(f"kubewatch CPU: {cpu_ms:.3f} ms per change (user + system, all threads)")
    print(
        f"RESULT changes={args.changes} p50_ms={p[50]:.1f} p95_ms={p[95]:.1f} "
        f"p99_ms={p[99]:.1f} max_ms={lat[-1]:.1f} missing={missing} "
        f"cpu_ms_per_change={cpu_ms:.3f}"
    )


if __name__ == "__main__":
    main()
