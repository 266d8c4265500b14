"""kubewatch.config: loading, ${VAR} expansion, validation and error reporting."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubewatch.config import (
    ALL_EVENTS,
    SINK_TYPES,
    Config,
    ResourceConfig,
    StdoutSinkConfig,
    WebhookSinkConfig,
    format_errors,
    load_config,
    parse_config,
)
from kubewatch.errors import ConfigError, ConfigErrors

REPO = Path(__file__).resolve().parents[3]
ALL_TYPES = ", ".join(SINK_TYPES)
RES = "resources: [{kind: Pod}]\n"
OUT = "sinks: {out: {type: stdout}}\n"
SECRET = "s3cr3t-T0KEN-value"


def ca_bundle() -> str:
    """A real PEM bundle: certifi's, which httpx brings along."""
    certifi = pytest.importorskip("certifi")
    path: str = certifi.where()
    return path


def errors_of(text: str, env: dict[str, str] | None = None, **kw: Any) -> list[ConfigError]:
    with pytest.raises(ConfigErrors) as info:
        parse_config(text, env if env is not None else {}, **kw)
    errs = info.value.errors
    assert errs, "ConfigErrors without errors"
    assert all(isinstance(e, ConfigError) for e in errs)
    return errs


def webhook(extra: str = "", url: str = "https://hooks.example.com/x") -> str:
    return RES + f"sinks:\n  audit:\n    type: webhook\n    url: '{url}'\n{extra}"


