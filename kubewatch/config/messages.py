"""Error text: pydantic errors turned into messages that name a key path and say what
was expected, never showing an environment variable's value."""

from __future__ import annotations

import difflib
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ValidationError,
)
from pydantic_core import ErrorDetails

from kubewatch.config.expand import Expansion
from kubewatch.config.fields import ERROR_TYPE
from kubewatch.config.model import Config
from kubewatch.config.shapes import (
    PathPart,
    aliases,
    describe_type,
    find_field,
    format_path,
    kind_of,
    union_members,
    unwrap,
)
from kubewatch.errors import ConfigError


@dataclass
class _Located:
    """Where a pydantic location lands in the document and in the model."""

    parts: list[PathPart] = field(default_factory=list)
    tp: Any = None
    parent: type[BaseModel] | None = None
    via_tag: str | None = None
    collection: str | None = None
    """The last model field name passed (``sinks``), to name a union's members."""
    is_key: bool = False


def _locate(loc: tuple[int | str, ...], root: type[BaseModel] = Config) -> _Located:
    """Walk a pydantic loc through the model, dropping discriminator tags on the way."""
    at = _Located(tp=root)
    for i, elem in enumerate(loc):
        tp, disc = unwrap(at.tp)
        if disc is not None and i < len(loc) - 1:
            members = union_members(tp, disc)
            if isinstance(elem, str) and elem in members:
                at.tp, at.via_tag = members[elem], elem
                continue
        if elem == "[key]":
            at.is_key = True
            at.tp = str
            continue
        origin = typing.get_origin(tp)
        if origin in (tuple, list) and isinstance(elem, int):
            at.parts.append(elem)
            at.tp = typing.get_args(tp)[0]
            continue
        at.parts.append(str(elem))  # a key, even if YAML made it a number
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            f = find_field(tp, elem)
            at.parent = tp
            if f is None:
                at.tp = None
            else:
                at.tp = Annotated[f.annotation, f] if f.discriminator else f.annotation
                at.collection = f.alias or str(elem)
                at.via_tag = None
        elif origin is dict:
            at.tp = typing.get_args(tp)[1]
        else:
            at.tp = None
    return at


# --------------------------------------------------------------------------- pydantic errors


def _shown(value: object, raw: str | None) -> str:
    """The value for a message: the unexpanded text when it came from the environment."""
    if raw is not None:
        return f"{raw!r} (expanded)"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


_TYPE_ERRORS = frozenset(
    {
        "string_type",
        "int_type",
        "int_parsing",
        "int_from_float",
        "float_type",
        "float_parsing",
        "bool_type",
        "bool_parsing",
        "dict_type",
        "model_type",
        "model_attributes_type",
        "tuple_type",
        "list_type",
        "invalid_key",
        "string_unicode",
    }
)


def _message(err: ErrorDetails, at: _Located, raw: Mapping[str, str]) -> tuple[str, str]:
    """Turn one pydantic error into (path, message) in the words of the YAML author.

    ``raw`` maps key paths whose value came from the environment to their unexpanded
    text, which is what messages show instead of the value.
    """
    kind = err["type"]
    value = err.get("input")
    ctx: dict[str, Any] = dict(err.get("ctx") or {})
    path = format_path(at.parts)
    here = raw.get(path)
    tp, disc = unwrap(at.tp) if at.tp is not None else (None, None)
    root_list = not at.is_key and len(at.parts) == 1 and at.parts[0] in ("resources", "sinks")
    at_least_one = (
        f"at least one {str(at.parts[0]).removesuffix('s')} is required" if root_list else ""
    )

    if kind == ERROR_TYPE:
        msg = err["msg"]
        shown = ctx.get("value")
        if here is not None and isinstance(shown, str):
            msg = msg.replace(shown, _shown(None, here))
        return path, msg
    if kind in ("union_tag_invalid", "union_tag_not_found") and disc is not None:
        label = (at.collection or "").removesuffix("s") or "item"
        tags = list(union_members(tp, disc))
        known = f"known {label} types: {', '.join(tags)}"
        where = format_path([*at.parts, disc])
        if kind == "union_tag_not_found":
            return where, f"{disc!r} is required; {known}"
        tag = value.get(disc) if isinstance(value, dict) else None
        if isinstance(tag, str):
            close = difflib.get_close_matches(tag, tags, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close and where not in raw else ""
            return where, f"unknown {label} type {_shown(tag, raw.get(where))}; {known}{hint}"
        return where, f"expected a string, got {kind_of(tag)}; {known}"
    if kind == "extra_forbidden":
        key = str(at.parts[-1]) if at.parts else ""
        allowed = aliases(at.parent) if at.parent is not None else []
        close = difflib.get_close_matches(key, allowed, n=1)
        label = (at.collection or "").removesuffix("s") or "item"
        scope = f" for a {at.via_tag} {label}" if at.via_tag else ""
        if close:
            return path, f"unknown key {key!r}{scope} (did you mean {close[0]!r}?)"
        return path, f"unknown key {key!r}{scope}; valid keys: {', '.join(allowed)}"
    if kind == "missing":
        return path, at_least_one or "missing required key"
    if kind == "literal_error":
        choices = describe_type(tp) or "one of " + str(ctx.get("expected", ""))
        return path, f"expected {choices}, got {_shown(value, here)}"
    if kind in _TYPE_ERRORS:
        if at.is_key or kind == "invalid_key":
            return path, f"keys must be strings, got {kind_of(value)} (put it in quotes)"
        if value is None and at_least_one:
            return path, at_least_one
        expected = describe_type(at.tp)
        if disc is not None and isinstance(value, str) and here is None:
            # `audit: webhook` where `audit: {type: webhook, ...}` was meant
            expected = f"a mapping like {{{disc}: {value}, ...}}"
        got = kind_of(value)
        if isinstance(value, str) and tp in (int, float, bool):
            got = f"{got} {_shown(value, here)}"
        if expected is None:
            return path, f"{_clean(err['msg'])}, got {got}"
        hint = ""
        if tp is str and isinstance(value, bool | int | float | date):
            hint = " (put it in quotes to make it a string)"
        return path, f"expected {expected}, got {got}{hint}"
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        return path, f"{_clean(err['msg'])}, got {_shown(value, here)}"
    if kind == "finite_number":
        return path, "must be a finite number"
    return path, _clean(err["msg"])


def _clean(msg: str) -> str:
    """pydantic's wording, adapted: 'Input should be x' → 'must be x'."""
    for prefix in ("Value error, ", "Assertion failed, "):
        msg = msg.removeprefix(prefix)
    return msg.replace("Input should be", "must be")


def convert(
    exc: ValidationError, exp: Expansion, root: type[BaseModel] = Config
) -> list[ConfigError]:
    """Every pydantic error as a ConfigError, minus those a failed expansion already explains."""
    out: list[ConfigError] = []
    for err in exc.errors(include_url=False):
        path, message = _message(err, _locate(tuple(err["loc"]), root), exp.raw)
        if any(path == b or path.startswith((f"{b}.", f"{b}[")) for b in exp.broken):
            continue
        out.append(ConfigError(path, message))
    return out


def validation_errors(exc: ValidationError, root: type[BaseModel] = Config) -> list[ConfigError]:
    """The errors of a document that was validated as it is (no ``${VAR}``) against ``root``,
    in the same words and key paths as the config file's: custom resources share them."""
    return convert(exc, Expansion(), root)
