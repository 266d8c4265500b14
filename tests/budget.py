"""How many examples a hypothesis test runs: its full count scaled to the loaded profile.

tests/conftest.py registers two profiles: ``ci`` runs every property test with its
full count (the ``max_examples`` written at the test), ``dev`` — the default outside CI —
a fifth of it, for a fast local loop. A test writes ``max_examples=examples(300)`` where it
needs more (or fewer) examples than hypothesis' default of 100.
"""

from __future__ import annotations

from hypothesis import settings

FULL = 100
"""``max_examples`` of the ``ci`` profile: hypothesis' default, the scale ``examples`` uses."""


def examples(full: int) -> int:
    """``full`` under the ``ci`` profile; proportionally fewer (at least 10) under ``dev``."""
    scaled = full * settings.default.max_examples // FULL
    return max(min(full, 10), scaled)
