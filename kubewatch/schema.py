"""The JSON Schema of the configuration file, generated from the model that validates it.

Why generated: a hand-written schema drifts from ``config.py`` the day a key is added. This
one is ``Config.model_json_schema(by_alias=True)`` plus what the model accepts through its
before-validators, which pydantic cannot see:

- a **duration** (``maxAge``, ``repeatWindow``, ...) is a number of seconds or a string
  such as ``"30s"``, ``"1h30m"`` or ``"2.5"``;
- a number, integer, boolean or choice may be given as text containing ``${VAR}``, since
  the variable is expanded before validation (``workers: "${WORKERS}"``);
- ``rateLimit: 2`` means ``{perSecond: 2}``, and ``rateLimit``/``digest`` take ``off`` or
  ``false`` to turn a default off.

Every property carries the attribute docstring of its field as ``description`` (what an
editor shows on hover, and what the generated reference in ``docs/configuration.md``
prints). The schema accepts what a file may *say*; checks that need more than the shape of
the document (patterns compile, files exist, templates parse, the cluster knows a kind)
stay with ``kubewatch validate``. It never rejects a file that ``parse_config`` accepts;
the unit tests hold it to that for every valid configuration they load.
"""

from __future__ import annotations

import ast
import copy
import inspect
import itertools
import textwrap
from functools import cache
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue
from pydantic_core import core_schema

import kubewatch.config as _config
from kubewatch.config import fields as _fields
from kubewatch.config import sinks as _sinks

__all__ = ["ConfigSchemaGenerator", "attribute_docstrings", "config_schema"]

DRAFT = "https://json-schema.org/draft/2020-12/schema"

ENV_TEXT: dict[str, Any] = {
    "type": "string",
    "pattern": r"\$\{[A-Za-z_][A-Za-z0-9_]*\}",
    "description": "Text with ${VAR}: expanded from the environment before validation.",
}
"""A value of any type may come from the environment; it is text until expanded."""

DURATION_TEXT: dict[str, Any] = {
    "type": "string",
    "pattern": (
        r"^\s*(?:[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?"
        r"|(?:\d+(?:\.\d+)?(?:ms|s|m|h|d))+)\s*$"
    ),
    "description": "Seconds, or numbers with units ms, s, m, h, d: '30s', '10m', '1h30m'.",
}
"""What ``config._duration`` parses: a number as text, or Go-style parts without spaces."""

OFF: dict[str, Any] = {
    "anyOf": [
        {"const": False},
        {"type": "string", "pattern": r"^\s*(?:[Oo][Ff][Ff]|[Ff][Aa][Ll][Ss][Ee])\s*$"},
    ],
    "description": "off: none.",
}
"""``off``/``false`` (any case) turn a chat sink's default rate limit or digest off."""

_RENAME = {"gt": "exclusiveMinimum", "ge": "minimum", "lt": "exclusiveMaximum", "le": "maximum"}
"""pydantic leaves constraints it cannot place (inside a before-validator) under their
Python names; JSON Schema spells them differently."""


class ConfigSchemaGenerator(GenerateJsonSchema):
    """Widens the schemas of the config's before-validators to what they accept."""

    def function_before_schema(
        self, schema: core_schema.BeforeValidatorFunctionSchema
    ) -> JsonSchemaValue:
        inner = super().function_before_schema(schema)
        fn = schema["function"]["function"]
        name = getattr(fn, "__qualname__", "")
        if fn is _fields.parse_duration:
            return {"anyOf": [inner, *copy.deepcopy([DURATION_TEXT, ENV_TEXT])]}
        if name.startswith("strict."):
            return {"anyOf": [inner, copy.deepcopy(ENV_TEXT)]}
        if fn is _sinks.rate_or_off:
            number = {"type": "number", "exclusiveMinimum": 0}
            return {"anyOf": [inner, number, copy.deepcopy(OFF)]}
        if fn is _sinks.digest_or_off:
            return {"anyOf": [inner, copy.deepcopy(OFF)]}
        return inner


def attribute_docstrings(model: type[BaseModel]) -> dict[str, str]:
    """Attribute docstrings (a string right under a field) of ``model`` and its bases."""
    found: dict[str, str] = {}
    for cls in reversed(model.__mro__):
        if not (isinstance(cls, type) and issubclass(cls, BaseModel)) or cls is BaseModel:
            continue
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
        except (OSError, TypeError):
            continue
        body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
        for prev, node in itertools.pairwise(body):
            if (
                isinstance(prev, ast.AnnAssign)
                and isinstance(prev.target, ast.Name)
                and isinstance(node, ast.Expr)
                and isinstance(node.value, ast.Constant)
                and isinstance(node.value.value, str)
            ):
                found[prev.target.id] = inspect.cleandoc(node.value.value)
    return found


def _describe(schema: dict[str, Any], model: type[BaseModel]) -> None:
    """Put each field's docstring on its property, and drop pydantic's generated titles."""
    docs = attribute_docstrings(model)
    props: dict[str, Any] = schema.get("properties", {})
    for name, field in model.model_fields.items():
        alias = field.alias or name
        prop = props.get(alias)
        if prop is None:
            continue
        prop.pop("title", None)
        if name in docs and "description" not in prop:
            prop["description"] = docs[name]
    if model.__doc__ and "description" in schema:
        schema["description"] = inspect.cleandoc(model.__doc__)


def _rename(node: Any) -> None:
    """Rewrite ``gt``/``ge``/``lt``/``le`` into their JSON Schema keywords, in place."""
    if isinstance(node, dict):
        bounds = {_RENAME[k]: node.pop(k) for k in list(node) if k in _RENAME}
        numbers = [node] if node.get("type") in ("number", "integer") else []
        numbers += [
            b
            for b in node.get("anyOf", [])
            if isinstance(b, dict) and b.get("type") in ("number", "integer")
        ]
        for target in numbers:
            target.update(bounds)
        for value in node.values():
            _rename(value)
    elif isinstance(node, list):
        for value in node:
            _rename(value)


def _env_choices(node: Any) -> Any:
    """A choice (``enum``) may also come from ``${VAR}``; the sink ``type`` tag may not,
    since it selects the keys allowed."""
    if isinstance(node, dict):
        out = {k: _env_choices(v) for k, v in node.items()}
        if "enum" in out and "anyOf" not in out:
            choice = {k: out.pop(k) for k in ("enum", "type") if k in out}
            out["anyOf"] = [choice, copy.deepcopy(ENV_TEXT)]
        return out
    if isinstance(node, list):
        return [_env_choices(v) for v in node]
    return node


@cache
def _build() -> dict[str, Any]:
    schema = _config.Config.model_json_schema(by_alias=True, schema_generator=ConfigSchemaGenerator)
    for name, sub in schema.get("$defs", {}).items():
        model = getattr(_config, name, None)
        if isinstance(model, type) and issubclass(model, BaseModel):
            _describe(sub, model)
    _describe(schema, _config.Config)
    _rename(schema)
    schema = _env_choices(schema)
    return {
        "$schema": DRAFT,
        "$id": "urn:kubewatch:config",
        "title": "kubewatch configuration",
        "description": "The configuration file of kubewatch (kubewatch run --config FILE).",
        **{k: v for k, v in schema.items() if k not in ("title", "description")},
    }


def config_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of the configuration file, as a new dict each call.

    ``kubewatch config schema`` prints it; editors use it through a first line
    ``# yaml-language-server: $schema=./kubewatch.schema.json``.
    """
    return copy.deepcopy(_build())
