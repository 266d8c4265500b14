"""Command line: ``kubewatch run``, ``validate``, ``test-sink`` and ``replay``.

Exit codes: 0 success (``run``: stopped by SIGTERM/SIGINT; events it could not deliver
within the drain timeout are logged), 1 a runtime failure (``validate``: the cluster
could not be checked — no kubeconfig, unknown context, unreachable, refused — or a
resource cannot be listed; ``test-sink``: the receiver refused; ``replay``: the capture
cannot be read, or an event was not delivered to a sink), 2 a configuration or usage
mistake, a malformed kubeconfig included (nothing was started), 3 (``run``) events were
neither delivered nor kept at shutdown (no durable state).
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import hashlib
import logging
import os
import random
import signal
import sys
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from types import FrameType
from typing import Any, TypeVar, cast

from kubewatch._version import __version__
from kubewatch.app import STOP_POLL_INTERVAL, App, build_sinks, check_config
from kubewatch.config import Config, format_errors, load_config
from kubewatch.delivery import Dispatcher
from kubewatch.delivery.policy import sink_policies
from kubewatch.errors import (
    ApiError,
    ConfigErrors,
    DeliveryError,
    RateLimited,
    RetryableError,
)
from kubewatch.events import Event, EventType
from kubewatch.kube.access import may
from kubewatch.kube.client import (
    ApiUnreachable,
    ClusterClient,
    ClusterConfigError,
    KubeconfigInvalid,
    Query,
)
from kubewatch.kube.discovery import ResourceTable, ResourceType
from kubewatch.kube.recorder import EventRecorder
from kubewatch.observability.logs import register_secret, setup_logging
from kubewatch.render.templates import SAMPLES
from kubewatch.replay import Replayer
from kubewatch.routing import Router
from kubewatch.sinks import build_sink
from kubewatch.timefmt import utc_now
from kubewatch.watch.pipeline import needs_namespace_labels
from kubewatch.watch.plan import Plan, describe_scope

log = logging.getLogger("kubewatch")

T = TypeVar("T")

EXIT_OK, EXIT_FAILURE, EXIT_CONFIG, EXIT_LOST = 0, 1, 2, 3
"""EXIT_LOST: stopped with events neither delivered nor kept (no durable state)."""
DEFAULT_CONFIG = "config.yaml"


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    setup_logging(args.log_level, args.log_format)
    if args.command == "run":
        return run(args)
    if args.command == "validate":
        return validate(args)
    if args.command == "test-sink":
        return sink_test(args)
    if args.command == "replay":
        return replay(args)
    raise AssertionError(args.command)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kubewatch",
        description="Watch Kubernetes resources and deliver normalized change events.",
    )
    parser.add_argument("--version", action="version", version=f"kubewatch {__version__}")
    parser.add_argument(
        "--log-level",
        default=os.environ.get("KUBEWATCH_LOG_LEVEL", "info"),
        choices=["debug", "info", "warning", "error"],
        help="log verbosity on stderr (default: info)",
    )
    parser.add_argument(
        "--log-format",
        default=os.environ.get("KUBEWATCH_LOG_FORMAT", "text"),
        choices=["text", "json"],
        help="log lines on stderr: readable text, or one JSON object per line (default: text)",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--config",
            default=os.environ.get("KUBEWATCH_CONFIG", DEFAULT_CONFIG),
            metavar="FILE",
            help=f"configuration file (default: $KUBEWATCH_CONFIG or {DEFAULT_CONFIG})",
        )
        p.add_argument(
            "--kubeconfig",
            metavar="FILE",
            help="kubeconfig (default: $KUBECONFIG, ~/.kube/config, else in-cluster)",
        )
        p.add_argument("--context", metavar="NAME", help="kube context (default: current)")

    run_parser = commands.add_parser(
        "run",
        help="watch and deliver until SIGTERM/SIGINT",
        description="Watch and deliver until SIGTERM/SIGINT. SIGHUP, or a change of the "
        "configuration file, reloads it: unchanged watches keep running; an invalid new "
        "configuration is logged and the running one stays.",
    )
    common(run_parser)
    run_parser.add_argument(
        "--port",
        type=int,
        metavar="PORT",
        help="serve /metrics, /healthz and /readyz on PORT (overrides server.port)",
    )
    run_parser.add_argument(
        "--state-dir",
        metavar="DIR",
        help="keep the spool of undelivered events and the watch checkpoint in DIR "
        "(overrides state.path)",
    )
    replay_parser = commands.add_parser(
        "replay",
        help="run recorded watch events (kubectl --watch --output-watch-events -o json) "
        "through the filters, routes and sinks",
    )
    replay_parser.add_argument("file", metavar="FILE", help="the capture, or - for stdin")
    common(replay_parser)
    replay_parser.add_argument(
        "--dry-run",
        action="store_true",
        help="print what each sink would receive instead of sending it",
    )
    validate_parser = commands.add_parser(
        "validate", help="check the configuration and, if a cluster is reachable, the resources"
    )
    common(validate_parser)
    validate_parser.add_argument(
        "--offline", action="store_true", help="check the file only; do not contact a cluster"
    )
    test_sink_parser = commands.add_parser(
        "test-sink",
        help="send one sample event to one sink, once, and say what happened",
        description="Build only the sink NAME from the configuration and send it one sample "
        "create event, once, without retries. No cluster is contacted. Exit 0 when the "
        "receiver accepted it, 1 when it did not (the error says whether it would have been "
        "retried), 2 for a configuration mistake or an unknown sink.",
    )
    test_sink_parser.add_argument("sink", metavar="NAME", help="a key under 'sinks:'")
    common(test_sink_parser)
    return parser


SECRET_KEYS = ("token", "password", "secret", "url")
"""Sink keys whose values are credentials (webhook URLs embed tokens): never logged."""


def register_config_secrets(config: Config) -> None:
    """Tell the log redactor every credential in the config: a last line of defence."""
    for sink in config.sinks.values():
        for key in SECRET_KEYS:
            value = getattr(sink, key, None)
            if isinstance(value, str):
                register_secret(value)
        for value in (getattr(sink, "headers", None) or {}).values():
            register_secret(value)


def _load(path: str) -> Config | None:
    """The config, checked as far as possible without a cluster (templates, routes)."""
    try:
        config = load_config(path)
        register_config_secrets(config)
        check_config(config)
    except ConfigErrors as e:
        print(format_errors(e, path), file=sys.stderr)
        return None
    return config


# -- run -----------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> int:
    config = _load(args.config)
    if config is None:
        return EXIT_CONFIG
    if args.port is not None:
        config = config.model_copy(
            update={"server": config.server.model_copy(update={"port": args.port})}
        )
    if args.state_dir is not None:
        config = with_state_dir(config, args.state_dir)
    try:
        client = ClusterClient.connect(args.kubeconfig, args.context)
    except ClusterConfigError as e:
        print(f"kubewatch: {e}", file=sys.stderr)
        return EXIT_CONFIG

    stop = threading.Event()
    apps: list[App] = []  # the app once built: a signal ends the waits of its start

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("received %s; stopping", signal.Signals(signum).name)
        stop.set()
        for running in apps:
            running.request_stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    reload_requested = threading.Event()

    def on_hangup(_signum: int, _frame: FrameType | None) -> None:
        reload_requested.set()

    signal.signal(signal.SIGHUP, on_hangup)

    for secret in client.credentials():
        register_secret(secret)
    log.info("kubewatch %s: cluster %s at %s", __version__, client.context_name, client.host)
    plan = _plan_with_retry(config, client, stop)
    if plan is None:
        client.close()
        return EXIT_CONFIG if not stop.is_set() else EXIT_OK
    try:
        app = App(config, client, plan, recorder=EventRecorder.from_environment(client))
    except ConfigErrors as e:
        print(format_errors(e, args.config), file=sys.stderr)
        client.close()
        return EXIT_CONFIG
    apps.append(app)
    if stop.is_set():
        app.request_stop()
    for watch in plan.watches:
        log.info(
            "resources[%d]: %s resolved to %s %s (%s)",
            watch.index,
            watch.config.kind,
            watch.resource.api_version,
            watch.resource.plural,
            "namespaced" if watch.resource.namespaced else "cluster-scoped",
        )
    app.start()
    log.info("delivering to %s", ", ".join(config.sinks))
    watcher = ConfigFileWatcher(args.config)
    app.heartbeats.register("main")
    while not stop.wait(CONFIG_POLL_INTERVAL):
        app.heartbeats.beat("main")
        if reload_requested.is_set():
            reload_requested.clear()
            watcher.changed()  # this reload reads the file as it is now: not again
            log.info("SIGHUP received; reloading %s", args.config)
            _reload(app, args)
        elif watcher.changed():
            log.info("%s changed; reloading", args.config)
            _reload(app, args)
    started = time.monotonic()
    drained = app.stop()
    log.info(
        "stopped in %.1fs%s",
        time.monotonic() - started,
        "" if drained else "; some queued events were not delivered",
    )
    return EXIT_LOST if app.lost else EXIT_OK


CONFIG_POLL_INTERVAL = 1.0
"""Seconds between checks of the configuration file (a mounted ConfigMap changes by an
atomic symlink swap some seconds after the update: polling the content sees it)."""


class ConfigFileWatcher:
    """Notices when the configuration file's content changes (not just its mtime)."""

    def __init__(self, path: str) -> None:
        self._path = path
        self._digest = self._read()

    def _read(self) -> bytes | None:
        try:
            with open(self._path, "rb") as f:
                return hashlib.sha256(f.read()).digest()
        except OSError:
            return None

    def changed(self) -> bool:
        digest = self._read()
        if digest is None or digest == self._digest:
            return False
        self._digest = digest
        return True


