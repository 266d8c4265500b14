"""Rendering: escaping per markup, default texts, and sink templates checked at load."""

from __future__ import annotations

import html
import json
import logging
import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kubewatch.config import Config, StdoutSinkConfig, WebhookSinkConfig
from kubewatch.errors import ConfigError, ConfigErrors
from kubewatch.events import (
    Change,
    DigestInfo,
    Event,
    EventType,
    InvolvedObject,
    KubeEventInfo,
)
from kubewatch.render import (
    SAMPLES,
    Markup,
    Template,
    TemplateRenderError,
    changes_block,
    compile_sink_rendering,
    compile_sink_renderings,
    compile_template,
    default_text,
    escape,
    one_line,
)
from kubewatch.render.escape import ZWSP


def ev(**overrides: Any) -> Event:
    """An update of ConfigMap default/app; override any field."""
    fields: dict[str, Any] = {
        "type": EventType.UPDATE,
        "cluster": "test",
        "kind": "ConfigMap",
        "api_version": "v1",
        "resource": "configmaps",
        "namespace": "default",
        "name": "app",
        "uid": "uid-1",
        "resource_version": "7",
        "observed_at": "2026-11-26T22:10:51.123Z",
        "labels": {"app": "web"},
        "changes": (Change("data.mode", "a", "b"),),
        "summary": "[test] ConfigMap default/app updated: data.mode a → b",
    }
    fields.update(overrides)
    return Event(**fields)


def compile_json(source: str, markup: Markup = "slack") -> Template:
    return compile_template(source, markup=markup, kind="json", path="sinks.chat.bodyTemplate")


def compile_text(source: str, markup: Markup = "none") -> Template:
    return compile_template(source, markup=markup, kind="text", path="sinks.out.template")


def load_error(source: str, kind: str = "text", markup: Markup = "none") -> ConfigError:
    path = "sinks.chat.bodyTemplate" if kind == "json" else "sinks.out.template"
    with pytest.raises(ConfigError) as info:
        compile_template(
            source, markup=markup, kind="json" if kind == "json" else "text", path=path
        )
    assert info.value.path == path
    return info.value


# -- escaping tables --------------------------------------------------------------------

ESCAPES = [
    ("none", "<!channel> *b* @here & [x](y)", "<!channel> *b* @here & [x](y)", "none"),
    ("slack", "<!channel>", "&lt;!channel&gt;", "slack-channel"),
    ("slack", "<!here> <@U123>", f"&lt;!here&gt; &lt;@{ZWSP}U123&gt;", "slack-user"),
    ("slack", "<https://evil|click>", "&lt;https://evil|click&gt;", "slack-disguised-link"),
    ("slack", "a & b", "a &amp; b", "slack-amp"),
    ("slack", "&lt;", "&amp;lt;", "slack-entity-stays-text"),
    ("slack", "hi @channel", f"hi @{ZWSP}channel", "slack-at-channel"),
    ("slack", "x@Everyone", f"x@{ZWSP}Everyone", "slack-glued-everyone"),
    ("slack", "ops@example.com", "ops@example.com", "slack-email-kept"),
    ("slack", "trailing x@", f"trailing x@{ZWSP}", "slack-trailing-at"),
    ("slack", "*bold* _it_", "*bold* _it_", "slack-emphasis-left"),
    ("markdown", "[click](https://evil)", r"\[click\]\(https://evil\)", "md-link"),
    ("markdown", "<https://evil>", r"\<https://evil\>", "md-autolink"),
    ("markdown", "<@123> <#9>", rf"\<@{ZWSP}123\> \<\#9\>", "md-discord"),
    ("markdown", "<@&7>", rf"\<@{ZWSP}&7\>", "md-discord-role"),
    ("markdown", "@everyone @here", f"@{ZWSP}everyone @{ZWSP}here", "md-everyone"),
    ("markdown", "@alice", f"@{ZWSP}alice", "md-mattermost-user"),
    ("markdown", "a\\b", r"a\\b", "md-backslash"),
    ("markdown", "*x* _y_ ~z~", r"\*x\* \_y\_ \~z\~", "md-emphasis"),
    ("markdown", "`c` ||s||", r"\`c\` \|\|s\|\|", "md-code-spoiler"),
    ("markdown", "# h\n> q", "\\# h\n\\> q", "md-heading-quote"),
    ("markdown", "ops@example.com", "ops@example.com", "md-email-kept"),
    ("html", "<script>x</script>", "&lt;script&gt;x&lt;/script&gt;", "html-tag"),
    ("html", "a \"b\" 'c' & d", "a &quot;b&quot; &#x27;c&#x27; &amp; d", "html-quotes"),
    ("html", "@everyone", "@everyone", "html-no-plain-mentions"),
]


