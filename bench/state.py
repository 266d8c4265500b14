"""What durable state (``state.path``) costs: throughput, checkpoint size and memory, recovery.

* **throughput** — a generated capture of 20,000 Pod watch events (2,000 ~5 KiB Pods;
  bench/throughput.py's mix: 70% status churn, not reported, 15% image, 15% label changes)
  through the in-process pipeline of ``kubewatch run`` (``SharedInformer`` → ``Fanout`` →
  ``App.deliver``'s route, spool and submit → ``Dispatcher`` with the default 4 workers →
  the stdout JSON sink writing to /dev/null), with the state on (``Spool`` as the journal,
  the informer checkpointed, SQLite in a temporary directory) and off. ``kubewatch replay``
  builds no App and no spool (cli.replay: router → dispatcher), so replay itself would not
  measure the spool; this is the path ``run`` takes. The clock stops when the dispatcher
  drained and, with state, the writer committed everything (``StateDB.flush``).
* **checkpoint** — 10,000 ~5 KiB Pods listed into a SharedInformer fed from a fake
  ListerWatcher, in a fresh interpreter each, state on and off: time from the start of the
  list until the writer has committed it, ``state.db`` size (with its WAL), and VmRSS
  after the list (and its growth over the interpreter before the list).
* **recovery** — 10,000 events spooled for a webhook sink, then ``kill -9`` of the
  process that wrote them; ``kubewatch run --state-dir`` (default config) against a real
  API server and a fast local receiver: seconds from the process start, and from its
  "undelivered event(s)" line, until the receiver has all 10,000 and the spool is empty.
  The events' keys are spread so that no delivery shard holds more than its share of
  ``queueSize`` (as a live run leaves them: each shard is bounded).

    source /tmp/kube-bench/env   # ../shared/kube/up.sh /tmp/kube-bench
    python bench/state.py [--kubeconfig FILE] [--skip-recovery]

The last line is ``RESULT on_per_s=… off_per_s=… ratio=… checkpoint_mib=… …``.
"""

from __future__ import annotations

import argparse
import copy
import gc
import http.server
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import benchlib
import orjson
from throughput import PODS, make_pod, make_stream

from kubewatch.config import Config
from kubewatch.delivery import Dispatcher, sink_policies
from kubewatch.events import Event, EventType
from kubewatch.kube.informer import SharedInformer
from kubewatch.kube.reflector import ReflectorSettings
from kubewatch.kube.watchstream import decode_line
from kubewatch.routing import Router
from kubewatch.sinks import build_sink
from kubewatch.state import Checkpoint, Spool, StateDB
from kubewatch.timefmt import utc_now
from kubewatch.watch.filters import NamespaceLabels
from kubewatch.watch.normalize import compact, significant
from kubewatch.watch.pipeline import Fanout, build_entry
from kubewatch.watch.plan import WatchPlan

REPO = Path(__file__).resolve().parents[1]

# -- throughput ------------------------------------------------------------------------------


