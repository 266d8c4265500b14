"""Reading a capture: ``kubectl get RESOURCE --watch --output-watch-events -o json``
output, pretty-printed or compact, several values per line or one, bare objects,
``List`` documents, garbage in between, in bounded chunks."""

from __future__ import annotations

import codecs
import json
import logging
import re
from collections.abc import Callable, Iterator
from functools import partial
from typing import IO, Any, BinaryIO, TextIO

import orjson

log = logging.getLogger("kubewatch.replay")

WATCH_EVENT_TYPES = frozenset({"ADDED", "MODIFIED", "DELETED", "BOOKMARK", "ERROR"})

CHUNK_CHARS = 64 * 1024
"""Read size; a value longer than the buffer makes reads grow geometrically (linear time)."""

# --------------------------------------------------------------------------- reading


def iter_watch_events(
    stream: TextIO | BinaryIO, *, chunk_size: int = CHUNK_CHARS
) -> Iterator[dict[str, Any]]:
    """The watch events in ``stream``, as ``{"type": ..., "object": {...}}`` dicts.

    Reads JSON values one after another, with or without whitespace between them, in
    chunks (a binary stream is decoded as UTF-8; prefer one, e.g. ``sys.stdin.buffer``:
    it is read as data arrives, a text stream only a chunk at a time). Each value is:

    * a watch event, ``{"type": ADDED|MODIFIED|DELETED|BOOKMARK|ERROR, "object": {...}}``;
    * a bare object (``kubectl get -w -o json`` without ``--output-watch-events``): ADDED
      the first time its key is seen, MODIFIED after (bare output cannot show deletes);
    * a list (``kind: List`` or ``ConfigMapList`` and the like): each item so, ADDED when
      its key is new; items lacking ``kind``/``apiVersion`` get them from the list.

    Anything else (invalid JSON, a value that is not an object) is logged as a WARNING
    with its line and byte offset, and reading resumes at the next line starting with
    ``{``. It never raises for what the stream contains.
    """
    seen: set[tuple[str, str, str, str]] = set()
    for value, where in _JsonValues(stream, chunk_size):
        yield from _watch_events(value, where, seen)


def _watch_events(
    value: dict[str, Any], at: Callable[[], str], seen: set[tuple[str, str, str, str]]
) -> Iterator[dict[str, Any]]:
    """``at()`` says where the value started, for messages (counted only for one)."""
    event_type, obj = value.get("type"), value.get("object")
    if isinstance(event_type, str) and "object" in value:
        if event_type not in WATCH_EVENT_TYPES:
            log.warning("%s: unknown watch event type %r; skipped", at(), event_type)
        elif not isinstance(obj, dict):
            log.warning("%s: %s watch event without an object; skipped", at(), event_type)
        else:
            if event_type in ("ADDED", "MODIFIED"):
                seen.add(object_identity(obj))
            elif event_type == "DELETED":
                seen.discard(object_identity(obj))
            yield {"type": event_type, "object": obj}
        return
    kind, items = value.get("kind"), value.get("items")
    if isinstance(kind, str) and kind.endswith("List") and isinstance(items, list):
        item_kind = kind.removesuffix("List")
        api_version = value.get("apiVersion")
        for i, item in enumerate(items):
            if not isinstance(item, dict):
                log.warning("%s: items[%d] of a %s is not an object; skipped", at(), i, kind)
                continue
            if item_kind and "kind" not in item:  # an API list: items carry no kind
                item["kind"] = item_kind
            if isinstance(api_version, str) and "apiVersion" not in item:
                item["apiVersion"] = api_version
            yield _bare(item, seen)
        return
    if isinstance(kind, str) and isinstance(value.get("metadata"), dict):
        yield _bare(value, seen)
        return
    log.warning("%s: neither a watch event nor a Kubernetes object; skipped", at())


def _bare(obj: dict[str, Any], seen: set[tuple[str, str, str, str]]) -> dict[str, Any]:
    key = object_identity(obj)
    event_type = "MODIFIED" if key in seen else "ADDED"
    seen.add(key)
    return {"type": event_type, "object": obj}


def object_identity(obj: dict[str, Any]) -> tuple[str, str, str, str]:
    meta = obj.get("metadata")
    meta = meta if isinstance(meta, dict) else {}
    return (
        str(obj.get("apiVersion", "")),
        str(obj.get("kind", "")),
        str(meta.get("namespace") or ""),
        str(meta.get("name", "")),
    )


_WHITESPACE = re.compile(r"[ \t\n\r]*")
"""JSON's whitespace, the only thing allowed between two values."""
_INCOMPLETE_TAIL = 16
"""A parse error this close to the end of the buffer may be a value cut by a chunk."""