# One mistake per document: (document, exact path, fragment of the message).
ONE_ERROR = [
    # unknown keys, with and without a suggestion
    pytest.param(
        "resources: [{kind: Pod, lableSelector: a=b}]\n" + OUT,
        "resources[0].lableSelector",
        "unknown key 'lableSelector' (did you mean 'labelSelector'?)",
        id="unknown-key-suggestion",
    ),
    pytest.param(
        RES + OUT + "delivery: {retries: 3}\n",
        "delivery.retries",
        "did you mean 'retry'?",
        id="unknown-key-nested",
    ),
    pytest.param(
        RES + OUT + "watch: {zzz: 1}\n",
        "watch.zzz",
        "valid keys: readTimeout, serverTimeout",
        id="unknown-key-lists-valid",
    ),
    pytest.param(
        RES + "sinks: {out: {type: stdout, url: 'http://x'}}\n",
        "sinks.out.url",
        "unknown key 'url' for a stdout sink; valid keys: queueSize, concurrency, retry, "
        "rateLimit, digest, type, format, template",
        id="unknown-key-of-sink-type",
    ),
    pytest.param(
        "resources: [{kind: Pod}]\nsinks: {out: {type: stdout}}\nclustr: x\n",
        "clustr",
        "did you mean 'cluster'?",
        id="unknown-key-top",
    ),
    # wrong types
    pytest.param(
        RES + OUT + "namespaces: {include: 5}\n",
        "namespaces.include",
        "expected a list of strings, got an integer",
        id="type-list-of-strings",
    ),
    pytest.param(
        "resources: [{kind: Pod, events: create}]\n" + OUT,
        "resources[0].events",
        "expected a list of values from 'create', 'update', 'delete', got a string",
        id="type-events-not-list",
    ),
    pytest.param(
        "resources: [{kind: 5}]\n" + OUT,
        "resources[0].kind",
        "expected a string, got an integer",
        id="type-string",
    ),
    pytest.param(
        RES + OUT + "cluster: no\n",
        "cluster",
        "got a boolean (put it in quotes to make it a string)",
        id="type-yaml-boolean",
    ),
    pytest.param(
        RES + OUT + "delivery: {retry: {attempts: many}}\n",
        "delivery.retry.attempts",
        "expected an integer, got a string 'many'",
        id="type-integer",
    ),
    pytest.param(
        RES + OUT + "watch: {serverTimeout: 1.5}\n",
        "watch.serverTimeout",
        "expected an integer, got a number",
        id="type-integer-from-float",
    ),
    pytest.param(
        RES + OUT + "delivery: [1]\n",
        "delivery",
        "expected a mapping, got a list",
        id="type-mapping",
    ),
    pytest.param(
        "resources: [[]]\n" + OUT,
        "resources[0]",
        "expected a mapping, got a list",
        id="type-resource-item",
    ),
    pytest.param(
        RES + "sinks: [out]\n",
        "sinks",
        "expected a mapping",
        id="type-sinks-list",
    ),
    pytest.param(
        RES + "sinks: {out: null}\n",
        "sinks.out",
        "expected a mapping with a 'type' key, got null",
        id="type-sink-null",
    ),
    pytest.param(
        RES + "sinks: {audit: webhook}\n",
        "sinks.audit",
        "expected a mapping like {type: webhook, ...}, got a string",
        id="type-sink-shorthand",
    ),
    pytest.param(
        RES + "sinks: {out: {type: stdout, format: xml}}\n",
        "sinks.out.format",
        "expected one of 'json', 'text', got 'xml'",
        id="literal",
    ),
    # bounds
    pytest.param(
        RES + OUT + "delivery: {retry: {attempts: 0}}\n",
        "delivery.retry.attempts",
        "must be greater than or equal to 1, got 0",
        id="bound-min",
    ),
    pytest.param(
        RES + OUT + "delivery: {workers: 65}\n",
        "delivery.workers",
        "less than or equal to 64",
        id="bound-max",
    ),
    pytest.param(
        webhook("    timeout: 0\n"),
        "sinks.audit.timeout",
        "must be greater than 0",
        id="bound-timeout",
    ),
    pytest.param(
        RES + OUT + "watch: {readTimeout: .inf}\n",
        "watch.readTimeout",
        "must be a finite number",
        id="bound-infinite",
    ),
    # sink types
    pytest.param(
        RES + "sinks: {audit: {type: slak}}\n",
        "sinks.audit.type",
        f"unknown sink type 'slak'; known sink types: {ALL_TYPES} (did you mean 'slack'?)",
        id="sink-type-unknown",
    ),
    pytest.param(
        RES + "sinks: {audit: {type: webhok, url: 'http://x'}}\n",
        "sinks.audit.type",
        f"unknown sink type 'webhok'; known sink types: {ALL_TYPES} (did you mean 'webhook'?)",
        id="sink-type-suggestion",
    ),
    pytest.param(
        RES + "sinks: {audit: {format: json}}\n",
        "sinks.audit.type",
        f"'type' is required; known sink types: {ALL_TYPES}",
        id="sink-type-missing",
    ),
    pytest.param(
        RES + "sinks: {audit: {type: [stdout]}}\n",
        "sinks.audit.type",
        "expected a string, got a list; known sink types",
        id="sink-type-not-string",
    ),
    # webhook
    pytest.param(
        RES + "sinks: {audit: {type: webhook}}\n",
        "sinks.audit.url",
        "missing required key",
        id="webhook-url-missing",
    ),
    pytest.param(
        webhook(url="ftp://files.example.com/x"),
        "sinks.audit.url",
        "must be an http:// or https:// URL",
        id="webhook-url-scheme",
    ),
    pytest.param(
        webhook(url="hooks.example.com/x"),
        "sinks.audit.url",
        "must be an http:// or https:// URL",
        id="webhook-url-no-scheme",
    ),
    pytest.param(
        webhook(url="https:///path"),
        "sinks.audit.url",
        "with a host",
        id="webhook-url-no-host",
    ),
    pytest.param(
        webhook(url="http://example.com:99999/"),
        "sinks.audit.url",
        "is not a valid URL",
        id="webhook-url-bad-port",
    ),
    pytest.param(
        webhook("    caFile: /nonexistent/kubewatch-test/ca.pem\n"),
        "sinks.audit.caFile",
        "file '/nonexistent/kubewatch-test/ca.pem' does not exist",
        id="webhook-cafile-missing",
    ),
    pytest.param(
        webhook("    headers: {'bad header': x}\n"),
        'sinks.audit.headers["bad header"]',
        "is not a valid HTTP header name",
        id="webhook-header-name",
    ),
    pytest.param(
        webhook("    headers: {Content-Length: '10'}\n"),
        "sinks.audit.headers.Content-Length",
        "is set by kubewatch from the URL and the body",
        id="webhook-header-framing",
    ),
    pytest.param(
        webhook('    headers: {X-Token: "abc\\n"}\n'),
        "sinks.audit.headers.X-Token",
        "line break",
        id="webhook-header-newline",
    ),
    pytest.param(
        webhook("    headers: {X-Token: 5}\n"),
        "sinks.audit.headers.X-Token",
        "expected a string, got an integer",
        id="webhook-header-type",
    ),
    # resources
    pytest.param(
        "resources: [{kind: Pod, events: []}]\n" + OUT,
        "resources[0].events",
        "at least one event is required",
        id="events-empty",
    ),
    pytest.param(
        "resources: [{kind: Pod, events: [create, delete, create]}]\n" + OUT,
        "resources[0].events[2]",
        "duplicate event 'create'",
        id="events-duplicate",
    ),
    pytest.param(
        "resources: [{kind: Pod, events: [create, frob]}]\n" + OUT,
        "resources[0].events[1]",
        "expected one of 'create', 'update', 'delete', got 'frob'",
        id="events-unknown",
    ),
    pytest.param(
        "resources: [{kind: ''}]\n" + OUT,
        "resources[0].kind",
        "must not be empty",
        id="kind-empty",
    ),
    pytest.param(
        "resources: [{kind: '  '}]\n" + OUT,
        "resources[0].kind",
        "must not be empty",
        id="kind-blank",
    ),
    pytest.param(
        "resources: [{apiVersion: v1}]\n" + OUT,
        "resources[0].kind",
        "missing required key",
        id="kind-missing",
    ),
    pytest.param(
        "resources: [{kind: Deployment, apiVersion: apps/v1/}]\n" + OUT,
        "resources[0].apiVersion",
        "is not an apiVersion",
        id="api-version-shape",
    ),
    pytest.param(
        "resources: [{kind: Pod, events: [create]}, {kind: Pod, events: [create]}]\n" + OUT,
        "resources[1]",
        "duplicate of resources[0]",
        id="resource-duplicate",
    ),
    pytest.param(
        "resources:\n  - {kind: Pod}\n  - {kind: Pod, labelSelector: a=b}\n"
        "  - {kind: Pod, labelSelector: a=b}\n" + OUT,
        "resources[2]",
        "duplicate of resources[1]",
        id="resource-duplicate-selector",
    ),
    pytest.param(
        "cluster: x\n" + OUT,
        "resources",
        "at least one resource is required",
        id="resources-missing",
    ),
    pytest.param(
        "resources: []\n" + OUT,
        "resources",
        "at least one resource is required",
        id="resources-empty",
    ),
    pytest.param(
        "resources:\n" + OUT, "resources", "at least one resource is required", id="resources-null"
    ),
    pytest.param(RES + "sinks: {}\n", "sinks", "at least one sink is required", id="sinks-empty"),
    pytest.param(RES, "sinks", "at least one sink is required", id="sinks-missing"),
    # names
    pytest.param(
        RES + "sinks: {'bad name': {type: stdout}}\n",
        'sinks["bad name"]',
        "invalid sink name 'bad name'",
        id="sink-name-space",
    ),
    pytest.param(
        RES + "sinks: {-out: {type: stdout}}\n",
        "sinks.-out",
        "starting with a letter or digit",
        id="sink-name-dash",
    ),
    pytest.param(
        RES + "sinks: {'': {type: stdout}}\n",
        'sinks[""]',
        "sink name must not be empty",
        id="sink-name-empty",
    ),
    pytest.param(
        RES + "sinks: {1: {type: stdout}}\n",
        "sinks.1",
        "keys must be strings, got an integer",
        id="sink-name-number",
    ),
    pytest.param(
        RES + OUT + "namespaces: {include: [default, Kube_System]}\n",
        "namespaces.include[1]",
        "'Kube_System' is not a valid namespace name",
        id="namespace-invalid",
    ),
    pytest.param(
        RES + OUT + f"namespaces: {{exclude: [{'a' * 64}]}}\n",
        "namespaces.exclude[0]",
        "at most 63 characters",
        id="namespace-too-long",
    ),
    pytest.param(
        RES + OUT + "namespaces: {include: [a, b], exclude: [c, b]}\n",
        "namespaces.exclude[1]",
        "namespace 'b' is both included and excluded",
        id="namespace-included-and-excluded",
    ),
    pytest.param(
        RES + OUT + "namespaces: {include: [a, a]}\n",
        "namespaces.include[1]",
        "listed twice",
        id="namespace-twice",
    ),
    pytest.param(RES + OUT + "cluster: ''\n", "cluster", "must not be empty", id="cluster-empty"),
    # YAML-level mistakes with a key path
    pytest.param(
        RES + OUT + "sinks: {b: {type: stdout}}\n",
        "sinks",
        "duplicate key (line 3; first at line 2)",
        id="yaml-duplicate-key",
    ),
    pytest.param(
        "resources: [{kind: Pod, kind: Service}]\n" + OUT,
        "resources[0].kind",
        "duplicate key",
        id="yaml-duplicate-nested-key",
    ),
]


