"""Where a tenant's sink may point: not into the cluster, not at kubewatch's own Pod.

A team that may choose a webhook URL could otherwise make kubewatch (inside the cluster,
with its network position) call the API server, a cloud metadata endpoint
(169.254.169.254), a Service of another team, or ``localhost`` — and read the answer back
in its Notifier's ``lastError``. So unless ``tenancy.allowPrivateAddresses`` is true, a
tenant sink's host must be a name or address that is globally routable: not loopback,
link-local, private (RFC 1918, ``fc00::/7``), shared (``100.64.0.0/10``), unspecified,
multicast or reserved, and not a cluster-internal name (``*.svc``, ``*.cluster.local``,
single-label names, which the cluster's DNS search path would complete). Names are
resolved (the resolver is injected; :func:`system_resolver` by default) and every address
must pass. ClusterSinks are the admin's and are not checked.

Limit: the check holds at reconcile time. A name whose DNS answer changes later (DNS
rebinding) is only caught at the next reconcile.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable

__all__ = ["Resolver", "address_problem", "host_problem", "system_resolver"]

Resolver = Callable[[str], Iterable[str]]
"""Host name → its addresses (text); raises OSError when it cannot be resolved."""

_SHARED = ipaddress.ip_network("100.64.0.0/10")
_INTERNAL_SUFFIXES = (".svc", ".cluster.local", ".local", ".internal", ".localhost")
"""Cluster DNS (``svc``, ``cluster.local``), mDNS, cloud-internal and loopback names."""


def system_resolver(host: str) -> list[str]:
    """The host's addresses as this machine resolves them (A and AAAA)."""
    return sorted({str(info[4][0]) for info in socket.getaddrinfo(host, None)})


def address_problem(text: str) -> str | None:
    """What kind of non-public address ``text`` is, or None for a public one."""
    ip = ipaddress.ip_address(text)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped  # ::ffff:127.0.0.1 is 127.0.0.1
    checks = (
        (ip.is_unspecified, "an unspecified"),
        (ip.is_loopback, "a loopback"),
        (ip.is_link_local, "a link-local"),
        (ip.version == 4 and ip in _SHARED, "a shared (100.64.0.0/10)"),
        (ip.is_private, "a private"),
        (ip.is_multicast, "a multicast"),
        (ip.is_reserved, "a reserved"),
        (not ip.is_global, "a non-public"),
    )
    for hit, kind in checks:
        if hit:
            return f"{kind} address"
    return None


def host_problem(host: str, resolve: Resolver = system_resolver) -> str | None:
    """Why a tenant sink may not send to ``host``, or None when it may.

    The answer names the kind of address, never the host: a URL from a Secret may be
    someone's credential, and the answer ends up in the Notifier's status.
    """
    name = host.strip().strip("[]").rstrip(".").lower()
    if not name:
        return "has no host"
    try:
        problem = address_problem(name)
    except ValueError:
        pass
    else:
        return None if problem is None else f"is {problem}"
    if "." not in name:
        return "is a single-label name (cluster-internal)"
    if name.endswith(_INTERNAL_SUFFIXES):
        return "is a cluster-internal name"
    try:
        addresses = list(resolve(name))
    except (OSError, UnicodeError):
        return "cannot be resolved (a host must resolve to public addresses only)"
    if not addresses:
        return "resolves to no address"
    for address in addresses:
        try:
            problem = address_problem(address)
        except ValueError:
            return "resolves to something that is not an address"
        if problem is not None:
            return f"resolves to {problem}"
    return None
