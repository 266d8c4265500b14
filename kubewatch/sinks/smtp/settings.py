"""The SMTP sink's settings, checked when it is built: templates, addresses, the TLS
context, and the forms of the password to scrub from every message."""

from __future__ import annotations

import base64
import ipaddress
import ssl
from email.headerregistry import Address
from email.message import EmailMessage

from kubewatch.config import SmtpSinkConfig, format_path
from kubewatch.errors import (
    ConfigError,
)
from kubewatch.render import (
    Template,
    compile_template,
)
from kubewatch.scrub import Scrubber, secret_forms

_MIN_SECRET_LEN = 4
"""Shorter passwords are not scrubbed from messages; replacing them would garble messages."""

_LOOPBACK_NAMES = frozenset({"localhost", "localhost.", "ip6-localhost"})


def is_loopback(host: str) -> bool:
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def compile_text(errors: list[ConfigError], name: str, key: str, source: str) -> Template | None:
    """A text template of this sink; its mistakes go to ``errors``."""
    try:
        return compile_template(
            source, markup="none", kind="text", path=format_path(("sinks", name, key))
        )
    except ConfigError as exc:
        errors.append(exc)
        return None


def parse_address(
    errors: list[ConfigError], name: str, key: tuple[str | int, ...], value: str
) -> list[Address]:
    """One address (``ops@example.com`` or ``Ops <ops@example.com>``) from ``value``."""
    path = format_path(("sinks", name, *key))
    message = EmailMessage()
    try:
        message["To"] = value
    except ValueError:  # a line break: the header would split
        errors.append(ConfigError(path, "an e-mail address must be on one line"))
        return []
    header = message["To"]
    addresses = list(header.addresses)
    if len(addresses) != 1:
        errors.append(ConfigError(path, "must be exactly one e-mail address"))
        return []
    if header.defects or not addresses[0].username or not addresses[0].domain:
        errors.append(ConfigError(path, "is not an e-mail address (like ops@example.com)"))
        return []
    return addresses


def ssl_context(
    errors: list[ConfigError], name: str, config: SmtpSinkConfig
) -> ssl.SSLContext | None:
    """The client TLS context: default verification, ``caFile``, or none."""
    if config.tls == "none":
        for key, is_set in (
            ("caFile", config.ca_file is not None),
            ("insecureSkipVerify", config.insecure_skip_verify),
        ):
            if is_set:
                errors.append(
                    ConfigError(
                        format_path(("sinks", name, key)),
                        "applies to tls: starttls or implicit, not tls: none",
                    )
                )
        return None
    if config.insecure_skip_verify:
        if config.ca_file is not None:
            errors.append(
                ConfigError(
                    format_path(("sinks", name, "insecureSkipVerify")),
                    "cannot be true together with caFile (the CA would be ignored)",
                )
            )
            return None
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    try:
        return ssl.create_default_context(cafile=config.ca_file)
    except (OSError, ssl.SSLError) as exc:
        errors.append(
            ConfigError(format_path(("sinks", name, "caFile")), f"cannot load CA bundle: {exc}")
        )
        return None


def password_scrubber(username: str | None, password: str | None) -> Scrubber:
    """The password and the forms AUTH PLAIN / LOGIN put it on the wire in."""
    if password is None or len(password) < _MIN_SECRET_LEN:
        return Scrubber(())
    found = secret_forms(password)
    found.add(base64.b64encode(f"\0{username}\0{password}".encode()).decode())
    return Scrubber(found, min_length=_MIN_SECRET_LEN)
