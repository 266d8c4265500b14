"""One ``coordination.k8s.io/v1`` Lease as a lock: read, judged and written for a candidate.

Its own module because the record and its arbiter (the API server's optimistic
concurrency: every PUT carries the resourceVersion last read or written, so of two
candidates writing at once one gets 409 Conflict) are one job, and when to campaign,
lead or step down is another (:mod:`.leader`). :class:`Lease` knows nothing of
callbacks or of being leader; it answers one question per attempt (:class:`Outcome`).

Every request runs in a thread of its own and is abandoned at the attempt's deadline
(:func:`call_before`): the API client's read timeout is far longer than a renew deadline,
and a hung API server must never keep a leader past its deadline. Expiry is measured by
the candidate's own clock from when it saw the record change, never from the record's
timestamps (see :mod:`.leader`).
"""

from __future__ import annotations

import enum
import logging
import math
import threading
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

from kubewatch.errors import ApiError
from kubewatch.kube.client import JsonApi
from kubewatch.kube.failures import ApiUnreachable
from kubewatch.timefmt import micro_time

__all__ = ["LEASE_API", "CallTimeout", "Lease", "Outcome", "call_before"]

log = logging.getLogger("kubewatch.kube.leader")  # one story with the elector's lines

LEASE_API = "/apis/coordination.k8s.io/v1"

_T = TypeVar("_T")


class Outcome(enum.Enum):
    """What one acquire-or-renew attempt found out."""

    HELD = "held"
    """We hold the Lease, as of the moment the successful write was sent."""
    TAKEN = "taken"
    """Another holder's claim is current: the Lease is not ours."""
    FAILED = "failed"
    """Nothing was learnt (an error, a timeout, a lost race): try again later."""


class CallTimeout(Exception):
    """A request did not answer before its deadline; it goes on in its own thread."""


def call_before(request: Callable[[], _T], until: float, clock: Callable[[], float]) -> _T:
    """Run ``request`` in a thread of its own and wait until ``until`` (``clock``) at most.

    A request still running at the deadline is abandoned (its thread ends with it, its
    answer is ignored): :class:`CallTimeout`.
    """
    timeout = until - clock()
    if timeout <= 0:
        raise CallTimeout("no time left before the deadline")
    result: list[_T] = []
    error: list[BaseException] = []
    done = threading.Event()

    def target() -> None:
        try:
            result.append(request())
        except BaseException as e:
            error.append(e)
        finally:
            done.set()

    threading.Thread(target=target, name="kubewatch-lease-request", daemon=True).start()
    if not done.wait(timeout):
        raise CallTimeout(f"the API server did not answer within {timeout:.1f}s")
    if error:
        raise error[0]
    return result[0]


def _spec(lease: dict[str, Any] | None) -> dict[str, Any]:
    spec = (lease or {}).get("spec")
    return spec if isinstance(spec, dict) else {}


