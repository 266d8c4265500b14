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
and logs a WARNING, once per template (then DEBUG), counting every failure.
"""

from __future__ import annotations

import contextvars
import difflib
import functools
import json
import logging
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import jinja2
import jinja2.meta
from jinja2 import nodes
from jinja2.exceptions import SecurityError, TemplateSyntaxError, UndefinedError
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import missing

from kubewatch.config import SinkConfig, StdoutSinkConfig, format_path
from kubewatch.errors import ConfigError, ConfigErrors, KubewatchError
from kubewatch.events import (
    Change,
    DigestInfo,
    Event,
    EventType,
    InvolvedObject,
    KubeEventInfo,
)
from kubewatch.match.shorten import shorten
from kubewatch.render.escape import MARKUPS, Markup, escape
from kubewatch.render.limits import (
    BoundedSandbox,
    TemplateLimitError,
    bound_ast,
    bounded_render,
)

__all__ = [
    "SAMPLES",
    "SHORTEN_CHARS",
    "SinkRendering",
    "Template",
    "TemplateKind",
    "TemplateRenderError",
    "compile_sink_rendering",
    "compile_sink_renderings",
    "compile_template",
    "template_context",
]

log = logging.getLogger(__name__)

TemplateKind = Literal["text", "json"]
"""``text``: the output is a message; ``json``: it is a JSON document (a request body)."""

SHORTEN_CHARS = 120
"""Default of the ``shorten`` filter: a value in a chat line, not a dump."""

_SURROGATE = re.compile("[\ud800-\udfff]")
"""Lone surrogates (valid in a Python str, not in UTF-8) would fail the encoding later."""


class TemplateRenderError(KubewatchError):
    """A template failed for one event at send time; the sink falls back to its default."""


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
def _environment(markup: Markup, kind: TemplateKind) -> BoundedSandbox:
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
        undefined=_Undefined, autoescape=False, finalize=finalize, keep_trailing_newline=False
    )
    del env.filters["safe"]
    env.filters.update(
        escape=escape_filter, e=escape_filter, tojson=tojson_filter, shorten=shorten_filter
    )
    return env


# --------------------------------------------------------------------------- load-time probe


@dataclass
class _Probe:
    """Notes, while samples render, each field a contract object was asked for and lacks."""

    contract: dict[int, tuple[str, Mapping[str, Any]]]
    """id → (name in messages, the mapping): the objects whose keys are the contract.
    Holding the mapping keeps its id from being reused while the probe lives."""
    misses: dict[tuple[str, str], tuple[str, ...]]
    """(object name, field) → the fields that object does have, in first-seen order."""

    def note(self, obj: Any, name: Any) -> None:
        entry = self.contract.get(id(obj))
        if entry is not None and entry[1] is obj and isinstance(name, str):
            self.misses.setdefault((entry[0], name), tuple(obj))


_PROBE: contextvars.ContextVar[_Probe | None] = contextvars.ContextVar(
    "kubewatch_template_probe", default=None
)
"""Set only while :func:`compile_template` renders its samples (per thread)."""


class _Undefined(jinja2.StrictUndefined):
    """StrictUndefined that reports to the load-time probe where it was created."""

    __slots__ = ()

    def __init__(
        self,
        hint: str | None = None,
        obj: Any = missing,
        name: str | None = None,
        exc: type[jinja2.TemplateRuntimeError] = UndefinedError,
    ) -> None:
        super().__init__(hint, obj, name, exc)
        probe = _PROBE.get()
        if probe is not None and exc is UndefinedError and obj is not missing:
            probe.note(obj, name)


_DATA_KEYS = frozenset({"labels", "old", "new"})
"""Keys whose values are object data, not contract: any key may be missing there."""


def _contract_objects(value: Any, name: str, out: dict[int, tuple[str, Mapping[str, Any]]]) -> None:
    """Register every mapping of the event JSON that is part of the contract."""
    if isinstance(value, dict):
        out[id(value)] = (name, value)
        for key, child in value.items():
            if key not in _DATA_KEYS:
                _contract_objects(child, key if name == "event" else f"{name}.{key}", out)
    elif isinstance(value, list):
        for child in value:
            _contract_objects(child, f"{name}[…]", out)


def template_context(event: Event) -> dict[str, Any]:
    """What a template sees: each top-level field of the event JSON, and ``event``."""
    doc = event.to_dict()
    return {**doc, "event": doc}


# --------------------------------------------------------------------------- samples


def _samples() -> tuple[tuple[str, Event], ...]:
    """Events every template is rendered for at load: one of each shape the contract has.

    Their values carry what breaks naive templates: quotes, backslashes, line breaks,
    ``<!channel>`` and markdown, a null namespace, numbers and null change values.
    """
    base: dict[str, Any] = {"cluster": "prod-eu", "observed_at": "2026-11-26T22:10:51.123Z"}
    deployment: dict[str, Any] = {
        **base,
        "kind": "Deployment",
        "api_version": "apps/v1",
        "resource": "deployments.apps",
        "namespace": "shop",
    }
    backoff = KubeEventInfo(
        type="Warning",
        reason="BackOff",
        message='Back-off restarting failed container web in pod "web-7d4b9c-x2k4p"',
        count=5,
        involved=InvolvedObject("Pod", "shop", "web-7d4b9c-x2k4p", "5b0e6c1a-pod"),
        source="kubelet",
        first_seen="2026-11-26T22:01:10Z",
        last_seen="2026-11-26T22:10:50Z",
    )
    burst = DigestInfo(
        count=12,
        ids=tuple(f"{i:032x}" for i in range(12)),
        names=tuple(f"shop/web-{i}" for i in range(12)),
    )
    changes = (
        Change("spec.replicas", 1, 3),
        Change(
            'spec.template.metadata.annotations["note"]',
            'say "hi" \\ <!channel>',
            "line 1\nline 2 [click](https://evil.example) @everyone",
        ),
        Change("metadata.labels.tier", None, "web", "added"),
        Change("spec.template.spec.containers[web].args", ["--debug", "-v"], None, "removed"),
    )
    return (
        (
            "create",
            Event(
                type=EventType.CREATE,
                **deployment,
                name="web",
                uid="8c3f9a52-0b7e-4b8e-9d55-2f6b1c1e7a10",
                resource_version="48211",
                labels={"app": "web", "app.kubernetes.io/name": "web"},
                summary="[prod-eu] Deployment shop/web created",
            ),
        ),
        (
            "update",
            Event(
                type=EventType.UPDATE,
                **deployment,
                name="web",
                uid="8c3f9a52-0b7e-4b8e-9d55-2f6b1c1e7a10",
                resource_version="48213",
                labels={"app": "web"},
                changes=changes,
                summary="[prod-eu] Deployment shop/web updated: spec.replicas 1 → 3, spec.temp"
                'late.metadata.annotations["note"] say "hi" \\ <!channel> → line 1\nline 2 '
                "[click](https://e… (+2 more)",
            ),
        ),
        (
            "delete (final state unknown)",
            Event(
                type=EventType.DELETE,
                **base,
                kind="Namespace",
                api_version="v1",
                resource="namespaces",
                namespace=None,
                name="team-old",
                uid="0f1e2d3c-ns",
                resource_version="47001",
                summary="[prod-eu] Namespace team-old deleted (seen after a watch gap; "
                "last known state)",
                final_state_unknown=True,
            ),
        ),
        (
            "Kubernetes Event",
            Event(
                type=EventType.UPDATE,
                **base,
                kind="Event",
                api_version="v1",
                resource="events",
                namespace="shop",
                name="web-7d4b9c-x2k4p.17a2b3c4d5e6f708",
                uid="3a4b5c6d-event",
                resource_version="48300",
                summary="[prod-eu] Warning BackOff Pod shop/web-7d4b9c-x2k4p: Back-off "
                'restarting failed container web in pod "web-7d4b9c-x2k4p" (×5)',  # noqa: RUF001
                k8s_event=backoff,
            ),
        ),
        (
            "digest",
            Event(
                type=EventType.DELETE,
                **{**deployment, "kind": "Pod", "api_version": "v1", "resource": "pods"},
                name="",
                uid="",
                resource_version="",
                summary="[prod-eu] 12 Pods deleted in namespace shop: web-0, web-1, web-2 … "
                "and 9 more",
                digest=burst,
            ),
        ),
        (
            "all fields set",
            Event(
                type=EventType.UPDATE,
                **deployment,
                name="web",
                uid="8c3f9a52-0b7e-4b8e-9d55-2f6b1c1e7a10",
                resource_version="48214",
                labels={"app": "web"},
                changes=changes,
                summary="[prod-eu] Deployment shop/web updated: spec.replicas 1 → 3",
                final_state_unknown=True,
                k8s_event=backoff,
                digest=burst,
            ),
        ),
    )


SAMPLES: tuple[tuple[str, Event], ...] = _samples()
"""(name, event) pairs every template renders for at load (see the module docstring)."""


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


def _unknown_fields(ast: nodes.Template, probe: _Probe) -> list[tuple[int, str]]:
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
    env = _environment(markup, kind)
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
    probe = _Probe(contract={}, misses={})
    outputs: list[tuple[str, str]] = []
    failures: list[BaseException] = []
    for label, event in SAMPLES:
        context = {**template_context(event), **stand_ins}
        _contract_objects(context["event"], "event", probe.contract)
        token = _PROBE.set(probe)
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
            _PROBE.reset(token)
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


# --------------------------------------------------------------------------- sinks


@dataclass(frozen=True)
class SinkRendering:
    """A sink's compiled templates; ``None`` where the sink renders its default."""

    text: Template | None = None
    """``template``: the message text (stdout ``format: text``)."""
    body: Template | None = None
    """``bodyTemplate``: the request body, JSON (webhook)."""


