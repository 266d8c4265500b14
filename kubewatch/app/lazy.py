"""What the app loads only when the configuration asks for it: operator mode (the Notifier
controller, its models and reconcile) costs start-up time and memory a file-only run
should not pay."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kubewatch.app.core import App
    from kubewatch.tenancy.controller import Controller

__all__ = ["operator_mode"]


def operator_mode(app: App, controller: Controller | None) -> Controller | None:
    """The controller ``app.config`` asks for, given the running one (None at a start);
    see :func:`kubewatch.app.tenants.tenancy`. Nothing is imported while it stays off."""
    if controller is None and not app.config.tenancy.enabled:
        return None
    from kubewatch.app.tenants import tenancy

    return tenancy(app, controller)
