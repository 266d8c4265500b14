"""The command line parser and :func:`main`, which hands each command its arguments."""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Sequence

from kubewatch._version import __version__
from kubewatch.cli.common import DEFAULT_CONFIG
from kubewatch.observability.logs import setup_logging


def main(argv: Sequence[str] | None = None) -> int:
    """Each command's module is imported when it runs: ``run`` does not pay for the
    replay reader, the test-sink samples or the templates engine it does not use."""
    args = _parser().parse_args(argv)
    setup_logging(args.log_level, args.log_format)
    if args.command == "run":
        from kubewatch.cli.run import run  # noqa: PLC0415

        return run(args)
    if args.command == "validate":
        from kubewatch.cli.validate import validate  # noqa: PLC0415

        return validate(args)
    if args.command == "test-sink":
        from kubewatch.cli.test_sink import sink_test  # noqa: PLC0415

        return sink_test(args)
    if args.command == "replay":
        from kubewatch.cli.replay import replay  # noqa: PLC0415

        return replay(args)
    if args.command == "config":
        return print_schema()
    if args.command == "crds":
        return print_crds(args.dir)
    raise AssertionError(args.command)


def print_schema() -> int:
    """``kubewatch config schema``: the config file's JSON Schema, for editors."""
    from kubewatch.schema import config_schema  # noqa: PLC0415

    print(json.dumps(config_schema(), indent=2, sort_keys=True))
    return 0


def print_crds(directory: str | None) -> int:
    """``kubewatch crds``: the Notifier and ClusterSink CustomResourceDefinitions, as the
    chart's ``crds/`` holds them (``--dir``: one file per CRD there). Imported here: the
    tenant models take ~0.4 s to build, which no other command needs."""
    from kubewatch.tenancy.crds import crd_documents, render  # noqa: PLC0415

    documents = crd_documents()
    if directory is None:
        print("---\n".join(render(d) for d in documents), end="")
        return 0
    for document in documents:
        path = os.path.join(directory, f"{document['metadata']['name']}.yaml")
        with open(path, "w", encoding="utf-8") as f:
            f.write(render(document))
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kubewatch",
        description="Watch Kubernetes resources and deliver normalized change events.",
    )
    parser.add_argument("--version", action="version", version=f"kubewatch {__version__}")
    parser.add_argument(
        "--log-level",
        default=os.environ.get("KUBEWATCH_LOG_LEVEL", "info"),
        choices=["debug", "info", "warning", "error"],
        help="log verbosity on stderr (default: info)",
    )
    parser.add_argument(
        "--log-format",
        default=os.environ.get("KUBEWATCH_LOG_FORMAT", "text"),
        choices=["text", "json"],
        help="log lines on stderr: readable text, or one JSON object per line (default: text)",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--config",
            default=os.environ.get("KUBEWATCH_CONFIG", DEFAULT_CONFIG),
            metavar="FILE",
            help=f"configuration file (default: $KUBEWATCH_CONFIG or {DEFAULT_CONFIG})",
        )
        p.add_argument(
            "--kubeconfig",
            metavar="FILE",
            help="kubeconfig (default: $KUBECONFIG, ~/.kube/config, else in-cluster)",
        )
        p.add_argument("--context", metavar="NAME", help="kube context (default: current)")

    run_parser = commands.add_parser(
        "run",
        help="watch and deliver until SIGTERM/SIGINT",
        description="Watch and deliver until SIGTERM/SIGINT. SIGHUP, or a change of the "
        "configuration file, reloads it: unchanged watches keep running; an invalid new "
        "configuration is logged and the running one stays.",
    )
    common(run_parser)
    run_parser.add_argument(
        "--port",
        type=int,
        metavar="PORT",
        help="serve /metrics, /healthz and /readyz on PORT (overrides server.port)",
    )
    run_parser.add_argument(
        "--state-dir",
        metavar="DIR",
        help="keep the spool of undelivered events and the watch checkpoint in DIR "
        "(overrides state.path)",
    )
    replay_parser = commands.add_parser(
        "replay",
        help="run recorded watch events (kubectl --watch --output-watch-events -o json) "
        "through the filters, routes and sinks",
    )
    replay_parser.add_argument("file", metavar="FILE", help="the capture, or - for stdin")
    common(replay_parser)
    replay_parser.add_argument(
        "--dry-run",
        action="store_true",
        help="print what each sink would receive instead of sending it",
    )
    validate_parser = commands.add_parser(
        "validate", help="check the configuration and, if a cluster is reachable, the resources"
    )
    common(validate_parser)
    validate_parser.add_argument(
        "--offline", action="store_true", help="check the file only; do not contact a cluster"
    )
    test_sink_parser = commands.add_parser(
        "test-sink",
        help="send one sample event to one sink, once, and say what happened",
        description="Build only the sink NAME from the configuration and send it one sample "
        "create event, once, without retries. No cluster is contacted. Exit 0 when the "
        "receiver accepted it, 1 when it did not (the error says whether it would have been "
        "retried), 2 for a configuration mistake or an unknown sink.",
    )
    test_sink_parser.add_argument("sink", metavar="NAME", help="a key under 'sinks:'")
    common(test_sink_parser)
    config_parser = commands.add_parser("config", help="about the configuration file")
    config_commands = config_parser.add_subparsers(dest="what", required=True, metavar="WHAT")
    config_commands.add_parser(
        "schema",
        help="print the JSON Schema of the configuration file (for yaml-language-server)",
    )
    crds_parser = commands.add_parser(
        "crds",
        help="print the Notifier and ClusterSink CustomResourceDefinitions (kubectl apply -f -)",
    )
    crds_parser.add_argument(
        "--dir", metavar="DIR", help="write one file per CRD into DIR instead (the chart's crds/)"
    )
    return parser
