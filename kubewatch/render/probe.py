"""The load-time probe: which names and fields a template reads, checked against what an
event offers, and the context a template renders with."""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jinja2
import jinja2.meta
from jinja2.exceptions import UndefinedError
from jinja2.utils import missing

from kubewatch.events import (
    Event,
)

log = logging.getLogger("kubewatch.render.templates")

# --------------------------------------------------------------------------- load-time probe


@dataclass
class Probe:
    """Notes, while samples render, each field a contract object was asked for and lacks."""

    contract: dict[int, tuple[str, Mapping[str, Any]]]
    """id → (name in messages, the mapping): the objects whose keys are the contract.
    Holding the mapping keeps its id from being reused while the probe lives."""
    misses: dict[tuple[str, str], tuple[str, ...]]
    """(object name, field) → the fields that object does have, in first-seen order."""

    def note(self, obj: Any, name: Any) -> None:
        entry = self.contract.get(id(obj))
        if entry is not None and entry[1] is obj and isinstance(name, str):
            self.misses.setdefault((entry[0], name), tuple(obj))


PROBE: contextvars.ContextVar[Probe | None] = contextvars.ContextVar(
    "kubewatch_template_probe", default=None
)
"""Set only while :func:`compile_template` renders its samples (per thread)."""


class ProbeUndefined(jinja2.StrictUndefined):
    """StrictUndefined that reports to the load-time probe where it was created."""

    __slots__ = ()

    def __init__(
        self,
        hint: str | None = None,
        obj: Any = missing,
        name: str | None = None,
        exc: type[jinja2.TemplateRuntimeError] = UndefinedError,
    ) -> None:
        super().__init__(hint, obj, name, exc)
        probe = PROBE.get()
        if probe is not None and exc is UndefinedError and obj is not missing:
            probe.note(obj, name)


_DATA_KEYS = frozenset({"labels", "old", "new"})
"""Keys whose values are object data, not contract: any key may be missing there."""


def contract_objects(value: Any, name: str, out: dict[int, tuple[str, Mapping[str, Any]]]) -> None:
    """Register every mapping of the event JSON that is part of the contract."""
    if isinstance(value, dict):
        out[id(value)] = (name, value)
        for key, child in value.items():
            if key not in _DATA_KEYS:
                contract_objects(child, key if name == "event" else f"{name}.{key}", out)
    elif isinstance(value, list):
        for child in value:
            contract_objects(child, f"{name}[…]", out)


def template_context(event: Event) -> dict[str, Any]:
    """What a template sees: each top-level field of the event JSON, and ``event``."""
    doc = event.to_dict()
    return {**doc, "event": doc}
