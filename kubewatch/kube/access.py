"""May this identity do ``verb`` on a resource? A SelfSubjectAccessReview asks the server.

A LIST that works says nothing about WATCH: a Role granting ``list`` but not ``watch``
lets ``kubewatch validate`` list and then leaves every watch failing with 403. The review
answers for the exact verb, without side effects, for any identity (creating one is
granted to every authenticated user by the default ``system:basic-user`` role).
"""

from __future__ import annotations

from typing import Any, Protocol

from kubewatch.kube.discovery import ResourceType

__all__ = ["REVIEW_PATH", "Access", "may"]

REVIEW_PATH = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"


class Access(Protocol):
    """What :func:`may` needs of a :class:`~kubewatch.kube.client.ClusterClient`."""

    def request_json(
        self, method: str, path: str, body: dict[str, Any] | None = None
    ) -> dict[str, Any]: ...


def may(client: Access, verb: str, resource: ResourceType, namespace: str | None) -> str | None:
    """``None`` when ``verb`` is allowed on ``resource`` (in ``namespace``, or in every
    namespace when ``None``); else why not, as the server says it. Raises ApiError /
    ApiUnreachable when the review itself cannot be made."""
    attributes: dict[str, str] = {
        "verb": verb,
        "group": resource.group,
        "version": resource.version,
        "resource": resource.plural,
    }
    if namespace:
        attributes["namespace"] = namespace
    answer = client.request_json(
        "POST",
        REVIEW_PATH,
        {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SelfSubjectAccessReview",
            "spec": {"resourceAttributes": attributes},
        },
    )
    status = answer.get("status") or {}
    if status.get("allowed") is True:
        return None
    reason = str(status.get("reason") or status.get("evaluationError") or "").strip()
    return reason or f"{verb} is not allowed"
