"""Sinks as a custom resource declares them: the config file's sink models, with every
credential also accepted from a Secret.

Each tenant sink model is *derived* from its config model (:data:`SINK_TYPES` order): the
same keys, types and descriptions, plus ``<key>From: {secretKeyRef: {name, key}}`` beside
each credential (``url``, ``token``, ``password``, ``secret``) and ``headersFrom`` for
header values. Validation is the config model's own: a before-validator fills each
``*From`` with a placeholder and validates the result with the config model, so rules and
messages cannot drift. Keys that would read kubewatch's own files (``caFile``,
``tokenFile``) are not offered: a tenant could otherwise send kubewatch's service-account
token to a receiver of its choosing.
"""

from __future__ import annotations

import copy
import re
import typing
from collections.abc import Mapping
from typing import TYPE_CHECKING, Annotated, Any, Union

from pydantic import AfterValidator, BaseModel, Field, create_model, model_validator

from kubewatch.config import SinkConfig
from kubewatch.config.fields import Model, Problems, fail, fail_at
from kubewatch.schema import attribute_docstrings

CREDENTIALS: tuple[str, ...] = ("url", "token", "password", "secret")
"""Sink keys holding credentials (a webhook URL embeds its token): each has a ``*From``."""
HEADERS_FROM = "headersFrom"
FILE_KEYS = frozenset({"ca_file", "token_file"})
"""Keys that read a file of kubewatch's Pod: never a tenant's to name."""
PLACEHOLDERS = {"url": "https://kubewatch.invalid/", "header": "placeholder"}
"""What stands in for a Secret's value while the shape is checked (the value is checked
again, for real, once the Secret has been read)."""

_SECRET_NAME = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_SECRET_KEY = re.compile(r"[-._a-zA-Z0-9]+")


def secret_name(value: str) -> str:
    """Secret names are DNS subdomains: anything else can never be found."""
    if len(value) > 253 or not _SECRET_NAME.fullmatch(value):
        raise fail(f"{value!r} is not a valid Secret name", value=repr(value))
    return value


def _secret_key(value: str) -> str:
    if len(value) > 253 or not _SECRET_KEY.fullmatch(value):
        raise fail(
            f"{value!r} is not a valid Secret key (letters, digits, '-', '_' and '.')",
            value=repr(value),
        )
    return value


class SecretKeySelector(Model):
    """One key of a Secret: in the Notifier's namespace, or kubewatch's for a ClusterSink."""

    name: Annotated[str, AfterValidator(secret_name)]
    key: Annotated[str, AfterValidator(_secret_key)]


class ValueFrom(Model):
    """Where a credential's value comes from."""

    secret_key_ref: SecretKeySelector


def source_key(key: str) -> str:
    """``url`` → ``urlFrom``: the YAML key of a credential's Secret reference."""
    return f"{key}From"


def _check_sources(config_model: type[BaseModel], data: Any) -> Any:
    """Validate ``data`` with ``config_model``, each ``*From`` replaced by a placeholder."""
    if not isinstance(data, Mapping):
        return data
    plain = {k: v for k, v in data.items() if k != HEADERS_FROM}
    errors: Problems = []
    for key in CREDENTIALS:
        src = source_key(key)
        if src not in data:
            if key not in data and _needed(config_model, key):
                errors.append(((key,), None, fail(f"set {key} or {src}")))
            continue
        del plain[src]
        if key in data:
            errors.append(((src,), None, fail(f"set one of {key} and {src}, not both")))
        else:
            plain[key] = PLACEHOLDERS.get(key, "placeholder")
    for key in data:
        if _python_name(config_model, key) in FILE_KEYS:
            message = "is not available here: it would read a file of kubewatch's own Pod"
            errors.append(((key,), None, fail(message)))
    sourced = data.get(HEADERS_FROM)
    if isinstance(sourced, Mapping):
        headers = data.get("headers")
        given = {str(k).lower() for k in headers} if isinstance(headers, Mapping) else set()
        for name in sourced:
            if str(name).lower() in given:
                message = f"header {name!r} is also in headers: set it in one of the two"
                errors.append(((HEADERS_FROM, name), None, fail(message)))
        merged = dict(headers) if isinstance(headers, Mapping) else {}
        merged.update({str(k): PLACEHOLDERS["header"] for k in sourced})
        plain["headers"] = merged
    fail_at("SinkSources", errors)
    config_model.model_validate(plain)
    return data


