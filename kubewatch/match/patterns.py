"""Small matching languages shared by config validation and routing.

* Name patterns: an exact name (``payments``), a glob (``team-*``, ``web-?``) or a
  regular expression between slashes (``/^team-(a|b)$/``, searched, so anchor it).
* Label selectors, with Kubernetes' syntax, matched client-side: ``app=web``,
  ``tier!=cache``, ``env in (prod,staging)``, ``env notin (dev)``, ``canary`` (exists),
  ``!canary`` (does not exist), comma-separated terms all of which must hold.

Both compile once (at config load) into immutable matchers; matching is a dict lookup or
a precompiled regex per term.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

__all__ = ["LabelSelector", "NameMatcher", "PatternError", "compile_names", "parse_selector"]


class PatternError(ValueError):
    """A pattern or selector that does not parse; the message says why."""


_GLOB_CHARS = frozenset("*?[")


@dataclass(frozen=True, slots=True)
class NameMatcher:
    """Matches names against a set of patterns: exact names by set lookup, the rest by regex."""

    exact: frozenset[str]
    regexes: tuple[re.Pattern[str], ...]

    def __call__(self, name: str) -> bool:
        return name in self.exact or any(r.search(name) for r in self.regexes)

    def __bool__(self) -> bool:
        return bool(self.exact or self.regexes)

    @property
    def only_exact(self) -> bool:
        """True when every pattern is a plain name (so one watch per name is possible)."""
        return not self.regexes


def compile_name(pattern: str) -> str | re.Pattern[str]:
    """Compile one pattern: a plain name is returned as is, anything else as a regex
    (globs anchored at both ends, ``/regex/`` searched)."""
    if len(pattern) >= 2 and pattern.startswith("/") and pattern.endswith("/"):
        try:
            return re.compile(pattern[1:-1])
        except re.error as e:
            raise PatternError(f"invalid regular expression {pattern!r}: {e}") from None
    if not pattern:
        raise PatternError("a name pattern must not be empty")
    if _GLOB_CHARS & set(pattern):
        return re.compile(r"\A" + fnmatch.translate(pattern))
    return pattern


def compile_names(patterns: Iterable[str]) -> NameMatcher:
    exact: set[str] = set()
    regexes: list[re.Pattern[str]] = []
    for pattern in patterns:
        compiled = compile_name(pattern)
        if isinstance(compiled, str):
            exact.add(compiled)
        else:
            regexes.append(compiled)
    return NameMatcher(frozenset(exact), tuple(regexes))


# -- label selectors -------------------------------------------------------------------

_KEY = r"(?:[A-Za-z0-9][-A-Za-z0-9_.]*/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?"
_VALUE = r"(?:[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?"
_TERM = re.compile(
    rf"""\s*(?:
        (?P<not>!)\s*(?P<nkey>{_KEY})
      | (?P<key>{_KEY})\s*(?:
            (?P<op>==|!=|=)\s*(?P<value>{_VALUE})
          | \s(?P<setop>in|notin)\s*\((?P<values>[^()]*)\)
        )?
    )\s*(?:,|$)""",
    re.VERBOSE,
)


@dataclass(frozen=True, slots=True)
class Requirement:
    key: str
    op: str  # "in" | "notin" | "exists" | "!exists"
    values: frozenset[str] = frozenset()

    def __call__(self, labels: Mapping[str, str]) -> bool:
        if self.op == "exists":
            return self.key in labels
        if self.op == "!exists":
            return self.key not in labels
        value = labels.get(self.key)
        if self.op == "in":
            return value is not None and value in self.values
        return value is None or value not in self.values  # notin, as Kubernetes defines it


@dataclass(frozen=True, slots=True)
class LabelSelector:
    """A parsed selector; ``selector(labels)`` is True when every requirement holds."""

    text: str
    requirements: tuple[Requirement, ...]

    def __call__(self, labels: Mapping[str, str] | None) -> bool:
        labels = labels or {}
        return all(r(labels) for r in self.requirements)


def parse_selector(text: str) -> LabelSelector:
    """Parse a Kubernetes label selector; raise PatternError naming the bad part."""
    requirements: list[Requirement] = []
    pos = 0
    text = text.strip()
    while pos < len(text):
        m = _TERM.match(text, pos)
        if m is None or m.end() == pos:
            raise PatternError(f"cannot parse selector {text!r} at {text[pos:]!r}")
        if m.group("not"):
            requirements.append(Requirement(m.group("nkey"), "!exists"))
        elif m.group("op"):
            value = m.group("value") or ""
            op = "notin" if m.group("op") == "!=" else "in"
            requirements.append(Requirement(m.group("key"), op, frozenset([value])))
        elif m.group("setop"):
            values = [v.strip() for v in m.group("values").split(",") if v.strip()]
            if not values:
                raise PatternError(f"empty value list in selector {text!r}")
            requirements.append(Requirement(m.group("key"), m.group("setop"), frozenset(values)))
        else:
            requirements.append(Requirement(m.group("key"), "exists"))
        pos = m.end()
    return LabelSelector(text, tuple(requirements))
