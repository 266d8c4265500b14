"""A JetStream consumer in its own process: ``python -m tests.e2e.nats_consumer URL OUT``.

Reads the stream ``KUBEWATCH`` through the durable pull consumer ``e2e`` and appends one
JSON line per message to OUT (``msgId``, ``subject``, ``event``), acknowledging each
message after its line is written, until SIGTERM.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys

import nats
import nats.errors


async def consume(url: str, out: str) -> None:
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    nc = await nats.connect(url)
    js = nc.jetstream()
    sub = await js.pull_subscribe("kubewatch.>", durable="e2e", stream="KUBEWATCH")
    with open(out, "a", encoding="utf-8") as file:
        while not stop.is_set():
            try:
                messages = await sub.fetch(50, timeout=0.5)
            except nats.errors.TimeoutError:
                continue
            for msg in messages:
                line = {
                    "msgId": (msg.headers or {}).get("Nats-Msg-Id"),
                    "subject": msg.subject,
                    "event": json.loads(msg.data),
                }
                file.write(json.dumps(line) + "\n")
                file.flush()
                await msg.ack()
    await nc.close()


if __name__ == "__main__":
    asyncio.run(consume(sys.argv[1], sys.argv[2]))
