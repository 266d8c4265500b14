"""Config fuzzing: whatever the document, a clear error every time, never a traceback.

Documents are built by hypothesis around the real configuration shape: valid ones (they
must parse and pass ``check_config``), and valid ones with mistakes put in (a value of the
wrong type, a huge number, unicode, an empty string, a list where a mapping belongs and
the reverse, nested garbage, unknown keys, missing keys, ``${ENV}`` references set, unset
or malformed) and then, sometimes, broken as text (a character inserted, the text cut).

For every document, :func:`kubewatch.config.parse_config` followed by
:func:`kubewatch.app.check_config` either returns or raises ``ConfigErrors`` — never
another exception — and every error has a non-empty, one-line message in the YAML
author's words, and a key path whenever the document is a YAML mapping (only a document
that is not one, e.g. broken YAML, gets errors without a path). No error message shows
the value of an environment variable. A handful of documents also go through the CLI
(``kubewatch validate --offline``): exit 2, one "path: message" line per mistake, no
"Traceback".
"""

from __future__ import annotations

import json
import re
import string
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kubewatch.app import check_config
from kubewatch.config import Config, parse_config
from kubewatch.errors import ConfigError, ConfigErrors
from tests.budget import examples

ENV = {
    "HOOK_TOKEN": "hook-token-0123456789",
    "HOOK_URL": "http://hooks.example:8080/secret-path-42",
    "SLACK_TOKEN": "xoxb-slack-token-987654",
    "PORT": "8080",
    "NUMBER": "12345678901234567890",
    "EMPTY": "",
    "SPACE": "  ",
    "UNICODE": "zürich-☃-секрет-値",
}
SECRETS = [v for v in ENV.values() if len(v) >= 8]
"""Values the redactor must keep out of messages (shorter ones are not treated as secrets)."""

FUZZ = settings(
    max_examples=examples(150),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=True,  # CI runs the same examples every time; failures reproduce
)

# -- valid documents -------------------------------------------------------------------------

dns_label = st.from_regex(r"\A[a-z]([a-z0-9-]{0,10}[a-z0-9])?\Z")
sink_name = st.from_regex(r"\A[A-Za-z][A-Za-z0-9_.-]{0,12}\Z")
label_key = st.from_regex(r"\A[a-z][a-z0-9]{0,8}\Z")
label_value = st.from_regex(r"\A[a-z0-9]{1,8}\Z")
selector = st.builds(
    lambda k, v, op: f"{k}{op}{v}", label_key, label_value, st.sampled_from(["=", "!="])
)
event_names = st.lists(st.sampled_from(["create", "update", "delete"]), min_size=1, unique=True)
seconds = st.one_of(
    st.integers(1, 3600),
    st.floats(0.5, 3600, allow_nan=False, allow_infinity=False),
    st.sampled_from(["30s", "10m", "1h30m", "250ms"]),
)
env_ref = st.sampled_from(sorted(ENV)).map(lambda name: f"${{{name}}}")


@st.composite
def resource(draw: st.DrawFn) -> dict[str, Any]:
    r: dict[str, Any] = {
        "kind": draw(st.sampled_from(["Pod", "ConfigMap", "deploy", "Widget", "svc", "Secret"]))
    }
    if draw(st.booleans()):
        r["events"] = draw(event_names)
    if draw(st.booleans()):
        r["labelSelector"] = draw(selector)
    if draw(st.booleans()):
        r["namespaces"] = {"include": draw(st.lists(dns_label, max_size=3, unique=True))}
    if draw(st.booleans()):
        r["updates"] = {
            "ignore": draw(st.lists(st.sampled_from(["metadata.labels.*", "spec.**"]), unique=True))
        }
    r["notifyExisting"] = draw(st.booleans())
    return r


def webhook(draw: st.DrawFn) -> dict[str, Any]:
    sink: dict[str, Any] = {
        "type": "webhook",
        "url": draw(
            st.sampled_from(
                ["http://127.0.0.1:9/hook", "https://hooks.example/x?y=1", "${HOOK_URL}"]
            )
        ),
    }
    if draw(st.booleans()):
        sink["headers"] = {"X-Token": draw(st.sampled_from(["plain", "${HOOK_TOKEN}"]))}
    if draw(st.booleans()):
        sink["retry"] = {
            "attempts": draw(st.integers(1, 100)),
            "maxBackoff": draw(st.floats(0.01, 600)),
        }
    if draw(st.booleans()):
        sink["queueSize"] = draw(st.integers(1, 10**6))
    if draw(st.booleans()):
        sink["concurrency"] = draw(st.integers(1, 64))
    if draw(st.booleans()):
        sink["rateLimit"] = draw(
            st.one_of(st.integers(1, 50), st.just("off"), st.just({"perSecond": 2, "burst": 5}))
        )
    return sink