@pytest.mark.parametrize(
    ("markup", "text", "expected"), [pytest.param(*row[:3], id=row[3]) for row in ESCAPES]
)
def test_escape_table(markup: Markup, text: str, expected: str) -> None:
    assert escape(text, markup) == expected


def test_unknown_markup_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown markup"):
        escape("x", "bbcode")  # type: ignore[arg-type]


# -- the nasty-string property ----------------------------------------------------------

NASTY = [
    "<!channel> <https://evil|click>",
    "<!here>",
    "<!everyone>",
    "<@U0123ABC>",
    "<#C024BE7LR|general>",
    "[click](https://evil)",
    "![img](https://evil/x.png)",
    "<https://evil>",
    "<script>alert(1)</script>",
    '<a href="https://evil">x</a>',
    "@everyone",
    "@here",
    "@channel",
    "@all",
    "@alice",
    "x@everyone",
    "<@&123456789012345678>",
    "\\<!channel>",
    "&lt;!channel&gt;",
    "&amp;",
    "\\",
    "`",
    "*",
    "_",
    "|",
    "(",
    ")",
    "[",
    "]",
    "<",
    ">",
    "&",
    "@",
    "\n",
    " ",
    "a",
    '"',
    "'",
]

nasty_text = st.one_of(
    st.lists(st.sampled_from(NASTY), max_size=12).map("".join),
    st.text(st.characters(codec="utf-8", exclude_characters=ZWSP), max_size=60),
)

_MENTION = re.compile(r"(?<![A-Za-z0-9])@[^\s\u200b]|@(?i:everyone|here|channel|all|group)")
"""An ``@`` that Slack (with link_names), Discord or Mattermost would read as a mention."""


def is_active(markup: Markup, out: str) -> bool:
    """Would a client of ``markup`` see a mention, a link, a tag or formatting syntax?"""
    if markup == "slack":  # Slack parses <…> sequences; & is only ever an entity
        return bool(re.search(r"[<>]|&(?!amp;|lt;|gt;)", out) or _MENTION.search(out))
    if markup == "markdown":  # a backslash makes the next character literal
        bare = re.sub(r"\\.", "", out, flags=re.DOTALL)
        return bool(re.search(r"[\[\]()<>*_~`|#\\]", bare) or _MENTION.search(bare))
    assert markup == "html"
    return bool(re.search(r"[<>\"']|&(?!amp;|lt;|gt;|quot;|#x27;)", out))


def reader_sees(markup: Markup, out: str) -> str:
    """The text as a person reads it once the client has rendered ``out``."""
    out = out.replace("@" + ZWSP, "@")
    if markup == "slack":
        return out.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    if markup == "markdown":
        return re.sub(r"\\(.)", r"\1", out, flags=re.DOTALL)
    return html.unescape(out)


@pytest.mark.parametrize("markup", ["slack", "markdown", "html"])
@given(text=nasty_text, after=nasty_text)
def test_escaped_text_is_never_active_and_reads_as_itself(
    markup: Markup, text: str, after: str
) -> None:
    """Also when two escaped values meet (``{{ a }}{{ b }}``): ``x@`` + ``everyone``."""
    out = escape(text, markup)
    assert not is_active(markup, out)
    assert reader_sees(markup, out) == text
    joined = out + escape(after, markup)
    assert not is_active(markup, joined)
    assert reader_sees(markup, joined) == text + after


@pytest.mark.parametrize("text", NASTY)
def test_nasty_corpus_is_inert_in_every_markup(text: str) -> None:
    for markup in ("slack", "markdown", "html"):
        assert not is_active(markup, escape(text, markup)), (markup, text)


