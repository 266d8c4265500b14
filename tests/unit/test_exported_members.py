"""The public API is small and pinned: a change here is a change of contract."""

import kubewatch


def test_exported_members() -> None:
    assert sorted(kubewatch.__all__) == [
        "ApiError",
        "Change",
        "ConfigError",
        "DeliveryError",
        "Event",
        "EventType",
        "KubewatchError",
        "PermanentError",
        "RateLimited",
        "RetryableError",
        "Sink",
        "WatchExpired",
        "__version__",
    ]
    for name in kubewatch.__all__:
        assert hasattr(kubewatch, name)
