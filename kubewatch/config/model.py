"""The top model (:class:`Config`), with routes and their match conditions."""

from __future__ import annotations

import difflib
import json
from typing import Literal

from pydantic import (
    field_validator,
    model_validator,
)

from kubewatch.config.fields import (
    Model,
    NamePattern,
    NamespacePattern,
    NonBlank,
    PathPattern,
    Problems,
    Regex,
    Selector,
    SinkName,
    StrictBool,
    fail,
    fail_at,
    require_distinct,
)
from kubewatch.config.resources import NamespacesConfig, ResourceConfig
from kubewatch.config.runtime import (
    DeliveryConfig,
    LeaderElectionConfig,
    ServerConfig,
    StateConfig,
    WatchConfig,
)
from kubewatch.config.sink_types import SinkConfig
from kubewatch.config.tenancy import TenancyConfig


class MatchConfig(Model):
    """Conditions on an event; all given keys must hold, each list is any-of."""

    kinds: tuple[NonBlank, ...] | None = None
    """The object's kind is one of these (``[Pod, Deployment]``; case does not matter,
    plurals and short names do not match)."""
    namespaces: tuple[NamespacePattern, ...] | None = None
    """The object's namespace is one of these: names, globs (``team-*``) or ``/regex/``.
    Cluster-scoped objects never match."""
    names: tuple[NamePattern, ...] | None = None
    """The object's name is one of these: names, globs (``web-*``) or ``/regex/``."""
    types: tuple[Literal["create", "update", "delete", "alert"], ...] | None = None
    """The event is one of ``create``, ``update``, ``delete`` or ``alert`` (a health
    alert): ``[delete]``."""
    labels: Selector | None = None
    """The object's labels match this label selector (``env=prod,team in (a,b)``)."""
    reasons: tuple[Regex, ...] | None = None
    """Kubernetes Events and health alerts only (``k8sEvent.reason``, ``alert.reason``):
    reasons, names or regular expressions (whole reason)."""
    states: tuple[Literal["firing", "resolved"], ...] | None = None
    """Health alerts only: ``alert.state``."""
    changed: tuple[PathPattern, ...] | None = None
    """Updates only: at least one changed path at or below one of these."""

    @model_validator(mode="after")
    def _no_empty_lists(self) -> MatchConfig:
        """An empty list would match nothing: a route that never fires, silently."""
        fail_at(
            "MatchConfig",
            [
                ((field.alias or name,), [], fail("must not be empty (leave the key out)"))
                for name, field in type(self).model_fields.items()
                if getattr(self, name) == ()
            ],
        )
        return self


class RouteConfig(Model):
    """Events matching ``match`` (all events when absent) go to ``sinks``."""

    match: MatchConfig | None = None
    """Conditions the event must meet (all of the keys given); default: every event."""
    sinks: tuple[SinkName, ...]
    """Names of the sinks (keys under ``sinks``) the matching events go to, at least one."""
    stop: StrictBool = False
    """Do not evaluate later routes for an event this route matched."""

    @field_validator("sinks")
    @classmethod
    def _some_sinks(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise fail("at least one sink is required")
        return value


class Config(Model):
    cluster: NonBlank | None = None
    """Name put in every event; default: the kube context's name."""
    namespaces: NamespacesConfig = NamespacesConfig()
    """Namespaces watched for every resource (``include``/``exclude``); default: all."""
    resources: tuple[ResourceConfig, ...]
    """At least one (checked by a validator: ``min_length`` misfires when an item fails)."""
    sinks: dict[SinkName, SinkConfig]
    """Where events go: a name of your choice mapped to a sink chosen by its ``type``
    (``{audit: {type: webhook, url: …}, ops: {type: slack, channel: "#ops", …}}``)."""
    namespace_selector: Selector | None = None
    """Only objects in namespaces whose labels match (kept current by a Namespace watch)."""
    drop: tuple[MatchConfig, ...] = ()
    """Evaluated first: an event matching any entry is discarded."""
    routes: tuple[RouteConfig, ...] = ()
    """In order; without routes every event goes to every sink."""
    delivery: DeliveryConfig = DeliveryConfig()
    """Queues, workers, retries and shutdown draining, for every sink (each sink may
    override its own)."""
    watch: WatchConfig = WatchConfig()
    """How watches talk to the API server: timeouts, LIST page size, discovery."""
    server: ServerConfig = ServerConfig()
    """The ``/metrics``, ``/healthz`` and ``/readyz`` server; off unless ``port`` is set."""
    leader_election: LeaderElectionConfig = LeaderElectionConfig()
    """Run several replicas with one delivering at a time; off by default."""
    state: StateConfig = StateConfig()
    """Durable state across restarts (undelivered events, watch positions); default:
    in memory only."""
    tenancy: TenancyConfig = TenancyConfig()
    """Operator mode: Notifier and ClusterSink resources (see Self-service notifications)."""

    @field_validator("drop")
    @classmethod
    def _drop_not_everything(cls, value: tuple[MatchConfig, ...]) -> tuple[MatchConfig, ...]:
        """An empty match drops every event: never what was meant."""
        fail_at(
            "drop",
            [
                ((i,), None, fail("an empty match would drop every event"))
                for i, m in enumerate(value)
                if not m.model_fields_set
            ],
        )
        return value

    @model_validator(mode="after")
    def _stall_after_reopen(self) -> Config:
        """A quiet, healthy watch shows life only when it reopens; a shorter stall
        threshold would make /readyz flap on a healthy cluster."""
        quiet = min(2 * self.watch.server_timeout, 0.9 * self.watch.read_timeout)
        if self.server.stall_threshold <= quiet:
            message = (
                f"must be longer than {quiet:g}s, the longest a healthy quiet watch goes "
                "between reopens (min(2 x watch.serverTimeout, 0.9 x watch.readTimeout))"
            )
            fail_at("Config", [(("server", "stallThreshold"), None, fail(message))])
        return self

    @model_validator(mode="after")
    def _routes_name_sinks(self) -> Config:
        """A route to a sink that does not exist would lose events silently."""
        errors: Problems = []
        for i, route in enumerate(self.routes):
            for j, name in enumerate(route.sinks):
                if name not in self.sinks:
                    close = difflib.get_close_matches(name, list(self.sinks), n=1)
                    hint = f" (did you mean {close[0]!r}?)" if close else ""
                    known = ", ".join(self.sinks)
                    errors.append(
                        (
                            ("routes", i, "sinks", j),
                            name,
                            fail(f"unknown sink {name!r}{hint}; sinks: {known}", value=repr(name)),
                        )
                    )
        fail_at("Config", errors)
        return self

    @field_validator("resources")
    @classmethod
    def _resources_distinct(cls, value: tuple[ResourceConfig, ...]) -> tuple[ResourceConfig, ...]:
        """Two identical watches would report every change twice."""
        require_distinct(
            "resources",
            value,
            empty="at least one resource is required",
            repeated=lambda _, j: (
                None,
                fail(f"duplicate of resources[{j}] (every key the same)"),
            ),
            key=_every_key,
        )
        return value

    @field_validator("sinks")
    @classmethod
    def _some_sink(cls, value: dict[str, SinkConfig]) -> dict[str, SinkConfig]:
        """Events with nowhere to go mean a configuration mistake."""
        if not value:
            raise fail("at least one sink is required")
        return value


def _every_key(resource: ResourceConfig) -> str:
    return json.dumps(resource.model_dump(mode="json"), sort_keys=True)
