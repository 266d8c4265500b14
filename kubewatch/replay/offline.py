"""Matching without discovery: an object's own ``kind`` and ``apiVersion`` stand in for
the API server's resource list (plural from the kind, kubectl's short names)."""

from __future__ import annotations

from kubewatch.config import ResourceConfig
from kubewatch.kube.discovery import ResourceType
from kubewatch.words import plural

# --------------------------------------------------------------------------- matching

_BUILTIN_SHORT_NAMES: dict[tuple[str, str], tuple[str, ...]] = {
    ("", "ComponentStatus"): ("cs",),
    ("", "ConfigMap"): ("cm",),
    ("", "Endpoints"): ("ep",),
    ("", "Event"): ("ev",),
    ("", "LimitRange"): ("limits",),
    ("", "Namespace"): ("ns",),
    ("", "Node"): ("no",),
    ("", "PersistentVolumeClaim"): ("pvc",),
    ("", "PersistentVolume"): ("pv",),
    ("", "Pod"): ("po",),
    ("", "ReplicationController"): ("rc",),
    ("", "ResourceQuota"): ("quota",),
    ("", "ServiceAccount"): ("sa",),
    ("", "Service"): ("svc",),
    ("apps", "DaemonSet"): ("ds",),
    ("apps", "Deployment"): ("deploy",),
    ("apps", "ReplicaSet"): ("rs",),
    ("apps", "StatefulSet"): ("sts",),
    ("autoscaling", "HorizontalPodAutoscaler"): ("hpa",),
    ("batch", "CronJob"): ("cj",),
    ("certificates.k8s.io", "CertificateSigningRequest"): ("csr",),
    ("events.k8s.io", "Event"): ("ev",),
    ("extensions", "Ingress"): ("ing",),
    ("networking.k8s.io", "Ingress"): ("ing",),
    ("networking.k8s.io", "NetworkPolicy"): ("netpol",),
    ("policy", "PodDisruptionBudget"): ("pdb",),
    ("policy", "PodSecurityPolicy"): ("psp",),
    ("scheduling.k8s.io", "PriorityClass"): ("pc",),
    ("storage.k8s.io", "StorageClass"): ("sc",),
    ("apiextensions.k8s.io", "CustomResourceDefinition"): ("crd", "crds"),
}
"""kubectl's short names of built-in resources (their discovery, which a replay lacks)."""

_IRREGULAR_PLURALS = {("", "Endpoints"): "endpoints"}


def resource_type(api_version: str, kind: str, namespaced: bool) -> ResourceType:
    """The resource of objects of ``kind`` in ``api_version``, guessed without discovery:
    plural from the kind, kubectl's short names for built-in kinds."""
    group, _, version = api_version.rpartition("/")
    return ResourceType(
        group=group,
        version=version,
        kind=kind,
        plural=_IRREGULAR_PLURALS.get((group, kind)) or plural(kind.lower()),
        singular=kind.lower(),
        namespaced=namespaced,
        short_names=_BUILTIN_SHORT_NAMES.get((group, kind), ()),
        verbs=frozenset({"list", "watch"}),
    )


def names_match(rc: ResourceConfig, t: ResourceType) -> bool:
    """Does entry ``rc`` name resource ``t`` (a kind, plural, singular or short name, any
    case; ``name.group``, ``name.version.group``; or a name with ``apiVersion``)?"""
    names = {t.kind.lower(), t.plural, t.singular, *(s.lower() for s in t.short_names)}
    name = rc.kind.strip().lower()
    if rc.api_version:
        return rc.api_version == t.api_version and name in names
    head, _, rest = name.partition(".")
    if not rest:
        return name in names
    return head in names and rest in (t.group, f"{t.version}.{t.group}")
