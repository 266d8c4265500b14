"""``kubewatch replay``: a recorded capture through the filters, routes and sinks."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Mapping

from kubewatch.app import build_sinks
from kubewatch.cli.common import EXIT_CONFIG, EXIT_FAILURE, EXIT_OK, load_checked, log
from kubewatch.config import Config, format_errors
from kubewatch.delivery import Dispatcher
from kubewatch.delivery.policy import SinkPolicy, sink_policies
from kubewatch.errors import ApiError, ConfigErrors
from kubewatch.events import Event
from kubewatch.kube.client import ClusterClient
from kubewatch.kube.discovery import ResourceTable
from kubewatch.kube.failures import ApiUnreachable
from kubewatch.kube.kubeconfig import ClusterConfigError
from kubewatch.replay import Replayer
from kubewatch.routing import Router


def replay(args: argparse.Namespace) -> int:
    """Feed a capture through the same filters, routes and rendering as ``run``."""
    config = load_checked(args.config)
    if config is None:
        return EXIT_CONFIG
    table = None
    if args.kubeconfig or args.context:
        try:
            client = ClusterClient.connect(args.kubeconfig, args.context)
            table = ResourceTable.fetch(client.get_json)
            client.close()
        except (ClusterConfigError, ApiError, ApiUnreachable) as e:
            log.warning("no discovery (%s); kinds are matched by name", e)
    router = Router.build(config)
    try:
        sinks = build_sinks(config)
    except ConfigErrors as e:
        print(format_errors(e, args.config), file=sys.stderr)
        return EXIT_CONFIG
    dispatcher = None
    if not args.dry_run:
        policies = sink_policies(config)
        dispatcher = Dispatcher(
            sinks, config.delivery, policies=policies, inline=_inline(config, policies)
        )
        dispatcher.start()

    def deliver(event: Event) -> None:
        names = router.route(event)
        if dispatcher is not None:
            if names:  # backpressure: the capture is read at the slowest sink's pace
                dispatcher.submit(event, names, block=True)
            return
        for name in names:
            sink_type = config.sinks[name].type
            print(f"--- {name} ({sink_type}) would receive:\n{sinks[name].preview(event)}")

    replayer = Replayer(config, deliver, table=table)
    drain = REPLAY_DRAIN_TIMEOUT
    try:
        if args.file == "-":
            stats = replayer.replay(sys.stdin.buffer)
        else:
            with open(args.file, "rb") as stream:
                stats = replayer.replay(stream)
    except OSError as e:
        print(f"kubewatch: cannot read {args.file}: {e}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        log.warning("interrupted; delivering what is queued within the drain timeout")
        drain = config.delivery.drain_timeout
        stats = replayer.finish()
    finally:
        drained = dispatcher.close(drain) if dispatcher is not None else True
        for sink in sinks.values():
            sink.close()
    log.info(
        "replayed %d watch event(s): %d event(s) produced, %d object(s) of unconfigured kinds",
        stats.events,
        stats.produced,
        sum(stats.skipped.values()),
    )
    if dispatcher is None:
        return EXIT_OK
    return _replay_summary(dispatcher, drained)


def _inline(config: Config, policies: Mapping[str, SinkPolicy]) -> bool:
    """Deliver on the reading thread when every sink only writes to stdout (and none
    digests): the replay waits for its sinks anyway, and a hand-off to worker threads
    costs more than the write (see docs/performance.md)."""
    return all(
        sink.type == "stdout" and policies[name].digest is None
        for name, sink in config.sinks.items()
    )


REPLAY_DRAIN_TIMEOUT = 1e7
"""Seconds a replay waits at the end for its sinks (~4 months: no practical limit). A
replay reads at its slowest sink's pace and drops nothing; its last queued events get
the same patience (every attempt is bounded by the retry policy, so it ends)."""


def _replay_summary(dispatcher: Dispatcher, drained: bool) -> int:
    """Log what each sink did with the replayed events; EXIT_FAILURE unless every one was
    delivered (alone or inside a delivered digest)."""
    parts, lost = [], not drained
    for name, s in dispatcher.stats().items():
        part = f"{name}: {s.delivered} delivered, {s.failed} failed, {s.dropped} dropped"
        if s.digested:
            part += f" ({s.digested} in digests)"
        parts.append(part)
        lost = lost or s.failed > 0 or s.dropped > 0
    log.log(
        logging.ERROR if lost else logging.INFO,
        "replay %s: %s",
        "incomplete, not every event was delivered" if lost else "delivered",
        "; ".join(parts),
    )
    return EXIT_FAILURE if lost else EXIT_OK
