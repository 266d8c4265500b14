"""Rendering events for people: default texts, escaping per markup, sink templates.

Everything shown to a person that comes from cluster objects is escaped here, at the
edge, for the markup the receiver interprets (:mod:`kubewatch.render.escape`);
templates (:mod:`kubewatch.render.templates`) are Jinja2 in a sandbox, checked at load.
"""

from kubewatch.render.chat import COLOURS, ChatMessage, chat_message
from kubewatch.render.escape import MARKUPS, Markup, escape
from kubewatch.render.templates import (
    SAMPLES,
    SinkRendering,
    Template,
    TemplateKind,
    TemplateRenderError,
    compile_sink_rendering,
    compile_sink_renderings,
    compile_template,
    template_context,
)
from kubewatch.render.text import changes_block, default_text, one_line

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
