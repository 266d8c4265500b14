"""Run one function from many threads at once, switching threads as often as Python can.

Shared state must survive that (``sys.setswitchinterval(1e-6)`` makes every race that can
happen likely to); an exception in any thread fails the test with that exception.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable


def hammer(work: Callable[[int], None], threads: int = 16) -> None:
    """Call ``work(n)`` for n in 0..threads-1, each on its own thread; re-raise a failure."""
    errors: list[BaseException] = []

    def run(n: int) -> None:
        try:
            work(n)
        except BaseException as exc:  # the failure the stress test looks for
            errors.append(exc)

    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        workers = [threading.Thread(target=run, args=(n,)) for n in range(threads)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
    finally:
        sys.setswitchinterval(old)
    if errors:
        raise errors[0]