# -- default texts ----------------------------------------------------------------------


def test_default_text_is_the_summary_escaped_for_the_markup() -> None:
    event = ev(summary="[test] ConfigMap default/app updated: data.x <!channel> → [a](b)")
    assert default_text(event) == event.summary
    assert default_text(event, "slack").endswith("data.x &lt;!channel&gt; → [a](b)")
    assert default_text(event, "markdown").endswith(r"data.x \<!channel\> → \[a\]\(b\)")
    assert default_text(event, "html").endswith("data.x &lt;!channel&gt; → [a](b)")


def test_default_text_is_one_line_without_controls() -> None:
    event = ev(summary="two\nlines\r\nand \x1b[31mred\u2028end")
    assert default_text(event) == "two lines and \\x1b[31mred end"


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        pytest.param({}, "update ConfigMap default/app", id="object"),
        pytest.param(
            {
                "name": "",
                "digest": DigestInfo(3, ("a", "b", "c"), ("default/x", "default/y", "default/z")),
            },
            "3 × update ConfigMap in default",  # noqa: RUF001
            id="digest",
        ),
        pytest.param(
            {
                "k8s_event": KubeEventInfo(
                    "Warning", "BackOff", "restarting", 2, InvolvedObject("Pod", "ns", "p")
                )
            },
            "Warning BackOff Pod ns/p: restarting",
            id="k8s-event",
        ),
    ],
)
def test_default_text_without_summary(overrides: dict[str, Any], expected: str) -> None:
    assert default_text(ev(summary="", **overrides)) == expected


def test_changes_block_one_line_per_change() -> None:
    event = ev(
        changes=(
            Change("spec.replicas", 1, 3),
            Change("metadata.labels.tier", None, "web", "added"),
            Change("spec.args[0]", "--debug", None, "removed"),
            Change("data.conf", "a: 1\nb: 2", None, "removed"),
            Change("spec.selector", {"app": "web"}, None, "removed"),
            Change("data.flag", None, None, "changed"),
        )
    )
    assert changes_block(event).splitlines() == [
        "spec.replicas: 1 → 3",
        "metadata.labels.tier: (added) web",
        "spec.args[0]: --debug (removed)",
        'data.conf: "a: 1\\nb: 2" (removed)',
        'spec.selector: {"app":"web"} (removed)',
        "data.flag: null → null",
    ]


def test_changes_block_shortens_counts_and_escapes() -> None:
    long = "x" * 300
    changes = [Change("data.big", long, "<!channel>")]
    changes += [Change(f"data.k{i}", i, i + 1) for i in range(25)]
    lines = changes_block(ev(changes=tuple(changes)), "slack", limit=120, max_lines=20).splitlines()
    assert len(lines) == 21
    assert lines[0] == "data.big: " + "x" * 120 + "… (+180 chars) → &lt;!channel&gt;"
    assert lines[-1] == "… and 6 more changes"
    assert changes_block(ev(changes=())) == ""


def test_one_line_is_idempotent() -> None:
    text = "a\nb\x1bc\x00"
    assert one_line(one_line(text)) == one_line(text) == "a b\\x1bc\\x00"


# -- templates: load-time checks --------------------------------------------------------


def test_syntax_error_names_path_and_line() -> None:
    err = load_error('{\n  "text": "{{ summary }"\n}', kind="json")
    assert err.message.startswith("line 2: ")


def test_unknown_filter_is_a_load_error() -> None:
    assert load_error("{{ summary | nosuch }}").message == "line 1: No filter named 'nosuch'."


def test_safe_is_not_available() -> None:
    err = load_error("{{ summary | safe }}", markup="none")
    assert "No filter named 'safe'" in err.message
    assert "markup: none" in err.message