@pytest.mark.parametrize(("text", "path", "fragment"), ONE_ERROR)
def test_each_mistake_is_reported_at_its_key_path(text: str, path: str, fragment: str) -> None:
    errs = errors_of(text)
    assert [e.path for e in errs] == [path], [str(e) for e in errs]
    assert fragment in errs[0].message


def test_ca_file_with_insecure_skip_verify() -> None:
    errs = errors_of(webhook(f"    caFile: '{ca_bundle()}'\n    insecureSkipVerify: true\n"))
    assert [e.path for e in errs] == ["sinks.audit.insecureSkipVerify"]
    assert "caFile" in errs[0].message


# Mistakes about the whole document: path "" and a fragment of the message.
WHOLE_DOCUMENT = [
    pytest.param("", "is empty", id="empty"),
    pytest.param("# only a comment\n", "is empty", id="comment-only"),
    pytest.param("~\n", "is empty", id="null"),
    pytest.param(
        "- kind: Pod\n", "must be a mapping of keys (resources, sinks, ...), got a list", id="list"
    ),
    pytest.param("42\n", "got an integer", id="number"),
    pytest.param("just words\n", "got a string", id="string"),
    pytest.param(
        RES + "sinks: {out: [\n", "invalid YAML in cfg.yaml, line 3, column 1", id="syntax"
    ),
    pytest.param("resources: [a\nsinks: x\n", "line 2, column 6", id="syntax-flow"),
    pytest.param(
        "a: b: c\n", "line 1, column 5: mapping values are not allowed", id="syntax-colon"
    ),
    pytest.param("\tresources: []\n", "line 1, column 1", id="tab"),
    pytest.param(RES + "---\n" + OUT, "expected a single document", id="two-documents"),
    pytest.param(
        "a: !!python/object:os.system x\n", "could not determine a constructor", id="unsafe-tag"
    ),
    pytest.param("a: *nope\n", "undefined alias", id="undefined-alias"),
    pytest.param("? [a]\n: b\n", "unhashable key", id="unhashable-key"),
    pytest.param("a: &x [*x]\n" + RES + OUT, "recursive", id="recursive-alias"),
    pytest.param(
        "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
        + "".join(
            f"{k}: &{k} [" + ", ".join([f"*{p}"] * 10) + "]\n"
            for p, k in zip("abcdef", "bcdefg", strict=True)
        ),
        "too large",
        id="alias-bomb",
    ),
    pytest.param("[" * 2000 + "]" * 2000, "nested too deeply", id="deep-nesting"),
]


