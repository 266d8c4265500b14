"""Health detectors: what is failing in one object, read from its status alone.

Pure functions over the object dict the informer hands over (no clock, no I/O, no state):
:func:`assess` returns an :class:`Assessment` — the failures found now and the parts of the
object that are healthy now. Whether a failure is new, a repeat, a reminder or recovered is
the tracker's business (:mod:`kubewatch.watch.tracker`).

What each kind reports:

==========  ===================================================  ==========================
kind        failure (alert ``reason``)                            healthy
==========  ===================================================  ==========================
Pod         per container: ``state.terminated.reason``, else      the container is running
            ``state.waiting.reason``, else                        and ready (an init
            ``lastState.terminated.reason``, when listed in       container: finished with
            ``reasons``                                           exit code 0)
Job         condition ``Failed=True`` (its reason, e.g.           no such condition
            ``BackoffLimitExceeded``)
Deployment  ``Progressing=False`` with ``ProgressDeadlineExceeded``;  no such condition
            ``Available=False`` once the rollout is complete
            (``Progressing`` reason ``NewReplicaSetAvailable``):
            replicas lost after a rollout, not a rollout under way
Node        ``Ready=False`` or ``Unknown`` (``NotReady``);         no such condition
            ``MemoryPressure``/``DiskPressure``/``PIDPressure=True``
==========  ===================================================  ==========================

A failure has a *family*, the reason part of its identity: a crash loop alternates between
``CrashLoopBackOff`` and ``Error``, an image pull between ``ErrImagePull`` and
``ImagePullBackOff``; each pair is one failure, reported once. A container waiting in
``CrashLoopBackOff`` whose last termination has a specific reason (``OOMKilled``) reports
that reason: it says why it loops.

A failure is *ongoing* when the object says so now (a waiting or terminated state, a
condition). A container's last termination while it runs again is only a record of the
past: it fires when it is new and does not hold back recovery.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from kubewatch.timefmt import parse_time, rfc3339

__all__ = ["FAMILIES", "Assessment", "Finding", "assess"]

FAMILIES = {"Error": "CrashLoopBackOff", "ErrImagePull": "ImagePullBackOff"}
"""Reasons that alternate with another one during one failure → the reason they share."""

GENERIC = frozenset({"Error", "CrashLoopBackOff"})
"""Reasons that say a container keeps failing but not why: a termination's own reason wins."""

OBJECT = ""
"""The subject of a failure of the object itself (not of one of its containers)."""

NODE_PRESSURE = ("MemoryPressure", "DiskPressure", "PIDPressure")


@dataclass(frozen=True, slots=True)
class Finding:
    """One failure of one subject (a container's name, or :data:`OBJECT`)."""

    subject: str
    reason: str
    ongoing: bool = True
    exit_code: int | None = None
    restart_count: int | None = None
    since: str | None = None
    """When the object says it began (a termination's ``finishedAt``, a condition's
    ``lastTransitionTime``), RFC 3339 UTC; ``None`` when it does not say."""
    message: str = ""
    previous: bool = False
    """The container restarted since: its logs are those of the previous instance."""

    @property
    def family(self) -> str:
        return FAMILIES.get(self.reason, self.reason)


@dataclass(frozen=True, slots=True)
class Assessment:
    """What one object says about its health now."""

    findings: tuple[Finding, ...] = ()
    healthy: frozenset[str] = frozenset({OBJECT})
    """Subjects that are healthy now (containers running and ready; :data:`OBJECT` for
    kinds whose health is the absence of a failure)."""


def assess(kind: str, obj: Mapping[str, Any], reasons: Iterable[str] = ()) -> Assessment:
    """The health of ``obj`` of ``kind`` (``reasons``: the Pod container reasons that count)."""
    status = _mapping(obj.get("status"))
    if kind == "Pod":
        return _pod(status, frozenset(reasons))
    conditions = {
        _text(c.get("type")): c for c in _list(status.get("conditions")) if isinstance(c, Mapping)
    }
    if kind == "Job":
        return Assessment(tuple(_job(conditions)))
    if kind == "Deployment":
        return Assessment(tuple(_deployment(status, conditions)))
    if kind == "Node":
        return Assessment(tuple(_node(conditions)))
    return Assessment()


