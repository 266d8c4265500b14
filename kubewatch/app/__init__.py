"""The application: wires config → cluster → informers → events → routing → delivery → sinks.

:mod:`.core` holds the :class:`App` and its lifecycle (its docstring tells the whole
story); :mod:`.build` builds its parts from a config, :mod:`.handover` keeps what a
standby saw, :mod:`.discovery` watches resources once their CRD is installed and
:mod:`.recovery` carries undelivered events over from the spool or a replaced dispatcher,
:mod:`.informers` builds the informers the app hands to the shared
:class:`~kubewatch.kube.pool.InformerPool`.
"""

from kubewatch.app.build import build_sinks, check_config, default_identity
from kubewatch.app.core import App
from kubewatch.app.handover import HANDOVER_EVENTS, HandoverBuffer
from kubewatch.app.informers import STOP_POLL_INTERVAL

__all__ = [
    "HANDOVER_EVENTS",
    "STOP_POLL_INTERVAL",
    "App",
    "HandoverBuffer",
    "build_sinks",
    "check_config",
    "default_identity",
]