def with_state_dir(config: Config, path: str) -> Config:
    """``config`` with ``state.path`` replaced by ``--state-dir``."""
    return config.model_copy(update={"state": config.state.model_copy(update={"path": path})})


def _reload(app: App, args: argparse.Namespace) -> None:
    """Load, check and plan the new configuration; apply it only if all of that worked."""
    try:
        config = load_config(args.config)
        register_config_secrets(config)
        check_config(config)
        if args.port is not None:
            server = config.server.model_copy(update={"port": args.port})
            config = config.model_copy(update={"server": server})
        if args.state_dir is not None:
            config = with_state_dir(config, args.state_dir)
        plan = App.plan(config, app.client)
        app.reload(config, plan)
    except ConfigErrors as e:
        log.error(
            "new configuration rejected; the running one stays:\n%s", format_errors(e, args.config)
        )
    except (ApiError, ApiUnreachable) as e:
        log.error("new configuration not applied (discovery failed: %s); the running one stays", e)


def replay(args: argparse.Namespace) -> int:
    """Feed a capture through the same filters, routes and rendering as ``run``."""
    config = _load(args.config)
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
        dispatcher = Dispatcher(sinks, config.delivery, policies=sink_policies(config))
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


def _plan_with_retry(config: Config, client: ClusterClient, stop: threading.Event) -> Plan | None:
    """Resolve resources; while the API server is unreachable, keep trying (a Pod that
    starts before its API server is reachable should wait, not crash-loop). A stop ends
    the wait at once, also while a discovery request hangs on a frozen API server."""
    delay = 1.0
    while not stop.is_set():
        try:
            return _unless_stopped(lambda: App.plan(config, client), stop)
        except _Stopped:
            return None
        except ConfigErrors as e:
            print(format_errors(e, "resources"), file=sys.stderr)
            return None
        except (ApiError, ApiUnreachable) as e:
            log.warning("discovery failed: %s; retrying in %.0fs", e, delay)
            stop.wait(delay * random.uniform(0.5, 1.0))
            delay = min(delay * 2, 30.0)
    return None


