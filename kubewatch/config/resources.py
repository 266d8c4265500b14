"""What to watch: resources, their namespaces, names and update settings."""

from __future__ import annotations

from typing import Literal

from pydantic import (
    field_validator,
    model_validator,
)

from kubewatch.config.fields import (
    ALL_EVENTS,
    API_VERSION,
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
    fail,
    fail_at,
    require_distinct,
)


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
    exclude: tuple[NamePattern, ...] = ()


class UpdatesConfig(Model):
    """Which changes make an update worth reporting."""

    watch: tuple[PathPattern, ...] = ()
    """When set, only changes at or below these paths count (``spec.template.**``)."""
    ignore: tuple[PathPattern, ...] = ()
    """Added to the default ignore list (status, resourceVersion, managedFields, …)."""


class ResourceConfig(Model):
    """One watched resource: a kind, plural, short name, ``kind.group`` or apiVersion + kind."""

    kind: NonBlank
    api_version: str | None = None
    events: tuple[EventName, ...] = ALL_EVENTS
    label_selector: str | None = None
    field_selector: str | None = None
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
    """Selector syntax applied to the object's annotations."""
    names: NamesConfig | None = None
    updates: UpdatesConfig = UpdatesConfig()
    # Kubernetes Events (kind: Event) only:
    types: tuple[Literal["Normal", "Warning"], ...] | None = None
    """Event ``type``s to report (default: all)."""
    reasons: tuple[Regex, ...] | None = None
    """Event reasons: names or regular expressions, matched against the whole reason."""
    message: Regex | None = None
    """Regular expression searched in the Event's message."""
    involved_kinds: tuple[NonBlank, ...] | None = None
    """Kinds of the involved object (``Pod``, ``Node``)."""
    repeat_window: Duration = 600.0
    """A repeating Event (same involved object and reason) is reported at most once per
    window, with its current count."""

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
        """An empty list would watch and never report; a duplicate hints at a typo."""
        require_distinct(
            "events",
            value,
            empty="at least one event is required (create, update, delete)",
            repeated=lambda e, _: (e, fail(f"duplicate event {e!r}", value=repr(e))),
        )
        return value
