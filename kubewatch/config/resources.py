"""What to watch: resources, their namespaces, names and update settings."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BeforeValidator,
    Field,
    field_validator,
    model_validator,
)

from kubewatch.config.fields import (
    ALL_EVENTS,
    API_VERSION,
    MAX_DURATION,
    Duration,
    EventName,
    Model,
    NamePattern,
    NamespacePattern,
    NonBlank,
    PathPattern,
    Problems,
    Regex,
    Selector,
    StrictBool,
    StrictInt,
    fail,
    fail_at,
    parse_duration,
    require_distinct,
)

_NO_EVENTS = "at least one event is required (create, update, delete)"

MAX_LOG_LINES = 1000
"""The most log lines an alert may carry: a chat message, not a log archive."""


class NamespacesConfig(Model):
    """Which namespaces to watch. An empty ``include`` means every namespace."""

    include: tuple[NamespacePattern, ...] = ()
    """Only these namespaces: names, globs (``team-*``) or ``/regex/``. Plain names get one
    watch each; any pattern means one cluster-wide watch filtered by kubewatch."""
    exclude: tuple[NamespacePattern, ...] = ()
    """Never these: plain names are filtered by the API server, patterns by kubewatch."""

    @model_validator(mode="after")
    def _no_overlap(self) -> NamespacesConfig:
        """Included and excluded at once is a contradiction, not a preference."""
        errors: Problems = []
        for key, names in (("include", self.include), ("exclude", self.exclude)):
            for i, name in enumerate(names):
                if name in names[:i]:
                    errors.append(
                        (
                            (key, i),
                            name,
                            fail(f"namespace {name!r} is listed twice", value=repr(name)),
                        )
                    )
        included = set(self.include)
        for i, name in enumerate(self.exclude):
            if name in included:
                msg = f"namespace {name!r} is both included and excluded"
                errors.append((("exclude", i), name, fail(msg, value=repr(name))))
        fail_at("NamespacesConfig", errors)
        return self


class NamesConfig(Model):
    """Object names to report: names, globs or ``/regex/``."""

    include: tuple[NamePattern, ...] = ()
    """Only objects with one of these names: exact names, globs (``web-*``) or
    ``/regex/`` (``/^db-[0-9]+$/``). Default: every name."""
    exclude: tuple[NamePattern, ...] = ()
    """Never objects with one of these names (same syntax); checked after ``include``,
    so ``{include: [web-*], exclude: [web-canary]}`` keeps every web-* but one."""


class UpdatesConfig(Model):
    """Which changes make an update worth reporting."""

    watch: tuple[PathPattern, ...] = ()
    """When set, only changes at or below these paths count (``spec.template.**``)."""
    ignore: tuple[PathPattern, ...] = ()
    """Added to the default ignore list (status, resourceVersion, managedFields, …)."""


DEFAULT_HEALTH_REASONS = (
    "CrashLoopBackOff",
    "OOMKilled",
    "ImagePullBackOff",
    "ErrImagePull",
    "CreateContainerConfigError",
    "Error",
)
"""Container states that make a Pod alert by default."""


OptionalDuration = Annotated[float, BeforeValidator(parse_duration), Field(ge=0, le=MAX_DURATION)]
"""A duration where ``0`` means off."""


class HealthConfig(Model):
    """Health alerts for Pods, Jobs, Deployments and Nodes (``{}``: every detector, with
    these defaults). See docs/health.md."""

    reasons: tuple[NonBlank, ...] = DEFAULT_HEALTH_REASONS
    """Pods only: container waiting or termination reasons that fire an alert."""
    log_lines: StrictInt = Field(default=0, ge=0, le=MAX_LOG_LINES)
    """Pods only: attach this many last lines of the failed container's log (its previous
    instance after a restart); 0 attaches none. Needs ``get`` on ``pods/log``."""
    resolve_after: Duration = 300.0
    """Healthy (for a container: running and ready) this long → one ``resolved`` alert."""
    remind_after: Annotated[
        float, BeforeValidator(parse_duration), Field(ge=0, le=MAX_DURATION)
    ] = 3600.0
    """A firing alert is sent again after this long while it keeps failing; 0: never."""
    notify_existing: StrictBool = False
    """Report failures that already exist when kubewatch starts (default: only new ones)."""

    @field_validator("reasons")
    @classmethod
    def _some_reasons(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise fail("at least one reason is required (leave the key out for the defaults)")
        return value


class ResourceConfig(Model):
    """One watched resource: a kind, plural, short name, ``kind.group`` or apiVersion + kind."""

    kind: NonBlank
    """What to watch, resolved through the cluster's discovery: a kind (``Deployment``),
    plural (``deployments``), short name (``deploy``) or ``kind.group``
    (``certificates.cert-manager.io``) for a CRD whose kind is ambiguous."""
    api_version: str | None = None
    """``group/version`` (``apps/v1``) or ``v1``, to pin one version of the resource.
    Default: the version the API server prefers."""
    events: tuple[EventName, ...] = ALL_EVENTS
    """Which changes to report: any of ``create``, ``update``, ``delete`` (default: all
    three), e.g. ``[create, delete]`` to leave out updates."""
    label_selector: str | None = None
    """Kubernetes label selector applied by the API server (``app=web,tier!=cache``):
    objects outside it are never seen, so one that loses a matching label simply
    vanishes from the watch; ``labels`` (applied by kubewatch) reports it leaving."""
    field_selector: str | None = None
    """Kubernetes field selector sent to the API server (``status.phase=Running``,
    ``spec.nodeName=node-1``); which fields work depends on the resource."""
    notify_existing: StrictBool = False
    """Report objects that already exist at start as creates (default: only new ones)."""
    namespaces: NamespacesConfig | None = None
    """Narrows the global ``namespaces`` for this resource (both must admit an object)."""
    namespace_selector: Selector | None = None
    """Only objects in namespaces whose labels match (with the global one, if any)."""
    labels: Selector | None = None
    """Client-side label selector on the object (unlike ``labelSelector``, it also sees
    objects leave the selection: their delete is reported)."""
    annotations: Selector | None = None
    """Label selector syntax applied to the object's annotations, client-side
    (``team=payments``, ``!skip-alerts``): only objects whose annotations match."""
    names: NamesConfig | None = None
    """Object names to report (``include``/``exclude``); default: every name."""
    updates: UpdatesConfig = UpdatesConfig()
    """Which changed paths make an update worth reporting (``watch``, ``ignore``);
    default: any change outside status and bookkeeping fields."""
    # Kubernetes Events (kind: Event) only:
    types: tuple[Literal["Normal", "Warning"], ...] | None = None
    """``kind: Event`` only: Event types to report, ``Normal`` and/or ``Warning`` (default:
    both), e.g. ``[Warning]`` for problems only."""
    reasons: tuple[Regex, ...] | None = None
    """Event reasons: names or regular expressions, matched against the whole reason."""
    message: Regex | None = None
    """``kind: Event`` only: a regular expression searched anywhere in the Event's
    message (``OOMKilled|Back-off``); default: any message."""
    involved_kinds: tuple[NonBlank, ...] | None = None
    """``kind: Event`` only: report Events about objects of these kinds (``[Pod, Node]``);
    default: any kind."""
    repeat_window: Duration = 600.0
    """A repeating Event (same involved object and reason) is reported at most once per
    window, with its current count."""
    health: HealthConfig | None = None
    """Pod, Job, Deployment and Node only: alert when an object fails and when it recovers.
    With ``health`` and no ``events``, only alerts are reported."""

    @model_validator(mode="before")
    @classmethod
    def _health_alone(cls, data: Any) -> Any:
        """``health`` without ``events``: alerts only, not every create and delete too."""
        if isinstance(data, dict) and data.get("health") is not None and "events" not in data:
            return {**data, "events": ()}
        return data

    @model_validator(mode="after")
    def _something_to_report(self) -> ResourceConfig:
        """An entry with no events and no health alerts would watch and never report."""
        if not self.events and self.health is None:
            fail_at(
                "ResourceConfig",
                [
                    (
                        ("events",),
                        [],
                        fail("at least one event is required (create, update, delete)"),
                    )
                ],
            )
        return self

    @field_validator("api_version")
    @classmethod
    def _api_version_shape(cls, value: str | None) -> str | None:
        """Catch ``apps/v1/`` or ``Apps/V1`` here rather than as a discovery miss later."""
        if value is not None and not API_VERSION.fullmatch(value):
            raise fail(
                f"{value!r} is not an apiVersion (expected 'v1' or 'group/version', "
                "e.g. 'apps/v1')",
                value=repr(value),
            )
        return value

    @field_validator("events")
    @classmethod
    def _events_set(cls, value: tuple[EventName, ...]) -> tuple[EventName, ...]:
        """A duplicate hints at a typo (an empty list is checked with ``health``)."""
        require_distinct(
            "events",
            value,
            empty=None,
            repeated=lambda e, _: (e, fail(f"duplicate event {e!r}", value=repr(e))),
        )
        return value
