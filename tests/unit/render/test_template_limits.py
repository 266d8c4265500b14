"""Templates are code from the configuration: at load they are rendered under a time,
work and size bound, and one that exceeds it is a configuration error at its key path."""

from __future__ import annotations

import pytest

from kubewatch.errors import ConfigError
from kubewatch.render.templates import SAMPLES, compile_template

PATH = "sinks.chat.template"


@pytest.mark.parametrize(
    "source",
    [
        pytest.param(
            "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
            id="nested-range",
        ),
        pytest.param("{{ 'A' * 2000000000 }}", id="string-times"),
        pytest.param("{{ [1] * 2000000000 }}", id="list-times"),
        pytest.param("{% set x = 'A' * 999999 %}{{ x ~ x ~ x }}", id="concat"),
        pytest.param("{{ 'a' | center(2000000000) }}", id="center"),
        pytest.param("{{ 'a'.ljust(2000000000) }}", id="ljust"),
        pytest.param("{{ '%2000000000s' % 'a' }}", id="percent-width"),
        pytest.param("{{ '{:2000000000}'.format('a') }}", id="format-width"),
        pytest.param("{{ ('A' * 999999) | replace('', 'BB') }}", id="replace"),
        pytest.param("{{ 10 ** 100000000 }}", id="power"),
        pytest.param(
            "{% macro f(n) %}{% if n %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}{% endmacro %}"
            "{{ f(40) }}",
            id="exponential-macro",
        ),
        pytest.param("{% for i in range(100000) %}{{ 'x' * 100 }}{% endfor %}", id="output-length"),
    ],
)
def test_a_template_beyond_its_bounds_is_a_config_error(source: str) -> None:
    with pytest.raises(ConfigError) as caught:
        compile_template(source, markup="none", kind="text", path=PATH)
    assert caught.value.path == PATH
    assert "exceeds a bound" in caught.value.message


def test_ordinary_loops_and_strings_still_render() -> None:
    template = compile_template(
        "{% for i in range(3) %}{{ i }}{% endfor %} {{ '-' * 10 }} {{ 'ab' | center(6) }}"
        " {{ ', '.join(['x', 'y']) }} {{ name ~ '!' }}",
        markup="none",
        kind="text",
        path=PATH,
    )
    out = template.render(SAMPLES[0][1])
    assert out.startswith("012 ---------- ")
    assert "x, y" in out
