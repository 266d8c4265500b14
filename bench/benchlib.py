"""Helpers shared by the benchmarks that run against a real API server.

Not a benchmark itself. The scripts import it as a sibling module (``python bench/x.py``
puts ``bench/`` first on ``sys.path``). Everything here is plain plumbing: a client for
writes, a namespace of our own that is removed afterwards, a thread pool of POSTs, RSS
readings from ``/proc``, and a ``kubewatch run`` subprocess that reports when it synced.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import http.server
import os
import platform
import queue
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import orjson
from throughput import make_pod

from kubewatch.errors import ApiError
from kubewatch.kube.client import ClusterClient

# -- machine and process facts --------------------------------------------------------------


def machine() -> str:
    """``nproc``, CPU model and Python version: the context every figure needs."""
    model = "unknown CPU"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"{cores} cores, {model}, Python {platform.python_version()}"


def status_kib(field: str, pid: int | str = "self") -> int:
    """A ``/proc/<pid>/status`` field in KiB (``VmRSS``, ``VmHWM``); 0 if absent."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def rss_kib(pid: int | str = "self") -> int:
    return status_kib("VmRSS", pid)


def reset_peak(pid: int | str = "self") -> bool:
    """Reset VmHWM to the current RSS (``/proc/PID/clear_refs`` ``5``); False if refused."""
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return False
    return True


class RssSampler:
    """Samples VmRSS of ``pid`` every ``interval`` seconds in a thread; keeps the peak."""

    def __init__(self, pid: int | str = "self", interval: float = 0.01) -> None:
        self.pid = pid
        self.interval = interval
        self.peak_kib = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(OSError, ValueError):
                self.peak_kib = max(self.peak_kib, rss_kib(self.pid))
                self.samples += 1
            self._stop.wait(self.interval)

    def __enter__(self) -> RssSampler:
        self.peak_kib = rss_kib(self.pid)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def percentile(sorted_values: list[float], p: float) -> float:
    """Nearest-rank percentile of an already sorted list (p in 0..100)."""
    if not sorted_values:
        return float("nan")
    rank = max(1, min(len(sorted_values), round(p / 100 * len(sorted_values) + 0.5)))
    return sorted_values[rank - 1]


# -- the API server ---------------------------------------------------------------------------


def connect(kubeconfig: str | None) -> ClusterClient:
    """kubewatch's own raw client (orjson, urllib3 pool): cheap enough for bulk writes."""
    if not (kubeconfig or os.environ.get("KUBECONFIG")):
        sys.exit("no kubeconfig: pass --kubeconfig or set KUBECONFIG (see ../shared/kube)")
    return ClusterClient.connect(kubeconfig, max_connections=64)


def kubeconfig_path(kubeconfig: str | None) -> str:
    path = kubeconfig or os.environ.get("KUBECONFIG", "")
    return path.split(os.pathsep)[0]


def arguments(doc: str) -> argparse.ArgumentParser:
    """A bench's parser (its docstring's first line as description) with ``--kubeconfig``."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--kubeconfig", help="default: $KUBECONFIG")
    return parser


def cluster(kubeconfig: str | None) -> tuple[str, ClusterClient]:
    """The kubeconfig path and a client for it, after the machine line every result starts with."""
    path = kubeconfig_path(kubeconfig)
    print(f"machine: {machine()}")
    return path, connect(path)


def receiver_config(namespace: str, resource: str, sink: str) -> str:
    """A kubewatch config watching ``resource`` (a YAML flow mapping) in ``namespace`` and
    sending to ``sink`` (``name: {…}``)."""
    return f"""
cluster: bench
namespaces: {{include: [{namespace}]}}
resources:
  - {resource}
sinks:
  {sink}
"""


class QuietHandler(http.server.BaseHTTPRequestHandler):
    """A receiver's handler: :meth:`answer` with an empty body; no access log on stderr."""

    def answer(self, status: int) -> None:
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextlib.contextmanager
def namespace(client: ClusterClient, prefix: str) -> Iterator[str]:
    """A fresh namespace, removed with its Pods and ConfigMaps afterwards.

    There is no namespace controller on the local control plane: the contents are deleted
    here, then the namespace's finalizer is cleared so that it really goes away.
    """
    name = f"{prefix}-{os.getpid()}"
    client.request_json(
        "POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                       "metadata": {"name": name}}
    )  # fmt: skip
    try:
        yield name
    finally:
        delete_namespace(client, name)


def delete_namespace(client: ClusterClient, name: str) -> None:
    now = {"apiVersion": "v1", "kind": "DeleteOptions", "gracePeriodSeconds": 0}
    for plural in ("pods", "configmaps"):
        with contextlib.suppress(ApiError):
            client.request_json("DELETE", f"/api/v1/namespaces/{name}/{plural}", now)
    with contextlib.suppress(ApiError):
        client.request_json("DELETE", f"/api/v1/namespaces/{name}", now)
        client.request_json(
            "PUT",
            f"/api/v1/namespaces/{name}/finalize",
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name},
             "spec": {"finalizers": []}},
        )  # fmt: skip


