"""kubewatch.kube.watchstream on a stream no API server sends: a watch line that never
ends."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from kubewatch.kube.failures import ApiUnreachable
from kubewatch.kube.watchstream import MAX_LINE_BYTES, READ_SIZE, WatchStream

MIB = 1024 * 1024


class EndlessLine:
    """A chunked urllib3-like response: one line that never ends, up to ``total`` bytes
    (a bound so that the code under test cannot hang the test), then a newline."""

    chunked = True

    def __init__(self, total: int) -> None:
        self.total = total
        self.sent = 0
        self.closed = False

    def stream(self, amount: int, decode_content: bool = True) -> Iterator[bytes]:
        yield b'{"type":"ADDED","object":{"metadata":{"name":"'
        while self.sent < self.total and not self.closed:
            self.sent += READ_SIZE
            yield b"x" * READ_SIZE
        yield b'"}}}\n'

    def shutdown(self) -> None:
        self.closed = True

    def close(self) -> None:
        self.closed = True

    def release_conn(self) -> None:
        pass


def test_a_line_that_never_ends_is_cut_at_the_bound_and_breaks_the_stream(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The unfinished line is bounded by MAX_LINE_BYTES: past it the stream is broken
    (ApiUnreachable, which makes the Reflector open a new watch), and it says so."""
    response = EndlessLine(total=4 * MAX_LINE_BYTES)
    stream = WatchStream(response, "/api/v1/configmaps", 90.0)
    with pytest.raises(ApiUnreachable, match="longer than"):
        list(stream)
    assert response.sent <= MAX_LINE_BYTES + READ_SIZE  # read no further than the bound
    assert response.closed
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "without ending" in errors[0]


def test_a_long_line_below_the_bound_is_an_event() -> None:
    response = EndlessLine(total=2 * MIB)
    [event] = list(WatchStream(response, "/api/v1/configmaps", 90.0))
    assert len(event["object"]["metadata"]["name"]) >= 2 * MIB
