"""Sink templates: Jinja2 in a sandbox, every interpolation escaped, checked at load.

A template is the user's text with ``{{ … }}`` holes. The literal text is theirs and is
left alone; what fills the holes comes from cluster objects and is escaped for the
sink's markup (:mod:`kubewatch.render.escape`) by the environment's ``finalize`` — for
*every* ``{{ … }}``, so forgetting a filter can never let ``<!channel>`` through. In a
JSON body (``kind="json"``) the escaped text is then escaped as the inside of a JSON
string, so ``{"text": "{{ summary }}"}`` stays valid whatever the summary holds.

Context: every top-level field of the event JSON (:meth:`Event.to_dict`: ``type``,
``kind``, ``namespace``, ``name``, ``labels``, ``changes``, ``summary``, ``k8sEvent``,
``digest``, …) and ``event``, the same document as one mapping.

How a value prints in ``{{ … }}``: strings as they are, ``null`` as nothing, booleans as
``true`` / ``false``, numbers as digits, lists and mappings as compact JSON text — then
escaped as above. Filters beyond Jinja's own:

- ``tojson(indent=None)``: the value as JSON, every string in it escaped for the markup;
  printed as is (it is already safe), so ``"changes": {{ changes | tojson }}`` is valid;
- ``shorten(n=120)``: cut to ``n`` characters plus ``… (+N chars)``;
- ``escape`` / ``e``: escape now for the markup; ``finalize`` does not escape it again.
  Apply it last: text transformed after escaping is escaped again (``&amp;amp;``).

``safe`` is gone: object text cannot be let through unescaped (``markup: none`` is the
way to get it raw). The output of a ``{% macro %}`` or a block ``{% set %}`` is plain text
to Jinja, so printing it escapes it a second time: use them for literal text.

Checked by :func:`compile_template`, at load, before anything starts:

1. syntax, unknown filters and tests: ``line N: …``;
2. names: a top-level name that is not in the context (``{{ evnt.kind }}``), or a field
   that a contract object (``event``, ``k8sEvent``, ``k8sEvent.involvedObject``,
   ``digest``, an entry of ``changes``) does not have (``{{ event.nmae }}``) — even behind
   ``default`` or ``is defined``: the contract is known, a miss is a typo;
3. the template is rendered for each of :data:`SAMPLES` within the time, work and size
   bounds of :mod:`kubewatch.render.limits` (exceeding one is an error; a create, an update with
   changes, a cluster-scoped delete with ``finalStateUnknown``, a Kubernetes Event alert, a
   digest, and one event with every optional field set). A missing *value* is not an error
   there: ``{{ k8sEvent.reason }}`` fails for a create (``k8sEvent`` is null),
   ``{{ labels.team }}`` for an object without that label, ``{{ changes[0].path }}`` for an
   event without changes — that depends on the event, and a guard (``{% if k8sEvent %}``)
   is the fix. Any other failure (``{{ name + 1 }}``) is an error if it happens for every
   sample, and a sandbox violation always is;
4. a JSON body must parse as JSON for every sample that renders.

At send time (:meth:`Template.render_or`) a failure — a missing value after all, output
that is not JSON — never stops delivery: the sink sends its default rendering instead
and logs a WARNING, once per template (then DEBUG), counting every failure."""

from __future__ import annotations

import difflib
import json
import logging
import re
import threading
from collections.abc import Callable

import jinja2
import jinja2.meta
from jinja2 import nodes
from jinja2.exceptions import SecurityError, TemplateSyntaxError, UndefinedError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from kubewatch.errors import ConfigError
from kubewatch.events import (
    Event,
)
from kubewatch.render.escape import MARKUPS, Markup
from kubewatch.render.limits import (
    TemplateLimitError,
    bound_ast,
    bounded_render,
)
from kubewatch.render.probe import PROBE, Probe, contract_objects, template_context
from kubewatch.render.rendering import TemplateKind, TemplateRenderError
from kubewatch.render.samples import SAMPLES
from kubewatch.render.values import environment_for

