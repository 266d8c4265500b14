"""kubewatch.sinks.endpoint: how a ``Retry-After`` value is read (the status mapping and
the secrets are proven through the webhook sink in test_sinks)."""

from __future__ import annotations

import ssl

import pytest

from kubewatch.config import WebhookSinkConfig
from kubewatch.sinks.endpoint import parse_retry_after
from kubewatch.sinks.webhook import WebhookSink
from tests.unit.sinks.test_sinks import HTTP_DATE_IN_90S, NOW


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param(None, None, id="absent"),
        pytest.param("0", 0.0, id="zero"),
        pytest.param(" 12 ", 12.0, id="spaces"),
        pytest.param("1.5", 1.5, id="fraction"),
        pytest.param("-3", 0.0, id="negative"),
        pytest.param("nan", None, id="nan"),
        pytest.param("inf", None, id="inf"),
        pytest.param(HTTP_DATE_IN_90S, 90.0, id="http-date"),
        pytest.param("Sun, 06 Nov 1994 08:49:37 GMT", 0.0, id="past-date"),
        pytest.param("tomorrow-ish", None, id="garbage"),
    ],
)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value, NOW) == expected


def test_sinks_without_a_ca_file_share_one_verifying_tls_context() -> None:
    """Loading the CA bundle costs ~38 ms: built once, not per sink."""

    def context(url: str) -> ssl.SSLContext:
        sink = WebhookSink("w", WebhookSinkConfig(type="webhook", url=url))
        ctx = sink.endpoint._tls
        sink.close()
        return ctx

    first, second = context("https://a.example/"), context("https://b.example/")
    assert first is second
    assert first.verify_mode == ssl.CERT_REQUIRED and first.check_hostname
