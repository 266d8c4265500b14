"""The spec and status of ``Notifier`` and ``ClusterSink`` (group kubewatch.io, v1alpha1).

Derived from the config models rather than copied: a Notifier's ``resources[]`` entry is
the config file's :class:`~kubewatch.config.ResourceConfig` without the keys that could
name another namespace (``namespaces``, ``namespaceSelector``: a Notifier reports its own
namespace only); its sinks are :mod:`.sinks`' tenant sinks; its routes are the config's
:class:`~kubewatch.config.RouteConfig`. The CRD schemas are generated from these models
(:mod:`.crds`), so what the API server stores and what kubewatch accepts stay one thing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, field_validator, model_validator
from pydantic.json_schema import SkipJsonSchema

from kubewatch.config import ResourceConfig, RouteConfig
from kubewatch.config.fields import (
    Model,
    NonBlank,
    Problems,
    SinkName,
    StrictBool,
    StrictInt,
    fail,
    fail_at,
)
from kubewatch.tenancy.sinks import TenantSink, secret_name

GROUP = "kubewatch.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"

_OTHER_NAMESPACES = ("namespaces", "namespaceSelector")
"""ResourceConfig keys that select namespaces: a Notifier has exactly one, its own."""


class NotifierResource(ResourceConfig):
    """One watched kind, in the Notifier's own namespace only."""

    namespaces: SkipJsonSchema[None] = None
    namespace_selector: SkipJsonSchema[None] = None

    @model_validator(mode="before")
    @classmethod
    def _own_namespace(cls, data: Any) -> Any:
        if isinstance(data, Mapping):
            message = "is not available in a Notifier: it reports its own namespace only"
            fail_at(
                "NotifierResource",
                [((key,), None, fail(message)) for key in _OTHER_NAMESPACES if key in data],
            )
        return data


ObjectName = Annotated[str, AfterValidator(secret_name)]
"""A Kubernetes object name (DNS subdomain), as ClusterSinks and Secrets have."""


class SinkRef(Model):
    """A sink the cluster admin shares: a ClusterSink that admits this namespace."""

    kind: Literal["ClusterSink"]
    name: ObjectName


class NotifierSpec(Model):
    """What a team wants to hear about in its namespace, and where it goes."""

    suspend: StrictBool = False
    """Pause deliveries (changes meanwhile are not reported later)."""
    resources: tuple[NotifierResource, ...]
    """What to watch: the config file's ``resources[]`` entries, in this namespace."""
    sinks: dict[SinkName, TenantSink] = Field(default_factory=dict)
    """The config file's sinks; credentials may come from Secrets in this namespace."""
    sink_refs: tuple[SinkRef, ...] = ()
    """ClusterSinks to deliver to as well; routes name them by their name."""
    routes: tuple[RouteConfig, ...] = ()
    """The config file's routes over ``sinks`` and ``sinkRefs``; without routes every
    event goes to every sink."""

    @field_validator("resources")
    @classmethod
    def _some(cls, value: tuple[NotifierResource, ...]) -> tuple[NotifierResource, ...]:
        if not value:
            raise fail("at least one resource is required")
        return value

    @model_validator(mode="after")
    def _sink_names(self) -> NotifierSpec:
        """Routes name sinks and ClusterSinks alike: every name must be one thing."""
        errors: Problems = []
        if not self.sinks and not self.sink_refs:
            errors.append((("sinks",), None, fail("at least one sink or sinkRef is required")))
        seen: set[str] = set()
        for i, ref in enumerate(self.sink_refs):
            if ref.name in self.sinks:
                message = f"{ref.name!r} is also the name of a sink in sinks"
                errors.append((("sinkRefs", i, "name"), None, fail(message)))
            elif ref.name in seen:
                errors.append((("sinkRefs", i, "name"), None, fail("listed twice")))
            seen.add(ref.name)
        fail_at("NotifierSpec", errors)
        return self


# -- status -----------------------------------------------------------------------------

Time = Annotated[str, Field(json_schema_extra={"format": "date-time"})]
"""RFC 3339, UTC, seconds (``2024-05-01T12:00:00Z``), as Kubernetes writes times."""


class Condition(Model):
    """A Kubernetes condition (``metav1.Condition``)."""

    type: NonBlank
    status: Literal["True", "False", "Unknown"]
    reason: NonBlank
    """CamelCase: ``Ready``, ``Invalid``, ``KindNotAllowed``, ``SinkNotAllowed``,
    ``SecretNotFound``, ``Suspended``, ``TooManyNotifiers``."""
    message: str = ""
    """For people; names the key path of the spec that is wrong."""
    last_transition_time: Time
    """When ``status`` last changed (not when the condition was last written)."""
    observed_generation: StrictInt | None = Field(None, ge=0)


class Delivery(Model):
    time: Time
    sink: NonBlank


class DeliveryFailure(Model):
    time: Time
    sink: NonBlank
    message: str


class ClusterSinkStatus(Model):
    observed_generation: StrictInt | None = Field(None, ge=0)
    """The ``metadata.generation`` this status is about."""
    conditions: tuple[Condition, ...] = ()


class NotifierStatus(ClusterSinkStatus):
    last_delivery: Delivery | None = None
    """The last event a sink accepted."""
    last_error: DeliveryFailure | None = None
    """The last delivery that failed for good."""


# -- ClusterSink -------------------------------------------------------------------------


class LabelSelectorRequirement(Model):
    key: NonBlank
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"]
    values: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _values_fit(self) -> LabelSelectorRequirement:
        """As the API server requires of every label selector."""
        wants = self.operator in ("In", "NotIn")
        if wants != bool(self.values):
            need = "needs values" if wants else "takes no values"
            fail_at("Requirement", [(("values",), None, fail(f"{self.operator} {need}"))])
        return self

    def holds(self, labels: Mapping[str, str]) -> bool:
        if self.operator == "Exists":
            return self.key in labels
        if self.operator == "DoesNotExist":
            return self.key not in labels
        inside = self.key in labels and labels[self.key] in self.values
        return inside if self.operator == "In" else not inside


class LabelSelector(Model):
    """A Kubernetes label selector; unlike Kubernetes', an empty one selects nothing."""

    match_labels: dict[str, str] = Field(default_factory=dict)
    match_expressions: tuple[LabelSelectorRequirement, ...] = ()

    def selects(self, labels: Mapping[str, str]) -> bool:
        """Whether a namespace with ``labels`` is selected (never, when empty)."""
        if not self.match_labels and not self.match_expressions:
            return False
        return all(labels.get(k) == v for k, v in self.match_labels.items()) and all(
            r.holds(labels) for r in self.match_expressions
        )


class ClusterSinkSpec(Model):
    """A sink the cluster admin offers to the namespaces it selects."""

    allowed_namespaces: LabelSelector = LabelSelector()
    """Namespaces whose Notifiers may use it, by their labels; empty: none."""
    sink: TenantSink
    """One sink; credentials may come from Secrets in kubewatch's own namespace."""