__all__ = [
    "SAMPLES",
    "SHORTEN_CHARS",
    "Template",
    "TemplateKind",
    "compile_template",
    "template_context",
]

log = logging.getLogger(__name__)


SHORTEN_CHARS = 120
"""Default of the ``shorten`` filter: a value in a chat line, not a dump."""

_SURROGATE = re.compile("[\ud800-\udfff]")
"""Lone surrogates (valid in a Python str, not in UTF-8) would fail the encoding later."""


# --------------------------------------------------------------------------- templates


class Template:
    """A compiled, checked template; one per sink setting (``sinks.NAME.template``).

    Thread-safe: workers of one sink render concurrently.
    """

    def __init__(
        self, compiled: jinja2.Template, *, path: str, kind: TemplateKind, markup: Markup
    ) -> None:
        self.path = path
        """Key path in the config (``sinks.slack.bodyTemplate``): names it in logs."""
        self.kind: TemplateKind = kind
        self.markup: Markup = markup
        self._compiled = compiled
        self._lock = threading.Lock()
        self.failures = 0
        """Sends that fell back to the default rendering (guarded by ``_lock``)."""

    def render(self, event: Event) -> str:
        """The template's output for ``event``, or :class:`TemplateRenderError`."""
        try:
            out = bounded_render(self._compiled, template_context(event))
        except Exception as exc:  # a template can fail in any way; delivery must not
            raise TemplateRenderError(f"{_describe(exc)}") from exc
        if self.kind == "json":
            try:
                json.loads(out)
            except ValueError as exc:
                raise TemplateRenderError(f"output is not valid JSON: {exc}") from exc
        return out

    def render_or(self, event: Event, default: Callable[[Event], str]) -> str:
        """:meth:`render`, or ``default(event)`` when the template fails for this event.

        The first failure is logged as a WARNING, later ones at DEBUG: one template fails
        for many events alike, and the log should say so once, not flood.
        """
        try:
            return self.render(event)
        except TemplateRenderError as exc:
            with self._lock:
                self.failures += 1
                first = self.failures == 1
            log.log(
                logging.WARNING if first else logging.DEBUG,
                "%s: failed for event %s (%s %s %s): %s; sending the default rendering instead%s",
                self.path,
                event.id,
                event.type.value,
                event.kind,
                event.key,
                exc,
                " (further failures of this template are logged at DEBUG)" if first else "",
            )
            return default(event)


def _template_line(exc: BaseException) -> int | None:
    """The template line an exception was raised at (Jinja rewrites tracebacks to it)."""
    line = None
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<template>":
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def _what(exc: BaseException) -> str:
    """An exception in words: Jinja's own messages as they are, others with their type."""
    return str(exc) if isinstance(exc, jinja2.TemplateError) else f"{type(exc).__name__}: {exc}"


def _describe(exc: BaseException) -> str:
    line = _template_line(exc)
    return f"line {line}: {_what(exc)}" if line is not None else _what(exc)


def _line_of_name(ast: nodes.Template, name: str) -> int:
    """The first line that reads the top-level ``name``."""
    return min((n.lineno for n in ast.find_all(nodes.Name) if n.name == name), default=1)


def _line_of_field(ast: nodes.Template, name: str) -> int:
    """The first line that asks some object for ``name`` (``x.name`` or ``x["name"]``)."""
    lines = [n.lineno for n in ast.find_all(nodes.Getattr) if n.attr == name]
    lines += [
        n.lineno
        for n in ast.find_all(nodes.Getitem)
        if isinstance(n.arg, nodes.Const) and n.arg.value == name
    ]
    return min(lines, default=1)


def _suggest(name: str, known: tuple[str, ...] | list[str]) -> str:
    close = difflib.get_close_matches(name, known, n=1)
    if close:
        return f" (did you mean {close[0]!r}?)"
    return f" (known: {', '.join(known)})"


