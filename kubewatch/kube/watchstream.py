"""One WATCH response as decoded events: lines cut out of chunks, bounded, decoded.

Its own module because reading a stream has its own hazards, none of them about making
requests: a line split over many chunks (joined once, never quadratically), a line that
never ends (cut at :data:`MAX_LINE_BYTES`), garbage lines (logged and skipped), a
silent half-open connection (the read timeout) and a ``close`` from another thread while
a read is blocked.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Any

import orjson
import urllib3

from kubewatch.kube.failures import ApiUnreachable, describe

__all__ = ["MAX_LINE_BYTES", "READ_SIZE", "WatchStream", "decode_line"]

log = logging.getLogger("kubewatch.kube.client")  # a stream's lines are the client's

READ_SIZE = 256 * 1024
"""Bytes asked per read of a watch stream: larger than any one event line, so one read
usually carries several events when the stream is busy."""
MAX_LINE_BYTES = 16 * 1024 * 1024
"""Longest watch line (one event) kept while it is not finished: etcd refuses objects above
1.5 MiB, so a real event is far below this; a stream that sends more without a newline is
broken (a proxy gone astray) and would otherwise grow without limit. It is logged and the
stream ends as broken, so the Reflector opens a new watch."""


class WatchStream:
    """The events of one WATCH response as decoded dicts, one per JSON line.

    ``close()`` may be called from any thread and unblocks a read in progress; iteration
    raises ApiUnreachable when the connection breaks or stays silent past the read timeout.
    A line that is not a JSON object is logged and skipped (garbage is survived).
    """

    def __init__(self, response: Any, path: str, read_timeout: float) -> None:
        self._response = response
        self._path = path
        self._read_timeout = read_timeout
        self._closed = False

    def __iter__(self) -> Iterator[dict[str, Any]]:
        # The pieces of a line not finished yet, joined once when its newline arrives:
        # re-joining the whole unfinished line at every chunk would be quadratic in a
        # large object cut into small chunks (a re-chunking proxy, a slow link).
        # Invariant: pending_bytes == sum(map(len, pending)) <= MAX_LINE_BYTES.
        pending: list[bytes] = []
        pending_bytes = 0
        try:
            for chunk in self._chunks():
                if b"\n" not in chunk:
                    if chunk:
                        pending.append(chunk)
                        pending_bytes += len(chunk)
                        if pending_bytes > MAX_LINE_BYTES:
                            self._line_too_long(pending_bytes)
                    continue
                lines = chunk.split(b"\n")
                if pending:
                    if pending_bytes + len(lines[0]) > MAX_LINE_BYTES:
                        self._line_too_long(pending_bytes + len(lines[0]))
                    pending.append(lines[0])
                    lines[0] = b"".join(pending)
                tail = lines.pop()
                pending = [tail] if tail else []
                pending_bytes = len(tail)
                if pending_bytes > MAX_LINE_BYTES:
                    self._line_too_long(pending_bytes)
                for line in lines:
                    event = decode_line(line, self._path)
                    if event is not None:
                        yield event
            rest = b"".join(pending)
            if rest.strip():
                event = decode_line(rest, self._path)
                if event is not None:
                    yield event
        except ApiUnreachable:
            raise
        except urllib3.exceptions.ReadTimeoutError as e:
            if self._closed:
                return
            raise ApiUnreachable(
                f"watch {self._path}: no data for {self._read_timeout:g}s, presumed dead"
            ) from e
        except (urllib3.exceptions.HTTPError, OSError, ValueError) as e:
            if self._closed:
                return
            raise ApiUnreachable(f"watch {self._path}: {describe(e)}") from e
        finally:
            self.close()

    def _line_too_long(self, size: int) -> None:
        log.error(
            "watch %s: a line grew past %d bytes (%d) without ending; the stream is broken",
            self._path,
            MAX_LINE_BYTES,
            size,
        )
        raise ApiUnreachable(
            f"watch {self._path}: a line longer than {MAX_LINE_BYTES} bytes, stream broken"
        )

    def _chunks(self) -> Iterator[bytes]:
        """Bytes as they arrive: per HTTP chunk (the API server flushes one per event), or
        whatever ``read1`` has for a stream that is not chunked; never waits to fill a buffer."""
        if self._response.chunked:
            yield from self._response.stream(READ_SIZE, decode_content=True)
            return
        while chunk := self._response.read1(READ_SIZE):
            yield chunk

    def close(self) -> None:
        """Idempotent; safe from another thread while the iterating thread is blocked."""
        if self._closed:
            return
        self._closed = True
        # shutdown() unblocks a read in another thread (urllib3 >= 2.3); it refuses when
        # the stream already ended and the connection went back to the pool
        # (RuntimeError), or when urllib3 closed the response itself, e.g. after a
        # connection cut mid-stream ("Response ended prematurely": ValueError).
        with contextlib.suppress(OSError, urllib3.exceptions.HTTPError, RuntimeError, ValueError):
            shutdown = getattr(self._response, "shutdown", None)
            if shutdown is not None:
                shutdown()
        with contextlib.suppress(OSError, urllib3.exceptions.HTTPError, RuntimeError):
            self._response.close()
            self._response.release_conn()


def decode_line(line: bytes, path: str) -> dict[str, Any] | None:
    """Decode one watch line; log and drop anything that is not a JSON object."""
    if not line.strip():
        return None
    try:
        event = orjson.loads(line)
    except orjson.JSONDecodeError:
        log.warning("watch %s: skipping a line that is not JSON: %.120r", path, line)
        return None
    if not isinstance(event, dict):
        log.warning("watch %s: skipping a line that is not an object: %.120r", path, line)
        return None
    return event
