"""``kubewatch run``: start the app, reload on SIGHUP or a changed file, stop on
SIGTERM/SIGINT."""

from __future__ import annotations

import argparse
import hashlib
import random
import signal
import sys
import threading
import time
from collections.abc import Callable
from types import FrameType
from typing import Any, cast

from kubewatch._version import __version__
from kubewatch.app import STOP_POLL_INTERVAL, App, check_config
from kubewatch.cli.common import (
    EXIT_CONFIG,
    EXIT_LOST,
    EXIT_OK,
    T,
    load_checked,
    log,
    register_config_secrets,
)
from kubewatch.config import Config, format_errors, load_config
from kubewatch.errors import ApiError, ConfigErrors
from kubewatch.kube.client import ClusterClient
from kubewatch.kube.failures import ApiUnreachable
from kubewatch.kube.kubeconfig import ClusterConfigError
from kubewatch.kube.recorder import EventRecorder
from kubewatch.observability.logs import register_secret
from kubewatch.state import DirectoryLock, StateLocked
from kubewatch.watch.plan import Plan

# -- run -----------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> int:
    config = load_checked(args.config)
    if config is None:
        return EXIT_CONFIG
    if args.port is not None:
        config = config.model_copy(
            update={"server": config.server.model_copy(update={"port": args.port})}
        )
    if args.state_dir is not None:
        config = with_state_dir(config, args.state_dir)
    if not _state_dir_free(config.state.path):
        return EXIT_CONFIG
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
    except StateLocked as e:  # another process took the directory since the first check
        print(f"kubewatch: {e}", file=sys.stderr)
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


def _state_dir_free(path: str | None) -> bool:
    """False, with one line on stderr, when another process holds the state directory:
    checked before connecting, so a second ``kubewatch run`` on it fails at once."""
    if path is None:
        return True
    try:
        DirectoryLock.acquire(path).release()
    except StateLocked as e:
        print(f"kubewatch: {e}", file=sys.stderr)
        return False
    except OSError:  # the state cannot be opened at all: App says so and runs in memory
        pass
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