@st.composite
def sink(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(["stdout", "webhook", "slack", "smtp", "teams"]))
    if kind == "stdout":
        return {"type": "stdout", "format": draw(st.sampled_from(["json", "text"]))}
    if kind == "webhook":
        return webhook(draw)
    if kind == "slack":
        return {
            "type": "slack",
            "channel": draw(st.sampled_from(["#ops", "C0123456789"])),
            "token": draw(st.sampled_from(["xoxb-1", "${SLACK_TOKEN}"])),
            "digest": draw(
                st.one_of(
                    st.just("off"),
                    st.builds(lambda w: {"threshold": 5, "window": w}, seconds),
                )
            ),
        }
    if kind == "smtp":
        return {
            "type": "smtp",
            "host": "mail.example",
            "from": "kubewatch@example.com",
            "to": ["ops@example.com"],
            "tls": draw(st.sampled_from(["starttls", "implicit", "none"])),
        }
    return {"type": "teams", "url": "https://teams.example/hook"}


@st.composite
def valid_document(draw: st.DrawFn) -> dict[str, Any]:
    resources = draw(st.lists(resource(), min_size=1, max_size=3, unique_by=lambda r: r["kind"]))
    sinks = draw(st.dictionaries(sink_name, sink(), min_size=1, max_size=3))
    doc: dict[str, Any] = {"resources": resources, "sinks": sinks}
    if draw(st.booleans()):
        doc["cluster"] = draw(
            st.text(min_size=1, max_size=20).filter(lambda t: t.strip() and "$" not in t)
        )
    if draw(st.booleans()):
        include = draw(st.lists(dns_label, max_size=3, unique=True))
        doc["namespaces"] = {
            "include": include,
            "exclude": [
                n for n in draw(st.lists(dns_label, max_size=2, unique=True)) if n not in include
            ],
        }
    if draw(st.booleans()):
        names = sorted(sinks)
        doc["routes"] = [
            {
                "match": {"types": draw(event_names)},
                "sinks": draw(st.lists(st.sampled_from(names), min_size=1, unique=True)),
                "stop": draw(st.booleans()),
            }
        ]
    if draw(st.booleans()):
        doc["delivery"] = {
            "queueSize": draw(st.integers(1, 10**6)),
            "workers": draw(st.integers(1, 64)),
            "retry": {"attempts": draw(st.integers(1, 100))},
            "drainTimeout": draw(st.integers(0, 60)),
        }
    if draw(st.booleans()):
        doc["watch"] = {  # a quiet watch reopens well within the default stallThreshold
            "readTimeout": draw(st.integers(1, 300)),
            "serverTimeout": draw(st.integers(1, 60)),
            "pageSize": draw(st.integers(1, 5000)),
        }
    if draw(st.booleans()):
        doc["server"] = {"port": draw(st.integers(0, 65535))}
    if draw(st.booleans()):
        doc["leaderElection"] = {"enabled": draw(st.booleans()), "leaseName": "kw"}
    return doc


# -- mistakes --------------------------------------------------------------------------------

scalar_garbage = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(10**40), max_value=10**40),
    st.floats(),  # nan and infinities included
    st.text(max_size=30),
    st.text(alphabet=string.whitespace, max_size=3),
    st.just(""),
    st.text(alphabet=st.characters(min_codepoint=0x80), max_size=10),  # unicode, astral too
    st.sampled_from(
        [
            "${UNSET_VARIABLE}",
            "${bad name}",
            "${",
            "$${literal}",
            "${EMPTY}",
            "${NUMBER}",
            "x${HOOK_TOKEN}y",
            "2024-01-01",
            "0x1F",
            "1e400",
            "-.inf",
            "~",
            "yes",
            "http://",
            "http://[::1",
            "/(unclosed/",
            "{{ unclosed",
            "{% for %}",
        ]
    ),
    env_ref,
)
garbage = st.recursive(
    scalar_garbage,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.one_of(st.text(max_size=8), st.integers()), inner, max_size=3),
    ),
    max_leaves=8,
)


