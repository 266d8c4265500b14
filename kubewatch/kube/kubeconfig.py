"""Which cluster to talk to: the kubeconfig (or the in-cluster config), checked first.

Its own module because finding and loading the configuration is all about files and
their mistakes, not about requests: a kubeconfig is looked for like client-go's
``BuildConfigFromFlags`` does, and a broken one is reported in one sentence with the
file, line and column (:class:`KubeconfigInvalid`, ``validate`` and ``run`` exit 2),
never as the kubernetes client's traceback.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import yaml

from kubewatch.errors import KubewatchError

if TYPE_CHECKING:
    from kubernetes import client as k8s_client

__all__ = ["ClusterConfigError", "KubeconfigInvalid", "check_kubeconfig", "load_configuration"]


class ClusterConfigError(KubewatchError):
    """No usable kubeconfig / in-cluster configuration, or an unknown context."""


class KubeconfigInvalid(ClusterConfigError):
    """The kubeconfig file exists but is not valid YAML or not a kubeconfig: a mistake
    to fix, not a cluster that may come back (``validate`` and ``run`` exit 2)."""


def check_kubeconfig(path: str) -> None:
    """Parse ``path`` once ourselves: the kubernetes client lets a YAML error escape as a
    long traceback; this says the file, the line and the column in one sentence."""
    try:
        with open(path, encoding="utf-8") as f:
            doc = yaml.safe_load(f)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
        where = f", line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(e, "problem", None) or type(e).__name__
        raise KubeconfigInvalid(f"kubeconfig {path}{where}: invalid YAML: {problem}") from None
    except UnicodeDecodeError as e:
        raise KubeconfigInvalid(f"kubeconfig {path}: not UTF-8 text (byte {e.start})") from None
    except OSError as e:
        raise ClusterConfigError(f"kubeconfig {path}: {e.strerror or e}") from None
    if not isinstance(doc, dict):
        kind = "empty" if doc is None else f"a {type(doc).__name__}, not a mapping"
        raise KubeconfigInvalid(f"kubeconfig {path}: not a kubeconfig (the document is {kind})")


def load_configuration(
    kubeconfig: str | None, context: str | None
) -> tuple[k8s_client.Configuration, str]:
    """The client configuration of ``kubeconfig`` (or $KUBECONFIG / ~/.kube/config), else
    of the in-cluster config, and the name of the context used (``in-cluster`` in a Pod).

    The in-cluster config is used only when no kubeconfig is named or found and the
    process runs in a Pod (``KUBERNETES_SERVICE_HOST`` set), like client-go's
    ``BuildConfigFromFlags``. The kubernetes client (~0.15 s, ~30 MiB) is imported here,
    by the commands that connect, not by ``replay``, ``validate`` or ``--help``.
    """
    from kubernetes import client as k8s_client  # noqa: PLC0415
    from kubernetes import config as k8s_config  # noqa: PLC0415

    configuration = k8s_client.Configuration()
    explicit = kubeconfig or os.environ.get("KUBECONFIG")
    default_file = os.path.expanduser(k8s_config.KUBE_CONFIG_DEFAULT_LOCATION)
    use_incluster = (
        not explicit
        and not os.path.exists(default_file)
        and bool(os.environ.get("KUBERNETES_SERVICE_HOST"))
    )
    try:
        if use_incluster:
            if context:
                raise ClusterConfigError("--context needs a kubeconfig; none was found")
            k8s_config.load_incluster_config(client_configuration=configuration)
            context_name = "in-cluster"
        else:
            path = explicit.split(os.pathsep)[0] if explicit else default_file
            if not os.path.exists(path):
                raise ClusterConfigError(
                    f"kubeconfig {path} not found and not running in a Pod "
                    "(set --kubeconfig or KUBECONFIG)"
                )
            check_kubeconfig(path)
            contexts, current = k8s_config.list_kube_config_contexts(config_file=path)
            names = [c["name"] for c in contexts]
            if context and context not in names:
                raise ClusterConfigError(
                    f"context {context!r} not in {path}; contexts: {', '.join(names)}"
                )
            context_name = context or (current or {}).get("name", "default")
            k8s_config.load_kube_config(
                config_file=path,
                context=context,
                client_configuration=configuration,
                persist_config=False,
            )
    except k8s_config.ConfigException as e:
        raise ClusterConfigError(f"cannot load cluster configuration: {e}") from e
    except (AttributeError, KeyError, TypeError, ValueError) as e:
        # A YAML mapping of the wrong shape (``contexts: 3``): the client trips over it.
        where = "in-cluster configuration" if use_incluster else f"kubeconfig {path}"
        raise KubeconfigInvalid(
            f"{where}: not a valid kubeconfig ({type(e).__name__}: {e})"
        ) from None
    return configuration, context_name