class _JsonValues:
    """The JSON objects of a stream, with where each started; skips garbage with a warning.

    Holds the unparsed rest of the stream only: consumed text is dropped before each read.
    A line holding one whole object (what ``kubectl`` writes) is decoded by orjson, as
    the live watch decodes its lines (so an integer beyond 64 bits is a float, as there);
    anything orjson refuses (pretty-printed or several values on a line, NaN, garbage)
    takes the :mod:`json` path, which accepts and reports what it always did. Where a
    value started is counted only when a message needs it.
    """

    def __init__(self, stream: IO[Any], chunk_size: int) -> None:
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be positive, got {chunk_size}")
        self._stream = stream
        self._read: Callable[[int], Any] = getattr(stream, "read1", None) or stream.read
        self._chunk = chunk_size
        self._decoder: codecs.IncrementalDecoder | None = None
        self._buf = ""
        self._pos = 0
        self._base_bytes = 0  # offset of _buf[0] in the stream's (UTF-8) bytes
        self._base_lines = 0  # newlines before _buf[0]
        self._eof = False
        self._first = True

    def __iter__(self) -> Iterator[tuple[dict[str, Any], Callable[[], str]]]:
        """Each object, with a function saying where it started (valid until the next
        value is asked for: the buffer moves on)."""
        # NaN and ±Infinity read as null: what the cache keeps of them and sinks write
        # anyway, so an object equals its cached copy (the Store's significant parts compare so).
        decoder = json.JSONDecoder(parse_constant=lambda _: None)
        while True:
            self._pos = _skip_whitespace(self._buf, self._pos)
            if self._pos == len(self._buf):
                if self._eof:
                    return
                self._fill(self._chunk)
                continue
            start = self._pos
            newline = self._buf.find("\n", start)
            if newline >= 0:
                line = _one_object(self._buf[start:newline])
                if line is not None:
                    self._pos = newline + 1
                    yield line, partial(self._where, start)
                    continue
            elif not self._eof:  # the line goes on in the next read
                self._fill(max(self._chunk, len(self._buf) - start))
                continue
            try:
                value, end = decoder.raw_decode(self._buf, start)
            except json.JSONDecodeError as e:
                if not self._eof and _maybe_incomplete(e, len(self._buf)):
                    self._fill(max(self._chunk, len(self._buf) - start))
                    continue
                problem = "cut short at the end of the input" if self._eof else e.msg
                log.warning(
                    "%s: invalid JSON (%s, at %s); skipping to the next line starting with '{'",
                    self._where(start),
                    problem,
                    self._where(e.pos),
                )
                self._resync(start)
                continue
            if isinstance(value, dict):
                self._pos = end
                yield value, partial(self._where, start)
                continue
            log.warning(
                "%s: a JSON %s, not an object; skipping to the next line starting with '{'",
                self._where(start),
                _json_type(value),
            )
            self._resync(end)

    def _where(self, pos: int) -> str:
        """``line L (byte B)`` of a buffer position, for messages."""
        line = self._base_lines + self._buf.count("\n", 0, pos) + 1
        return f"line {line} (byte {self._base_bytes + _utf8_len(self._buf[:pos])})"

    def _resync(self, after: int) -> None:
        """Move to the next ``{`` that starts a line after position ``after``."""
        while True:
            found = self._buf.find("\n{", after)
            if found >= 0:
                self._pos = found + 1
                return
            if self._eof:
                self._pos = len(self._buf)
                return
            self._pos = max(len(self._buf) - 1, self._pos)  # keep a trailing "\n"
            self._fill(self._chunk)
            after = self._pos

    def _fill(self, size: int) -> None:
        """Drop what was consumed, then append up to ``size`` more characters (or bytes)."""
        if self._pos:
            dropped = self._buf[: self._pos]
            self._base_bytes += _utf8_len(dropped)
            self._base_lines += dropped.count("\n")
            self._buf = self._buf[self._pos :]
            self._pos = 0
        data = self._read(size)
        if isinstance(data, bytes | bytearray):
            if self._decoder is None:
                self._decoder = codecs.getincrementaldecoder("utf-8-sig")(errors="replace")
            text = self._decoder.decode(bytes(data), final=not data)
        else:
            text = data or ""
        if self._first and text:
            self._first = False
            if text.startswith("\ufeff"):  # a BOM in a text stream
                self._base_bytes += 3
                text = text[1:]
        if not data:
            self._eof = True
        self._buf += text


def _one_object(line: str) -> dict[str, Any] | None:
    """The object that is all of ``line`` (whitespace aside), or None for anything else."""
    try:
        value = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


def _skip_whitespace(text: str, pos: int) -> int:
    m = _WHITESPACE.match(text, pos)
    return m.end() if m else pos


def _maybe_incomplete(error: json.JSONDecodeError, length: int) -> bool:
    """Could more input complete this value? Only errors at the very end (or a string
    running to the end: "Unterminated string" names where it *started*) qualify; being
    wrong costs one more read, after which the same error is judged again."""
    return error.pos >= length - _INCOMPLETE_TAIL or error.msg.startswith("Unterminated string")


def _utf8_len(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))


def _json_type(value: Any) -> str:
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    if value is None or isinstance(value, bool):
        return json.dumps(value)
    return "number"