@pytest.mark.parametrize(("text", "fragment"), WHOLE_DOCUMENT)
def test_document_level_mistakes_have_no_path(text: str, fragment: str) -> None:
    errs = errors_of(text, source="cfg.yaml")
    assert errs[0].path == ""
    assert fragment in errs[0].message


def test_yaml_error_names_the_source_but_does_not_quote_the_line() -> None:
    errs = errors_of(f"resources: [{{kind: Pod}}]\nsinks: {{a: [{SECRET}\n", source="my.yaml")
    assert "my.yaml" in errs[0].message
    assert SECRET not in str(ConfigErrors(errs))


@pytest.mark.parametrize("text", ["\x00resources: []\n", "\x07", "\ufffe"])
def test_characters_yaml_refuses_at_the_start_are_a_config_error(text: str) -> None:
    """PyYAML checks the first characters when the reader is made, before parsing."""
    errs = errors_of(text, source="my.yaml")
    assert len(errs) == 1 and errs[0].path == ""
    assert "my.yaml" in errs[0].message


def test_every_mistake_is_reported_in_file_order() -> None:
    text = """\
resources:
  - kind: ConfigMap
    lableSelector: app=x
  - kind: Pod
  - kind: Secret
    events: [create, modify]
sinks:
  audit:
    type: webhok
    headers: {X-Token: "${AUDIT_TOKEN}"}
delivery:
  workers: 0
"""
    errs = errors_of(text)
    assert [e.path for e in errs] == [
        "resources[0].lableSelector",
        "resources[2].events[1]",
        "sinks.audit.type",
        "sinks.audit.headers.X-Token",
        "delivery.workers",
    ]


def test_format_errors() -> None:
    err = ConfigErrors(
        [
            ConfigError("resources[2].kind", "must not be empty"),
            ConfigError("sinks.audit.url", "must be an http:// or https:// URL"),
        ]
    )
    assert format_errors(err, "config.yaml") == (
        "config.yaml: 2 errors\n"
        "  resources[2].kind: must not be empty\n"
        "  sinks.audit.url: must be an http:// or https:// URL"
    )
    one = ConfigErrors([ConfigError("", "config.yaml: file not found")])
    assert (
        format_errors(one, "config.yaml") == "config.yaml: 1 error\n  config.yaml: file not found"
    )


# --------------------------------------------------------------------------- ${VAR}


