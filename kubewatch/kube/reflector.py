"""The Reflector: keeps a target in step with one collection of the API server.

It mirrors client-go's ``tools/cache`` Reflector:

* a paged LIST (``limit``/``continue``; an expired continue token starts the list again
  from scratch) is handed to the target as one *replace*: ``replace_begin``, one
  ``replace_item`` per object, ``replace_end``;
* then a WATCH from the list's resourceVersion with bookmarks, a server ``timeoutSeconds``
  and a client read timeout, so that a silent, half-open stream is detected and replaced;
* every event and bookmark advances the resourceVersion; a watch that ends or breaks is
  reopened from it; 410 Gone (an HTTP status or an in-stream ERROR) means the version left
  the server's window, so the reflector lists again and the target reconciles;
* every failure, and every relist after a list-and-watch cycle that made no progress,
  waits under one backoff (:mod:`kubewatch.backoff`: 0.8 s doubling to 30 s, jittered,
  reset after two minutes without a failure), as client-go runs each list-and-watch
  under its backoff manager: no answer (403, 404, 429, 500, refused, a 410 for every
  watch) can make it loop hot. A 410 that ends a productive watch (an event or bookmark
  applied, at least ``min_watch_duration`` after the LIST) relists at once: the gap is
  what the relist closes, and waiting would widen it (a short-lived object created and
  deleted meanwhile would go unseen). So LISTs come at most once per backoff wait or per
  productive watch;
* :attr:`Reflector.failure` says why the latest attempt failed until one succeeds, so
  readiness reports a watch that cannot list or watch on its first failed attempt;
* ``stop()`` works from any thread, also while a read is blocked.

The Reflector knows nothing of events or sinks: it moves plain dicts.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from kubewatch.backoff import Backoff
from kubewatch.errors import ApiError, WatchExpired

log = logging.getLogger(__name__)


class WatchStreamLike(Protocol):
    """An iterable of decoded watch events that can be closed from another thread."""

    def __iter__(self) -> Any: ...

    def close(self) -> None: ...


class ListerWatcher(Protocol):
    """The API boundary of a Reflector (client-go's ``ListerWatcher``); faked in tests."""

    def list_page(self, *, limit: int, continue_token: str | None) -> dict[str, Any]:
        """One page of a consistent LIST; raises WatchExpired for an expired continue."""
        ...

    def watch(self, *, resource_version: str, timeout_seconds: int) -> WatchStreamLike:
        """A WATCH from ``resource_version``; the stream raises ConnectionError when it
        breaks or stays silent past the read timeout."""
        ...


class ReflectorTarget(Protocol):
    """Receives what the Reflector sees. Called from the Reflector's thread only."""

    def replace_begin(self) -> None:
        """A LIST starts (again); items follow."""

    def replace_item(self, obj: dict[str, Any]) -> None:
        """One listed object."""

    def replace_end(self) -> None:
        """The LIST is complete: anything not listed since ``replace_begin`` is gone."""

    def watch_event(self, event_type: str, obj: dict[str, Any]) -> None:
        """``ADDED``, ``MODIFIED`` or ``DELETED`` with the object."""


@dataclass(frozen=True, slots=True)
class ReflectorSettings:
    """How a Reflector lists and watches; times in seconds."""

    page_size: int = 200
    """``limit`` per LIST page: bounds what one response holds in memory."""
    server_timeout: int = 60
    """Each WATCH asks the server to end it after a time in [this, twice this), capped below
    the read timeout, so that a healthy idle stream ends before it is presumed dead."""
    read_timeout: float = 90.0
    """Silence (no event, no bookmark) after which the stream is presumed dead."""
    backoff_initial: float = 0.8
    backoff_max: float = 30.0
    backoff_reset: float = 120.0
    """Healthy seconds after which the backoff starts again from ``backoff_initial``."""
    min_watch_duration: float = 1.0
    """A watch that ends sooner than this with no event is treated as a failure (no hot loop)."""

    def watch_timeout(self, rng: random.Random) -> int:
        pick = rng.uniform(self.server_timeout, 2 * self.server_timeout)
        return max(1, int(min(pick, self.read_timeout * 0.9)))


def reflector_backoff(
    settings: ReflectorSettings,
    rng: random.Random | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> Backoff:
    """The backoff of one Reflector, from its settings."""
    return Backoff(
        settings.backoff_initial,
        settings.backoff_max,
        settings.backoff_reset,
        rng=rng,
        clock=clock,
    )


class Reflector:
    """Lists and watches one collection into a :class:`ReflectorTarget`.

    ``kind``/``api_version`` are filled into list items, which the API server sends
    without them. ``last_activity`` (monotonic seconds) is when the last byte-level sign
    of life (list page, event or bookmark) arrived: health checks read it.
    """

    def __init__(
        self,
        name: str,
        lister_watcher: ListerWatcher,
        target: ReflectorTarget,
        *,
        kind: str,
        api_version: str,
        settings: ReflectorSettings | None = None,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.monotonic,
        on_synced: Callable[[int], None] | None = None,
        on_api_error: Callable[[ApiError], None] | None = None,
        wait: Callable[[float], object] | None = None,
    ) -> None:
        self.name = name
        self._on_api_error = on_api_error
        self._lw = lister_watcher
        self._target = target
        self._kind = kind
        self._api_version = api_version
        self._settings = settings or ReflectorSettings()
        self._rng = rng or random.Random()
        self._clock = clock
        self._on_synced = on_synced
        self._backoff = reflector_backoff(self._settings, self._rng, clock)
        self._stop = threading.Event()
        self._wait = wait or self._stop.wait
        """Waits the given seconds or until ``stop()``; tests pass one that steps a clock."""
        self._stream_lock = threading.Lock()
        self._stream: WatchStreamLike | None = None  # the open watch, closed by stop()
        self.resource_version = ""
        """Last resourceVersion seen; empty until the first LIST completes."""
        self.last_activity = clock()
        """Monotonic time of the last sign of life: a list page, a watch opened, an event or
        a bookmark. A healthy quiet watch still reopens every one to two ``server_timeout``s."""
        self._listed_at = -float("inf")  # clock time the latest LIST completed
        self._progress = False  # a watch event or bookmark was applied since that LIST
        self.in_request = False
        """True while a LIST page or the opening of a WATCH is awaited: such a request
        cannot be interrupted, but nothing it returns after ``stop()`` reaches the target,
        so a stop need not wait for it."""
        self.relists = 0
        """LISTs after the first: each one follows a 410 (or a failed first watch)."""
        self.watch_restarts = 0
        self.failure: str | None = None
        """Why the latest LIST or WATCH attempt failed (``HTTP 403 Forbidden: …``, ``watch
        …: no data for 90s, presumed dead``); ``None`` once a LIST completes or a WATCH is
        answered. One assignment per change: readable from any thread."""

    # -- lifecycle ----------------------------------------------------------------------

    def stop(self) -> None:
        """Ask ``run`` to return; unblocks a read in progress. Idempotent, any thread."""
        self._stop.set()
        with self._stream_lock:
            stream = self._stream
        if stream is not None:
            stream.close()

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def run(self) -> None:
        """List, then watch, until ``stop()``. Never raises for API trouble."""
        need_list = True
        while not self._stop.is_set():
            try:
                if need_list:
                    self._list()
                    need_list = False
                self._watch()
            except WatchExpired as e:
                # Not a failure of the API server, but a relist is the costly part of a
                # list-and-watch cycle: after a cycle without progress it waits under the
                # backoff like any retry, so a server that answers every watch with 410
                # gets a LIST per backoff wait.
                productive = self._progress and (
                    self._clock() - self._listed_at >= self._settings.min_watch_duration
                )
                delay = 0.0 if productive else self._backoff.next_delay()
                log.info(
                    "%s: resourceVersion %s expired (%s); listing again in %.1fs",
                    self.name,
                    self.resource_version,
                    e.message,
                    delay,
                )
                need_list = True
                self.relists += 1
                if delay:
                    self._wait(delay)
            except ApiError as e:
                if self._on_api_error is not None:
                    self._on_api_error(e)
                self._fail(f"API error {e}")
            except ConnectionError as e:
                self._fail(str(e))
            except Exception:
                log.exception("%s: unexpected error; will retry", self.name)
                self._fail("unexpected error")

    def _fail(self, why: str) -> None:
        self.failure = why
        delay = self._backoff.next_delay()
        log.warning("%s: %s; retrying in %.1fs", self.name, why, delay)
        self._wait(delay)

    # -- list ---------------------------------------------------------------------------

    def _list(self) -> None:
        started = self._clock()
        target = self._target
        while True:  # once, or again from scratch when a continue token expires
            target.replace_begin()
            continue_token: str | None = None
            count = 0
            try:
                while True:
                    self.in_request = True
                    try:
                        page = self._lw.list_page(
                            limit=self._settings.page_size, continue_token=continue_token
                        )
                    finally:
                        self.in_request = False
                    if self._stop.is_set():
                        return
                    self.last_activity = self._clock()
                    for item in page.get("items") or ():
                        if self._stop.is_set():
                            return
                        self._fill_type(item)
                        target.replace_item(item)
                        count += 1
                    meta = page.get("metadata") or {}
                    continue_token = meta.get("continue") or None
                    if continue_token is None:
                        self.resource_version = str(meta.get("resourceVersion", ""))
                        break
            except WatchExpired:
                if continue_token is None:
                    raise
                delay = self._backoff.next_delay()
                log.info(
                    "%s: list continue token expired; listing again from scratch in %.1fs",
                    self.name,
                    delay,
                )
                self._wait(delay)
                if self._stop.is_set():
                    return
                continue
            break
        target.replace_end()
        self.failure = None
        self._listed_at = self._clock()
        self._progress = False
        log.debug(
            "%s: listed %d objects at resourceVersion %s in %.2fs",
            self.name,
            count,
            self.resource_version,
            self._clock() - started,
        )
        if self._on_synced is not None:
            self._on_synced(count)

    # -- watch --------------------------------------------------------------------------

    def _watch(self) -> None:
        """Watch from ``resource_version`` until stopped; raise on failure."""
        while not self._stop.is_set():
            started = self._clock()
            timeout = self._settings.watch_timeout(self._rng)
            self.in_request = True
            try:
                stream = self._lw.watch(
                    resource_version=self.resource_version, timeout_seconds=timeout
                )
            finally:
                self.in_request = False
            self.last_activity = self._clock()  # the server answered: alive, even if quiet
            self.failure = None
            with self._stream_lock:
                self._stream = stream
            if self._stop.is_set():  # stop() ran between watch() and the assignment
                stream.close()
            try:
                events = self._consume(stream)
            finally:
                with self._stream_lock:
                    self._stream = None
                stream.close()
            if self._stop.is_set():
                return
            self.watch_restarts += 1
            lasted = self._clock() - started
            if events == 0 and lasted < self._settings.min_watch_duration:
                self._fail(f"watch ended after {lasted:.2f}s with no event")
            else:
                log.debug(
                    "%s: watch ended after %.0fs and %d events; reopening",
                    self.name,
                    lasted,
                    events,
                )

    def _consume(self, stream: Iterable[dict[str, Any]]) -> int:
        """Apply every event of one stream; return how many there were."""
        count = 0
        target = self._target
        for event in stream:
            if self._stop.is_set():
                break
            self.last_activity = self._clock()
            event_type = event.get("type")
            obj = event.get("object")
            if not isinstance(obj, dict):
                log.warning(
                    "%s: skipping a watch event without an object: %.200r", self.name, event
                )
                continue
            if event_type in ("ADDED", "MODIFIED", "DELETED"):
                self._fill_type(obj)
                target.watch_event(event_type, obj)
            elif event_type == "BOOKMARK":
                pass
            elif event_type == "ERROR":
                raise _stream_error(obj)
            else:
                log.warning("%s: skipping a watch event of type %.40r", self.name, event_type)
                continue
            rv = (obj.get("metadata") or {}).get("resourceVersion")
            if rv:
                self.resource_version = rv
            count += 1
            self._progress = True
        return count

    def _fill_type(self, obj: dict[str, Any]) -> None:
        if "kind" not in obj:
            obj["kind"] = self._kind
        if "apiVersion" not in obj:
            obj["apiVersion"] = self._api_version


def _stream_error(status: dict[str, Any]) -> ApiError:
    """An in-stream ERROR event carries a ``Status``; 410 means relist."""
    code = status.get("code")
    message = str(status.get("message") or "")
    if code == 410 or status.get("reason") in ("Expired", "Gone"):
        return WatchExpired(message or "resource version too old")
    return ApiError(
        int(code) if isinstance(code, int) else 500, str(status.get("reason") or ""), message
    )
