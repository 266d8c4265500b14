"""Which hosts a tenant sink may name: public ones only, however they are spelled."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kubewatch.tenancy.addresses import address_problem, host_problem

PRIVATE_NETS = ["127.0.0.0/8", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16",
                "169.254.0.0/16", "100.64.0.0/10", "0.0.0.0/32", "fc00::/7", "fe80::/10",
                "::1/128", "::/128"]  # fmt: skip


def no_dns(host: str) -> list[str]:
    raise OSError(host)


@given(st.sampled_from(PRIVATE_NETS), st.integers(min_value=0))
def test_every_address_of_a_forbidden_range_is_refused(net: str, offset: int) -> None:
    network = ipaddress.ip_network(net)
    ip = network[offset % network.num_addresses]
    assert address_problem(str(ip)) is not None
    shown = f"[{ip}]" if ip.version == 6 else str(ip)
    assert host_problem(shown, no_dns) is not None
    if ip.version == 4:
        assert host_problem(f"::ffff:{ip}", no_dns) is not None


@pytest.mark.parametrize("ip", ["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111"])
def test_public_addresses_pass(ip: str) -> None:
    assert address_problem(ip) is None
    assert host_problem(ip, no_dns) is None


@pytest.mark.parametrize(
    ("host", "fragment"),
    [
        ("localhost", "single-label"),
        ("LOCALHOST.", "single-label"),
        ("kubernetes.default.svc", "cluster-internal"),
        ("api.team-b.svc.cluster.local.", "cluster-internal"),
        ("printer.local", "cluster-internal"),
        ("metadata.google.internal", "cluster-internal"),
        ("", "has no host"),
    ],
)
def test_internal_names_are_refused_without_a_lookup(host: str, fragment: str) -> None:
    problem = host_problem(host, no_dns)
    assert problem is not None and fragment in problem


def test_every_address_a_name_resolves_to_must_be_public() -> None:
    answers = {"ok.example.com": ["93.184.216.34"], "mixed.example.com": ["93.184.216.34", "::1"]}
    assert host_problem("ok.example.com", answers.__getitem__) is None
    assert (
        host_problem("mixed.example.com", answers.__getitem__) == "resolves to a loopback address"
    )
    assert "cannot be resolved" in str(host_problem("gone.example.com", no_dns))
    assert host_problem("none.example.com", lambda h: []) == "resolves to no address"