def test_env_expands_inside_strings_and_whole_values() -> None:
    text = """\
cluster: "${CLUSTER}"
resources: [{kind: Pod, labelSelector: "app=${APP},tier=web"}]
sinks:
  audit:
    type: webhook
    url: "https://${HOST}/hooks/${HOOK}"
    headers: {Authorization: "Bearer ${TOKEN}"}
delivery: {workers: "${WORKERS}", drainTimeout: "${DRAIN}"}
"""
    env = {
        "CLUSTER": "prod",
        "APP": "shop",
        "HOST": "h.example.com",
        "HOOK": "abc",
        "TOKEN": SECRET,
        "WORKERS": "8",
        "DRAIN": "2.5",
    }
    config = parse_config(text, env)
    assert config.cluster == "prod"
    assert config.resources[0].label_selector == "app=shop,tier=web"
    sink = config.sinks["audit"]
    assert isinstance(sink, WebhookSinkConfig)
    assert sink.url == "https://h.example.com/hooks/abc"
    assert sink.headers == {"Authorization": f"Bearer {SECRET}"}
    assert config.delivery.workers == 8
    assert config.delivery.drain_timeout == 2.5


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        pytest.param("$${X}", "${X}", id="escape"),
        pytest.param("a$${X}b${Y}c", "a${X}byc", id="escape-and-expand"),
        pytest.param("$$${Y}", "$${Y}", id="leftmost-escape-wins"),
        pytest.param("$X and $ and $$", "$X and $ and $$", id="no-braces-untouched"),
        pytest.param("${EMPTY}", "", id="set-but-empty"),
        pytest.param("${Y}${Y}", "yy", id="adjacent"),
        pytest.param("$${", "${", id="escape-alone"),
    ],
)
def test_env_escape_and_edge_cases(raw: str, expected: str) -> None:
    config = parse_config(
        f"cluster: 'c'\nresources: [{{kind: Pod, labelSelector: '{raw}'}}]\n" + OUT,
        {"X": "x", "Y": "y", "EMPTY": ""},
    )
    assert config.resources[0].label_selector == expected


def test_env_unset_is_an_error_at_the_key_and_the_only_one() -> None:
    text = RES + "sinks:\n  audit:\n    type: webhook\n    url: '${URL}'\n"
    text += "    headers: {X-Token: 'Bearer ${AUDIT_TOKEN}'}\n"
    errs = errors_of(text, {})
    # The unexpanded url would also be an invalid URL: that error only repeats this one.
    assert [(e.path, e.message) for e in errs] == [
        ("sinks.audit.url", "environment variable URL is not set"),
        ("sinks.audit.headers.X-Token", "environment variable AUDIT_TOKEN is not set"),
    ]


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        pytest.param("${A", "unterminated '${'", id="unterminated"),
        pytest.param("${A B}", "invalid variable name 'A B'", id="space"),
        pytest.param("${A:-x}", "invalid variable name 'A:-x'", id="no-defaults"),
        pytest.param("${1A}", "invalid variable name '1A'", id="leading-digit"),
        pytest.param("${}", "invalid variable name ''", id="empty-name"),
    ],
)
def test_env_bad_references(raw: str, fragment: str) -> None:
    errs = errors_of(f"resources: [{{kind: '{raw}'}}]\n" + OUT, {"A": "x"})
    assert [e.path for e in errs] == ["resources[0].kind"]
    assert fragment in errs[0].message


def test_env_is_not_expanded_in_keys() -> None:
    errs = errors_of(RES + "sinks: {'${NAME}': {type: stdout}}\n", {"NAME": "out"})
    assert [e.path for e in errs] == ['sinks["${NAME}"]']
    assert "invalid sink name '${NAME}'" in errs[0].message


def test_env_defaults_to_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBEWATCH_TEST_CLUSTER", "from-environ")
    assert (
        parse_config("cluster: ${KUBEWATCH_TEST_CLUSTER}\n" + RES + OUT).cluster == "from-environ"
    )
    monkeypatch.delenv("KUBEWATCH_TEST_CLUSTER")
    with pytest.raises(ConfigErrors, match="KUBEWATCH_TEST_CLUSTER is not set"):
        parse_config("cluster: ${KUBEWATCH_TEST_CLUSTER}\n" + RES + OUT)


def test_expanded_value_is_not_parsed_as_yaml() -> None:
    config = parse_config("cluster: ${V}\n" + RES + OUT, {"V": "[a, {b: c}] # not yaml"})
    assert config.cluster == "[a, {b: c}] # not yaml"


LEAKS = [
    pytest.param(webhook('    headers: {X-Token: "${V}"}\n'), f"{SECRET}\n", id="header-newline"),
    pytest.param(webhook(url="${V}"), SECRET, id="url-invalid"),
    pytest.param(webhook(url="https://h.example.com:${V}/"), SECRET, id="url-port"),
    pytest.param(RES + OUT + "delivery: {workers: '${V}'}\n", SECRET, id="integer"),
    pytest.param(RES + OUT + "watch: {readTimeout: '${V}'}\n", "-1234567.5", id="bound"),
    pytest.param(RES + "sinks: {out: {type: stdout, format: '${V}'}}\n", SECRET, id="literal"),
    pytest.param(RES + "sinks: {out: {type: '${V}'}}\n", "stdoutt-secret", id="sink-type"),
    pytest.param(RES + OUT + "namespaces: {include: ['${V}']}\n", SECRET, id="namespace"),
    pytest.param(
        RES + OUT + "namespaces: {include: ['${V}'], exclude: ['${V}']}\n",
        "secret-namespace",
        id="namespace-conflict",
    ),
    pytest.param(webhook("    caFile: '/tmp/${V}/ca.pem'\n"), SECRET, id="ca-file"),
    pytest.param("resources: [{kind: Pod, events: ['${V}']}]\n" + OUT, SECRET, id="event"),
    pytest.param("resources: [{kind: Pod, apiVersion: '${V}'}]\n" + OUT, SECRET, id="api-version"),
    pytest.param("cluster: '${V}'\nresources: [{kind: 1}]\n" + OUT, SECRET, id="other-error"),
]


