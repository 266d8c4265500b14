"""Delivery: per-sink bounded queues, worker threads, retries, rate limits, digests, drain.

Layered like client-go's workqueue, one job per module: :mod:`.queue` (keyed, bounded,
drop-oldest shards), :mod:`.retry` (a policy that returns delays, never sleeps; the formula is
:mod:`kubewatch.backoff`'s),
:mod:`.ratelimit` (a token bucket per sink, paused by ``Retry-After``), :mod:`.digest`
(folds a burst into one summary event per group), :mod:`.policy` (each sink's effective
settings), :mod:`.intake` (how a submitted event gets into its sinks' queues) and
:mod:`.dispatcher` (threads, counters, lifecycle). The guarantees are stated in the
:mod:`.dispatcher` and :mod:`.intake` docstrings, the digest rules in :mod:`.digest`, the
rate limit in :mod:`.ratelimit`.
"""

from kubewatch.backoff import RetryBackoff
from kubewatch.delivery.digest import Digester
from kubewatch.delivery.dispatcher import Dispatcher, SinkStats
from kubewatch.delivery.policy import SinkPolicy, sink_policies
from kubewatch.delivery.retry import RetryPolicy
from kubewatch.ratelimit import TokenBucket

__all__ = [
    "Digester",
    "Dispatcher",
    "RetryBackoff",
    "RetryPolicy",
    "SinkPolicy",
    "SinkStats",
    "TokenBucket",
    "sink_policies",
]
