"""Leader election on a ``coordination.k8s.io/v1`` Lease, after client-go's ``leaderelection``.

Several kubewatch replicas may run; the one holding the Lease is the leader and the only
one that should watch and deliver. :class:`LeaderElector` decides which, with the Lease
as the lock and the API server's optimistic concurrency (``metadata.resourceVersion`` on
every PUT) as the arbiter: when two candidates write at once, one gets 409 Conflict.
This module campaigns, leads and steps down; reading, judging and writing the record is
:mod:`.lease`'s job.

**The record.** ``spec.holderIdentity`` (who holds it; empty: released),
``leaseDurationSeconds`` (how long a claim lasts without renewal), ``acquireTime`` and
``renewTime`` (MicroTime, ``2026-11-26T22:10:51.123456Z``, for humans only) and
``leaseTransitions`` (incremented at every change of holder).

**Time.** No remote timestamp is ever compared with a local clock: clocks of different
machines disagree. As in client-go, a candidate notes *its own* monotonic time whenever it
sees the record change, and considers the claim expired once the record has not changed
for ``leaseDurationSeconds`` by that clock. So a new candidate always waits a full
``leaseDuration`` before taking over an unreleased Lease, whatever its ``renewTime``.

**What is guaranteed.** With clocks that run at the same rate, at most one replica is
leader at any moment (``is_leader`` and the callbacks):

- The leader renews every ``retryPeriod``. It counts its claim from the moment it *sent*
  its last successful write (never later than the server's or anyone's observation of
  it) and steps down when ``renewDeadline`` has passed since then without another
  success — even while a request hangs: each request runs in a helper thread and is
  abandoned at the deadline. A standby may take over only ``leaseDuration`` after it last
  saw the record change, i.e. after the leader has stepped down; the difference
  (``leaseDuration - renewDeadline``, 5 s by default) is the margin for request latency,
  clock-rate differences and stopping.
- A leader that finds another holder in the Lease steps down at once.
- There is no fencing (as in client-go): a process frozen for longer than the margin (a
  VM pause, SIGSTOP) may act for an instant after it resumes, before it notices.

**Handover.** :meth:`LeaderElector.stop` steps down (``on_stopped_leading``) and then
releases the Lease (client-go's ``ReleaseOnCancel``): ``holderIdentity`` empty and
``leaseDurationSeconds`` 1, so a standby takes over at its next attempt instead of
waiting for the claim to expire. The release is a PUT on the resourceVersion of the
leader's last write, so it can never clobber a claim someone else made meanwhile.
``stop(release=False)`` leaves the Lease to expire, as a crash would.

**Callbacks** run in the elector's thread, in pairs: ``on_started_leading`` when the
Lease is won, ``on_stopped_leading`` when it is lost or on stop. They must return
quickly: start the work in other threads, do not run it in the callback (renewals wait
for them). An exception in a callback is logged and does not stop the elector.
"""

from __future__ import annotations

import logging
import math
import os
import random
import threading
import time
from collections.abc import Callable
from datetime import datetime, timezone

from kubewatch.config import LeaderElectionConfig
from kubewatch.errors import ApiError
from kubewatch.kube.client import JsonApi
from kubewatch.kube.failures import ApiUnreachable
from kubewatch.kube.lease import CallTimeout, Lease, Outcome
from kubewatch.kube.recorder import EventRecorder
from kubewatch.timefmt import micro_time

__all__ = ["LeaderElector", "lease_namespace", "micro_time"]

log = logging.getLogger(__name__)

JITTER = 0.2
"""Up to 20 % is added at random to each wait between acquire attempts, so standbys
started together do not query the Lease in lockstep (client-go adds up to 120 %)."""


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


def lease_namespace(config: LeaderElectionConfig) -> str:
    """Where the Lease lives: ``config.namespace``, else ``$POD_NAMESPACE``, else
    ``default``."""
    return config.namespace or os.environ.get("POD_NAMESPACE") or "default"


