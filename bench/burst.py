"""A burst into a rate-limited chat sink: 5,000 changes in ~10 s, 1 message a second.

Runs ``python -m kubewatch run`` as a subprocess watching ConfigMaps in a namespace of
its own, with a Discord sink (a chat sink: by default rate limited to 1 message/s, and
beyond 10 events per 10 s window the rest becomes one digest per type/kind/namespace)
pointed at a Discord webhook stand-in in this process (it answers 204 like Discord).
Then creates ``--changes`` ConfigMaps, paced evenly over ``--seconds`` by a pool of
threads, and measures:

* messages received, how many were digests (an embed field ``Events: N``) and singles;
* events accounted for: the digests' counts plus the singles (must reach ``--changes``);
* the time from the last change (its create call returning) until the last message,
  i.e. until the backlog is empty — checked by waiting ``--quiet`` seconds for more.

    source /tmp/kube-bench/env   # ../shared/kube/up.sh /tmp/kube-bench
    python bench/burst.py [--kubeconfig FILE] [--changes 5000] [--seconds 10]

The last line is ``RESULT changes=… burst_s=… messages=… digests=… accounted=…
backlog_empty_s=…``.
"""

from __future__ import annotations

import http.server
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import benchlib
import orjson

WEBHOOK_PATH = "/api/webhooks/1234567890/bench-token-abcdefghijklmnopqrstuvwxyz"


class DiscordStandIn(http.server.ThreadingHTTPServer):
    """Records every message: arrival time and how many events it stands for."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.lock = threading.Lock()
        self.messages: list[tuple[float, int, str]] = []  # (perf_counter, events, title)
        self.accounted = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}{WEBHOOK_PATH}"


class _Handler(benchlib.QuietHandler):
    protocol_version = "HTTP/1.1"
    server: DiscordStandIn

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        now = time.perf_counter()
        embed = orjson.loads(body)["embeds"][0]
        events = 1
        for field in embed.get("fields", ()):
            if field["name"] == "Events":  # a digest: it stands for this many events
                events = int(field["value"])
        with self.server.lock:
            self.server.messages.append((now, events, embed.get("title", "")))
            self.server.accounted += events
        self.answer(204)


def config_yaml(namespace: str, url: str) -> str:
    return benchlib.receiver_config(
        namespace, "{kind: ConfigMap, events: [create]}", f'chat: {{type: discord, url: "{url}"}}'
    )


def main() -> None:
    parser = benchlib.arguments(__doc__)
    parser.add_argument("--changes", type=int, default=5000, help="ConfigMaps created")
    parser.add_argument("--seconds", type=float, default=10.0, help="spread over this long")
    parser.add_argument("--threads", type=int, default=16, help="parallel POSTs")
    parser.add_argument("--quiet", type=float, default=5.0, help="no message this long: done")
    parser.add_argument("--timeout", type=float, default=180.0, help="give up waiting")
    args = parser.parse_args()
    kubeconfig, client = benchlib.cluster(args.kubeconfig)
    receiver = DiscordStandIn()
    threading.Thread(target=receiver.serve_forever, name="receiver", daemon=True).start()
    with (
        benchlib.namespace(client, "kubewatch-bench-burst") as ns,
        benchlib.KubewatchProcess(config_yaml(ns, receiver.url), kubeconfig) as kw,
    ):
        kw.wait_synced()
        path = f"/api/v1/namespaces/{ns}/configmaps"
        interval = args.seconds / args.changes
        returned: list[float] = []
        lock = threading.Lock()
        start = time.perf_counter() + 0.2

        def create(i: int) -> None:
            delay = start + i * interval - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            body = {"metadata": {"name": f"burst-{i:05d}"}, "data": {"n": str(i)}}
            client.request_json("POST", path, body)
            now = time.perf_counter()
            with lock:
                returned.append(now)

        with ThreadPoolExecutor(args.threads) as pool:
            for _ in pool.map(create, range(args.changes)):
                pass
        first, last = start, max(returned)
        burst_s = last - first
        print(
            f"{args.changes} ConfigMaps created in {burst_s:.2f}s "
            f"({args.changes / burst_s:.0f}/s; asked: {args.changes / args.seconds:.0f}/s)"
        )
        deadline = last + args.timeout
        while time.perf_counter() < deadline:
            time.sleep(0.2)
            with receiver.lock:
                accounted = receiver.accounted
                newest = receiver.messages[-1][0] if receiver.messages else 0.0
            now = time.perf_counter()
            if accounted >= args.changes and now - newest >= args.quiet:
                break
    stats = [line for line in kw.log if "delivered" in line and "sink" in line]  # at stop
    receiver.shutdown()
    client.close()

    with receiver.lock:
        messages = list(receiver.messages)
        accounted = receiver.accounted
    digests = [m for m in messages if m[1] > 1]
    singles = len(messages) - len(digests)
    empty_at = messages[-1][0] if messages else float("nan")
    drained = accounted >= args.changes
    backlog_s = empty_at - last
    print(
        f"receiver: {len(messages)} messages over {empty_at - messages[0][0]:.1f}s "
        f"({singles} single events, {len(digests)} digests of "
        f"{', '.join(str(d[1]) for d in digests)} events); {accounted} events accounted for"
    )
    for t, events, title in messages:
        if events > 1:
            print(f"  digest at +{t - first:.1f}s: {title[:100]}")
    print(
        f"backlog {'empty' if drained else 'NOT empty'}: last message {backlog_s:.1f}s after "
        f"the last change ({empty_at - first:.1f}s after the first)"
    )
    for line in stats:
        print(f"  kubewatch: {line}")
    print(
        f"RESULT changes={args.changes} burst_s={burst_s:.1f} messages={len(messages)} "
        f"digests={len(digests)} accounted={accounted} "
        f"backlog_empty_s={backlog_s if drained else float('inf'):.1f}"
    )


if __name__ == "__main__":
    main()