def paths(doc: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every key path of ``doc`` (mappings and lists), the root included."""
    out = [prefix]
    if isinstance(doc, dict):
        for k, v in doc.items():
            out += paths(v, (*prefix, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out += paths(v, (*prefix, i))
    return out


def get(doc: Any, path: tuple[Any, ...]) -> Any:
    for part in path:
        doc = doc[part]
    return doc


def replace(doc: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    head, rest = path[0], path[1:]
    if isinstance(doc, dict):
        return {k: replace(v, rest, value) if k == head else v for k, v in doc.items()}
    return [replace(v, rest, value) if i == head else v for i, v in enumerate(doc)]


@st.composite
def mutated(draw: st.DrawFn, doc: Any) -> Any:
    """``doc`` with one mistake put in at a random place."""
    where = draw(st.sampled_from(paths(doc)[1:]))
    value = get(doc, where)
    how = draw(st.sampled_from(["garbage", "unknown-key", "drop-key", "list-map", "wrap", "empty"]))
    if how == "garbage":
        return replace(doc, where, draw(garbage))
    if how == "unknown-key":
        if not isinstance(value, dict):
            return replace(doc, where, {draw(st.text(max_size=12)): draw(garbage)})
        return replace(doc, where, {**value, draw(st.text(min_size=1, max_size=12)): draw(garbage)})
    if how == "drop-key":
        parent = get(doc, where[:-1])
        if isinstance(parent, dict):
            return replace(doc, where[:-1], {k: v for k, v in parent.items() if k != where[-1]})
        return replace(doc, where[:-1], [v for i, v in enumerate(parent) if i != where[-1]])
    if how == "list-map":  # a list where a mapping belongs, and the reverse
        if isinstance(value, dict):
            return replace(doc, where, [{k: v} for k, v in value.items()])
        if isinstance(value, list):
            return replace(doc, where, {str(i): v for i, v in enumerate(value)})
        return replace(doc, where, {"value": value})
    if how == "wrap":
        return replace(doc, where, [value])
    return replace(doc, where, type(value)() if isinstance(value, (dict, list, str)) else None)


@st.composite
def broken_document(draw: st.DrawFn) -> str:
    """A valid document with one to three mistakes, as YAML text, sometimes damaged as text."""
    doc: Any = draw(valid_document())
    for _ in range(draw(st.integers(1, 3))):
        doc = draw(mutated(doc))
    text = yaml.safe_dump(doc, allow_unicode=draw(st.booleans()), sort_keys=False)
    damage = draw(st.sampled_from(["none", "none", "none", "insert", "cut", "repeat-line"]))
    if damage == "insert":
        at = draw(st.integers(0, len(text)))
        piece = draw(
            st.sampled_from(
                [
                    "\t",
                    ":",
                    "- ",
                    "{",
                    "]",
                    "&a ",
                    "*a",
                    "!!python/object:os.system ",
                    "%",
                    "'",
                    '"',
                    "\x00",
                    "\ufeff",
                    "\n  ",
                    "? ",
                    "<<: *a\n",
                    "---\n",
                ]
            )
        )
        text = text[:at] + piece + text[at:]
    elif damage == "cut":
        text = text[: draw(st.integers(0, len(text)))]
    elif damage == "repeat-line":  # often a duplicate key
        lines = text.splitlines(keepends=True)
        i = draw(st.integers(0, len(lines) - 1))
        text = "".join([*lines[: i + 1], lines[i], *lines[i + 1 :]])
    return text


# -- the properties --------------------------------------------------------------------------


def is_mapping(text: str) -> bool:
    """Whether PyYAML reads ``text`` as one mapping (then every error needs a key path)."""
    try:
        return isinstance(yaml.safe_load(text), dict)
    except (yaml.YAMLError, RecursionError, ValueError):
        return False


def check_errors(errors: list[ConfigError], text: str) -> None:
    assert errors, "ConfigErrors without any error"
    mapping = is_mapping(text)
    for e in errors:
        shown = f"{e.path!r}: {e.message!r}\n--- document ---\n{text}"
        assert isinstance(e, ConfigError), shown
        assert isinstance(e.path, str) and isinstance(e.message, str), shown
        assert e.message.strip(), shown
        assert "\n" not in e.message, shown
        assert "Traceback" not in e.message and "pydantic" not in e.message.lower(), shown
        assert "Input should be" not in e.message, shown  # pydantic's words, not ours
        if mapping:
            assert e.path, shown
        for secret in SECRETS:
            assert secret not in e.message, shown


def outcome(text: str, tmp: Path) -> Config | None:
    """The document through what ``kubewatch validate --offline`` runs; None if refused."""
    try:
        config = parse_config(text, ENV, source="fuzz.yaml", base_dir=tmp)
        check_config(config)
    except ConfigErrors as e:
        check_errors(e.errors, text)
        return None
    return config


@settings(FUZZ, max_examples=examples(60))  # each builds its sinks (HTTP clients): the slow part
@given(doc=valid_document())
def test_valid_documents_parse_and_check(doc: dict[str, Any]) -> None:
    text = yaml.safe_dump(doc, allow_unicode=True, sort_keys=False)
    config = parse_config(text, ENV, source="fuzz.yaml")
    check_config(config)
    assert len(config.resources) == len(doc["resources"])
    assert set(config.sinks) == set(doc["sinks"])


@settings(FUZZ, max_examples=examples(200))
@given(text=broken_document())
def test_broken_documents_give_clear_errors_never_a_traceback(
    text: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    outcome(text, tmp_path_factory.getbasetemp())


@settings(FUZZ, max_examples=examples(100))
@given(value=garbage)
def test_any_document_at_all_gives_clear_errors(value: Any) -> None:
    """Not even the shape of a configuration: any YAML value as the whole document, or
    under ``resources``/``sinks``."""
    for doc in (
        value,
        {"resources": value, "sinks": {"out": {"type": "stdout"}}},
        {"resources": [{"kind": "Pod"}], "sinks": value},
    ):
        outcome(yaml.safe_dump(doc), Path.cwd())


# -- through the CLI -------------------------------------------------------------------------

CLI_CASES: list[tuple[str, bytes, list[str]]] = [
    # (name, file content, the key paths the errors must name, in order)
    (
        "wrong-types",
        b"resources: [{kind: Pod, events: create, notifyExisting: [1]}]\n"
        b"sinks: {out: {type: stdout, format: 5}}\n"
        b"watch: {readTimeout: {a: b}, pageSize: 1e400}\n",
        [
            "resources[0].events",
            "resources[0].notifyExisting",
            "sinks.out.format",
            "watch.readTimeout",
            "watch.pageSize",
        ],
    ),
    (
        "unknown-keys-and-unicode",
        "resources: [{kind: Pod, lables: {a: b}}]\n"
        "sinks: {'☃': {type: stdout}, hook: {type: webhook, url: 'http://h', "
        "heders: {}}}\n"
        "dëlivery: {}\n".encode(),
        ["resources[0].lables", 'sinks["☃"]', "sinks.hook.heders", '["dëlivery"]'],
    ),
    (
        "huge-numbers-and-empty-strings",
        b"cluster: ''\n"
        b"resources: [{kind: ''}]\n"
        b"sinks: {out: {type: stdout, queueSize: 99999999999999999999999999999999}}\n"
        b"delivery: {workers: 1000000000000, retry: {attempts: 0, maxBackoff: -1}}\n"
        b"server: {port: 70000}\n",
        [
            "cluster",
            "resources[0].kind",
            "sinks.out.queueSize",
            "delivery.workers",
            "delivery.retry.attempts",
            "delivery.retry.maxBackoff",
            "server.port",
        ],
    ),
    (
        "lists-vs-maps-and-env",
        b"resources: {kind: Pod}\n"
        b"sinks:\n"
        b"  - {type: stdout}\n"
        b"namespaces: {include: {a: b}}\n"
        b"routes: [{sinks: out, match: [1]}]\n",
        ["resources", "sinks", "namespaces.include", "routes[0].match", "routes[0].sinks"],
    ),
    (
        "env-references",
        b"resources: [{kind: Pod}]\n"
        b"sinks: {hook: {type: webhook, url: '${UNSET_URL}', "
        b"headers: {X-A: '${bad name}', X-B: '${'}, timeout: '${HOOK_TOKEN}'}}\n",
        [
            "sinks.hook.url",
            "sinks.hook.headers.X-A",
            "sinks.hook.headers.X-B",
            "sinks.hook.timeout",
        ],
    ),
]


def readable(path: str) -> str:
    """A key path with JSON escapes in quoted keys undone (``sinks["\\u2603"]`` is how
    kubewatch writes ``sinks["☃"]`` today; either spelling names the key)."""
    return _QUOTED.sub(lambda m: f'["{json.loads(m.group(1))}"]', path)


_QUOTED = re.compile(r'\[("(?:[^"\\]|\\.)*")\]')


def test_cli_validate_offline_reports_every_mistake_by_path(tmp_path: Path) -> None:
    """Each case in its own ``python -m kubewatch validate --offline`` (run in parallel)."""
    runs = []
    for name, content, _ in CLI_CASES:
        path = tmp_path / f"{name}.yaml"
        path.write_bytes(content)
        command = [
            sys.executable,
            "-m",
            "kubewatch",
            "validate",
            "--offline",
            "--config",
            str(path),
        ]
        runs.append(
            subprocess.Popen(
                command,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env={"HOOK_TOKEN": ENV["HOOK_TOKEN"], "PATH": "/usr/bin:/bin"},
            )
        )
    for (name, _, expected), proc in zip(CLI_CASES, runs, strict=True):
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 2, (name, out, err)
        assert "Traceback" not in out + err, (name, err)
        header, *lines = err.rstrip("\n").split("\n")
        assert header.endswith(f"{name}.yaml: {len(lines)} error{'s' * (len(lines) != 1)}"), err
        for line in lines:
            assert line.startswith("  ") and ": " in line, (name, line)
        paths_seen = [readable(line[2:].split(": ", 1)[0]) for line in lines]
        assert paths_seen == expected, (name, err)
        assert ENV["HOOK_TOKEN"] not in err