def run_throughput(
    objects: list[dict[str, Any]], lines: list[bytes], state: bool
) -> dict[str, Any]:
    config = Config.model_validate(
        {
            "cluster": "bench",
            "resources": [{"kind": "Pod"}],
            "sinks": {"console": {"type": "stdout", "format": "json"}},
        }
    )
    with tempfile.TemporaryDirectory(prefix="kubewatch-state-") as tmp:
        db = StateDB.open(tmp) if state else None
        spool = Spool(db) if db is not None else None
        sink = build_sink("console", config.sinks["console"])
        dispatcher = Dispatcher(
            {"console": sink}, config.delivery, policies=sink_policies(config), journal=spool
        )
        router = Router.build(config)
        reported = 0

        def deliver(event: Event) -> None:  # App.deliver, leading
            nonlocal reported
            reported += 1
            sinks = router.route(event)
            if sinks:
                if spool is not None:
                    spool.put(event, sinks)
                dispatcher.submit(event, sinks)

        plan = WatchPlan(0, config.resources[0], PODS, (None,), None)
        entry = build_entry(config, plan, "bench", NamespaceLabels(), datetime.now(timezone.utc))
        checkpoint = Checkpoint(db).collection("/api/v1/pods??") if db is not None else None
        informer = SharedInformer(
            "pods",
            None,
            kind="Pod",
            api_version="v1",
            transform=compact,
            significant=significant,
            checkpoint=checkpoint,  # type: ignore[arg-type]
        )
        informer.add_handler(Fanout([entry], deliver))
        informer.replace_begin()
        for pod in copy.deepcopy(objects):
            informer.replace_item(pod)
        informer.replace_end()
        informer._on_listed(len(objects))
        if db is not None:
            db.flush()
        dispatcher.start()

        def stream() -> Any:
            for line in lines:
                event = decode_line(line, "/api/v1/pods")
                if event is not None:
                    yield event

        started = time.perf_counter()
        informer.reflector._consume(stream())
        dispatcher.close(timeout=120)
        if db is not None:
            db.flush()
        elapsed = time.perf_counter() - started
        stats = dispatcher.stats()["console"]
        assert stats.delivered == reported, stats
        left = sum(spool.depth().values()) if spool is not None else 0
        assert left == 0, left
        if db is not None:
            db.close()
    return {"seconds": elapsed, "per_s": len(lines) / elapsed, "reported": reported}


def throughput(events: int, pods: int) -> dict[str, Any]:
    objects, lines = make_stream(pods, events)
    devnull = open(os.devnull, "w")  # noqa: SIM115 - the sink writes to sys.stdout
    real, sys.stdout = sys.stdout, devnull
    try:
        runs = {name: [] for name in ("off", "on")}  # type: dict[str, list[dict[str, Any]]]
        for _ in range(3):  # alternate, best of three each: the machine is shared
            for name in ("off", "on"):
                runs[name].append(run_throughput(objects, lines, name == "on"))
    finally:
        sys.stdout = real
        devnull.close()
    best = {name: max(r, key=lambda x: x["per_s"]) for name, r in runs.items()}
    return {
        "events": len(lines),
        "reported": best["on"]["reported"],
        "on_per_s": best["on"]["per_s"],
        "off_per_s": best["off"]["per_s"],
        "all_on": [round(r["per_s"]) for r in runs["on"]],
        "all_off": [round(r["per_s"]) for r in runs["off"]],
    }


# -- checkpoint --------------------------------------------------------------------------------


class ListOnce:
    """A ListerWatcher that serves one list of ``pods`` in pages of 500, then no events."""

    def __init__(self, pods: list[bytes]) -> None:
        self._pods = pods

    def list_page(self, *, limit: int, continue_token: str | None) -> dict[str, Any]:
        start = int(continue_token or 0)
        items = [orjson.loads(p) for p in self._pods[start : start + limit]]
        more = start + limit < len(self._pods)
        return {
            "metadata": {
                "resourceVersion": "999999",
                "continue": str(start + limit) if more else "",
            },
            "items": items,
        }


def checkpoint_child(count: int, state: bool) -> dict[str, Any]:
    """In a fresh interpreter: list ``count`` Pods into an informer, state on or off."""
    pods = [orjson.dumps(make_pod(i)) for i in range(count)]
    size = sum(len(p) for p in pods) / count
    gc.collect()
    before = benchlib.rss_kib()
    tmp = tempfile.mkdtemp(prefix="kubewatch-checkpoint-")
    db = StateDB.open(tmp) if state else None
    informer = SharedInformer(
        "pods",
        ListOnce(pods),  # type: ignore[arg-type]
        kind="Pod",
        api_version="v1",
        settings=ReflectorSettings(page_size=500),
        transform=compact,
        significant=significant,
        checkpoint=Checkpoint(db).collection("/api/v1/pods??") if db is not None else None,
    )
    started = time.perf_counter()
    informer.reflector._list()
    listed = time.perf_counter() - started
    if db is not None:
        db.flush()
    written = time.perf_counter() - started
    del pods
    gc.collect()
    after = benchlib.rss_kib()
    disk = sum(f.stat().st_size for f in Path(tmp).iterdir())
    if db is not None:
        db.close()
    closed = sum(f.stat().st_size for f in Path(tmp).iterdir())
    return {
        "pods": len(informer.store),
        "pod_kib": size / 1024,
        "cached_kib": informer.store.nbytes() / count / 1024,
        "list_s": listed,
        "written_s": written,
        "rss_kib": after,
        "rss_growth_kib": after - before,
        "disk_bytes": disk,
        "disk_bytes_closed": closed,
    }


