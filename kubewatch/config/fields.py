"""Field types and validators shared by every config model: names, patterns, durations,
strict scalars, and the frozen camelCase base model."""

from __future__ import annotations

import re
from collections.abc import Callable, Hashable, Sequence
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
)
from pydantic.alias_generators import to_camel
from pydantic_core import InitErrorDetails, PydanticCustomError

from kubewatch.config.shapes import kind_of
from kubewatch.match.paths import compile_paths
from kubewatch.match.patterns import PatternError, compile_name, parse_selector

T = TypeVar("T")
V = TypeVar("V")

EventName = Literal["create", "update", "delete"]
ALL_EVENTS: tuple[EventName, ...] = ("create", "update", "delete")

ERROR_TYPE = "kubewatch"
"""pydantic error type of our own checks: their message is already written for humans."""

_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_SINK_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
API_VERSION = re.compile(r"([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[a-z0-9]([-a-z0-9]*[a-z0-9])?")
HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


def fail(message: str, **ctx: Any) -> PydanticCustomError:
    """Our own error type, so the converter passes the message through unchanged.

    A ``value`` in ``ctx`` is the repr of the offending value as it appears in the message;
    the converter replaces it when that value came from the environment.
    """
    return PydanticCustomError(ERROR_TYPE, message, ctx)


Problems = list[tuple[tuple[str | int, ...], Any, PydanticCustomError]]
"""(location below the validated item, offending input, error) triples."""


def fail_at(title: str, errors: Problems) -> None:
    """Raise several errors at once at sub-locations of the validated field or model.

    pydantic merges a ValidationError raised inside a validator into the outer one with
    the locations prefixed, which keeps cross-field errors at the key that is wrong.
    """
    if errors:
        raise ValidationError.from_exception_data(
            title, [InitErrorDetails(type=e, loc=loc, input=v) for loc, v, e in errors]
        )


def require_distinct(
    field: str,
    values: Sequence[V],
    *,
    empty: str | None,
    repeated: Callable[[V, int], tuple[Any, PydanticCustomError]],
    key: Callable[[V], Hashable] = lambda v: v,
) -> None:
    """Fail with ``empty`` when there are no ``values`` (None: none is fine), and at each
    value equal (by ``key``) to an earlier one with ``repeated(value, first_index)`` (input,
    error): a repeated watch or event type is a typo, or reports everything twice."""
    if not values and empty is not None:
        raise fail(empty)
    first: dict[Hashable, int] = {}
    errors: Problems = []
    for i, value in enumerate(values):
        first_index = first.setdefault(key(value), i)
        if first_index != i:
            errors.append(((i,), *repeated(value, first_index)))
    fail_at(field, errors)


def _dns_label(value: str) -> str:
    """Namespace names are DNS-1123 labels; anything else can never match a namespace."""
    if len(value) > 63 or not _DNS_LABEL.fullmatch(value):
        raise fail(
            f"{value!r} is not a valid namespace name (lowercase letters, digits and '-', "
            "starting and ending with a letter or digit, at most 63 characters)",
            value=repr(value),
        )
    return value


def _sink_name(value: str) -> str:
    """Sink names appear in logs, metrics labels and routes: keep them plain."""
    if not value:
        raise fail("sink name must not be empty")
    if not _SINK_NAME.fullmatch(value):
        raise fail(
            f"invalid sink name {value!r}: use letters, digits, '_', '.' and '-', "
            "starting with a letter or digit"
        )
    return value


def _not_blank(value: str) -> str:
    """An empty string is never what was meant where a name is expected."""
    if not value.strip():
        raise fail("must not be empty")
    return value


def _parsed(parse: Callable[[str], T], value: str) -> T:
    """``parse(value)``, its :class:`PatternError` turned into a config error."""
    try:
        return parse(value)
    except PatternError as e:
        raise fail(str(e), value=repr(value)) from None


def _namespace_pattern(value: str) -> str:
    """A namespace name (a DNS label), a glob (``team-*``) or a ``/regex/``."""
    return _dns_label(value) if isinstance(_parsed(compile_name, value), str) else value