@pytest.mark.parametrize(
    ("source", "message"),
    [
        pytest.param(
            "{{ evnt.kind }}",
            "line 1: unknown field 'evnt' (did you mean 'event'?)",
            id="top-level",
        ),
        pytest.param(
            "ok\n{{ event.nmae }}",
            "line 2: unknown field 'nmae' in event (did you mean 'name'?)",
            id="event-field",
        ),
        pytest.param(
            "{{ event['nmae'] }}",
            "line 1: unknown field 'nmae' in event (did you mean 'name'?)",
            id="subscript",
        ),
        pytest.param(
            "{{ event.nmae | default('') }}",
            "line 1: unknown field 'nmae' in event (did you mean 'name'?)",
            id="hidden-by-default",
        ),
        pytest.param(
            "{% if k8sEvent %}{{ k8sEvent.reasn }}{% endif %}",
            "line 1: unknown field 'reasn' in k8sEvent (did you mean 'reason'?)",
            id="guarded-typo",
        ),
        pytest.param(
            "{{ k8sEvent.involvedObject.knd }}",
            "line 1: unknown field 'knd' in k8sEvent.involvedObject (did you mean 'kind'?)",
            id="nested",
        ),
        pytest.param(
            "{% for c in changes %}{{ c.pth }}{% endfor %}",
            "line 1: unknown field 'pth' in changes[…] (did you mean 'path'?)",
            id="loop-variable",
        ),
        pytest.param(
            "{{ digest.count }} {{ k8sEvent.reasn }}",
            "line 1: unknown field 'reasn' in k8sEvent (did you mean 'reason'?)",
            id="two-optional-parents",
        ),
    ],
)
def test_unknown_fields_are_load_errors(source: str, message: str) -> None:
    assert load_error(source).message == message


def test_several_problems_are_reported_together() -> None:
    err = load_error("{{ evnt }}\n{{ event.nmae }}")
    assert err.message == (
        "line 1: unknown field 'evnt' (did you mean 'event'?); "
        "line 2: unknown field 'nmae' in event (did you mean 'name'?)"
    )


@pytest.mark.parametrize(
    "source",
    [
        pytest.param(
            "{% if k8sEvent %}{{ k8sEvent.reason }}{% else %}{{ summary }}{% endif %}", id="guarded"
        ),
        pytest.param("{{ k8sEvent.reason }}", id="unguarded-null-parent"),
        pytest.param("{{ labels.team }}", id="label-not-in-samples"),
        pytest.param("{{ changes[0].path }}", id="index-past-end"),
        pytest.param("{{ changes[0].old.image }}", id="into-object-data"),
        pytest.param("{{ digest.count * 2 }}", id="arithmetic-on-null-parent"),
        pytest.param("{{ event.items() | list | length }}", id="mapping-methods"),
        pytest.param("{{ range(3) | join }}{{ cycler('a', 'b').next() }}", id="jinja-globals"),
    ],
)
def test_data_dependent_references_are_allowed_at_load(source: str) -> None:
    """Whether a value exists depends on the event: that is for send time, not load."""
    compile_text(source)


def test_failing_for_every_sample_is_a_load_error() -> None:
    err = load_error("a\n{{ name + 1 }}")
    assert err.message.startswith("line 2: fails for every sample event: TypeError")


@pytest.mark.parametrize(
    "source",
    [
        pytest.param("{{ event.__class__ }}", id="dunder"),
        pytest.param("{{ labels.update({'a': 1}) }}", id="mutation"),
        pytest.param("{{ changes.append(1) }}", id="list-mutation"),
    ],
)
def test_sandbox_violations_are_load_errors(source: str) -> None:
    assert "not allowed" in load_error(source).message


def test_json_body_must_render_valid_json() -> None:
    err = load_error('{"text": {{ summary }}}', kind="json")
    assert err.message.startswith("bodyTemplate does not render valid JSON: Expecting value")
    assert "sample event" in err.message


def test_tojson_inside_quotes_is_caught_at_load() -> None:
    err = load_error('{"text": "{{ changes | tojson }}"}', kind="json")
    assert "does not render valid JSON" in err.message


