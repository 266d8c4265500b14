"""The e-mail's body: a plain-text part and an HTML part that say the same thing, with
inline styles only (clients drop ``<style>``) and nothing fetched."""

from __future__ import annotations

import html
import re

from kubewatch.events import Event
from kubewatch.render import (
    ChatMessage,
    chat_message,
)

SUBJECT_CHARS = 200
"""Characters of a subject line at most: mail clients cut around there anyway."""

_COLOUR = re.compile(r"#[0-9A-Fa-f]{6}")
_FALLBACK_COLOUR = "#808080"

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
"""Control characters except tab and newline, which a text part may hold."""

_HTML_TEMPLATE = """\
<!DOCTYPE html>
<html>
<head><meta charset="utf-8"><title>{title}</title></head>
<body style="margin:0;padding:16px;font-family:-apple-system,'Segoe UI',Helvetica,Arial,\
sans-serif;font-size:14px;color:#1d1c1d;">
<div style="border-left:4px solid {colour};padding:4px 0 4px 12px;">
<p style="margin:0 0 8px 0;font-weight:bold;">{title}</p>
{body}
</div>
<p style="margin:12px 0 0 0;font-size:12px;color:#616061;">{footer}</p>
</body>
</html>
"""
"""The HTML part: inline styles only (clients drop ``<style>``), nothing fetched."""

_PRE_STYLE = (
    "margin:8px 0 0 0;padding:8px;background:#f8f8f8;border:1px solid #e0e0e0;"
    "font-family:Menlo,Consolas,monospace;font-size:12px;white-space:pre-wrap;"
)


def clean_text(text: str) -> str:
    """Template output for a text part: CRLF as LF, other controls shown as ``\\xNN``."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def text_part(event: Event) -> str:
    """The text part without a template: title, fields, changes, footer."""
    chat = chat_message(event, "none")
    width = max(len(label) for label, _ in chat.fields) + 2
    lines = [chat.title, ""]
    lines += [f"{label + ':':<{width}}{value}" for label, value in chat.fields]
    if chat.changes:
        lines += ["", "Changes:", *(f"  {line}" for line in chat.changes.splitlines())]
    lines += ["", "-- ", chat.footer]  # "-- " is the signature separator
    return "\n".join(lines) + "\n"


def html_part(chat: ChatMessage, text: str | None) -> str:
    """The HTML part; ``chat`` is escaped for HTML already, ``text`` is raw."""
    if text is not None:
        body = f'<div style="white-space:pre-wrap;">{html.escape(text)}</div>'
    else:
        rows = "".join(
            '<tr><th style="text-align:left;vertical-align:top;padding:2px 16px 2px 0;'
            f'font-weight:normal;color:#616061;">{html.escape(label)}</th>'
            f'<td style="padding:2px 0;">{value}</td></tr>\n'
            for label, value in chat.fields
        )
        body = f'<table style="border-collapse:collapse;font-size:14px;">\n{rows}</table>'
        if chat.changes:
            body += f'\n<pre style="{_PRE_STYLE}">{chat.changes}</pre>'
    colour = chat.colour if _COLOUR.fullmatch(chat.colour) else _FALLBACK_COLOUR
    return _HTML_TEMPLATE.format(
        title=chat.title, colour=colour, body=body, footer=html.escape(chat.footer)
    )
