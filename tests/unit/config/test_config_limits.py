"""Configuration safety: a size limit checked before parsing, numbers bounded where a
sleep, a wait or the API has a bound, and no lax coercion of booleans and numbers."""

from __future__ import annotations

from pathlib import Path

import pytest

from kubewatch.config import MAX_CONFIG_BYTES, load_config, parse_config
from kubewatch.errors import ConfigErrors

BASE = "resources: [{kind: Pod}]\nsinks: {out: {type: stdout}}\n"


def errors(text: str, env: dict[str, str] | None = None) -> dict[str, str]:
    with pytest.raises(ConfigErrors) as caught:
        parse_config(text, env=env or {})
    return {e.path: e.message for e in caught.value.errors}


def test_a_file_over_the_limit_is_refused_before_parsing(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    # Not YAML at all: a parse would fail differently; the size check comes first.
    path.write_bytes(b"{" * (MAX_CONFIG_BYTES + 1))
    with pytest.raises(ConfigErrors) as caught:
        load_config(path)
    (error,) = caught.value.errors
    assert "larger than" in error.message and "1 MiB" in error.message


def test_a_file_at_the_limit_is_parsed(tmp_path: Path) -> None:
    path = tmp_path / "ok.yaml"
    path.write_text(BASE + "#" * (MAX_CONFIG_BYTES - len(BASE) - 1) + "\n")
    assert load_config(path).sinks["out"].type == "stdout"


@pytest.mark.parametrize(
    ("section", "path"),
    [
        ("watch: {pageSize: 9223372036854775808}", "watch.pageSize"),
        ("delivery: {drainTimeout: 1.0e10}", "delivery.drainTimeout"),
        ("delivery: {drainTimeout: 1e10}", "delivery.drainTimeout"),  # YAML: text
        ("watch: {readTimeout: 1.0e10}", "watch.readTimeout"),
        ("watch: {serverTimeout: 100000000000}", "watch.serverTimeout"),
        ("watch: {discoveryInterval: 1.0e12}", "watch.discoveryInterval"),
        ("delivery: {retry: {maxBackoff: 1.0e12}}", "delivery.retry.maxBackoff"),
        ("server: {stallThreshold: 400d}", "server.stallThreshold"),
        ("leaderElection: {enabled: true, leaseDuration: 1.0e12}", "leaderElection.leaseDuration"),
    ],
)
def test_numbers_beyond_their_bound_are_refused(section: str, path: str) -> None:
    assert path in errors(BASE + section + "\n")


@pytest.mark.parametrize(
    ("sink", "key"),
    [
        ("{type: webhook, url: 'http://h/x', timeout: 1.0e10}", "timeout"),
        ("{type: slackWebhook, url: 'http://h/x', timeout: 1.0e10}", "timeout"),
        (
            "{type: webhook, url: 'http://h/x', rateLimit: {perSecond: 1.0e-300}}",
            "rateLimit.perSecond",
        ),
        (
            "{type: webhook, url: 'http://h/x', digest: {threshold: 1, window: 1.0e10}}",
            "digest.window",
        ),
    ],
)
def test_sink_waits_beyond_a_year_are_refused(sink: str, key: str) -> None:
    text = "resources: [{kind: Pod}]\nsinks: {s: " + sink + "}\n"
    assert f"sinks.s.{key}" in errors(text)


@pytest.mark.parametrize(
    ("section", "path"),
    [
        ("delivery: {workers: true}", "delivery.workers"),
        ("delivery: {queueSize: '12'}", "delivery.queueSize"),
        ("watch: {readTimeout: '90'}", "watch.readTimeout"),
        ("leaderElection: {enabled: 1}", "leaderElection.enabled"),
        ("delivery: {retry: {maxBackoff: true}}", "delivery.retry.maxBackoff"),
    ],
)
def test_no_lax_coercion(section: str, path: str) -> None:
    assert path in errors(BASE + section + "\n")


def test_sink_keys_are_strict_too() -> None:
    text = (
        "resources: [{kind: Pod}]\n"
        "sinks: {s: {type: webhook, url: 'http://h/x', concurrency: true, queueSize: '12',"
        " insecureSkipVerify: 'yes'}}\n"
    )
    found = errors(text)
    assert {"sinks.s.concurrency", "sinks.s.queueSize", "sinks.s.insecureSkipVerify"} <= set(found)
    assert "no quotes" in found["sinks.s.queueSize"]


def test_durations_and_environment_values_still_work() -> None:
    config = parse_config(
        BASE
        + "delivery: {workers: '${WORKERS}', retry: {maxBackoff: 30s}, drainTimeout: 5}\n"
        + "server: {port: '${PORT}', stallThreshold: 3m}\n",
        env={"WORKERS": "3", "PORT": "8080"},
    )
    assert config.delivery.workers == 3
    assert config.server.port == 8080
    assert config.delivery.retry.max_backoff == 30.0
    assert config.server.stall_threshold == 180.0
