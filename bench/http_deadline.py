"""How long one HTTP sink attempt takes against a receiver that trickles its answer.

A loopback receiver sends its status line and then one byte every 3 s, in the headers
or in the body, for far longer than the sink's ``timeout`` (the default, 10 s). Each
attempt should end within ``timeout`` + 1 s with a retryable "deadline passed" error.

    python bench/http_deadline.py [--attempts 3]

The last line is ``RESULT timeout_s=… headers_max_s=… body_max_s=… within_bound=…``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kubewatch.config import WebhookSinkConfig
from kubewatch.errors import RetryableError
from kubewatch.sinks.webhook import WebhookSink
from tests.unit.sinks.test_http_deadline import Trickler
from tests.unit.sinks.test_sinks import make_event


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--attempts", type=int, default=3)
    args = parser.parse_args()
    worst: dict[str, float] = {}
    timeout = WebhookSinkConfig(type="webhook", url="http://127.0.0.1/").timeout
    for where in ("headers", "body"):
        trickler = Trickler(where)
        url = trickler.start()
        with WebhookSink("slow", WebhookSinkConfig(type="webhook", url=url)) as sink:
            for _ in range(args.attempts):
                started = time.monotonic()
                try:
                    sink.send(make_event())
                    outcome = "delivered"
                except RetryableError as e:
                    outcome = str(e)
                took = time.monotonic() - started
                worst[where] = max(worst.get(where, 0.0), took)
                print(f"{where}: {took:.2f}s: {outcome}")
        trickler.close()
    ok = all(v <= timeout + 1 for v in worst.values())
    print(
        f"RESULT timeout_s={timeout:g} headers_max_s={worst['headers']:.2f} "
        f"body_max_s={worst['body']:.2f} within_bound={ok}"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