@pytest.mark.parametrize(("text", "value"), LEAKS)
def test_env_value_never_appears_in_errors(text: str, value: str) -> None:
    with pytest.raises(ConfigErrors) as info:
        parse_config(text, {"V": value})
    err = info.value
    shown = "\n".join(
        [str(err), format_errors(err, "x"), repr(err.errors)]
        + [f"{e.path} {e.message} {e.args}" for e in err.errors]
    )
    assert value.strip() not in shown
    # The pydantic error (its text quotes inputs) must not ride along in tracebacks.
    assert err.__cause__ is None
    assert err.__suppress_context__


def test_env_value_is_shown_as_its_reference() -> None:
    errs = errors_of(RES + "sinks: {out: {type: stdout, format: '${FMT}'}}\n", {"FMT": "yaml"})
    assert errs[0].message == "expected one of 'json', 'text', got '${FMT}' (expanded)"


# --------------------------------------------------------------------------- files


def test_example_config_validates_without_environment() -> None:
    config = load_config(REPO / "config.example.yaml", env={})
    assert config.cluster is None
    assert config.namespaces.exclude == ("kube-system",)
    assert [r.kind for r in config.resources] == [
        "ConfigMap",
        "Deployment",
        "Secret",
        "Event",
        "Pod",
        "Node",
    ]
    assert config.resources[3].repeat_window == 600.0
    assert config.sinks == {"console": StdoutSinkConfig(type="stdout", format="text")}
    assert [m.namespaces for m in config.drop] == [("scratch-*",)]
    assert config.routes == ()
    assert config.delivery == Config.model_fields["delivery"].default
    assert config.watch == Config.model_fields["watch"].default


_COMMENTED_YAML = re.compile(r"^(\s*)# (\s*(?:- )?(?:[a-z][A-Za-z]*|X-Token):(?: .*)?)$")


def test_example_config_commented_parts_validate_too(tmp_path: Path) -> None:
    """Uncommenting the examples must give a valid file (given the variable and the CA)."""
    text = (REPO / "config.example.yaml").read_text()
    lines = [_COMMENTED_YAML.sub(r"\1\2", line) for line in text.splitlines()]
    shutil.copy(ca_bundle(), tmp_path / "ca.pem")
    env = {"AUDIT_TOKEN": "t", "TELEGRAM_BOT_TOKEN": "1:t", "MATRIX_ACCESS_TOKEN": "t"}
    hooks = ("GOOGLE_CHAT", "DINGTALK", "FEISHU", "WECOM")
    env |= {f"{name}_WEBHOOK_URL": "https://hooks.example/h?key=k" for name in hooks}
    env |= {"DINGTALK_SECRET": "SECs", "FEISHU_SECRET": "s", "MATTERMOST_TOKEN": "t"}
    env["DISCORD_FORUM_WEBHOOK_URL"] = "https://discord.example/api/webhooks/1/t"
    config = parse_config("\n".join(lines), env, base_dir=tmp_path)
    assert config.cluster == "prod-eu-1"
    assert config.resources[1].label_selector
    assert (config.resources[-1].kind, config.resources[-1].api_version) == (
        "Widget",
        "example.com/v1",
    )
    assert config.resources[-1].notify_existing
    audit = config.sinks["audit"]
    assert isinstance(audit, WebhookSinkConfig)
    assert audit.headers == {"X-Token": "t"}
    assert audit.ca_file == str(tmp_path / "ca.pem")
    chats = ("telegram", "googlechat", "matrix", "dingtalk", "feishu", "wecom")
    assert [config.sinks[n].type for n in ("telegram", "gchat", *chats[2:])] == list(chats)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigErrors) as info:
        load_config(tmp_path / "nope.yaml", env={})
    [err] = info.value.errors
    assert err.path == ""
    assert err.message == f"{tmp_path / 'nope.yaml'}: file not found"


def test_directory_instead_of_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigErrors, match="is a directory"):
        load_config(tmp_path, env={})


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_bytes(b"cluster: \xff\n")
    with pytest.raises(ConfigErrors, match="not UTF-8"):
        load_config(path, env={})


def test_byte_order_mark_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_bytes(b"\xef\xbb\xbf" + (RES + OUT).encode())
    assert load_config(path, env={}).resources[0].kind == "Pod"