def _pod(status: Mapping[str, Any], reasons: frozenset[str]) -> Assessment:
    findings: list[Finding] = []
    healthy: set[str] = set()
    for init, key in ((True, "initContainerStatuses"), (False, "containerStatuses")):
        for cs in _list(status.get(key)):
            if not isinstance(cs, Mapping):
                continue
            name = _text(cs.get("name"))
            state = _mapping(cs.get("state"))
            running = state.get("running") is not None
            terminated = _mapping(state.get("terminated"))
            if init:
                well = (running and cs.get("ready") is True) or (
                    bool(terminated) and terminated.get("exitCode") == 0
                )
            else:
                well = running and cs.get("ready") is True
            if well:
                healthy.add(name)
            finding = _container(name, cs, well, reasons)
            if finding is not None:
                findings.append(finding)
    return Assessment(tuple(findings), frozenset(healthy))


def _container(
    name: str, cs: Mapping[str, Any], well: bool, reasons: frozenset[str]
) -> Finding | None:
    state = _mapping(cs.get("state"))
    terminated = _mapping(state.get("terminated"))
    waiting = _mapping(state.get("waiting"))
    last = _mapping(_mapping(cs.get("lastState")).get("terminated"))
    restarts = _int(cs.get("restartCount"))
    t_reason, w_reason, l_reason = (
        _text(terminated.get("reason")),
        _text(waiting.get("reason")),
        _text(last.get("reason")),
    )
    if t_reason in reasons:
        return Finding(
            name,
            t_reason,
            exit_code=_int(terminated.get("exitCode")),
            restart_count=restarts,
            since=_time(terminated.get("finishedAt")),
            message=_text(terminated.get("message")),
        )
    if w_reason in reasons:
        reason = l_reason if l_reason in reasons and l_reason not in GENERIC else w_reason
        return Finding(
            name,
            reason,
            exit_code=_int(last.get("exitCode")),
            restart_count=restarts,
            since=_time(last.get("finishedAt")),
            message=_text(waiting.get("message")),
            previous=bool(last),
        )
    if l_reason in reasons:
        return Finding(
            name,
            l_reason,
            ongoing=not well,
            exit_code=_int(last.get("exitCode")),
            restart_count=restarts,
            since=_time(last.get("finishedAt")),
            message=_text(last.get("message")),
            previous=True,
        )
    return None


def _job(conditions: Mapping[str, Mapping[str, Any]]) -> Iterable[Finding]:
    failed = conditions.get("Failed")
    if failed is not None and failed.get("status") == "True":
        yield _condition_finding(failed, _text(failed.get("reason")) or "Failed")


def _deployment(
    status: Mapping[str, Any], conditions: Mapping[str, Mapping[str, Any]]
) -> Iterable[Finding]:
    progressing = conditions.get("Progressing") or {}
    if progressing.get("status") == "False" and progressing.get("reason") == (
        "ProgressDeadlineExceeded"
    ):
        yield _condition_finding(progressing, "ProgressDeadlineExceeded")
    available = conditions.get("Available") or {}
    if (
        available.get("status") == "False"
        and progressing.get("status") == "True"
        and progressing.get("reason") == "NewReplicaSetAvailable"
    ):
        finding = _condition_finding(
            available, _text(available.get("reason")) or "MinimumReplicasUnavailable"
        )
        unavailable = _int(status.get("unavailableReplicas"))
        if unavailable:
            message = f"{unavailable} replica(s) unavailable"
            if finding.message:
                message += f": {finding.message}"
            finding = Finding(finding.subject, finding.reason, since=finding.since, message=message)
        yield finding


def _node(conditions: Mapping[str, Mapping[str, Any]]) -> Iterable[Finding]:
    ready = conditions.get("Ready")
    if ready is not None and ready.get("status") in ("False", "Unknown"):
        finding = _condition_finding(ready, "NotReady")
        prefix = f"Ready is {ready.get('status')}"
        message = f"{prefix}: {finding.message}" if finding.message else prefix
        yield Finding(OBJECT, "NotReady", since=finding.since, message=message)
    for kind in NODE_PRESSURE:
        condition = conditions.get(kind)
        if condition is not None and condition.get("status") == "True":
            yield _condition_finding(condition, kind)


def _condition_finding(condition: Mapping[str, Any], reason: str) -> Finding:
    return Finding(
        OBJECT,
        reason,
        since=_time(condition.get("lastTransitionTime")),
        message=_text(condition.get("message")),
    )


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _time(value: Any) -> str | None:
    """RFC 3339 UTC with milliseconds, like every time in an event."""
    parsed = parse_time(value)
    return rfc3339(parsed) if parsed is not None else None
