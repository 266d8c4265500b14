"""What a failed request to the API server means, as the errors callers branch on.

Its own module because the client and the watch stream both turn failures into these:
a connection that broke or went silent is :class:`ApiUnreachable` (try again later); an
answer is an :class:`~kubewatch.errors.ApiError` from its ``Status`` (410:
:class:`~kubewatch.errors.WatchExpired`), or one that says the answer was not JSON at all
(a proxy's page), never a decoding traceback.
"""

from __future__ import annotations

import orjson

from kubewatch.errors import ApiError, KubewatchError, WatchExpired

__all__ = ["ApiUnreachable", "describe", "not_json", "status_error"]


class ApiUnreachable(KubewatchError, ConnectionError):
    """The API server could not be reached, or a connection to it broke or went silent."""


def status_error(status: int, body: bytes) -> ApiError:
    """Turn an error response (a ``Status`` object, or anything) into the right ApiError."""
    reason, message = "", ""
    try:
        doc = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        doc = None
    if isinstance(doc, dict):
        reason = str(doc.get("reason") or "")
        message = str(doc.get("message") or "")
    else:
        message = body[:200].decode("utf-8", "replace")
    if status == 410:
        return WatchExpired(message or "resource version too old")
    return ApiError(status, reason, message)


def not_json(what: str, status: int, body: bytes, content_type: str = "") -> ApiError:
    """An answer that is not the JSON object asked for (an HTML page from a proxy, a
    login portal): an API error with the start of what came, never a decoding traceback."""
    start = " ".join(body[:200].decode("utf-8", "replace").split())
    kind = f" ({content_type})" if content_type else ""
    return ApiError(status, "NotJSON", f"{what}: the answer is not a JSON object{kind}: {start!r}")


def describe(error: BaseException) -> str:
    """A short cause for a log line: urllib3 nests the useful part in ``reason``."""
    reason = getattr(error, "reason", None)
    if isinstance(reason, BaseException):
        return f"{type(reason).__name__}: {reason}"
    return f"{type(error).__name__}: {error}"
