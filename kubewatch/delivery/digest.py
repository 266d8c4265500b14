"""Burst digests: beyond ``threshold`` events per window, one summary per group.

A namespace deletion removes 300 Pods: the receiver should get a few messages and one
"300 Pods deleted in namespace x", not 300 messages. A :class:`Digester` sits in front of
one sink's queue and decides, event by event, whether to pass it on or to hold it.

- **Windows.** A window opens with the first event that arrives while none is open (after
  a quiet period, or after the previous window ended) and lasts ``window`` seconds: a fixed
  window, not a sliding one. The first ``threshold`` events of a window pass straight on;
  every later event of that window is held: the window *overflowed*.
- **Sustained bursts.** The window that follows an overflowed one (opened less than
  ``window`` seconds after its end) passes nothing: *every* event of it is held. So does
  each following window while windows keep overflowing (more than ``threshold`` events).
  The first window with at most ``threshold`` events is still digested, and the window
  after it is an ordinary one again; a quiet period of ``window`` seconds or more counts
  as such a window. A burst of any length and pace thus yields ``threshold`` single
  events in all, then one digest per group per window, never ``threshold`` singles in
  every window.
- **Flush.** When the window ends, :meth:`Digester.flush` emits the held events grouped by
  ``(type, kind, namespace)`` (health alerts also by state and reason: 300 Pods of a bad
  rollout crash-looping make one ``[prod] 300 Pods CrashLoopBackOff firing in namespace x``
  digest): one digest :class:`~kubewatch.events.Event` per group of two
  or more (``name == ""``, :attr:`~kubewatch.events.Event.digest` set, a ``summary`` like
  ``[prod] 300 Pods deleted in namespace x: a, b, c … and 297 more``), and a group of one
  as that event itself. Groups come out in the order of their first held event.
- **Order.** While a window digests, *every* further event of the sink in that window is
  held, not only those of the bursting kind or namespace: a later event of an object whose
  earlier event sits in a digest can therefore never be passed on before that digest. The
  digests are emitted at flush time, after every event passed on before them and before
  every event of the next window. (Inside one flush, digests summarize: when one object has
  events in two groups, their digests come out in group order, not event order.)
- **Memory.** Held events are not kept: a group keeps its first event (to emit it alone, or
  as the template of the digest), a count, and the id and ``namespace/name`` of each held
  event up to :data:`MAX_HELD` per window across all groups. Beyond the cap events are still
  counted (``digest.count`` is exact) but not listed (``digest.ids`` / ``digest.names`` stop
  at the cap, plus the first event of each group). Memory per sink is thus bounded by
  ``MAX_HELD`` short strings plus one event per distinct ``(type, kind, namespace)``.

A digester is thread-safe. ``emit`` is called with the digester's lock held (so emissions
come out in decision order); it must be quick and must not call back into the digester.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from kubewatch.config import DigestConfig
from kubewatch.events import AlertInfo, DigestInfo, Event, EventType
from kubewatch.timefmt import utc_now
from kubewatch.words import plural

log = logging.getLogger("kubewatch.delivery")

MAX_HELD = 10_000
"""Ids and names listed per window and sink (1-2 MB in memory; a digest of 10,000 events is
0.5-1 MB of JSON, already more than most receivers want); beyond it events are only
counted."""

SUMMARY_NAMES = 3
"""Object names spelled out in a digest's summary; the rest are counted (``… and 297 more``)."""

_VERBS = {EventType.CREATE: "created", EventType.UPDATE: "updated", EventType.DELETE: "deleted"}

_GroupKey = tuple[EventType, str, str | None, str, str]
"""(type, kind, namespace, alert state, alert reason); the last two ``""`` but for alerts."""


def _verb(event: Event) -> str:
    """``deleted``; for health alerts ``CrashLoopBackOff firing`` (reason and state)."""
    if event.alert is not None:
        return f"{event.alert.reason} {event.alert.state.value}"
    return _VERBS[event.type]