def test_every_sample_renders_a_typical_template() -> None:
    """The samples cover each shape of the contract (and are valid events)."""
    assert [label for label, _ in SAMPLES] == [
        "create",
        "update",
        "delete (final state unknown)",
        "Kubernetes Event",
        "digest",
        "all fields set",
    ]
    template = compile_json(
        '{"text": "{{ summary }}", "ns": {{ namespace | tojson }}, '
        '"reason": {{ (k8sEvent.reason if k8sEvent else none) | tojson }}, '
        '"count": {{ digest.count if digest else 1 }}}'
    )
    for _, event in SAMPLES:
        doc = json.loads(template.render(event))
        assert doc["text"] == escape(event.summary, "slack")
        assert doc["ns"] == event.namespace


# -- templates: what rendering produces -------------------------------------------------

NASTY_SUMMARY = 'say "hi" \\ back\nslash <!channel> <https://evil|click> [x](y) @here'


def test_json_body_escapes_quotes_newlines_backslashes_and_markup() -> None:
    template = compile_json('{"text": "{{ summary }}", "name": "{{ name }}"}', markup="slack")
    body = template.render(ev(summary=NASTY_SUMMARY, name='a"b'))
    doc = json.loads(body)
    assert doc == {
        "text": 'say "hi" \\ back\nslash &lt;!channel&gt; &lt;https://evil|click&gt; [x](y) '
        f"@{ZWSP}here",
        "name": 'a"b',
    }


_BODIES = {
    m: compile_json('{"text": "{{ name }}: {{ summary }}"}', markup=m)
    for m in ("none", "slack", "markdown", "html")
}


@pytest.mark.parametrize("markup", ["none", "slack", "markdown", "html"])
@given(summary=nasty_text, name=nasty_text)
def test_json_body_is_always_valid_and_inert(markup: Markup, summary: str, name: str) -> None:
    template = _BODIES[markup]
    doc = json.loads(template.render(ev(summary=summary, name=name)))
    assert set(doc) == {"text"}
    expected = f"{name}: {summary}"
    if markup == "none":
        assert doc["text"] == expected
    else:
        assert not is_active(markup, doc["text"])
        assert reader_sees(markup, doc["text"]) == expected


def test_literal_template_text_is_not_escaped() -> None:
    template = compile_text("<!here> *{{ name }}*: {{ summary }}", markup="slack")
    out = template.render(ev(name="<b>", summary="@channel"))
    assert out == f"<!here> *&lt;b&gt;*: @{ZWSP}channel"


def test_escape_filter_is_not_applied_twice() -> None:
    template = compile_text(
        "{{ summary }}|{{ summary | escape }}|{{ summary | e | escape }}", markup="html"
    )
    assert template.render(ev(summary="a & <b>")) == "|".join(["a &amp; &lt;b&gt;"] * 3)


def test_escape_filter_in_json_is_still_a_valid_string() -> None:
    template = compile_json('{"t": "{{ summary | escape }}"}', markup="html")
    assert json.loads(template.render(ev(summary='"<x>"'))) == {"t": "&quot;&lt;x&gt;&quot;"}


def test_tojson_keeps_types_and_escapes_strings() -> None:
    template = compile_json(
        '{"changes": {{ changes | tojson }}, "labels": {{ labels | tojson }}, '
        '"n": {{ changes | length }}, "fsu": {{ finalStateUnknown | tojson }}}'
    )
    event = ev(
        labels={"<!x>": "<!channel>"},
        changes=(
            Change("spec.replicas", 1, 3),
            Change("data.note", None, "<!here>", "added"),
            Change("spec.args", ["<a>", 2], None, "removed"),
        ),
    )
    assert json.loads(template.render(event)) == {
        "changes": [
            {"path": "spec.replicas", "op": "changed", "old": 1, "new": 3},
            {"path": "data.note", "op": "added", "old": None, "new": "&lt;!here&gt;"},
            {"path": "spec.args", "op": "removed", "old": ["&lt;a&gt;", 2], "new": None},
        ],
        "labels": {"&lt;!x&gt;": "&lt;!channel&gt;"},
        "n": 3,
        "fsu": False,
    }


def test_how_values_print() -> None:
    template = compile_text(
        "{{ namespace }}|{{ finalStateUnknown }}|{{ labels }}|{{ changes[0].new }}|{{ 1.5 }}"
    )
    event = ev(namespace=None, labels={"a": "b"}, changes=(Change("x", 1, [1, None]),))
    assert template.render(event) == '|false|{"a":"b"}|[1,null]|1.5'