def _unknown_names(
    ast: nodes.Template, env: ImmutableSandboxedEnvironment
) -> dict[str, tuple[int, str]]:
    """Top-level names the template reads that are neither context nor Jinja globals."""
    known = [*template_context(SAMPLES[0][1])]
    out = {}
    for name in sorted(jinja2.meta.find_undeclared_variables(ast)):
        if name not in known and name not in env.globals:
            line = _line_of_name(ast, name)
            out[name] = (line, f"unknown field {name!r}{_suggest(name, known)}")
    return out


def _unknown_fields(ast: nodes.Template, probe: Probe) -> list[tuple[int, str]]:
    out = []
    for (where, name), known in probe.misses.items():
        line = _line_of_field(ast, name)
        out.append((line, f"unknown field {name!r} in {where}{_suggest(name, list(known))}"))
    return out


_SYNTAX_HINTS = {
    "No filter named 'safe'.": " (every {{ … }} is escaped for the sink's markup; "
    "use markup: none for text as it is)",
}


def compile_template(source: str, *, markup: Markup, kind: TemplateKind, path: str) -> Template:
    """Compile and check a sink template (see the module docstring for every check).

    Raises :class:`ConfigError` at ``path`` naming every problem found
    (``line 2: unknown field 'nmae' in event (did you mean 'name'?)``).
    """
    if markup not in MARKUPS:
        raise ConfigError(path, f"unknown markup {markup!r}; known: {', '.join(MARKUPS)}")
    env = environment_for(markup, kind)
    try:
        ast = env.parse(source)
        compiled = env.from_string(bound_ast(env.parse(source), env))
    except TemplateSyntaxError as exc:
        hint = _SYNTAX_HINTS.get(exc.message or "", "")
        raise ConfigError(path, f"line {exc.lineno}: {exc.message}{hint}") from None

    unknown = _unknown_names(ast, env)
    problems = list(unknown.values())
    # Reported already; stand-ins that print as nothing let the samples render on, so
    # that later mistakes are found in the same run.
    stand_ins = {name: jinja2.ChainableUndefined(name=name) for name in unknown}
    probe = Probe(contract={}, misses={})
    outputs: list[tuple[str, str]] = []
    failures: list[BaseException] = []
    for label, event in SAMPLES:
        context = {**template_context(event), **stand_ins}
        contract_objects(context["event"], "event", probe.contract)
        token = PROBE.set(probe)
        try:
            outputs.append((label, bounded_render(compiled, context)))
        except TemplateLimitError as exc:  # the same for every sample: render no more
            problems.append((_template_line(exc) or 1, f"exceeds a bound: {exc}"))
            break
        except SecurityError as exc:
            problems.append((_template_line(exc) or 1, f"not allowed: {exc}"))
        except Exception as exc:  # judged below: data-dependent or always failing
            failures.append(exc)
        finally:
            PROBE.reset(token)
    problems += _unknown_fields(ast, probe)
    if not outputs and not problems:
        broken = [e for e in failures if not isinstance(e, UndefinedError)]
        if broken:
            line = _template_line(broken[0]) or 1
            problems.append((line, f"fails for every sample event: {_what(broken[0])}"))
    if kind == "json" and not problems:
        for label, out in outputs:
            try:
                json.loads(out)
            except json.JSONDecodeError as exc:
                field = path.rpartition(".")[2] or "template"
                problems.append(
                    (
                        0,
                        f"{field} does not render valid JSON: {exc.msg} at line {exc.lineno} "
                        f"column {exc.colno} of its output for the {label} sample event "
                        "(put {{ … }} inside quotes, or use | tojson for lists and objects)",
                    )
                )
                break
    if problems:
        messages = []
        for line, message in sorted(set(problems)):
            messages.append(f"line {line}: {message}" if line else message)
        raise ConfigError(path, "; ".join(messages))
    return Template(compiled, path=path, kind=kind, markup=markup)
