"""Delivery: per-sink bounded queues, worker threads, retries, burst digests and drain.

Layered like client-go's workqueue, one job per module: :mod:`.queue` (keyed, bounded,
drop-oldest shards), :mod:`.retry` (a policy that returns delays, never sleeps),
:mod:`.digest` (folds a burst into one summary event per group) and :mod:`.dispatcher`
(threads, counters, lifecycle). The guarantees are stated in the :mod:`.dispatcher`
docstring, the digest rules in :mod:`.digest`.
"""

from kubewatch.delivery.digest import Digester
from kubewatch.delivery.dispatcher import Dispatcher, SinkStats
from kubewatch.delivery.retry import Backoff, RetryPolicy

__all__ = ["Backoff", "Digester", "Dispatcher", "RetryPolicy", "SinkStats"]
