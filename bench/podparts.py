"""Parts every realistic Pod carries, as the API server fills them in: the projected
service-account token volume and the default not-ready/unreachable tolerations."""

from __future__ import annotations

from typing import Any


def token_volume(name: str, **projected: Any) -> dict[str, Any]:
    """The ``kube-api-access-*`` volume: token, then the cluster CA (``projected`` adds keys
    such as ``defaultMode`` before the sources)."""
    return {
        "name": name,
        "projected": {
            **projected,
            "sources": [
                {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                {
                    "configMap": {
                        "name": "kube-root-ca.crt",
                        "items": [{"key": "ca.crt", "path": "ca.crt"}],
                    }
                },
            ],
        },
    }


def toleration(condition: str) -> dict[str, Any]:
    """The toleration the API server adds for ``not-ready`` or ``unreachable`` nodes."""
    return {
        "key": f"node.kubernetes.io/{condition}",
        "operator": "Exists",
        "effect": "NoExecute",
        "tolerationSeconds": 300,
    }
