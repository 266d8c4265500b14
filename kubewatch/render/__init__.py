"""Rendering events for people: default texts, escaping per markup, sink templates.

Everything shown to a person that comes from cluster objects is escaped here, at the
edge, for the markup the receiver interprets (:mod:`kubewatch.render.escape`);
templates (:mod:`kubewatch.render.templates`) are Jinja2 in a sandbox, checked at load.
"""

from typing import TYPE_CHECKING, Any

from kubewatch.render.chat import COLOURS, ChatMessage, chat_message
from kubewatch.render.escape import MARKUPS, Markup, escape
from kubewatch.render.rendering import (
    SinkRendering,
    TemplateKind,
    TemplateRenderError,
    compile_sink_rendering,
    compile_sink_renderings,
)
from kubewatch.render.text import changes_block, default_text, one_line

if TYPE_CHECKING:
    from kubewatch.render.templates import SAMPLES, Template, compile_template, template_context

_TEMPLATES = frozenset({"SAMPLES", "Template", "compile_template", "template_context"})
"""Names of :mod:`.templates`, imported on first use: it loads the Jinja2 engine."""


def __getattr__(name: str) -> Any:
    if name in _TEMPLATES:
        from kubewatch.render import templates  # noqa: PLC0415

        return getattr(templates, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "COLOURS",
    "MARKUPS",
    "SAMPLES",
    "ChatMessage",
    "Markup",
    "SinkRendering",
    "Template",
    "TemplateKind",
    "TemplateRenderError",
    "changes_block",
    "chat_message",
    "compile_sink_rendering",
    "compile_sink_renderings",
    "compile_template",
    "default_text",
    "escape",
    "one_line",
    "template_context",
]