def digest_summary(first: Event, count: int, names: tuple[str, ...]) -> str:
    """``[prod] 300 Pods deleted in namespace x: a, b, c … and 297 more``.

    ``first`` gives cluster, type, kind and namespace; ``names`` are the listed objects'
    names (without namespace) in arrival order. Cluster-scoped: no ``in namespace``.
    """
    line = f"[{first.cluster}] {count} {plural(first.kind)} {_verb(first)}"
    if first.namespace:
        line += f" in namespace {first.namespace}"
    shown = names[:SUMMARY_NAMES]
    if shown:
        line += ": " + ", ".join(shown)
    more = count - len(shown)
    if more > 0:
        line += f" … and {more} more"
    return line


@dataclass(slots=True)
class _Group:
    """Held events of one ``(type, kind, namespace)`` in the current window.

    Invariant: ``1 <= len(ids) == len(names) <= count``; ``ids[0]`` is ``first``'s id.
    """

    first: Event
    count: int = 1
    ids: list[str] = field(default_factory=list)
    names: list[str] = field(default_factory=list)


class Digester:
    """Passes the first ``threshold`` events of a window on to ``emit`` and folds the
    rest, and every event of the windows that follow while the burst goes on, into
    per-group digests emitted by :meth:`flush` when each window ends.

    ``clock`` measures windows (seconds, monotonic; tests pass a fake one); ``timestamp``
    gives a digest's ``observed_at`` (RFC 3339 UTC); ``max_held`` caps the ids and names
    listed per window (see the module docstring).
    """

    def __init__(
        self,
        sink: str,
        config: DigestConfig,
        *,
        clock: Callable[[], float] = time.monotonic,
        emit: Callable[[Event], None],
        timestamp: Callable[[], str] = utc_now,
        max_held: int = MAX_HELD,
    ) -> None:
        if max_held < 1:
            raise ValueError("max_held must be at least 1")
        self.sink = sink
        self.threshold = config.threshold
        self.window = config.window
        self._clock = clock
        self._emit = emit
        self._timestamp = timestamp
        self._max_held = max_held
        self._lock = threading.Lock()
        # The current window, all under _lock. Invariants:
        # - _end is None iff no window is open, and then _seen == 0, _groups is empty
        #   and _sustained is False;
        # - _groups is non-empty only if _sustained or _seen > threshold (digesting);
        # - _held == sum of the groups' counts == _seen if _sustained, else
        #   max(0, _seen - threshold);
        # - _listed == sum of len(group.ids) <= max_held + len(_groups);
        # - _carry_until is not None iff the last window closed had more than threshold
        #   events, and then is its end + window: a window opened before then is
        #   _sustained (holds every event).
        self._end: float | None = None
        self._seen = 0
        self._sustained = False
        self._carry_until: float | None = None
        self._groups: dict[_GroupKey, _Group] = {}
        self._held = 0
        self._listed = 0
        self._digested = 0  # events folded into digests so far; only grows

    # -- intake ----------------------------------------------------------------------

    def add(self, event: Event) -> None:
        """Pass ``event`` on to ``emit`` or hold it for the window's digest.

        An ended window is flushed first (its digests precede ``event``), whether or not a
        timer has flushed it yet. O(1), never blocks beyond the digester's own lock and
        ``emit``.
        """
        with self._lock:
            now = self._clock()
            if self._end is not None and now >= self._end:
                self._flush()
            if self._end is None:
                self._open(now)
            self._seen += 1
            if not self._sustained and self._seen <= self.threshold:
                self._emit(event)
                return
            if self._held == 0 and not self._sustained:
                log.info(
                    "sink %r: burst of more than %d events within %gs: digesting the rest "
                    "of the window",
                    self.sink,
                    self.threshold,
                    self.window,
                )
            self._hold(event)

    def _open(self, now: float) -> None:
        """Open a window at ``now``: sustained if the previous one overflowed and ended
        less than ``window`` seconds ago."""
        self._end = now + self.window
        if self._carry_until is None:
            return
        if now < self._carry_until:
            self._sustained = True
            return
        self._carry_until = None  # a quiet window in between: the burst is over
        log.info("sink %r: burst over: events are sent one by one again", self.sink)

    def _hold(self, event: Event) -> None:
        alert = event.alert
        key: _GroupKey = (
            event.type,
            event.kind,
            event.namespace,
            "" if alert is None else alert.state.value,
            "" if alert is None else alert.reason,
        )
        group = self._groups.get(key)
        if group is None:
            # Always listed, even past the cap: a digest's id derives from its ids, so
            # every digest needs at least one (its first event's) to be distinct.
            self._groups[key] = _Group(first=event, ids=[event.id], names=[event.key])
            self._listed += 1
        else:
            group.count += 1
            if self._listed < self._max_held:
                group.ids.append(event.id)
                group.names.append(event.key)
                self._listed += 1
        self._held += 1

    # -- flushing --------------------------------------------------------------------

    def flush(self, now: float | None = None, *, force: bool = False) -> int:
        """Emit the held events if the window has ended by ``now`` (default: ``clock()``),
        or at once with ``force`` (shutdown); the window closes either way.

        Returns the number of events emitted (digests and lone held events); 0 when the
        window is still running, or none is open.
        """
        with self._lock:
            if self._end is None:
                return 0
            if not force and (self._clock() if now is None else now) < self._end:
                return 0
            return self._flush()

    def _flush(self) -> int:
        groups = list(self._groups.values())
        assert self._end is not None  # callers check that a window is open
        if self._seen > self.threshold:
            if self._carry_until is None:
                log.info(
                    "sink %r: burst goes on: every event of the following windows is "
                    "digested until one has at most %d events",
                    self.sink,
                    self.threshold,
                )
            self._carry_until = self._end + self.window
        elif self._carry_until is not None:
            self._carry_until = None
            log.info("sink %r: burst over: the next window sends events one by one", self.sink)
        self._end, self._seen, self._groups, self._held, self._listed = None, 0, {}, 0, 0
        self._sustained = False
        if not groups:
            return 0
        stamp = self._timestamp()
        for group in groups:
            if group.count == 1:
                self._emit(group.first)
                continue
            digest = self._digest(group, stamp)
            self._digested += group.count
            log.info(
                "sink %r: digest id=%s of %d %s %s in %s",
                self.sink,
                digest.id,
                group.count,
                group.first.kind,
                group.first.type.value,
                group.first.namespace or "the cluster",
            )
            self._emit(digest)
        return len(groups)

    def _digest(self, group: _Group, stamp: str) -> Event:
        first = group.first
        names = tuple(group.names)
        return Event(
            type=first.type,
            cluster=first.cluster,
            kind=first.kind,
            api_version=first.api_version,
            resource=first.resource,
            namespace=first.namespace,
            name="",
            uid="",
            resource_version="",
            observed_at=stamp,
            labels={},
            changes=(),
            summary=digest_summary(
                first, group.count, tuple(n.rpartition("/")[2] for n in names[:SUMMARY_NAMES])
            ),
            digest=DigestInfo(count=group.count, ids=tuple(group.ids), names=names),
            alert=None
            if first.alert is None
            else AlertInfo(state=first.alert.state, reason=first.alert.reason),
        )

    # -- observation -----------------------------------------------------------------

    def deadline(self) -> float | None:
        """When the open window ends, if it holds events (a flush is then due); else None.
        A window that holds nothing needs no flush: the next event closes it."""
        with self._lock:
            return self._end if self._groups else None

    @property
    def held(self) -> int:
        """Events held now for the current window's digests; informational only."""
        with self._lock:
            return self._held

    @property
    def groups(self) -> int:
        """Groups held now: the most events the next flush emits (digests and lone
        events). Stable while the caller holds the lock of whatever calls ``add``."""
        with self._lock:
            return len(self._groups)

    @property
    def digested(self) -> int:
        """Events folded into digests so far (a held event emitted alone is not counted)."""
        with self._lock:
            return self._digested
