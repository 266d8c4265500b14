"""Bounds on what one template render may cost: time, work and memory.

A template is code from the configuration. Jinja's sandbox stops it from reaching
Python internals, not from running for ever (nested ``range(100000)`` loops) or from
building a string of gigabytes (``'A' * 2000000000``). :class:`BoundedSandbox` adds:

* **work**: every loop iteration and every call costs a step; a render may take
  ``MAX_STEPS`` and ``MAX_RENDER_SECONDS`` (checked every few steps), then it fails;
* **memory**: no string or list it builds — by ``*``, ``+``, ``~``, ``%``, ``format``,
  ``center``, ``replace``, ``join`` and the like — may exceed ``MAX_OUTPUT_CHARS``, checked
  *before* it is built where Python would build it at once; the output is counted as it
  is produced, and may not exceed that either.

Each violation raises :class:`TemplateLimitError` (a ``SecurityError``): at load, the
template is a configuration error at its key path; at send time, the sink falls back to
its default rendering. Loops and concatenations are bounded by rewriting the template's
syntax tree (:func:`bound_ast`) before it is compiled.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import jinja2
from jinja2 import nodes
from jinja2.exceptions import SecurityError
from jinja2.sandbox import MAX_RANGE, ImmutableSandboxedEnvironment
from jinja2.visitor import NodeTransformer

__all__ = [
    "MAX_OUTPUT_CHARS",
    "MAX_RENDER_SECONDS",
    "MAX_STEPS",
    "BoundedSandbox",
    "TemplateLimitError",
    "bound_ast",
    "bounded_render",
]

MAX_OUTPUT_CHARS = 1_000_000
"""Characters of any value a template builds, and of its output: a chat message is a few
KiB, a request body rarely 100 KiB."""
MAX_STEPS = 1_000_000
"""Loop iterations plus calls in one render: a template over an event's changes needs
hundreds."""
MAX_RENDER_SECONDS = 1.0
"""Wall time of one render. Checked every ``_CLOCK_EVERY`` steps."""
_CLOCK_EVERY = 1024

_STEPS_NAME = "kubewatch_bounded_steps"
_CAP_NAME = "kubewatch_bounded_text"
"""Globals the rewritten syntax tree calls; no template names them itself."""

_WIDTH = re.compile(r"\d{7,}|\*")
"""A width or precision of a million or more in a ``%`` or ``format`` spec, or a ``*``
one (given as an argument): that is where a short format builds a huge string."""


class TemplateLimitError(SecurityError):
    """A render went past a bound of :mod:`kubewatch.render.limits`."""


@dataclass
class _Budget:
    steps: int
    deadline: float


_BUDGET: ContextVar[_Budget | None] = ContextVar("kubewatch_template_budget", default=None)
"""The budget of the render running in this thread (None outside :func:`bounded_render`)."""


def _charge() -> None:
    budget = _BUDGET.get()
    if budget is None:
        return
    budget.steps -= 1
    if budget.steps < 0:
        raise TemplateLimitError(f"template takes more than {MAX_STEPS:,} steps")
    if budget.steps % _CLOCK_EVERY == 0 and time.monotonic() > budget.deadline:
        raise TemplateLimitError(f"template takes longer than {MAX_RENDER_SECONDS:g}s")


def _steps(iterable: Iterable[Any]) -> Iterator[Any]:
    for item in iterable:
        _charge()
        yield item


def _cap(value: Any) -> Any:
    if isinstance(value, str | list | tuple) and len(value) > MAX_OUTPUT_CHARS:
        raise TemplateLimitError(f"template builds a value over {MAX_OUTPUT_CHARS:,} long")
    return value


def _refuse_longer(size: int) -> None:
    if size > MAX_OUTPUT_CHARS:
        raise TemplateLimitError(f"template builds a value over {MAX_OUTPUT_CHARS:,} long")


def _check_format(fmt: str) -> None:
    for spec in re.findall(r"%[-#0 +]*[\d*]*(?:\.[\d*]+)?|\{[^{}]*:[^{}]*\}", fmt):
        if _WIDTH.search(spec):
            raise TemplateLimitError("template uses a format width of a million or more")


def _bounded_range(*args: int) -> Iterator[int]:
    numbers = range(*args)
    if len(numbers) > MAX_RANGE:
        raise TemplateLimitError(f"range() of more than {MAX_RANGE:,} numbers")
    return _steps(numbers)


_SIZED_METHODS = frozenset({"center", "ljust", "rjust", "zfill", "expandtabs"})


def _predict_call(obj: Any, args: tuple[Any, ...]) -> tuple[Any, ...]:
    """Refuse calls of ``str`` methods that would build an oversized string at once;
    the arguments to call with (an iterable to join is read once, here)."""
    owner = getattr(obj, "__self__", None)
    name = getattr(obj, "__name__", "")
    if not isinstance(owner, str):
        return args
    if name in _SIZED_METHODS and args and isinstance(args[0], int):
        _refuse_longer(args[0])
    elif name == "replace" and len(args) >= 2:
        old, new = args[0], args[1]
        if isinstance(old, str) and isinstance(new, str) and len(new) > len(old):
            _refuse_longer(len(owner) + (owner.count(old) + 1) * (len(new) - len(old)))
    elif name == "join" and args:
        items = list(args[0])
        _refuse_joined(items, owner)
        return (items, *args[1:])
    return args


def _refuse_joined(items: list[Any], separator: str) -> None:
    parts = sum(len(i) if isinstance(i, str) else 20 for i in items)
    _refuse_longer(parts + len(separator) * max(len(items) - 1, 0))


class BoundedSandbox(ImmutableSandboxedEnvironment):
    """Jinja's immutable sandbox with the bounds of this module (see its docstring)."""

    intercepted_binops = frozenset({"*", "**", "+", "%"})

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.globals["range"] = _bounded_range
        self.globals[_STEPS_NAME] = _steps
        self.globals[_CAP_NAME] = _cap
        for name in ("center", "indent", "replace", "join", "format"):
            self.filters[name] = _bounded_filter(self.filters[name], name)

    def call_binop(
        self, context: jinja2.runtime.Context, operator: str, left: Any, right: Any
    ) -> Any:
        if operator == "*":
            for seq, n in ((left, right), (right, left)):
                if isinstance(seq, str | list | tuple) and isinstance(n, int):
                    _refuse_longer(len(seq) * n)
        elif operator == "**":
            if isinstance(left, int) and isinstance(right, int) and abs(left) > 1 and right > 64:
                raise TemplateLimitError("template raises a number to a power above 64")
        elif operator == "%" and isinstance(left, str):
            _check_format(left)
        elif operator == "+" and isinstance(left, str | list | tuple) and hasattr(right, "__len__"):
            _refuse_longer(len(left) + len(right))
        return _cap(super().call_binop(context, operator, left, right))

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        _charge()
        args = _predict_call(__obj, args)
        return _cap(super().call(__context, __obj, *args, **kwargs))

    def wrap_str_format(self, value: Any) -> Any:
        owner = getattr(value, "__self__", None)
        if isinstance(owner, str):
            _check_format(owner)
        return super().wrap_str_format(value)


