"""Every configuration a unit test loads successfully must also pass the JSON Schema.

``kubewatch config schema`` promises editors that it accepts what kubewatch accepts; this
holds it to that promise for every valid document the tests parse (hundreds, the fuzz
tests' included): the raw YAML, before ``${VAR}`` expansion, as an editor sees it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import jsonschema
import pytest

from kubewatch import config as config_module
from kubewatch.config import loading as loading_module
from kubewatch.schema import config_schema

VALIDATOR = jsonschema.Draft202012Validator(config_schema())
_seen = threading.local()


def schema_errors(document: Any) -> list[str]:
    """The schema's complaints about ``document``, one line each (empty: it validates)."""
    return [
        f"{'.'.join(map(str, e.absolute_path)) or '<top>'}: {e.message}"
        for e in VALIDATOR.iter_errors(document)
    ]


@pytest.fixture(autouse=True)
def _valid_configs_pass_the_schema(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    read_yaml = loading_module._read_yaml
    validate = config_module.Config.model_validate

    def reading(text: str, source: str) -> Any:
        doc = read_yaml(text, source)
        _seen.data = doc.data
        return doc

    def validating(obj: Any, *args: Any, **kwargs: Any) -> Any:
        raw, _seen.data = getattr(_seen, "data", None), None
        result = validate(obj, *args, **kwargs)
        if raw is not None:
            errors = schema_errors(raw)
            assert not errors, f"kubewatch accepts it, the JSON Schema does not: {errors}"
        return result

    monkeypatch.setattr(loading_module, "_read_yaml", reading)
    monkeypatch.setattr(config_module.Config, "model_validate", validating)
    yield
