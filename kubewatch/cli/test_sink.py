"""``kubewatch test-sink``: one sample event to one sink, once."""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import sys
import uuid

from kubewatch.cli.common import EXIT_CONFIG, EXIT_FAILURE, EXIT_OK
from kubewatch.config import format_errors, load_config
from kubewatch.errors import (
    ConfigErrors,
    DeliveryError,
    RateLimited,
    RetryableError,
)
from kubewatch.events import Event, EventType
from kubewatch.render.templates import SAMPLES
from kubewatch.sinks import build_sink
from kubewatch.timefmt import utc_now

# -- test-sink -----------------------------------------------------------------------------

TEST_SINK_OBJECT = "kubewatch-test-sink"
"""Name of the object in the sample event ``test-sink`` sends, so receivers can spot it."""


def sample_event(cluster: str) -> Event:
    """The sample create event of ``test-sink``: the template samples' create, renamed.

    Its uid is fresh each time, so its :attr:`Event.id` is too: a receiver that
    de-duplicates on the id does not swallow a second test.
    """
    sample = next(event for _, event in SAMPLES if event.type is EventType.CREATE)
    key = f"{sample.namespace}/{TEST_SINK_OBJECT}" if sample.namespace else TEST_SINK_OBJECT
    return dataclasses.replace(
        sample,
        cluster=cluster,
        name=TEST_SINK_OBJECT,
        uid=str(uuid.uuid4()),
        observed_at=utc_now(),
        labels={"app.kubernetes.io/name": TEST_SINK_OBJECT},
        summary=f"[{cluster}] {sample.kind} {key} created (test event from kubewatch test-sink)",
    )


def error_class(error: DeliveryError) -> str:
    """How ``kubewatch run`` would take ``error``: ``rate limited`` (retried after the
    receiver's Retry-After, which the message states), ``retryable error`` (retried with
    backoff) or ``permanent error`` (given up at once)."""
    if isinstance(error, RateLimited):
        return "rate limited"
    if isinstance(error, RetryableError):
        return "retryable error"
    return "permanent error"


def sink_test(args: argparse.Namespace) -> int:
    """``kubewatch test-sink NAME``: one sample event, one attempt, the receiver's answer."""
    try:
        config = load_config(args.config)
    except ConfigErrors as e:
        print(format_errors(e, args.config), file=sys.stderr)
        return EXIT_CONFIG
    name: str = args.sink
    if name not in config.sinks:
        close = difflib.get_close_matches(name, list(config.sinks), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        print(
            f"kubewatch: no sink {name!r} in {args.config}{hint}; sinks: {', '.join(config.sinks)}",
            file=sys.stderr,
        )
        return EXIT_CONFIG
    sink_config = config.sinks[name]
    try:
        sink = build_sink(name, sink_config)
    except ConfigErrors as e:
        print(format_errors(e, args.config), file=sys.stderr)
        return EXIT_CONFIG
    event = sample_event(config.cluster or "test")
    with sink:
        try:
            sink.send(event)
        except DeliveryError as error:
            print(f"{name}: {error_class(error)}: {error}", file=sys.stderr)
            return EXIT_FAILURE
        except Exception as error:  # a bug in the sink: say so plainly, with its type
            print(f"{name}: unexpected error in sink: {error!r}", file=sys.stderr)
            return EXIT_FAILURE
    print(f"delivered to {name} ({sink_config.type})")
    return EXIT_OK
