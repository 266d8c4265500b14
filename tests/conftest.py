"""Hypothesis profiles (tests/budget.py scales each test's count of examples to them).

``ci`` runs every property test with its full count of examples; it is loaded when ``CI``
is set (CI systems set it, and so does .ci/run). ``dev``, the default elsewhere, runs a
fifth of them for a fast local loop. ``pytest --hypothesis-profile=ci`` runs the full count
locally. Registered here, at the top of the tests, so ``--hypothesis-profile`` finds them
whichever directory pytest is pointed at.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import settings

from tests.budget import FULL

settings.register_profile("ci", settings.get_profile("ci"), max_examples=FULL)
settings.register_profile("dev", max_examples=FULL // 5)


def pytest_configure(config: pytest.Config) -> None:
    chosen = config.getoption("--hypothesis-profile", None)
    settings.load_profile(chosen or ("ci" if os.environ.get("CI") else "dev"))