class Lease:
    """The Lease ``namespace/name`` as ``identity`` sees it: the record last read or
    written (its resourceVersion is the precondition of the next PUT) and when its spec
    was first observed (what expiry is measured from).

    ``duration`` is the claim written (``leaseDurationSeconds``, rounded up so that others
    never wait less than we assume). ``on_holder(holder)`` is called whenever a read
    shows a record that changed. Used by one thread only (the elector's).
    """

    def __init__(
        self,
        client: JsonApi,
        *,
        identity: str,
        namespace: str,
        name: str,
        duration: float,
        clock: Callable[[], float],
        wall: Callable[[], datetime],
        on_holder: Callable[[str], None],
    ) -> None:
        self.identity = identity
        self.namespace = namespace
        self.name = name
        self.description = f"{namespace}/{name}"
        """``namespace/name`` of the Lease, for log lines."""
        self._client = client
        self._collection = f"{LEASE_API}/namespaces/{namespace}/leases"
        self._path = f"{self._collection}/{name}"
        self._duration_seconds = max(1, math.ceil(duration))
        self._clock = clock
        self._wall = wall
        self._on_holder = on_holder
        self._lease: dict[str, Any] | None = None
        self._observed_spec: dict[str, Any] | None = None
        self._observed_at = -math.inf
        self.how = ""
        """How the last acquisition happened, for the "became leader" line."""

    @property
    def holder(self) -> str | None:
        """``holderIdentity`` of the record last read or written; None: none yet."""
        if self._lease is None:
            return None
        return str(_spec(self._lease).get("holderIdentity") or "")

    def try_acquire_or_renew(self, until: float, *, leading: bool) -> Outcome:
        """client-go's ``tryAcquireOrRenew``: a fast renewal on our last write's version
        while ``leading``; otherwise read, judge, and take the Lease if free, expired or
        ours. Every request is bounded by ``until`` (clock); raises ApiError,
        ApiUnreachable or CallTimeout when nothing was learnt."""
        now = micro_time(self._wall())
        spec: dict[str, Any] = {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": self._duration_seconds,
            "acquireTime": now,
            "renewTime": now,
            "leaseTransitions": 0,
        }
        # 1. Fast path: the leader overwrites its own last write; a 409 (someone else wrote
        # meanwhile) or a 404 (someone deleted it) sends us down the slow path to see.
        last = self._lease
        if leading and last is not None:
            mine = _spec(last)
            spec["acquireTime"] = mine.get("acquireTime") or now
            spec["leaseTransitions"] = int(mine.get("leaseTransitions") or 0)
            try:
                written = call_before(lambda: self._put(last, spec), until, self._clock)
            except ApiError as e:
                if e.status not in (404, 409):
                    raise
                log.debug("lease %s: renewal refused (%s), reading the lease", self.description, e)
            else:
                self._wrote(written)
                return Outcome.HELD
        # 2. Read (absent: create).
        try:
            lease = call_before(lambda: self._client.get_json(self._path), until, self._clock)
        except ApiError as e:
            if e.status != 404:
                raise
            return self._create(spec, until)
        self._observe(lease)
        current = _spec(lease)
        holder = str(current.get("holderIdentity") or "")
        # 3. Judge: a current claim of someone else's is respected.
        if holder and holder != self.identity and not self._expired(current):
            return Outcome.TAKEN
        if holder == self.identity:
            spec["acquireTime"] = current.get("acquireTime") or now
            spec["leaseTransitions"] = int(current.get("leaseTransitions") or 0)
        else:
            spec["leaseTransitions"] = int(current.get("leaseTransitions") or 0) + 1
        # 4. Write on the version just read: 409 means another candidate won the race.
        try:
            written = call_before(lambda: self._put(lease, spec), until, self._clock)
        except ApiError as e:
            if e.status != 409:
                raise
            log.debug("lease %s: another candidate wrote first", self.description)
            return Outcome.FAILED
        if holder == self.identity:
            self.how = "the lease already named us"
        elif holder:
            self.how = f"{holder}'s claim expired"
        else:
            self.how = "the lease was released"
        self._wrote(written)
        return Outcome.HELD

    def _create(self, spec: dict[str, Any], until: float) -> Outcome:
        body = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": self.name, "namespace": self.namespace},
            "spec": spec,
        }
        try:
            created = call_before(
                lambda: self._client.request_json("POST", self._collection, body),
                until,
                self._clock,
            )
        except ApiError as e:
            if e.status != 409:
                raise
            log.debug("lease %s: created by another candidate first", self.description)
            return Outcome.FAILED
        self.how = "created the lease"
        self._wrote(created)
        return Outcome.HELD

    def release(self, until: float) -> bool:
        """Give the Lease up on our last write's version (a 409: it is not ours any
        more); True when released. Failures are logged, never raised."""
        lease = self._lease
        if lease is None:
            return False
        mine = _spec(lease)
        now = micro_time(self._wall())
        spec = {
            "holderIdentity": "",
            "leaseDurationSeconds": 1,
            "acquireTime": now,
            "renewTime": now,
            "leaseTransitions": int(mine.get("leaseTransitions") or 0),
        }
        try:
            written = call_before(lambda: self._put(lease, spec), until, self._clock)
        except ApiError as e:
            if e.status == 409:
                log.info("lease %s: not released: someone else wrote it", self.description)
            else:
                log.warning("lease %s: could not release: %s", self.description, e)
            return False
        except (ApiUnreachable, CallTimeout) as e:
            log.warning("lease %s: could not release: %s", self.description, e)
            return False
        except Exception:
            log.exception("lease %s: could not release", self.description)
            return False
        self._wrote(written)
        return True

    def _put(self, lease: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any]:
        """PUT ``lease`` with ``spec``; its metadata (resourceVersion) is the precondition."""
        body = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": lease.get("metadata") or {},
            "spec": spec,
        }
        return self._client.request_json("PUT", self._path, body)

    def _expired(self, spec: dict[str, Any]) -> bool:
        """The record has not changed for its leaseDurationSeconds, by our clock."""
        try:
            duration = float(spec.get("leaseDurationSeconds") or 0)
        except (TypeError, ValueError):
            duration = 0.0
        return self._clock() >= self._observed_at + duration

    def _observe(self, lease: dict[str, Any]) -> None:
        """Note a Lease read from the server; the expiry clock restarts when its record
        changed since we last saw it."""
        self._lease = lease
        spec = _spec(lease)
        if spec != self._observed_spec:
            self._observed_spec = spec
            self._observed_at = self._clock()
            self._on_holder(str(spec.get("holderIdentity") or ""))

    def _wrote(self, lease: dict[str, Any]) -> None:
        """Note our own successful write."""
        self._lease = lease
        self._observed_spec = _spec(lease)
        self._observed_at = self._clock()
