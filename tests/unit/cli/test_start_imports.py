"""A run imports only the sink modules it configures, no command but ``crds`` builds the
tenant models, and no command imports the kubernetes client (a connecting one neither:
tests/unit/kube/test_client_transport.py): each costs start-up time and resident memory."""

from __future__ import annotations

import subprocess
import sys

from kubewatch.config import StdoutSinkConfig
from kubewatch.sinks import StdoutSink, WebhookSink, build_sink, registered_configs


def _modules_after(code: str) -> set[str]:
    """The modules loaded by a fresh interpreter after running ``code``."""
    probe = f"{code}\nimport sys\nprint('\\n'.join(sys.modules))"
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout
    return set(out.split())


def test_the_registry_imports_no_sink_module_until_one_is_built() -> None:
    loaded = _modules_after(
        "from kubewatch.config import StdoutSinkConfig\n"
        "from kubewatch.sinks import build_sink\n"
        "build_sink('out', StdoutSinkConfig(type='stdout'))"
    )
    assert "kubewatch.sinks.stdout" in loaded
    unwanted = {
        "kubewatch.sinks.nats",
        "kubewatch.sinks.slack",
        "kubewatch.sinks.smtp",
        "kubewatch.sinks.cloudevents",
        "kubewatch.sinks.webhook",
        "nats",
        "slack_sdk",
        "aiohttp",
    }
    assert loaded & unwanted == set()


def test_the_cli_does_not_build_the_tenant_models() -> None:
    loaded = _modules_after("import kubewatch.cli")
    assert "kubewatch.tenancy.sinks" not in loaded
    assert "kubewatch.sinks.nats" not in loaded


def test_replay_and_validate_do_not_import_the_kubernetes_client() -> None:
    loaded = _modules_after(
        "import kubewatch.cli, kubewatch.cli.replay, kubewatch.cli.validate, kubewatch.replay"
    )
    assert "kubewatch.kube.client" in loaded
    assert "kubernetes" not in loaded


def test_every_registered_config_builds_its_sink_class() -> None:
    assert len(registered_configs()) >= 19
    sink = build_sink("out", StdoutSinkConfig(type="stdout"))
    assert isinstance(sink, StdoutSink)
    assert WebhookSink.__module__ == "kubewatch.sinks.webhook"


def test_a_run_with_default_texts_and_no_state_loads_neither_jinja2_sqlite3_nor_replay() -> None:
    """What ``kubewatch run`` imports for one stdout sink without ``state.path`` (its base
    RSS, ``bench/memory.py --base-only``): the templates engine (~2 MiB), sqlite3 (~1 MiB)
    and the replay reader come only with a template, a state directory or ``replay``."""
    run = (
        "import kubewatch.cli, kubewatch.cli.run, kubewatch.app.core\n"
        "from kubewatch.app.build import build_sinks, sink_services\n"
        "from kubewatch.config import parse_config\n"
        "from kubewatch.state import open_state\n"
        "config = parse_config('resources: [{kind: Pod}]\\nsinks: {c: {type: stdout}}\\n')\n"
        "build_sinks(config, sink_services(open_state(None)))"
    )
    loaded = _modules_after(run)
    assert "kubewatch.sinks.stdout" in loaded
    heavy = {"jinja2", "sqlite3", "kubewatch.state.db", "kubewatch.replay", "kubewatch.cli.replay"}
    assert loaded & heavy == set()
    templated = _modules_after(
        run.replace("{type: stdout}", '{type: stdout, format: text, template: \\"{{ name }}\\"}')
    )
    assert "jinja2" in templated