def post_many(
    client: ClusterClient,
    path: str,
    bodies: Iterable[dict[str, Any]],
    *,
    threads: int = 16,
    progress: Callable[[int], None] | None = None,
) -> int:
    """POST every body to ``path`` from a thread pool; how many were created.

    The answers are dropped at once: a benchmark that measures memory later must not keep
    tens of thousands of decoded objects alive.
    """
    done = 0
    lock = threading.Lock()

    def post(body: dict[str, Any]) -> None:
        nonlocal done
        for attempt in range(5):
            try:
                client.request_json("POST", path, body)
                break
            except ApiError as e:
                if e.status not in (429, 500, 503, 504) or attempt == 4:
                    raise
                time.sleep(0.2 * (attempt + 1))
        with lock:
            done += 1
            if progress is not None and done % 5000 == 0:
                progress(done)

    with ThreadPoolExecutor(threads) as pool:
        for _ in pool.map(post, bodies):
            pass
    return done


def list_json_bytes(client: ClusterClient, path: str, page: int = 500) -> tuple[int, int, int]:
    """(objects, bytes of their JSON as served with managedFields, bytes without)."""
    count = with_mf = without_mf = 0
    token = None
    while True:
        params = [("limit", str(page))] + ([("continue", token)] if token else [])
        doc = client.get_json(path, params)
        for item in doc.get("items") or ():
            count += 1
            with_mf += len(orjson.dumps(item))
            item.get("metadata", {}).pop("managedFields", None)
            without_mf += len(orjson.dumps(item))
        token = (doc.get("metadata") or {}).get("continue")
        if not token:
            return count, with_mf, without_mf


# -- objects ---------------------------------------------------------------------------------


POD_ENV = 12
"""Env entries per Pod: with them the Pod is ~5 KiB of JSON as the API server serves it,
managedFields included (about half of it, as the server writes them for every field)."""


def pod_for_create(i: int, namespace: str, env: int = POD_ENV) -> dict[str, Any]:
    """bench/throughput.py's Pod, as a client would POST it, with ``env`` env entries.

    What the server owns is left out (uid, resourceVersion, timestamps, managedFields,
    status); so is ``nodeName``, so the Pod stays Pending with nobody to run it and is
    deleted at once (no kubelet to wait for).
    """
    pod = copy.deepcopy(make_pod(i))
    container = pod["spec"]["containers"][0]
    container["env"] = container["env"][:env]
    meta = pod["metadata"]
    for key in ("uid", "resourceVersion", "creationTimestamp", "managedFields", "generateName"):
        meta.pop(key, None)
    meta["namespace"] = namespace
    pod.pop("status", None)
    pod["spec"].pop("nodeName", None)
    return pod


# -- kubewatch as a subprocess -------------------------------------------------------------

SYNCED = re.compile(r"synced, (\d+) objects")


class KubewatchProcess:
    """``python -m kubewatch run`` with a given configuration; stderr is followed.

    ``wait_synced`` returns once the informer logged ``synced``; ``stop`` sends SIGTERM
    and waits. Use as a context manager.
    """

    def __init__(
        self,
        config_yaml: str,
        kubeconfig: str,
        *,
        stdout: int | None = subprocess.DEVNULL,
        log_level: str = "info",
        extra: tuple[str, ...] = (),
    ) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="kubewatch-bench-")
        self.config_path = os.path.join(self._dir.name, "config.yaml")
        with open(self.config_path, "w") as f:
            f.write(config_yaml)
        self.lines: queue.Queue[str] = queue.Queue()
        self.log: list[str] = []
        self.synced: list[int] = []
        self._synced = threading.Condition()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "kubewatch", "--log-level", log_level, "run",
             "--config", self.config_path, "--kubeconfig", kubeconfig, *extra],
            stdout=stdout,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        self._reader = threading.Thread(target=self._read, name="kubewatch-stderr", daemon=True)
        self._reader.start()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.log.append(line.rstrip())
            m = SYNCED.search(line)
            if m:
                with self._synced:
                    self.synced.append(int(m.group(1)))
                    self._synced.notify_all()

    def wait_synced(self, watches: int = 1, timeout: float = 600.0) -> list[int]:
        """The object counts of the first ``watches`` syncs; RuntimeError on timeout/exit."""
        deadline = time.monotonic() + timeout
        with self._synced:
            while len(self.synced) < watches:
                if self.proc.poll() is not None:
                    raise RuntimeError("kubewatch exited:\n" + "\n".join(self.log[-20:]))
                left = deadline - time.monotonic()
                if left <= 0:
                    raise RuntimeError("kubewatch did not sync:\n" + "\n".join(self.log[-20:]))
                self._synced.wait(min(left, 0.5))
            return list(self.synced[:watches])

    def stop(self, timeout: float = 30.0) -> int | None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._reader.join(5)
        self._dir.cleanup()
        return self.proc.returncode

    def __enter__(self) -> KubewatchProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