_TEMPLATE_KEYS: tuple[tuple[str, str, TemplateKind], ...] = (
    ("template", "template", "text"),
    ("body_template", "bodyTemplate", "json"),
)
"""(attribute, YAML key, kind) of every template setting a sink config may have."""


def compile_sink_rendering(name: str, config: SinkConfig) -> SinkRendering:
    """Compile the templates of one ``sinks:`` entry; every mistake as ConfigErrors.

    Keys are found by name (``template``, ``bodyTemplate``, ``markup``), so a new sink
    whose config has them is covered without a change here. ``template`` with stdout
    ``format: json`` is a mistake: JSON lines are the event contract, never templated.
    """
    errors: list[ConfigError] = []
    markup: Markup = getattr(config, "markup", "none")
    compiled: dict[str, Template] = {}
    for attr, key, kind in _TEMPLATE_KEYS:
        source = getattr(config, attr, None)
        if source is None:
            continue
        path = format_path(("sinks", name, key))
        if isinstance(config, StdoutSinkConfig) and config.format != "text":
            errors.append(ConfigError(path, "template applies to format: text"))
            continue
        try:
            compiled[attr] = compile_template(source, markup=markup, kind=kind, path=path)
        except ConfigError as exc:
            errors.append(exc)
    if errors:
        raise ConfigErrors(errors)
    return SinkRendering(text=compiled.get("template"), body=compiled.get("body_template"))


def compile_sink_renderings(sinks: Mapping[str, SinkConfig]) -> dict[str, SinkRendering]:
    """:func:`compile_sink_rendering` for every sink; ConfigErrors lists every mistake."""
    out: dict[str, SinkRendering] = {}
    errors: list[ConfigError] = []
    for name, config in sinks.items():
        try:
            out[name] = compile_sink_rendering(name, config)
        except ConfigErrors as exc:
            errors.extend(exc.errors)
    if errors:
        raise ConfigErrors(errors)
    return out
