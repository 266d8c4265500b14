"""What every sink test shares: a local HTTP receiver that records each request."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.unit.sinks.test_sinks import Receiver, serve


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A fresh receiver on 127.0.0.1, answering 200 unless a test scripts otherwise."""
    yield from serve(None)
