"""The stdout sink: one line per event, JSON for machines or text for people.

``format: json`` prints the event JSON contract. ``format: text`` prints ``template``
when one is set (:mod:`kubewatch.render.templates`, ``markup: none``), else
``<observedAt> <summary>``. Text output is always exactly one line per event: line
breaks, even the template's own, become spaces, and control characters from object text
are shown as ``\\xNN`` — a value can neither forge a log line nor drive the terminal.
"""

from __future__ import annotations

import contextlib
import sys
import threading
from collections.abc import Callable
from typing import TextIO

import orjson

from kubewatch.config import StdoutSinkConfig
from kubewatch.errors import PermanentError
from kubewatch.events import Event
from kubewatch.render import compile_sink_rendering, default_text, one_line
from kubewatch.sinks.base import SinkBase


def render_json(event: Event) -> str:
    """The event JSON contract on one line (orjson never emits a newline)."""
    try:
        return orjson.dumps(event.to_dict()).decode()
    except orjson.JSONEncodeError as exc:  # e.g. an integer beyond 64 bits in a change
        raise PermanentError(f"event {event.id} cannot be encoded as JSON: {exc}") from exc


def render_text(event: Event) -> str:
    """``<observedAt> <summary>``, forced onto one line so line-based readers stay aligned."""
    return one_line(f"{event.observed_at} {default_text(event)}")


class StdoutSink(SinkBase):
    """Write each event as one line to ``stream`` (default: the current ``sys.stdout``).

    A lock covers write and flush, so lines from concurrent workers never interleave and
    each is visible as soon as ``send`` returns. The stream is not closed by ``close``:
    it belongs to whoever opened it.

    A bad ``template`` raises :class:`~kubewatch.errors.ConfigErrors` here, at build time.
    """

    def __init__(self, name: str, config: StdoutSinkConfig, stream: TextIO | None = None) -> None:
        self.name = name
        template = compile_sink_rendering(name, config).text
        self._render: Callable[[Event], str]
        if config.format == "json":
            self._render = render_json
        elif template is None:
            self._render = render_text
        else:
            self._render = lambda event: one_line(template.render_or(event, render_text))
        self._stream = stream
        self._lock = threading.Lock()
        self._closed = False  # guarded by _lock; once True, send fails permanently

    def preview(self, event: Event) -> str:
        return self._render(event)

    def send(self, event: Event) -> None:
        line = self._render(event) + "\n"
        with self._lock:
            if self._closed:
                raise PermanentError(f"stdout sink {self.name!r} is closed")
            # Looked up per write, not at construction: honours a later redirection.
            stream = self._stream if self._stream is not None else sys.stdout
            try:
                stream.write(line)
                stream.flush()
            except (OSError, ValueError) as exc:
                # BrokenPipeError (reader went away), EIO, or ValueError for a closed
                # file: none of these gets better by trying again.
                raise PermanentError(f"stdout sink {self.name!r}: write failed: {exc}") from exc

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            stream = self._stream if self._stream is not None else sys.stdout
            # Nothing left to save on failure: the failed writes were already reported.
            with contextlib.suppress(OSError, ValueError):
                stream.flush()