def checkpoint(count: int) -> dict[str, dict[str, Any]]:
    out = {}
    for name in ("off", "on"):
        proc = subprocess.run(
            [sys.executable, __file__, "--checkpoint-child", str(count), name],
            capture_output=True,
            text=True,
            check=True,
            cwd=REPO,
        )
        out[name] = json.loads(proc.stdout.strip().splitlines()[-1])
    return out


# -- recovery ------------------------------------------------------------------------------------


def spread_names(count: int, shards: int) -> list[str]:
    """``count`` Pod names whose keys fill ``shards`` delivery shards evenly (shard_of)."""
    share = count // shards
    per = [0] * shards
    names: list[str] = []
    i = 0
    while len(names) < count:
        name = f"pod-{i:06d}"
        shard = zlib.crc32(f"bench/{name}".encode()) % shards
        if per[shard] < share:
            per[shard] += 1
            names.append(name)
        i += 1
    return names


def spool_child(directory: str, count: int) -> None:
    """Spool ``count`` events for ``audit``, commit them, then die as ``kill -9`` does."""
    db = StateDB.open(directory)
    spool = Spool(db)
    now = utc_now()
    for n, name in enumerate(spread_names(count, 4)):
        event = Event(
            type=EventType.UPDATE,
            cluster="bench",
            kind="Pod",
            api_version="v1",
            resource="pods",
            namespace="bench",
            name=name,
            uid=f"uid-{name}",
            resource_version=str(1000 + n),
            observed_at=now,
            labels={"app": "web"},
            summary=f"update Pod bench/{name}",
        )
        spool.put(event, ["audit"])
    db.flush()
    os.kill(os.getpid(), signal.SIGKILL)


class FastReceiver:
    def __init__(self) -> None:
        self.ids: set[str] = set()
        self.posts = 0
        self.lock = threading.Lock()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver.lock:
                    receiver.posts += 1
                    receiver.ids.add(self.headers["X-Kubewatch-Event-Id"])
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def count(self) -> int:
        with self.lock:
            return len(self.ids)


_RECOVERED = re.compile(r"state: (\d+) undelivered event\(s\) from the last run")


def recovery(kubeconfig: str, count: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="kubewatch-recovery-") as state:
        child = subprocess.run(
            [sys.executable, __file__, "--spool-child", state, str(count)], cwd=REPO, check=False
        )
        assert child.returncode == -signal.SIGKILL, child.returncode
        receiver = FastReceiver()
        config = f"""
cluster: bench
namespaces: {{include: [kube-public]}}
resources: [{{kind: ConfigMap}}]
sinks:
  audit: {{type: webhook, url: "{receiver.url}"}}
"""
        started = time.monotonic()
        kw = benchlib.KubewatchProcess(config, kubeconfig, extra=("--state-dir", state))
        try:
            seen = None
            while receiver.count() < count:
                if seen is None and any(_RECOVERED.search(line) for line in kw.log):
                    seen = time.monotonic()
                if kw.proc.poll() is not None:
                    raise RuntimeError("kubewatch exited:\n" + "\n".join(kw.log[-20:]))
                if time.monotonic() - started > 600:
                    raise RuntimeError(f"only {receiver.count()} of {count} after 600 s")
                time.sleep(0.01)
            done = time.monotonic()
            recovered = next(int(m.group(1)) for line in kw.log if (m := _RECOVERED.search(line)))
        finally:
            code = kw.stop()
        db = StateDB.open(state)
        left = db.query("SELECT count(*) FROM spool")[0][0]
        db.close()
        receiver.server.shutdown()
    return {
        "recovered": recovered,
        "from_start_s": done - started,
        "from_log_s": done - (seen or started),
        "posts": receiver.posts,
        "left_in_spool": left,
        "exit": code,
    }


