"""Cutting long values for messages: never applied by the diff itself, whose values stay
whole."""

from __future__ import annotations

import json
from typing import Any, Final

import orjson

from kubewatch.events import Change

__all__ = ["SHORTEN_MARKER", "shorten", "shorten_change"]

# --- rendering ----------------------------------------------------------------------------

SHORTEN_MARKER: Final = "…"
"""Starts the suffix :func:`shorten` puts after a cut value: ``… (+N chars)``."""


def _compact_json(value: Any) -> str:
    try:
        return orjson.dumps(value, default=str, option=orjson.OPT_NON_STR_KEYS).decode()
    except TypeError:  # orjson.JSONEncodeError: ints beyond 64 bits, deep nesting
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


def shorten(value: Any, limit: int = 200) -> Any:
    """A change value cut down for display.

    A string longer than ``limit`` characters becomes its first ``limit`` characters
    followed by ``"… (+N chars)"`` (N characters cut; see :data:`SHORTEN_MARKER`). A dict
    or list whose compact JSON (as in the event JSON) is longer than ``limit`` becomes that
    JSON, cut the same way, as a string; one that fits is returned unchanged, as is any
    other value. Never mutates ``value``.
    """
    if limit < 0:
        raise ValueError(f"shorten() limit must be >= 0, not {limit}")
    if isinstance(value, str):
        text = value
    elif isinstance(value, dict | list | tuple):
        text = _compact_json(value)
    else:
        return value
    if len(text) <= limit:
        return value
    return f"{text[:limit]}{SHORTEN_MARKER} (+{len(text) - limit} chars)"


def shorten_change(change: Change, limit: int = 200) -> Change:
    """A new :class:`~kubewatch.events.Change` with the same path and op, and ``old`` /
    ``new`` passed through :func:`shorten`."""
    return Change(change.path, shorten(change.old, limit), shorten(change.new, limit), change.op)
