"""Command line: ``kubewatch run``, ``validate``, ``test-sink``, ``replay``, ``config schema``
and ``crds``.

Exit codes: 0 success (``run``: stopped by SIGTERM/SIGINT; events it could not deliver
within the drain timeout are logged), 1 a runtime failure (``validate``: the cluster
could not be checked — no kubeconfig, unknown context, unreachable, refused — or a
resource cannot be listed; ``test-sink``: the receiver refused; ``replay``: the capture
cannot be read, or an event was not delivered to a sink), 2 a configuration or usage
mistake, a malformed kubeconfig included (nothing was started), 3 (``run``) events were
neither delivered nor kept at shutdown (no durable state).

One module per command (:mod:`.run`, :mod:`.replay`, :mod:`.validate`, :mod:`.test_sink`),
:mod:`.parser` (the arguments and :func:`main`), :mod:`.common` (exit codes, loading).
"""

from kubewatch.cli.common import (
    EXIT_CONFIG,
    EXIT_FAILURE,
    EXIT_LOST,
    EXIT_OK,
    register_config_secrets,
)
from kubewatch.cli.parser import main

__all__ = [
    "EXIT_CONFIG",
    "EXIT_FAILURE",
    "EXIT_LOST",
    "EXIT_OK",
    "main",
    "register_config_secrets",
]