# -- main ------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kubeconfig")
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--pods", type=int, default=2_000)
    parser.add_argument("--checkpoint-pods", type=int, default=10_000)
    parser.add_argument("--spooled", type=int, default=10_000)
    parser.add_argument("--skip-recovery", action="store_true")
    parser.add_argument("--checkpoint-child", nargs=2, metavar=("COUNT", "STATE"))
    parser.add_argument("--spool-child", nargs=2, metavar=("DIR", "COUNT"))
    args = parser.parse_args()
    if args.checkpoint_child:
        count, state = args.checkpoint_child
        print(json.dumps(checkpoint_child(int(count), state == "on")))
        return
    if args.spool_child:
        spool_child(args.spool_child[0], int(args.spool_child[1]))
        return

    print(benchlib.machine())
    t = throughput(args.events, args.pods)
    ratio = t["on_per_s"] / t["off_per_s"]
    print(
        f"throughput: {t['events']} Pod events ({t['reported']} reported): state on "
        f"{t['on_per_s']:,.0f}/s {t['all_on']}, off {t['off_per_s']:,.0f}/s {t['all_off']}, "
        f"on/off {ratio:.2f}"
    )
    c = checkpoint(args.checkpoint_pods)
    on, off = c["on"], c["off"]
    print(
        f"checkpoint: {on['pods']} Pods of {on['pod_kib']:.1f} KiB: written in "
        f"{on['written_s']:.2f}s (list {on['list_s']:.2f}s; without state {off['list_s']:.2f}s), "
        f"state.db {on['disk_bytes'] / 2**20:.1f} MiB with WAL, "
        f"{on['disk_bytes_closed'] / 2**20:.1f} MiB closed "
        f"({on['disk_bytes_closed'] / on['pods'] / 1024:.1f} KiB/Pod for "
        f"{on['cached_kib']:.1f} KiB cached); RSS on {on['rss_kib'] / 1024:.0f} "
        f"MiB, off {off['rss_kib'] / 1024:.0f} MiB ({on['rss_kib'] / off['rss_kib']:.2f}x); "
        f"growth on {on['rss_growth_kib'] / 1024:.0f} MiB, "
        f"off {off['rss_growth_kib'] / 1024:.0f} MiB"
    )
    result = (
        f"RESULT on_per_s={t['on_per_s']:.0f} off_per_s={t['off_per_s']:.0f} ratio={ratio:.2f} "
        f"checkpoint_mib={on['disk_bytes'] / 2**20:.1f} checkpoint_s={on['written_s']:.2f} "
        f"rss_ratio={on['rss_kib'] / off['rss_kib']:.2f}"
    )
    if not args.skip_recovery:
        kubeconfig = benchlib.kubeconfig_path(args.kubeconfig)
        r = recovery(kubeconfig, args.spooled)
        print(
            f"recovery: {r['recovered']} spooled events after kill -9 delivered in "
            f"{r['from_start_s']:.1f}s from the process start ({r['from_log_s']:.1f}s from "
            f"its recovery line), {r['posts']} POSTs, {r['left_in_spool']} left in the spool, "
            f"exit {r['exit']}"
        )
        result += f" recovery_s={r['from_start_s']:.1f} recovery_log_s={r['from_log_s']:.1f}"
    print(result)


if __name__ == "__main__":
    main()