def test_yaml_errors_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("resources: [\n")
    with pytest.raises(ConfigErrors) as info:
        load_config(path, env={})
    assert f"invalid YAML in {path}, line 2" in info.value.errors[0].message


def test_relative_ca_file_is_relative_to_the_config_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    conf_dir = tmp_path / "etc"
    conf_dir.mkdir()
    shutil.copy(ca_bundle(), conf_dir / "ca.pem")
    path = conf_dir / "kubewatch.yaml"
    path.write_text(webhook("    caFile: ca.pem\n"))
    monkeypatch.chdir(tmp_path)  # not where ca.pem is
    sink = load_config(path, env={}).sinks["audit"]
    assert isinstance(sink, WebhookSinkConfig)
    assert sink.ca_file == str(conf_dir / "ca.pem")
    # parse_config without base_dir: relative to the working directory
    with pytest.raises(ConfigErrors, match="does not exist"):
        parse_config(webhook("    caFile: ca.pem\n"), {})


@pytest.mark.parametrize(
    ("make", "fragment"),
    [
        pytest.param(lambda d: d, "is not a file", id="directory"),
        pytest.param(
            lambda d: _write(d / "ca.pem", "not a certificate\n"), "not a PEM", id="not-pem"
        ),
        pytest.param(lambda d: _write(d / "ca.pem", ""), "not a PEM", id="empty"),
    ],
)
def test_unusable_ca_file(tmp_path: Path, make: Any, fragment: str) -> None:
    target = make(tmp_path)
    errs = errors_of(webhook(f"    caFile: '{target}'\n"))
    assert [e.path for e in errs] == ["sinks.audit.caFile"]
    assert fragment in errs[0].message


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads every file")
def test_unreadable_ca_file(tmp_path: Path) -> None:
    path = tmp_path / "ca.pem"
    shutil.copy(ca_bundle(), path)
    path.chmod(0)
    errs = errors_of(webhook(f"    caFile: '{path}'\n"))
    assert "not readable" in errs[0].message


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


# --------------------------------------------------------------------------- defaults


def test_defaults() -> None:
    config = parse_config(
        RES + "sinks: {out: {type: stdout}, hook: {type: webhook, url: 'http://h'}}\n", {}
    )
    assert config.cluster is None
    assert config.namespaces.include == () and config.namespaces.exclude == ()
    [r] = config.resources
    assert r == ResourceConfig(kind="Pod")
    assert r.events == ALL_EVENTS
    assert (r.api_version, r.label_selector, r.field_selector, r.notify_existing) == (
        None,
        None,
        None,
        False,
    )
    assert config.sinks["out"] == StdoutSinkConfig(type="stdout", format="json")
    hook = config.sinks["hook"]
    assert isinstance(hook, WebhookSinkConfig)
    assert (hook.headers, hook.timeout, hook.ca_file, hook.insecure_skip_verify) == (
        {},
        10.0,
        None,
        False,
    )
    d, w = config.delivery, config.watch
    assert (d.queue_size, d.workers, d.drain_timeout, d.max_age) == (10_000, 4, 10.0, 3600.0)
    assert (d.retry.attempts, d.retry.max_backoff) == (None, 30.0)
    assert config.state.path is None
    assert (w.read_timeout, w.server_timeout, w.page_size, w.discovery_interval) == (
        90.0,
        60,
        200,
        30.0,
    )


def test_valid_variants_are_accepted() -> None:
    text = """\
namespaces: {include: [default, team-a], exclude: []}
resources:
  - {kind: Pod}
  - {kind: Pod, labelSelector: app=x}
  - {kind: deployments.apps, events: [update]}
  - {kind: Widget, apiVersion: example.com/v1alpha1, notifyExisting: true}
sinks:
  out.json: {type: stdout}
  hook_1: {type: webhook, url: 'HTTPS://[::1]:8443/x?token=a', headers: {X-A: ''}}
"""
    config = parse_config(text, {})
    assert len(config.resources) == 4
    assert list(config.sinks) == ["out.json", "hook_1"]


def test_sink_types_come_from_the_union() -> None:
    assert SINK_TYPES == (
        "stdout",
        "webhook",
        "slack",
        "slackWebhook",
        "teams",
        "discord",
        "mattermost",
        "cloudevents",
        "smtp",
        "googlechat",
        "telegram",
        "matrix",
        "dingtalk",
        "feishu",
        "wecom",
        "pagerduty",
        "opsgenie",
        "alertmanager",
        "nats",
    )


def test_models_still_validate_when_built_in_python() -> None:
    config = Config(
        resources=(ResourceConfig(kind="Pod"),), sinks={"a": StdoutSinkConfig(type="stdout")}
    )
    assert config.sinks["a"].type == "stdout"


