"""Container logs for alerts: the request, the cut, redaction, and refusals."""

from __future__ import annotations

import logging

import pytest

from kubewatch.errors import ApiError
from kubewatch.kube.logs import FORBIDDEN_PAUSE, MAX_LOG_CHARS, PodLogs


class FakeApi:
    """Answers like the API server's pods/log endpoint: bytes, or an error status."""

    def __init__(self, answer: bytes | ApiError) -> None:
        self.answer = answer
        self.calls: list[tuple[str, dict[str, str]]] = []

    def __call__(self, path: str, params: list[tuple[str, str]], read_timeout: float) -> bytes:
        self.calls.append((path, dict(params)))
        if isinstance(self.answer, ApiError):
            raise self.answer
        return self.answer


def test_the_last_lines_of_the_previous_container_redacted() -> None:
    api = FakeApi(b"starting\nDB_PASSWORD=hunter2 connecting\npanic: out of memory\n")
    text = PodLogs(get=api).fetch("shop", "web-1", "app", 20, previous=True)
    assert text == "starting\nDB_PASSWORD=<redacted> connecting\npanic: out of memory"
    [(path, params)] = api.calls
    assert path == "/api/v1/namespaces/shop/pods/web-1/log"
    assert params["container"] == "app" and params["tailLines"] == "20"
    assert params["previous"] == "true" and int(params["limitBytes"]) > 0


def test_a_long_log_keeps_its_end() -> None:
    api = FakeApi(("x" * 10_000 + "\nthe reason it died").encode())
    text = PodLogs(get=api).fetch("shop", "web-1", "app", 5, previous=False)
    assert text is not None and len(text) == MAX_LOG_CHARS and text.endswith("the reason it died")


def test_forbidden_is_one_warning_and_a_pause(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    api = FakeApi(ApiError(403, "Forbidden", 'cannot get resource "pods/log"'))
    logs = PodLogs(get=api, clock=lambda: now[0])
    with caplog.at_level(logging.DEBUG, logger="kubewatch.kube.logs"):
        assert logs.fetch("shop", "a", "app", 5, previous=False) is None
        assert logs.fetch("shop", "b", "app", 5, previous=False) is None
        now[0] += FORBIDDEN_PAUSE
        assert logs.fetch("shop", "c", "app", 5, previous=False) is None
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "pods/log is not allowed" in warnings[0].getMessage()
    assert len(api.calls) == 2  # paused in between


@pytest.mark.parametrize("status", [204, 400, 404, 500])
def test_no_kubelet_is_no_logs_and_a_warning(status: int, caplog: pytest.LogCaptureFixture) -> None:
    api = FakeApi(ApiError(status, "", 'container "app" in pod "web-1" is waiting to start'))
    logs = PodLogs(get=api)
    with caplog.at_level(logging.WARNING, logger="kubewatch.kube.logs"):
        assert logs.fetch("shop", "web-1", "app", 5, previous=True) is None
        assert logs.fetch("shop", "web-2", "app", 5, previous=True) is None
    [warning] = caplog.records
    assert "alerts go out without logs" in warning.getMessage()
    assert logs.failures == 2