def _name_pattern(value: str) -> str:
    """An object name, a glob or a ``/regex/``."""
    _parsed(compile_name, value)
    return value


def _selector(value: str) -> str:
    """Kubernetes label selector syntax, checked now rather than failing every match."""
    _parsed(parse_selector, value)
    return value


def _regex(value: str) -> str:
    try:
        re.compile(value)
    except re.error as e:
        raise fail(f"invalid regular expression {value!r}: {e}", value=repr(value)) from None
    return value


def _path_pattern(value: str) -> str:
    """An object path pattern (``spec.template.**``, ``metadata.labels.*``)."""
    try:
        compile_paths([value])
    except (ValueError, TypeError) as e:
        raise fail(str(e), value=repr(value)) from None
    return value


_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(value: Any) -> Any:
    """Seconds as a number, or a Go-style duration string: ``30s``, ``10m``, ``1h30m``."""
    if isinstance(value, bool):
        raise fail(
            f"expected a duration (seconds, or e.g. '30s'), got {value!r}", value=repr(value)
        )
    if not isinstance(value, str):
        return value
    text = value.strip()
    try:
        return float(text)
    except ValueError:
        pass
    pos, total = 0, 0.0
    for m in _DURATION_PART.finditer(text):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _DURATION_UNITS[m.group(2)]
        pos = m.end()
    if pos != len(text) or not text:
        raise fail(
            f"{value!r} is not a duration (seconds, or e.g. '30s', '10m', '1h30m')",
            value=repr(value),
        )
    return total


MAX_DURATION = 365 * 86400.0
"""Seconds: the longest any duration, timeout or wait may be (one year). Every one of them
ends in a sleep, a wait or a socket timeout, and those overflow (``OverflowError`` at
SIGTERM for ``drainTimeout: 1e10``) long before a float does."""
MAX_INT64 = 2**63 - 1
"""The API server's integers (``limit``, ``timeoutSeconds``) are int64."""


class Expanded(str):
    """A string value that came (partly) from ``${VAR}``: the one kind of string a number
    or boolean key accepts, as an environment variable can only hold text."""

    __slots__ = ()


def strict(kind: type) -> Any:
    """A before-validator that refuses what pydantic's lax mode would coerce: ``true`` for
    a number, ``"12"`` or ``1`` for a boolean. Text from ``${VAR}`` is still converted."""
    names = {int: "an integer", float: "a number", bool: "true or false"}

    def check(value: Any) -> Any:
        if isinstance(value, Expanded):
            return str(value)
        ok = (
            isinstance(value, bool)
            if kind is bool
            else isinstance(value, int | float if kind is float else int)
            and not isinstance(value, bool)
        )
        if ok or value is None:
            return value
        hint = (
            " (no quotes; and YAML reads 1e10 as text: write 1.0e10)"
            if isinstance(value, str)
            else ""
        )
        got = f"{kind_of(value)} {value!r}" if isinstance(value, str | bool) else kind_of(value)
        raise fail(f"expected {names[kind]}, got {got}{hint}", value=repr(value))

    return BeforeValidator(check)


StrictInt = Annotated[int, strict(int)]
StrictBool = Annotated[bool, strict(bool)]
Seconds = Annotated[float, strict(float), Field(gt=0, le=MAX_DURATION)]
"""A plain number of seconds (no ``30s`` form), more than 0, at most a year."""

DnsLabel = Annotated[str, AfterValidator(_dns_label)]
NamespacePattern = Annotated[str, AfterValidator(_namespace_pattern)]
NamePattern = Annotated[str, AfterValidator(_name_pattern)]
Selector = Annotated[str, AfterValidator(_selector)]
Regex = Annotated[str, AfterValidator(_regex)]
PathPattern = Annotated[str, AfterValidator(_path_pattern)]
Duration = Annotated[float, BeforeValidator(parse_duration), Field(gt=0, le=MAX_DURATION)]
SinkName = Annotated[str, AfterValidator(_sink_name)]
NonBlank = Annotated[str, AfterValidator(_not_blank)]


class Model(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        alias_generator=to_camel,
        populate_by_name=True,
        allow_inf_nan=False,
    )
