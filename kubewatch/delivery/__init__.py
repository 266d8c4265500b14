"""Delivery: per-sink bounded queues, worker threads, retries and drain on shutdown.

Layered like client-go's workqueue, one job per module: :mod:`.queue` (keyed, bounded,
drop-oldest shards), :mod:`.retry` (a policy that returns delays, never sleeps) and
:mod:`.dispatcher` (threads, counters, lifecycle). The guarantees are stated in the
:mod:`.dispatcher` docstring.
"""

from kubewatch.delivery.dispatcher import Dispatcher, SinkStats
from kubewatch.delivery.retry import Backoff, RetryPolicy

__all__ = ["Backoff", "Dispatcher", "RetryPolicy", "SinkStats"]
