"""A sink's rendering settings, compiled: which of its texts come from templates.

Apart from :mod:`.templates` so that a sink without a ``template`` or ``bodyTemplate``
(the default) never imports the Jinja2 engine: ``kubewatch run`` with the default texts
does not pay its ~2 MiB.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from kubewatch.config import SinkConfig, StdoutSinkConfig, format_path
from kubewatch.errors import ConfigError, ConfigErrors, KubewatchError
from kubewatch.render.escape import Markup

if TYPE_CHECKING:
    from kubewatch.render.templates import Template

__all__ = [
    "SinkRendering",
    "TemplateKind",
    "TemplateRenderError",
    "compile_sink_rendering",
    "compile_sink_renderings",
]

TemplateKind = Literal["text", "json"]
"""``text``: the output is a message; ``json``: it is a JSON document (a request body)."""


class TemplateRenderError(KubewatchError):
    """A template failed for one event at send time; the sink falls back to its default."""


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
        from kubewatch.render.templates import compile_template  # noqa: PLC0415 (Jinja2)

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
