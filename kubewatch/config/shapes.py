"""What a type expects and what a value is, in words, and key paths (``sinks[0].url``):
the vocabulary of error messages, read off the models themselves."""

from __future__ import annotations

import json
import re
import types
import typing
from datetime import date
from typing import Annotated, Any, Literal, Union

from pydantic import (
    BaseModel,
)
from pydantic.fields import FieldInfo

# --------------------------------------------------------------------------- union helpers


def unwrap(tp: Any) -> tuple[Any, str | None]:
    """Strip ``Annotated`` and ``X | None``; return the core type and its discriminator."""
    disc: str | None = None
    while True:
        origin = typing.get_origin(tp)
        if origin is Annotated:
            args = typing.get_args(tp)
            for meta in args[1:]:
                if isinstance(meta, FieldInfo) and isinstance(meta.discriminator, str):
                    disc = meta.discriminator
            tp = args[0]
        elif origin in (Union, types.UnionType):
            members = [a for a in typing.get_args(tp) if a is not type(None)]
            if len(members) == 1:
                tp = members[0]
            else:
                return tp, disc
        else:
            return tp, disc


def union_members(tp: Any, disc: str) -> dict[str, type[BaseModel]]:
    """Map each tag of a discriminated union to its model, in declaration order."""
    out: dict[str, type[BaseModel]] = {}
    for member in typing.get_args(tp):
        if isinstance(member, type) and issubclass(member, BaseModel):
            for tag in typing.get_args(member.model_fields[disc].annotation):
                out[str(tag)] = member
    return out


def aliases(model: type[BaseModel]) -> list[str]:
    """The YAML spelling of each field, for messages and suggestions."""
    return [f.alias or name for name, f in model.model_fields.items()]


def find_field(model: type[BaseModel], key: object) -> FieldInfo | None:
    """Find a field by its YAML alias or, as pydantic accepts it too, its Python name."""
    for name, f in model.model_fields.items():
        if key in (f.alias, name):
            return f
    return None


# --------------------------------------------------------------------------- describing types


def describe_type(tp: Any, plural: bool = False) -> str | None:
    """Say in words what a type expects: ``a list of strings``; None when we cannot."""
    tp, disc = unwrap(tp)
    origin = typing.get_origin(tp)
    if disc is not None:
        return "mappings" if plural else f"a mapping with a {disc!r} key"
    if origin is Literal:
        values = ", ".join(repr(a) for a in typing.get_args(tp))
        return f"values from {values}" if plural else f"one of {values}"
    if origin in (tuple, list):
        inner = describe_type(typing.get_args(tp)[0], plural=True) or "values"
        return "lists" if plural else f"a list of {inner}"
    if origin is dict:
        k, v = typing.get_args(tp)
        keys = describe_type(k, plural=True) or "keys"
        pair = f"{keys} to {describe_type(v, plural=True) or 'values'}"
        return "mappings" if plural else f"a mapping of {pair}"
    simple = {
        str: ("a string", "strings"),
        int: ("an integer", "integers"),
        float: ("a number", "numbers"),
        bool: ("true or false", "booleans"),
    }
    if tp in simple:
        return simple[tp][plural]
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return "mappings" if plural else "a mapping"
    return None


def kind_of(value: object) -> str:
    """Name a YAML value's type the way a YAML author thinks of it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, date):
        return "a date"
    return type(value).__name__


# --------------------------------------------------------------------------- key paths

PathPart = str | int


def format_path(parts: tuple[PathPart, ...] | list[PathPart]) -> str:
    """``("sinks", "audit", "url")`` → ``sinks.audit.url``; odd keys are quoted."""
    out = ""
    for p in parts:
        if isinstance(p, int) and not isinstance(p, bool):
            out += f"[{p}]"
        elif isinstance(p, str) and re.fullmatch(r"[A-Za-z0-9_-]+", p):
            out += f".{p}" if out else p
        else:
            out += f"[{json.dumps(str(p), ensure_ascii=False)}]"
    return out
