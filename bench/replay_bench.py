"""``kubewatch replay FILE`` as a user runs it: one process, start-up included, events/s.

Writes a capture of ``--pods`` Pod ADDEDs followed by ``--events`` MODIFIEDs (~5 KiB
Pods, the mix of ``throughput.py``: 70 % status-only churn that is not reported, 15 %
image changes, 15 % label changes), and a configuration with one stdout sink
(``format: json``). Then it runs ``kubewatch replay CAPTURE --config CONFIG`` ``--runs``
times with stdout on /dev/null and times each run from start to exit (interpreter
start, imports, reading, the pipeline, delivery with backpressure, drain). No cluster is
needed and no core is pinned: this is the command's wall time.

The baseline is a loop in this process that deserializes the same lines into the
kubernetes client's typed ``V1Pod`` (``watch.Watch().unmarshal_event``), without start-up.

    python bench/replay_bench.py [--pods 2000] [--events 18000] [--runs 3]

The last line printed is ``RESULT events_per_s=… seconds=… delivered=… baseline_per_s=…
ratio=… cpu_seconds=… events_per_cpu_s=…`` (the median run; events are the capture's
watch events, ADDEDs included; CPU is the command's user + system time, which a loaded
machine disturbs less than wall time).
"""

from __future__ import annotations

import argparse
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson
from kubernetes import watch
from throughput import make_stream

CONFIG = """\
resources:
  - kind: Pod
sinks:
  out: {type: stdout, format: json}
"""


def write_capture(path: Path, pods: int, events: int) -> int:
    """The capture: every Pod ADDED, then the MODIFIED lines; returns its watch events."""
    objects, lines = make_stream(pods, events)
    with path.open("wb") as f:
        for pod in objects:
            f.write(orjson.dumps({"type": "ADDED", "object": pod}) + b"\n")
        f.writelines(lines)
    return len(objects) + len(lines)


def command() -> list[str]:
    """The installed ``kubewatch`` script if there is one (what a user runs), else
    ``python -m kubewatch``."""
    script = shutil.which("kubewatch") or str(Path(sys.executable).with_name("kubewatch"))
    return [script] if Path(script).exists() else [sys.executable, "-m", "kubewatch"]


def typed_baseline(capture: Path) -> float:
    """Lines per second of a loop deserializing the capture into typed ``V1Pod``s."""
    w = watch.Watch()
    texts = capture.read_text().splitlines()
    started = time.perf_counter()
    for text in texts:
        w.unmarshal_event(text, "V1Pod")
    return len(texts) / (time.perf_counter() - started)


def child_cpu() -> float:
    """CPU seconds (user + system) of the waited-for children so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_once(capture: Path, config: Path) -> tuple[float, int, float]:
    """Seconds from start to exit, the events the stdout sink delivered, and the CPU
    seconds the process used (steadier than wall time on a shared machine)."""
    cpu = child_cpu()
    started = time.perf_counter()
    done = subprocess.run(
        [*command(), "replay", str(capture), "--config", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        check=False,
    )
    elapsed = time.perf_counter() - started
    cpu = child_cpu() - cpu
    if done.returncode != 0:
        sys.exit(f"kubewatch replay exited {done.returncode}:\n{done.stderr[-2000:]}")
    m = re.search(r"out: (\d+) delivered, (\d+) failed, (\d+) dropped", done.stderr)
    if m is None or m.group(2, 3) != ("0", "0"):
        sys.exit(f"unexpected summary:\n{done.stderr[-2000:]}")
    return elapsed, int(m.group(1)), cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pods", type=int, default=2000)
    parser.add_argument("--events", type=int, default=18000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="kubewatch-replay-bench-") as tmp:
        capture, config = Path(tmp) / "capture.json", Path(tmp) / "config.yaml"
        total = write_capture(capture, args.pods, args.events)
        config.write_text(CONFIG)
        size = capture.stat().st_size / 2**20
        print(f"capture: {total} watch events, {size:.0f} MiB; command: {' '.join(command())}")
        baseline = typed_baseline(capture)
        print(f"baseline (watch.Watch + V1Pod, in-process): {baseline:,.0f} events/s")
        runs = []
        for i in range(args.runs):
            elapsed, delivered, cpu = run_once(capture, config)
            runs.append((elapsed, delivered, cpu))
            print(
                f"run {i + 1}: {elapsed:.2f}s, {total / elapsed:,.0f} events/s, "
                f"{delivered} delivered; CPU {cpu:.2f}s ({total / cpu:,.0f} events per CPU-s)"
            )
    elapsed = statistics.median(e for e, _, _ in runs)
    cpu = statistics.median(c for _, _, c in runs)
    delivered = runs[0][1]
    per_s = total / elapsed
    print(
        f"RESULT events_per_s={per_s:.0f} seconds={elapsed:.2f} delivered={delivered} "
        f"baseline_per_s={baseline:.0f} ratio={per_s / baseline:.1f} "
        f"cpu_seconds={cpu:.2f} events_per_cpu_s={total / cpu:.0f}"
    )


if __name__ == "__main__":
    main()