def _bounded_filter(original: Any, name: str) -> Any:
    """``original`` with its size predicted (width filters) or checked (the rest)."""

    def bounded(*args: Any, **kwargs: Any) -> Any:
        skip = next(
            (i for i, a in enumerate(args) if not isinstance(a, _PASSED)), len(args)
        )  # the context / environment Jinja passes first
        values = list(args[skip:])
        if name == "join" and values:
            values[0] = list(values[0])
            separator = values[1] if len(values) >= 2 else kwargs.get("d", "")
            _refuse_joined(values[0], str(separator))
        if name == "center" and len(values) >= 2 and isinstance(values[1], int):
            _refuse_longer(values[1])
        if name == "indent" and values and isinstance(values[0], str):
            width = values[1] if len(values) >= 2 else kwargs.get("width", 4)
            if isinstance(width, int):
                _refuse_longer(len(values[0]) + width * (values[0].count("\n") + 1))
        if name == "replace" and len(values) >= 3:
            text, old, new = (str(v) for v in values[:3])
            if len(new) > len(old):
                _refuse_longer(len(text) + (text.count(old) + 1) * (len(new) - len(old)))
        if name == "format" and values and isinstance(values[0], str):
            _check_format(values[0])
        return _cap(original(*args[:skip], *values, **kwargs))

    for attr in ("jinja_pass_arg",):  # keep pass_context / pass_environment markers
        if hasattr(original, attr):
            setattr(bounded, attr, getattr(original, attr))
    return bounded


_PASSED = (jinja2.runtime.Context, jinja2.Environment, nodes.EvalContext)


class _Rewrite(NodeTransformer):
    """Loops iterate through a step counter; ``~`` results are size-checked."""

    def __init__(self, environment: jinja2.Environment) -> None:
        self._env = environment

    def _call(self, name: str, node: nodes.Node) -> nodes.Call:
        assert isinstance(node, nodes.Expr)
        call = nodes.Call(nodes.Name(name, "load"), [node], [], None, None, lineno=node.lineno)
        call.set_environment(self._env)
        return call

    def visit_For(self, node: nodes.For) -> nodes.For:
        self.generic_visit(node)
        node.iter = self._call(_STEPS_NAME, node.iter)
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Call:
        self.generic_visit(node)
        return self._call(_CAP_NAME, node)


def bound_ast(ast: nodes.Template, environment: jinja2.Environment) -> nodes.Template:
    """Rewrite ``ast`` in place so that its loops and concatenations are bounded."""
    result = _Rewrite(environment).visit(ast)
    assert isinstance(result, nodes.Template)
    return result


def bounded_render(template: jinja2.Template, context: Mapping[str, Any]) -> str:
    """Render within :data:`MAX_STEPS`, :data:`MAX_RENDER_SECONDS` and
    :data:`MAX_OUTPUT_CHARS`, or raise :class:`TemplateLimitError`."""
    token = _BUDGET.set(_Budget(MAX_STEPS, time.monotonic() + MAX_RENDER_SECONDS))
    try:
        parts: list[str] = []
        size = 0
        for chunk in template.generate(context):
            size += len(chunk)
            if size > MAX_OUTPUT_CHARS:
                raise TemplateLimitError(f"template output is over {MAX_OUTPUT_CHARS:,} characters")
            parts.append(chunk)
        return "".join(parts)
    finally:
        _BUDGET.reset(token)
