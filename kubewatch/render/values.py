"""What fills a template's holes: values escaped for the sink's markup (or JSON-encoded),
undefined names refused, and the bounded sandbox they render in."""

from __future__ import annotations

import functools
import json
import logging
import re
from collections.abc import Mapping
from typing import Any, Literal

import jinja2
import jinja2.meta

from kubewatch.match.shorten import shorten
from kubewatch.render.escape import Markup, escape
from kubewatch.render.limits import (
    BoundedSandbox,
)
from kubewatch.render.probe import ProbeUndefined

log = logging.getLogger("kubewatch.render.templates")

TemplateKind = Literal["text", "json"]
"""``text``: the output is a message; ``json``: it is a JSON document (a request body)."""

SHORTEN_CHARS = 120
"""Default of the ``shorten`` filter: a value in a chat line, not a dump."""

_SURROGATE = re.compile("[\ud800-\udfff]")
"""Lone surrogates (valid in a Python str, not in UTF-8) would fail the encoding later."""


class _Escaped(str):
    """Text already escaped for the markup (the ``escape`` filter): not escaped again."""

    __slots__ = ()


class _Json(str):
    """JSON from ``tojson``, its strings escaped for the markup: printed as is."""

    __slots__ = ()


# --------------------------------------------------------------------------- values


def _defined(value: Any) -> Any:
    """``value``, or the UndefinedError an undefined value raises when used."""
    if isinstance(value, jinja2.Undefined):
        str(value)  # StrictUndefined: raises, naming what is missing
    return value


def _clean(text: str) -> str:
    return _SURROGATE.sub("\ufffd", text) if _SURROGATE.search(text) else text


def _text(value: Any) -> str:
    """How a value prints in ``{{ … }}`` (see the module docstring), before escaping."""
    value = _defined(value)
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return _clean(str(value))
    if isinstance(value, dict | list | tuple):
        return _clean(json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str))
    return _clean(str(value))


def _escaped_tree(value: Any, markup: Markup) -> Any:
    """A copy of a JSON-like value with every string (keys too) escaped for ``markup``."""
    value = _defined(value)
    if isinstance(value, _Escaped | _Json):
        return str(value)
    if isinstance(value, str):
        return escape(_clean(value), markup)
    if isinstance(value, Mapping):
        return {escape(_text(k), markup): _escaped_tree(v, markup) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_escaped_tree(v, markup) for v in value]
    if value is None or isinstance(value, bool | int | float):
        return value
    return escape(_text(value), markup)


def _json_string_body(text: str) -> str:
    """``text`` as the inside of a JSON string literal (no quotes around it)."""
    return json.dumps(text, ensure_ascii=False)[1:-1]


@functools.cache
def environment_for(markup: Markup, kind: TemplateKind) -> BoundedSandbox:
    """One sandbox per (markup, kind); environments are thread-safe for rendering."""

    def finalize(value: Any) -> str:
        if isinstance(value, _Json):
            return str(value)
        text = str(value) if isinstance(value, _Escaped) else escape(_text(value), markup)
        return _json_string_body(text) if kind == "json" else text

    def escape_filter(value: Any) -> str:
        if isinstance(value, _Escaped | _Json):
            return value
        return _Escaped(escape(_text(value), markup))

    def tojson_filter(value: Any, indent: int | None = None) -> str:
        return _Json(
            json.dumps(
                _escaped_tree(value, markup), ensure_ascii=False, indent=indent, allow_nan=False
            )
        )

    def shorten_filter(value: Any, n: int = SHORTEN_CHARS) -> str:
        return str(shorten(_text(value), n))

    env = BoundedSandbox(
        undefined=ProbeUndefined, autoescape=False, finalize=finalize, keep_trailing_newline=False
    )
    del env.filters["safe"]
    env.filters.update(
        escape=escape_filter, e=escape_filter, tojson=tojson_filter, shorten=shorten_filter
    )
    return env