def _needed(model: type[BaseModel], key: str) -> bool:
    """Required by the model, or (a token) required unless its file form is given."""
    info = model.model_fields.get(key)
    return info is not None and (info.is_required() or f"{key}_file" in model.model_fields)


def _python_name(model: type[BaseModel], key: str) -> str | None:
    for name, info in model.model_fields.items():
        if key in (name, info.alias):
            return name
    return None


def _derive(config_model: type[BaseModel]) -> type[BaseModel]:
    """The tenant twin of one config sink model (see the module docstring)."""
    docs = attribute_docstrings(config_model)
    fields: dict[str, Any] = {}
    for name, info in config_model.model_fields.items():
        if name in FILE_KEYS:
            continue
        field = copy.copy(info)
        field.description = field.description or docs.get(name)
        if name in CREDENTIALS:
            field.default, field.default_factory = None, None
            fields[name] = (info.annotation | None, field)  # type: ignore[operator]
            ref = f"The value of {field.alias or name} from a Secret, instead of writing it here."
            fields[f"{name}_from"] = (ValueFrom | None, Field(None, description=ref))
        else:
            fields[name] = (info.annotation, field)
    if "headers" in fields:
        doc = "Header values from Secrets: header name to secretKeyRef."
        fields["headers_from"] = (
            dict[str, ValueFrom],
            Field(default_factory=dict, description=doc),
        )

    def check(data: Any) -> Any:
        return _check_sources(config_model, data)

    name = config_model.__name__.replace("Config", "")
    validators: dict[str, Any] = {"_sources": model_validator(mode="before")(check)}
    model: type[BaseModel] = create_model(
        f"Tenant{name}",
        __base__=Model,
        __doc__=config_model.__doc__,
        __validators__=validators,
        **fields,
    )
    model.__config_model__ = config_model  # type: ignore[attr-defined]
    return model


TENANT_SINKS: dict[str, type[BaseModel]] = {
    typing.get_args(model.model_fields["type"].annotation)[0]: _derive(model)
    for model in typing.get_args(typing.get_args(SinkConfig)[0])
}
"""Sink ``type`` → its tenant model, for every type the config file knows."""

if TYPE_CHECKING:
    TenantSink = BaseModel
else:
    TenantSink = Annotated[Union[tuple(TENANT_SINKS.values())], Field(discriminator="type")]  # noqa: UP007


def credentials(raw: Mapping[str, Any]) -> list[tuple[tuple[str, ...], Mapping[str, Any]]]:
    """Every ``*From`` of a validated sink: (key path below the sink, its secretKeyRef)."""
    out: list[tuple[tuple[str, ...], Mapping[str, Any]]] = []
    for key in CREDENTIALS:
        ref = raw.get(source_key(key))
        if isinstance(ref, Mapping):
            out.append(((source_key(key),), ref["secretKeyRef"]))
    for header, ref in (raw.get(HEADERS_FROM) or {}).items():
        out.append(((HEADERS_FROM, header), ref["secretKeyRef"]))
    return out


def fill(raw: Mapping[str, Any], values: Mapping[tuple[str, ...], str]) -> dict[str, Any]:
    """The config file's form of a validated sink: each ``*From`` replaced by its value
    (``values`` is keyed as :func:`credentials` returns them)."""
    out = {k: v for k, v in raw.items() if k != HEADERS_FROM and not _is_source(k)}
    headers = dict(raw.get("headers") or {})
    for path, value in values.items():
        if path[0] == HEADERS_FROM:
            headers[path[1]] = value
        else:
            out[path[0].removesuffix("From")] = value
    if headers:
        out["headers"] = headers
    return out


def _is_source(key: str) -> bool:
    return key.endswith("From") and key.removesuffix("From") in CREDENTIALS
