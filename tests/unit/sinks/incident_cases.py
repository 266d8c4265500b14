"""What every incident sink is checked for: how each answer maps to an error class.

Shared by the PagerDuty, Opsgenie and Alertmanager tests: 429 with ``Retry-After`` is
:class:`RateLimited` with that wait, any other 4xx :class:`PermanentError`, 5xx and a
refused connection :class:`RetryableError`; and no credential in any message.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from kubewatch.errors import DeliveryError, PermanentError, RateLimited, RetryableError
from tests.unit.sinks.test_sinks import Reply


@dataclass(frozen=True)
class Answer:
    reply: Reply
    error: type[DeliveryError]
    retry_after: float | None = None


ANSWERS = [
    pytest.param(Answer(Reply(429, {"Retry-After": "7"}), RateLimited, 7.0), id="429"),
    pytest.param(Answer(Reply(400, body=b'{"message":"bad"}'), PermanentError), id="400"),
    pytest.param(Answer(Reply(401), PermanentError), id="401"),
    pytest.param(Answer(Reply(403), PermanentError), id="403"),
    pytest.param(Answer(Reply(404), PermanentError), id="404"),
    pytest.param(Answer(Reply(500), RetryableError), id="500"),
    pytest.param(Answer(Reply(502), RetryableError), id="502"),
    pytest.param(Answer(Reply(503), RetryableError), id="503"),
]


def assert_error(error: pytest.ExceptionInfo[DeliveryError], answer: Answer) -> None:
    """The error is exactly the answer's class (a RateLimited is not "just" retryable)."""
    assert type(error.value) is answer.error, error.value
    if answer.retry_after is not None:
        assert isinstance(error.value, RateLimited)
        assert error.value.retry_after == answer.retry_after