def test_shorten_filter() -> None:
    template = compile_text("{{ summary | shorten(5) }}|{{ summary | shorten }}")
    assert template.render(ev(summary="abcdefgh")) == "abcde… (+3 chars)|abcdefgh"


def test_every_top_level_field_is_in_the_context() -> None:
    event = SAMPLES[-1][1]
    for key, value in event.to_dict().items():
        source = f'{{"v": {{{{ {key} | tojson }}}}, "e": {{{{ event.{key} | tojson }}}}}}'
        out = compile_json(source, markup="none")
        assert json.loads(out.render(event)) == {"v": value, "e": value}, key


# -- templates: send time ---------------------------------------------------------------


def test_render_failure_falls_back_and_logs_once(caplog: pytest.LogCaptureFixture) -> None:
    template = compile_json('{"team": "{{ labels.team }}"}')
    with pytest.raises(TemplateRenderError, match="team"):
        template.render(ev())
    caplog.set_level(logging.DEBUG, logger="kubewatch.render.templates")
    outs = [template.render_or(ev(), lambda e: f"default {e.name}") for _ in range(3)]
    assert outs == ["default app"] * 3
    assert template.render_or(ev(labels={"team": "<a>"}), lambda e: "x") == '{"team": "&lt;a&gt;"}'
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "sinks.chat.bodyTemplate" in warnings[0].getMessage()
    assert "'team'" in warnings[0].getMessage()
    assert template.failures == 3


def test_output_that_is_not_json_at_send_falls_back() -> None:
    """Valid for every sample, broken for one real event: the default goes out instead."""
    template = compile_json(
        '{% if labels.raw is defined %}{{ labels.raw }}{% else %}{"a": 1}{% endif %}'
    )
    assert template.render_or(ev(), lambda e: "default") == '{"a": 1}'
    assert template.render_or(ev(labels={"raw": "nope"}), lambda e: "default") == "default"


def test_a_crashing_value_falls_back() -> None:
    template = compile_text("{{ changes[0].old // changes[0].new }}")
    assert template.render_or(ev(changes=(Change("x", 1, 0),)), lambda e: "default") == "default"


# -- per-sink compilation ---------------------------------------------------------------


def test_compile_sink_renderings_collects_every_error() -> None:
    config = Config.model_validate(
        {
            "resources": [{"kind": "ConfigMap"}],
            "sinks": {
                "ok": {"type": "stdout", "format": "text", "template": "{{ summary }}"},
                "plain": {"type": "webhook", "url": "http://x/"},
                "typo": {"type": "stdout", "format": "text", "template": "{{ evnt }}"},
                "json-with-template": {"type": "stdout", "template": "{{ summary }}"},
                "hook": {"type": "webhook", "url": "http://x/", "bodyTemplate": "{{ summary }}"},
                "odd.name": {"type": "stdout", "format": "text", "template": "{% if %}"},
            },
        }
    )
    with pytest.raises(ConfigErrors) as info:
        compile_sink_renderings(config.sinks)
    assert [(e.path, e.message.split(":")[0]) for e in info.value.errors] == [
        ("sinks.typo.template", "line 1"),
        ("sinks.json-with-template.template", "template applies to format"),
        ("sinks.hook.bodyTemplate", "bodyTemplate does not render valid JSON"),
        ('sinks["odd.name"].template', "line 1"),
    ]


def test_compile_sink_rendering_results() -> None:
    text = compile_sink_rendering(
        "out", StdoutSinkConfig(type="stdout", format="text", template="{{ name }}")
    )
    assert text.body is None
    assert text.text is not None
    assert text.text.path == "sinks.out.template"
    body = compile_sink_rendering(
        "chat",
        WebhookSinkConfig(
            type="webhook", url="https://x/", markup="slack", body_template='{"text": "{{ name }}"}'
        ),
    )
    assert body.text is None
    assert body.body is not None
    assert (body.body.kind, body.body.markup) == ("json", "slack")
    assert compile_sink_rendering("p", StdoutSinkConfig(type="stdout")).text is None
