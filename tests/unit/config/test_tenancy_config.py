"""The ``tenancy`` section: defaults that keep tenants in their lane, mistakes at key paths."""

from __future__ import annotations

import pytest

from kubewatch.config import DEFAULT_ALLOWED_KINDS, parse_config
from kubewatch.errors import ConfigErrors

BASE = "resources: [{kind: Pod}]\nsinks: {out: {type: stdout}}\n"


def test_defaults_are_off_and_strict() -> None:
    tenancy = parse_config(BASE, {}).tenancy
    assert tenancy.enabled is False
    assert tenancy.allowed_kinds == DEFAULT_ALLOWED_KINDS
    assert "Secret" not in tenancy.allowed_kinds
    assert tenancy.denied_kinds == ("Secret",)
    assert tenancy.allow_private_addresses is False
    assert tenancy.max_notifiers_per_namespace == 20
    assert tenancy.namespace is None


def test_every_key_is_read() -> None:
    text = BASE + (
        "tenancy:\n  enabled: true\n  allowedKinds: [Pod, widgets.example.com]\n"
        "  deniedKinds: [Secret, Node]\n  allowPrivateAddresses: true\n"
        "  maxNotifiersPerNamespace: 3\n  namespace: kubewatch\n"
    )
    tenancy = parse_config(text, {}).tenancy
    assert tenancy.enabled and tenancy.allow_private_addresses
    assert tenancy.allowed_kinds == ("Pod", "widgets.example.com")
    assert tenancy.denied_kinds == ("Secret", "Node")
    assert tenancy.max_notifiers_per_namespace == 3
    assert tenancy.namespace == "kubewatch"


@pytest.mark.parametrize(
    ("section", "path", "fragment"),
    [
        ("enabled: 'yes'", "tenancy.enabled", "expected true or false"),
        ("allowedKinds: [Pod, Pod]", "tenancy.allowedKinds[1]", "listed twice"),
        ("allowedKinds: [Pod, '']", "tenancy.allowedKinds[1]", "must not be empty"),
        ("allowedKinds: [Pod, Secret]", "tenancy.allowedKinds[1]", "also in deniedKinds"),
        ("deniedKinds: [secret, Secret]", "tenancy.deniedKinds[1]", "listed twice"),
        ("maxNotifiersPerNamespace: 0", "tenancy.maxNotifiersPerNamespace", "greater than"),
        ("namespace: Kube_Watch", "tenancy.namespace", "not a valid namespace name"),
        ("allowPrivate: true", "tenancy.allowPrivate", "did you mean 'allowPrivateAddresses'"),
    ],
)
def test_mistakes_name_their_key_path(section: str, path: str, fragment: str) -> None:
    with pytest.raises(ConfigErrors) as info:
        parse_config(BASE + f"tenancy:\n  {section}\n", {})
    [error] = info.value.errors
    assert error.path == path
    assert fragment in error.message


def test_own_namespace_prefers_the_pods() -> None:
    tenancy = parse_config(BASE + "tenancy: {namespace: ops}\n", {}).tenancy
    assert tenancy.own_namespace({"POD_NAMESPACE": "monitoring"}) == "monitoring"
    assert tenancy.own_namespace({}) == "ops"
    assert parse_config(BASE, {}).tenancy.own_namespace({}) == "default"
