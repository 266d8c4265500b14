"""Default texts: what a sink shows when no template is configured.

The normalizer builds ``event.summary`` from cluster-object text (names, values) and
leaves it unescaped; escaping for a receiver's markup happens here, at the edge, once.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from kubewatch.events import Change, Event
from kubewatch.match.shorten import shorten
from kubewatch.render.escape import Markup, escape

__all__ = ["CHANGE_LINES", "CHANGE_VALUE_CHARS", "changes_block", "default_text", "one_line"]

CHANGE_VALUE_CHARS = 120
"""Characters of a value shown in :func:`changes_block`: a chat line, not a dump."""

CHANGE_LINES = 20
"""Changes listed by :func:`changes_block`; more are counted: a message stays readable."""

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
"""C0/C1 controls except tab and newline: ANSI escapes in object text must not reach a
terminal, where they could recolour, hide or rewrite earlier lines."""

_LINE_BREAK = re.compile(r"\r\n|[\n\r\x0b\x0c\x1c-\x1e\x85\u2028\u2029]")
"""What :meth:`str.splitlines` splits on."""


def one_line(text: str) -> str:
    """``text`` on one line with control characters made visible (``\\x1b``).

    Line breaks become spaces, so a value holding ``"\\n2026-… deleted"`` cannot forge a
    line of its own in a line-based log; other controls are shown as ``\\xNN``.
    """
    text = _LINE_BREAK.sub(" ", text)
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def _fallback(event: Event) -> str:
    """A line for an event that carries no summary (never the case for normalized ones)."""
    if event.digest is not None:
        where = f" in {event.namespace}" if event.namespace else ""
        return f"{event.digest.count} × {event.type.value} {event.kind}{where}"  # noqa: RUF001
    if event.k8s_event is not None:
        k = event.k8s_event
        obj = k.involved
        what = f"{obj.namespace}/{obj.name}" if obj.namespace else obj.name
        return f"{k.type} {k.reason} {obj.kind} {what}: {k.message}"
    return f"{event.type.value} {event.kind} {event.key}"


def default_text(event: Event, markup: Markup = "none") -> str:
    """The one human line of an event, escaped for ``markup``.

    ``event.summary`` (``[prod] Deployment shop/web updated: spec.replicas 1 → 3``),
    forced onto one line, control characters shown as ``\\xNN``, then escaped.
    """
    return escape(one_line(event.summary or _fallback(event)), markup)


def _value_text(value: Any, limit: int) -> str:
    """A change value as a person reads it: strings bare, the rest as compact JSON.

    A string holding a line break or a control character is shown JSON-quoted
    (``"a\\nb"``), so that the change still takes exactly one line.
    """
    if isinstance(value, str):
        text = value
        if _LINE_BREAK.search(text) or _CONTROL.search(text):
            text = orjson.dumps(text).decode()
    else:
        try:
            text = orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()
        except TypeError:  # an int beyond 64 bits; JSON would still write it as digits
            text = str(value)
    return str(shorten(text, limit))


def _change_line(change: Change, limit: int) -> str:
    if change.op == "added":
        return f"{change.path}: (added) {_value_text(change.new, limit)}"
    if change.op == "removed":
        return f"{change.path}: {_value_text(change.old, limit)} (removed)"
    return f"{change.path}: {_value_text(change.old, limit)} → {_value_text(change.new, limit)}"


def changes_block(
    event: Event,
    markup: Markup = "none",
    *,
    limit: int = CHANGE_VALUE_CHARS,
    max_lines: int = CHANGE_LINES,
) -> str:
    """One line per change, escaped for ``markup``; ``""`` when there are none.

    ``spec.replicas: 1 → 3``, ``metadata.labels.tier: (added) web``,
    ``spec.args[0]: --debug (removed)``. Values longer than ``limit`` characters are cut
    and end in ``… (+N chars)``; beyond ``max_lines`` changes a last line counts the rest
    (``… and 4 more changes``). Values are cut before escaping, so an escape sequence is
    never cut in half.
    """
    shown = event.changes[:max_lines]
    lines = [_change_line(c, limit) for c in shown]
    rest = len(event.changes) - len(shown)
    if rest > 0:
        lines.append(f"… and {rest} more change{'' if rest == 1 else 's'}")
    return "\n".join(escape(one_line(line), markup) for line in lines)