def test_header_values_stay_out_of_repr() -> None:
    config = parse_config(webhook(f'    headers: {{X-Token: "{SECRET}"}}\n'), {})
    assert SECRET not in repr(config)


# --------------------------------------------------------------------------- robustness

MALFORMED = [
    "resources: 5\nsinks: 5",
    "resources: [5]\nsinks: [a]",
    "resources: [null]\nsinks: {a: [1]}",
    "resources: {kind: Pod}\n" + OUT,
    "resources: [{kind: [Pod]}]\n" + OUT,
    "resources: [{kind: {a: b}}]\n" + OUT,
    "resources: [{kind: Pod, events: null}]\n" + OUT,
    "resources: [{kind: Pod, events: [[create]]}]\n" + OUT,
    "resources: [{kind: Pod, events: {create: 1}}]\n" + OUT,
    "resources: [{kind: Pod, notifyExisting: [1]}]\n" + OUT,
    "resources: [{1: 2, null: 3, true: 4}]\n" + OUT,
    "resources: !!set {a}\n" + OUT,
    "resources: [{kind: .nan}]\n" + OUT,
    RES + "sinks: {a: {type: {x: 1}}}",
    RES + "sinks: {a: {type: 1}}",
    RES + "sinks: {a: {type: null}}",
    RES + "sinks: {a: {type: true}}",
    RES + "sinks: {a: {type: webhook, url: [1], headers: [a], timeout: x}}",
    RES + "sinks: {a: {type: webhook, url: 5, headers: {a: {b: c}}, caFile: 3}}",
    RES + "sinks: {a: {type: webhook, url: 'http://[::1', insecureSkipVerify: maybe}}",
    RES + "sinks: {null: {type: stdout}}",
    RES + "sinks: {[a]: {type: stdout}}",
    RES + OUT + "namespaces: []",
    RES + OUT + "namespaces: {include: [1, null, [x]], exclude: {a: b}}",
    RES + OUT + "namespaces: null",
    RES + OUT + "delivery: 5\nwatch: null",
    RES + OUT + "delivery: {retry: []}",
    RES + OUT + "delivery: {retry: {attempts: 99999999999999999999999999999}}",
    RES + OUT + "watch: {pageSize: -1, readTimeout: -.inf, serverTimeout: .nan}",
    RES + OUT + "cluster: [a]",
    RES + OUT + "cluster: 2024-01-01",
    RES + OUT + "cluster: !!binary aGk=\nx: y",
    RES + OUT + "=: 1",
    RES + OUT + "<<: {cluster: 5}",
    RES + OUT + "a: &a [b, *a]",
    "[]",
    "- - -",
    "!!str",
    "3.14",
    "true",
    "{}",
    "sinks:\nresources:",
    "%YAML 9.9\n---\na: 1",
    "a: 'unterminated",
    '"\\xZZ"',
]


@pytest.mark.parametrize("text", MALFORMED, ids=[f"m{i}" for i in range(len(MALFORMED))])
def test_malformed_documents_give_config_errors(text: str) -> None:
    errs = errors_of(text)
    for e in errs:
        assert isinstance(e.path, str) and isinstance(e.message, str) and e.message


VALID: dict[str, Any] = {
    "cluster": "c",
    "namespaces": {"include": ["a"], "exclude": []},
    "resources": [{"kind": "Pod", "events": ["create"], "labelSelector": "a=b"}],
    "sinks": {
        "out": {"type": "stdout", "format": "json"},
        "hook": {"type": "webhook", "url": "http://h", "headers": {"A": "b"}, "timeout": 1},
    },
    "delivery": {"queueSize": 1, "retry": {"attempts": 1}},
    "watch": {"pageSize": 1},
}
ODD_VALUES: list[Any] = [None, 0, -1, 1.5, True, "", "x", [], [1], [None], {}, {"a": 1}]


def _replace(doc: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    head, rest = path[0], path[1:]
    if isinstance(doc, dict):
        return {k: _replace(v, rest, value) if k == head else v for k, v in doc.items()}
    return [_replace(v, rest, value) if i == head else v for i, v in enumerate(doc)]


def _paths(doc: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix] if prefix else []
    if isinstance(doc, dict):
        for k, v in doc.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out += _paths(v, (*prefix, i))
    return out


def test_any_value_anywhere_gives_a_config_or_config_errors() -> None:
    """Every key of a valid document, set to each odd value: never another exception."""
    assert isinstance(parse_config(yaml.safe_dump(VALID), {}), Config)
    failures = 0
    for path in _paths(VALID):
        for value in ODD_VALUES:
            text = yaml.safe_dump(_replace(VALID, path, value))
            try:
                parse_config(text, {})
            except ConfigErrors as e:
                failures += 1
                assert all(isinstance(x.path, str) and x.message for x in e.errors)
    assert failures > 100