class _Stopped(Exception):
    """A stop was requested while a blocking call ran."""


def _unless_stopped(call: Callable[[], T], stop: threading.Event) -> T:
    """``call()`` on a daemon thread; its result or exception, or ``_Stopped`` as soon as
    ``stop`` is set (a blocking request cannot be interrupted, but it need not be awaited:
    the process is exiting)."""
    outcome: list[tuple[bool, Any]] = []

    def target() -> None:
        try:
            outcome.append((True, call()))
        except BaseException as e:
            outcome.append((False, e))

    thread = threading.Thread(target=target, name="kubewatch-discovery", daemon=True)
    thread.start()
    while thread.is_alive():
        thread.join(STOP_POLL_INTERVAL)
        if stop.is_set() and not outcome:
            raise _Stopped
    ok, value = outcome[0]
    if not ok:
        raise value
    return cast(T, value)


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


# -- validate ------------------------------------------------------------------------------


def validate(args: argparse.Namespace) -> int:
    """Exit 0 only when every check passed: the file, and (unless ``--offline``) the
    cluster. A cluster that could not be checked is a failure (1), never a pass."""
    config = _load(args.config)
    if config is None:
        return EXIT_CONFIG
    if args.offline:
        print(f"{args.config}: configuration is valid (offline: the cluster was not checked)")
        return EXIT_OK
    try:
        client = ClusterClient.connect(args.kubeconfig, args.context)
    except KubeconfigInvalid as e:
        print(f"kubewatch: {e}", file=sys.stderr)
        return EXIT_CONFIG
    except ClusterConfigError as e:
        print(
            f"kubewatch: no cluster to check against ({e}); use --offline to check the file only",
            file=sys.stderr,
        )
        return EXIT_FAILURE
    try:
        return _validate_against(config, client, args)
    finally:
        client.close()


