"""What every command shares: exit codes, the default config path, loading a config with
its credentials registered for redaction."""

from __future__ import annotations

import logging
import sys
from typing import TypeVar

from kubewatch.app import check_config
from kubewatch.config import Config, format_errors, load_config
from kubewatch.errors import ConfigErrors
from kubewatch.observability.logs import register_secret

log = logging.getLogger("kubewatch")

T = TypeVar("T")

EXIT_OK, EXIT_FAILURE, EXIT_CONFIG, EXIT_LOST = 0, 1, 2, 3
"""EXIT_LOST: stopped with events neither delivered nor kept (no durable state)."""
DEFAULT_CONFIG = "config.yaml"

SECRET_KEYS = ("token", "password", "secret", "url")
"""Sink keys whose values are credentials (webhook URLs embed tokens): never logged."""


def register_config_secrets(config: Config) -> None:
    """Tell the log redactor every credential in the config: a last line of defence."""
    for sink in config.sinks.values():
        for key in SECRET_KEYS:
            value = getattr(sink, key, None)
            if isinstance(value, str):
                register_secret(value)
        for value in (getattr(sink, "headers", None) or {}).values():
            register_secret(value)


def load_checked(path: str) -> Config | None:
    """The config, checked as far as possible without a cluster (templates, routes)."""
    try:
        config = load_config(path)
        register_config_secrets(config)
        check_config(config)
    except ConfigErrors as e:
        print(format_errors(e, path), file=sys.stderr)
        return None
    return config
