"""Routing: which sinks hear of each event.

Everything is compiled once from the :class:`~kubewatch.config.Config`; per call the work
is a few attribute checks, set lookups and precompiled regex calls, and a configuration
without conditions takes a fast path that returns at once.

:class:`Router` runs on events: ``drop`` first (any match discards the event), then
``routes`` in order (every matching route adds its sinks, ``stop`` ends the evaluation);
without routes every event goes to every sink. The result names each sink at most once,
in the order the configuration lists ``sinks``."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

from kubewatch.config import Config, MatchConfig
from kubewatch.events import AlertState, Event, EventType
from kubewatch.match.paths import PathTree, compile_paths, path_matches
from kubewatch.match.patterns import NameMatcher, compile_names
from kubewatch.match.selectors import PLAIN_REASON, CachedNames, FlatSelector, flat_selector

__all__ = ["Router"]

log = logging.getLogger(__name__)

# --------------------------------------------------------------------------- router


def _namespaces(patterns: tuple[str, ...]) -> CachedNames | NameMatcher:
    matcher = compile_names(patterns)
    return matcher if matcher.only_exact else CachedNames(matcher)


@dataclass(frozen=True, slots=True)
class _Match:
    """A compiled :class:`~kubewatch.config.MatchConfig`; ``None`` means "no condition".

    Conditions are tested cheapest first (config rejects empty lists).
    """

    types: frozenset[EventType] | None
    kinds: frozenset[str] | None
    """As written and lowercased: the common exact spelling costs one set lookup."""
    namespaces: CachedNames | NameMatcher | None
    """Cached by namespace when any pattern is a glob or regex, else a set lookup."""
    names: NameMatcher | None
    labels: FlatSelector | None
    reasons: tuple[frozenset[str], tuple[re.Pattern[str], ...]] | None
    """Plain reasons by set lookup, the rest as regexes that must match the whole reason."""
    changed: PathTree | None
    states: frozenset[AlertState] | None = None

    @classmethod
    def compile(cls, m: MatchConfig) -> _Match:
        reasons = None
        if m.reasons is not None:
            plain = frozenset(r for r in m.reasons if PLAIN_REASON.fullmatch(r))
            regexes = tuple(re.compile(r) for r in m.reasons if r not in plain)
            reasons = (plain, regexes)
        return cls(
            types=None if m.types is None else frozenset(EventType(t) for t in m.types),
            kinds=None
            if m.kinds is None
            else frozenset(k for kind in m.kinds for k in (kind, kind.lower())),
            namespaces=None if m.namespaces is None else _namespaces(m.namespaces),
            names=None if m.names is None else compile_names(m.names),
            labels=flat_selector(m.labels) if m.labels is not None else None,
            reasons=reasons,
            changed=None if m.changed is None else compile_paths(m.changed),
            states=None if m.states is None else frozenset(AlertState(s) for s in m.states),
        )

    def __call__(self, event: Event) -> bool:
        if self.types is not None and event.type not in self.types:
            return False
        if self.kinds is not None:
            kind = event.kind
            if kind not in self.kinds and kind.lower() not in self.kinds:
                return False
        if self.namespaces is not None:
            namespace = event.namespace
            if namespace is None or not self.namespaces(namespace):
                return False
        if self.names is not None:
            name = event.name
            if not name or not self.names(name):  # a digest has no name
                return False
        if self.labels is not None and not self.labels(event.labels):
            return False
        if self.states is not None and (
            event.alert is None or event.alert.state not in self.states
        ):
            return False
        if self.reasons is not None:
            if event.k8s_event is not None:
                reason = event.k8s_event.reason
            elif event.alert is not None:
                reason = event.alert.reason
            else:
                return False
            plain, regexes = self.reasons
            if reason not in plain and not any(r.fullmatch(reason) for r in regexes):
                return False
        if self.changed is not None:
            if event.type is not EventType.UPDATE or event.digest is not None:
                return False
            if not _any_path_matches(event, self.changed):
                return False
        return True


_EVERYTHING = _Match(None, None, None, None, None, None, None)
"""What ``match: {}`` compiles to: no condition."""


def _any_path_matches(event: Event, tree: PathTree) -> bool:
    for change in event.changes:
        try:
            if path_matches(change.path, tree):
                return True
        except ValueError:  # a path diff() would never write; not worth losing the event
            if log.isEnabledFor(logging.DEBUG):
                log.debug("unparsable change path %r in %s", change.path, _describe(event))
    return False


@dataclass(frozen=True, slots=True)
class _Route:
    match: _Match | None
    """``None``: matches every event."""
    mask: int
    """Bit i set: the i-th sink of the configuration."""
    stop: bool


def _describe(event: Event) -> str:
    return f"{event.type.value} {event.kind} {event.key or '(digest)'}"


class Router:
    """Maps an event to the names of the sinks it goes to.

    Immutable after :meth:`build` except for a memo of result tuples, whose racing
    writers store equal values: safe to share across threads.
    """

    __slots__ = ("_all", "_drop", "_results", "_routes", "_sinks", "_trivial")

    def __init__(
        self, sinks: tuple[str, ...], drop: tuple[_Match, ...], routes: tuple[_Route, ...]
    ) -> None:
        self._sinks = sinks
        self._all = sinks
        self._drop = drop
        self._routes = routes
        self._trivial = not drop and not routes
        self._results: dict[int, tuple[str, ...]] = {0: ()}
        """Sink bit mask → the sink names it stands for, in configuration order."""

    @classmethod
    def build(cls, config: Config) -> Router:
        sinks = tuple(config.sinks)
        bit = {name: 1 << i for i, name in enumerate(sinks)}
        drop = tuple(_Match.compile(m) for m in config.drop)
        routes: list[_Route] = []
        for rc in config.routes:
            match = None if rc.match is None else _Match.compile(rc.match)
            if match is not None and match == _EVERYTHING:
                match = None  # `match: {}` is no condition at all
            mask = 0
            for name in rc.sinks:
                mask |= bit[name]
            routes.append(_Route(match, mask, rc.stop))
        return cls(sinks, drop, tuple(routes))

    @property
    def sinks(self) -> tuple[str, ...]:
        """Every sink an event can be routed to, in configuration order."""
        return self._sinks

    def route(self, event: Event) -> tuple[str, ...]:
        """The sinks ``event`` goes to: each at most once, in configuration order;
        ``()`` when a ``drop`` entry matches or no route does."""
        if self._trivial:
            return self._all
        for i, drop in enumerate(self._drop):
            if drop(event):
                if log.isEnabledFor(logging.DEBUG):  # describing costs more than routing
                    log.debug("%s dropped by drop[%d]", _describe(event), i)
                return ()
        if not self._routes:
            return self._all
        mask = 0
        for route in self._routes:
            if route.match is None or route.match(event):
                mask |= route.mask
                if route.stop:
                    break
        if not mask:
            if log.isEnabledFor(logging.DEBUG):
                log.debug("%s matched no route", _describe(event))
            return ()
        result = self._results.get(mask)
        if result is None:
            result = tuple(name for i, name in enumerate(self._sinks) if mask >> i & 1)
            self._results[mask] = result
        return result
