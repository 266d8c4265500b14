"""Operator mode: Notifier and ClusterSink custom resources, checked and compiled into the
same resources, sinks and routes the config file declares.

:mod:`.sinks` (sinks whose credentials come from Secrets), :mod:`.models` (the resources'
spec and status), :mod:`.crds` (their CustomResourceDefinitions, generated from the models),
:mod:`.addresses` (where a tenant's sink may point), :mod:`.reconcile` (spec + Secrets →
compiled entries or a reason), :mod:`.status` (the status that says so, written only when
it changed).
"""
