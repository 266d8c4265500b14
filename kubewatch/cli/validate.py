"""``kubewatch validate``: the file, and if a cluster is reachable, each resource's
list and watch permission."""

from __future__ import annotations

import argparse
import sys

from kubewatch.app import App
from kubewatch.cli.common import EXIT_CONFIG, EXIT_FAILURE, EXIT_OK, load_checked
from kubewatch.config import Config, format_errors
from kubewatch.errors import (
    ApiError,
    ConfigErrors,
)
from kubewatch.kube.access import may
from kubewatch.kube.client import ClusterClient, Query
from kubewatch.kube.discovery import ResourceType
from kubewatch.kube.failures import ApiUnreachable
from kubewatch.kube.kubeconfig import ClusterConfigError, KubeconfigInvalid
from kubewatch.watch.pipeline import needs_namespace_labels
from kubewatch.watch.plan import describe_scope

# -- validate ------------------------------------------------------------------------------


def validate(args: argparse.Namespace) -> int:
    """Exit 0 only when every check passed: the file, and (unless ``--offline``) the
    cluster. A cluster that could not be checked is a failure (1), never a pass."""
    config = load_checked(args.config)
    if config is None:
        return EXIT_CONFIG
    if args.offline:
        print(f"{args.config}: configuration is valid (offline: the cluster was not checked)")
        return EXIT_OK
    try:
        client = ClusterClient.connect(args.kubeconfig, args.context)
    except KubeconfigInvalid as e:
        print(f"kubewatch: {e}", file=sys.stderr)
        return EXIT_CONFIG
    except ClusterConfigError as e:
        print(
            f"kubewatch: no cluster to check against ({e}); use --offline to check the file only",
            file=sys.stderr,
        )
        return EXIT_FAILURE
    try:
        return _validate_against(config, client, args)
    finally:
        client.close()


def _validate_against(config: Config, client: ClusterClient, args: argparse.Namespace) -> int:
    try:
        plan = App.plan(config, client)
    except ConfigErrors as e:
        print(format_errors(e, args.config), file=sys.stderr)
        return EXIT_CONFIG
    except (ApiError, ApiUnreachable) as e:
        print(
            f"kubewatch: cluster {client.host} could not be checked ({e}); "
            "use --offline to check the file only",
            file=sys.stderr,
        )
        return EXIT_FAILURE
    failures = 0
    for index, rc in plan.pending:
        print(f"resources[{index}]: {rc.kind} is not installed yet; it will be watched once it is")
    for watch in plan.watches:
        for namespace in watch.namespaces:
            failures += _check_watch(
                client,
                f"resources[{watch.index}]",
                scope=describe_scope(watch, namespace),
                resource=watch.resource,
                namespace=namespace,
                query=Query(watch.config.label_selector, watch.field_selector),
            )
    if plan.namespaces is not None and any(
        needs_namespace_labels(config, w.config) for w in plan.watches
    ):
        failures += _check_watch(
            client,
            "namespaceSelector",
            scope="namespaces",
            resource=plan.namespaces,
            namespace=None,
            query=Query(),
        )
    if failures:
        print(f"{args.config}: {failures} check(s) failed", file=sys.stderr)
        return EXIT_FAILURE
    print(f"{args.config}: configuration is valid (checked against {client.host})")
    return EXIT_OK


def _check_watch(
    client: ClusterClient,
    where: str,
    *,
    scope: str,
    resource: ResourceType,
    namespace: str | None,
    query: Query,
) -> int:
    """List one page of a watch's collection and ask whether it may be watched; print the
    verdict; 1 when it cannot be watched (a watch needs both verbs), else 0."""
    try:
        client.list_page(resource.path(namespace), query, limit=1)
    except (ApiError, ApiUnreachable) as e:
        print(f"{where}: cannot list {scope}: {e}", file=sys.stderr)
        return 1
    try:
        denied = may(client, "watch", resource, namespace)
    except (ApiError, ApiUnreachable) as e:
        print(
            f"{where}: {scope}: listable; watch permission could not be checked ({e})",
            file=sys.stderr,
        )
        return 1
    if denied is not None:
        print(f"{where}: cannot watch {scope}: {denied}", file=sys.stderr)
        return 1
    print(f"{where}: {scope}: listable and watchable")
    return 0