class LeaderElector:
    """Campaigns for, holds and renews one Lease; see the module docstring.

    ``identity`` names this replica in ``holderIdentity`` (the Pod name: unique among the
    candidates, and the same after a restart in place, so a restarted leader takes its
    own Lease back at once). ``namespace`` is the Lease's (see :func:`lease_namespace`).
    ``clock`` is monotonic seconds, ``wall`` the current UTC time (only written, never
    compared), ``sleep(seconds)`` waits between attempts (default: a wait that
    :meth:`stop` interrupts; an injected one must return when :meth:`stop` was called, as
    a fake clock's does at once). ``recorder``, when given, records ``LeaderElected`` and
    ``LeadershipLost`` Events.
    """

    def __init__(
        self,
        client: JsonApi,
        config: LeaderElectionConfig,
        *,
        identity: str,
        namespace: str,
        on_started_leading: Callable[[], None],
        on_stopped_leading: Callable[[], None],
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], datetime] = _utc_now,
        sleep: Callable[[float], object] | None = None,
        recorder: EventRecorder | None = None,
    ) -> None:
        if not identity:
            raise ValueError("a leader election identity must not be empty")
        self.identity = identity
        self.namespace = namespace
        self.lease_name = config.lease_name
        self._lease = Lease(
            client,
            identity=identity,
            namespace=namespace,
            name=config.lease_name,
            duration=config.lease_duration,
            clock=clock,
            wall=wall,
            on_holder=self._report_holder,
        )
        self.description = self._lease.description
        """``namespace/name`` of the Lease, for log lines."""
        self._renew_deadline = config.renew_deadline
        self._retry_period = config.retry_period
        self._on_started = on_started_leading
        self._on_stopped = on_stopped_leading
        self._clock = clock
        self._wall = wall
        self._recorder = recorder
        self._stopped = threading.Event()
        self._sleep: Callable[[float], object] = sleep if sleep is not None else self._stopped.wait
        self._done = threading.Event()
        self._lock = threading.Lock()
        # Under _lock (read by other threads): _leading is True from just before
        # on_started_leading to just before on_stopped_leading; _renewed_at is clock() when
        # the last successful write of ours was sent (-inf: none); while _leading, it is
        # within renew_deadline of now, except between a missed deadline and step-down.
        self._leading = False
        self._renewed_at = -math.inf
        self._leader = ""
        # Run thread only: _lease (the record), and the rest below.
        self._release_on_stop = True
        self._running = False
        self._run_thread: int | None = None
        self._failing = False  # the last attempt failed (its error was logged at WARNING)

    # -- state --------------------------------------------------------------------------

    @property
    def is_leader(self) -> bool:
        """True while this replica holds the Lease by its own clock: it has started
        leading and its last successful renewal was sent less than ``renewDeadline`` ago."""
        with self._lock:
            return self._leading and self._clock() < self._renewed_at + self._renew_deadline

    @property
    def leader(self) -> str:
        """The holder last seen in the Lease (``""``: none seen, or released);
        informational."""
        with self._lock:
            return self._leader

    # -- lifecycle ----------------------------------------------------------------------

    def start(self) -> threading.Thread:
        """:meth:`run` in a new daemon thread named ``kubewatch-leader-election``."""
        thread = threading.Thread(target=self.run, name="kubewatch-leader-election", daemon=True)
        thread.start()
        return thread

    def run(self) -> None:
        """Campaign, lead, campaign again when leadership is lost… until :meth:`stop`.

        Blocks; call it in a thread of its own. Returns at once if already stopped; may
        be called once.
        """
        with self._lock:
            if self._running:
                raise RuntimeError("LeaderElector.run() was already called")
            self._running = True
            self._run_thread = threading.get_ident()
        try:
            while not self._stopped.is_set():
                if self._acquire():
                    self._renew_until_lost()
        finally:
            try:
                self._finish()
            finally:
                self._done.set()

    def stop(self, *, release: bool = True, timeout: float | None = None) -> bool:
        """Stop campaigning; a leader steps down (``on_stopped_leading``) and, with
        ``release``, then releases the Lease so that a standby takes over at once.

        ``release=False`` leaves the Lease to expire after ``leaseDuration``, as a crash
        would. Waits up to ``timeout`` seconds (None: as long as it takes; at most about
        two ``renewDeadline``\\ s plus the callback) for :meth:`run` to return, unless
        called from the elector's own thread (a callback); True when it has returned or
        never ran. Idempotent.
        """
        with self._lock:
            if not self._stopped.is_set():
                self._release_on_stop = release
            self._stopped.set()
            running = self._running
            own_thread = self._run_thread == threading.get_ident()
        if not running or own_thread:
            return not running or self._done.is_set()
        return self._done.wait(timeout)

    # -- the loops -----------------------------------------------------------------------

    def _wait(self, seconds: float) -> bool:
        """Sleep ``seconds`` unless stopped; True when stopped."""
        if self._stopped.is_set():
            return True
        self._sleep(seconds)
        return self._stopped.is_set()

    def _acquire(self) -> bool:
        """Try at once, then every retryPeriod (+ jitter) until the Lease is ours (True)
        or stop (False)."""
        log.info("lease %s: campaigning for leadership as %s", self.description, self.identity)
        while not self._stopped.is_set():
            if self._attempt(self._clock() + self._renew_deadline) is Outcome.HELD:
                if self._stopped.is_set():
                    return True  # _finish steps down and releases
                self._start_leading()
                return True
            if self._wait(self._retry_period * (1.0 + JITTER * random.random())):
                return False
        return False

    def _renew_until_lost(self) -> None:
        """Renew every retryPeriod; step down on another holder or a missed deadline.
        Returns still leading only when stopped."""
        while not self._wait(self._retry_period):
            deadline = self._renewed_at + self._renew_deadline
            outcome = Outcome.FAILED
            if self._clock() < deadline:
                outcome = self._attempt(deadline)
            if outcome is Outcome.HELD:
                continue
            if outcome is Outcome.TAKEN:
                self._stop_leading(f"the lease is held by {self._leader or 'someone else'}")
                return
            if self._clock() >= deadline:
                self._stop_leading(
                    f"could not renew the lease within renewDeadline ({self._renew_deadline:g}s)"
                )
                return

    def _finish(self) -> None:
        """On the way out of run(): step down if leading, then release if asked to."""
        with self._lock:
            leading = self._leading
            holding = self._lease.holder is not None and self._clock() < (
                self._renewed_at + self._renew_deadline
            )
            release = self._release_on_stop
        if leading:
            self._stop_leading("stopping")
        if not (release and holding and self._lease.holder == self.identity):
            return
        if self._lease.release(self._clock() + self._renew_deadline):
            with self._lock:
                self._leader = ""
            log.info("lease %s: released", self.description)

    # -- transitions --------------------------------------------------------------------

    def _start_leading(self) -> None:
        with self._lock:
            self._leading = True
            self._leader = self.identity
        how = self._lease.how
        log.info("lease %s: became leader (%s): %s", self.description, self.identity, how)
        if self._recorder is not None:
            self._recorder.normal(
                "LeaderElected", f"{self.identity} became the leader (lease {self.description})"
            )
        try:
            self._on_started()
        except Exception:
            log.exception("lease %s: on_started_leading failed", self.description)

    def _stop_leading(self, reason: str) -> None:
        with self._lock:
            was_leading = self._leading
            self._leading = False
        if not was_leading:
            return
        log.info("lease %s: lost leadership (%s): %s", self.description, self.identity, reason)
        if self._recorder is not None:
            message = f"{self.identity} stopped leading (lease {self.description}): {reason}"
            if reason == "stopping":
                self._recorder.normal("LeadershipLost", message)
            else:
                self._recorder.warning("LeadershipLost", message)
        try:
            self._on_stopped()
        except Exception:
            log.exception("lease %s: on_stopped_leading failed", self.description)

    # -- one attempt ---------------------------------------------------------------------

    def _attempt(self, until: float) -> Outcome:
        """One acquire-or-renew with every request bounded by ``until`` (clock). A claim
        counts from the moment the attempt began, never later than anyone's observation
        of the write."""
        sent = self._clock()
        with self._lock:
            leading = self._leading
        try:
            outcome = self._lease.try_acquire_or_renew(until, leading=leading)
        except (ApiError, ApiUnreachable, CallTimeout) as e:
            self._note_failure(e)
            return Outcome.FAILED
        except Exception as e:  # a bug or an unexpected answer: never kill the elector
            log.exception("lease %s: unexpected error", self.description)
            self._note_failure(e)
            return Outcome.FAILED
        if outcome is Outcome.HELD:
            with self._lock:
                self._renewed_at = sent
        if outcome is not Outcome.FAILED and self._failing:
            self._failing = False
            log.info("lease %s: the API server answers again", self.description)
        return outcome

    def _note_failure(self, error: Exception) -> None:
        """The first failure in a row at WARNING (the leader's at every attempt: each
        brings the deadline closer), the rest at DEBUG."""
        with self._lock:
            leading = self._leading
        if leading or not self._failing:
            log.warning("lease %s: %s", self.description, error)
        else:
            log.debug("lease %s: %s", self.description, error)
        self._failing = True

    def _report_holder(self, holder: str) -> None:
        with self._lock:
            if holder == self._leader:
                return
            self._leader = holder
        if holder and holder != self.identity:
            log.info("lease %s: leader is %s", self.description, holder)
        elif not holder:
            log.info("lease %s: released by its holder, no leader", self.description)