def _validate_against(config: Config, client: ClusterClient, args: argparse.Namespace) -> int:
    try:
        plan = App.plan(config, client)
    except ConfigErrors as e:
        print(format_errors(e, args.config), file=sys.stderr)
        return EXIT_CONFIG
    except (ApiError, ApiUnreachable) as e:
        print(
            f"kubewatch: cluster {client.host} could not be checked ({e}); "
            "use --offline to check the file only",
            file=sys.stderr,
        )
        return EXIT_FAILURE
    failures = 0
    for index, rc in plan.pending:
        print(f"resources[{index}]: {rc.kind} is not installed yet; it will be watched once it is")
    for watch in plan.watches:
        for namespace in watch.namespaces:
            failures += _check_watch(
                client,
                f"resources[{watch.index}]",
                scope=describe_scope(watch, namespace),
                resource=watch.resource,
                namespace=namespace,
                query=Query(watch.config.label_selector, watch.field_selector),
            )
    if plan.namespaces is not None and any(
        needs_namespace_labels(config, w.config) for w in plan.watches
    ):
        failures += _check_watch(
            client,
            "namespaceSelector",
            scope="namespaces",
            resource=plan.namespaces,
            namespace=None,
            query=Query(),
        )
    if failures:
        print(f"{args.config}: {failures} check(s) failed", file=sys.stderr)
        return EXIT_FAILURE
    print(f"{args.config}: configuration is valid (checked against {client.host})")
    return EXIT_OK


def _check_watch(
    client: ClusterClient,
    where: str,
    *,
    scope: str,
    resource: ResourceType,
    namespace: str | None,
    query: Query,
) -> int:
    """List one page of a watch's collection and ask whether it may be watched; print the
    verdict; 1 when it cannot be watched (a watch needs both verbs), else 0."""
    try:
        client.list_page(resource.path(namespace), query, limit=1)
    except (ApiError, ApiUnreachable) as e:
        print(f"{where}: cannot list {scope}: {e}", file=sys.stderr)
        return 1
    try:
        denied = may(client, "watch", resource, namespace)
    except (ApiError, ApiUnreachable) as e:
        print(
            f"{where}: {scope}: listable; watch permission could not be checked ({e})",
            file=sys.stderr,
        )
        return 1
    if denied is not None:
        print(f"{where}: cannot watch {scope}: {denied}", file=sys.stderr)
        return 1
    print(f"{where}: {scope}: listable and watchable")
    return 0


if __name__ == "__main__":
    sys.exit(main())
