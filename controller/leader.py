"""Leader election over a coordination.k8s.io/v1 Lease, with client-go's semantics.

Why a leader at all: every controller replica serves certificates and config (read-only work on
its own copy of the registry, safe on all of them), but writes to the API server (waypoint
Deployments, status) must have one author, or two replicas would fight over the same objects.

Theory of operation (client-go `tools/leaderelection`, defaults 15 s / 10 s / 2 s):

- Every `retry_period` a replica reads the Lease and decides (`Election.decide`, sans-I/O):
  - no Lease: create it, holding it;
  - held by us: renew it (renewTime = now);
  - held by another and not expired: wait;
  - held by another but expired, or released (no holder): take it over (acquireTime = now,
    leaseTransitions + 1).
- "Expired" is judged on OUR clock, never on the timestamps in the Lease: a record is expired
  when it has not changed for `lease_duration` since we first saw it in that state (client-go's
  observedTime). Clocks of different nodes may disagree; elapsed local time does not.
- Every write carries the resourceVersion we read (optimistic concurrency): if two replicas try
  to take an expired Lease at once, the API server accepts one and answers 409 Conflict to the
  other, which simply stays a follower and reads again.
- The leader steps down when it has not renewed successfully for `renew_deadline` (< duration):
  it stops leading before any other replica may consider the Lease expired, so two leaders never
  overlap as long as clocks tick at the same rate.
- On a clean stop the leader releases the Lease (holder "" and duration 1 s), so a successor takes
  over within one retry period instead of waiting out the whole duration.

`Election` is the decision core (lease record + now -> action, then the outcome fed back);
`LeaseElector` runs it in a thread against the API server.
"""

from __future__ import annotations

import datetime
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from kubernetes import client
from kubernetes.client.exceptions import ApiException

log = logging.getLogger("nodemesh.controller.leader")

LEASE_DURATION = 15.0
RENEW_DEADLINE = 10.0
RETRY_PERIOD = 2.0
LEASE_NAME = "nodemesh-controller"
REQUEST_TIMEOUT = (2.0, 5.0)  # (connect, read) seconds; below the renew deadline
CONFLICT = 409
NOT_FOUND = 404
_GROUP, _VERSION, _PLURAL = "coordination.k8s.io", "v1", "leases"


@dataclass(frozen=True)
class LeaseRecord:
    """What a Lease says about its holder (spec), and the version to write against."""

    holder: str  # spec.holderIdentity; "" when released
    duration: float  # spec.leaseDurationSeconds
    acquire_time: str  # spec.acquireTime (RFC 3339 MicroTime), as written
    renew_time: str  # spec.renewTime
    transitions: int  # spec.leaseTransitions
    resource_version: str = ""  # metadata.resourceVersion; "" for a record not yet stored

    def spec(self) -> dict:
        return {
            "holderIdentity": self.holder,
            "leaseDurationSeconds": max(1, round(self.duration)),
            "acquireTime": self.acquire_time,
            "renewTime": self.renew_time,
            "leaseTransitions": self.transitions,
        }

    @classmethod
    def from_lease(cls, lease: dict) -> LeaseRecord:
        spec = lease.get("spec") or {}
        return cls(
            holder=spec.get("holderIdentity") or "",
            duration=float(spec.get("leaseDurationSeconds") or 0),
            acquire_time=spec.get("acquireTime") or "",
            renew_time=spec.get("renewTime") or "",
            transitions=int(spec.get("leaseTransitions") or 0),
            resource_version=(lease.get("metadata") or {}).get("resourceVersion") or "",
        )


@dataclass(frozen=True)
class Wait:
    """Another replica holds a live Lease: do nothing until the next retry."""

    holder: str


@dataclass(frozen=True)
class Create:
    """No Lease exists: create it with this record."""

    record: LeaseRecord


@dataclass(frozen=True)
class Update:
    """Write this record over the version read (acquire or renew); 409 means someone was first."""

    record: LeaseRecord
    acquiring: bool  # True: taking the Lease over; False: renewing our own


Action = Wait | Create | Update


@dataclass(frozen=True)
class ElectionConfig:
    identity: str
    lease_duration: float = LEASE_DURATION
    renew_deadline: float = RENEW_DEADLINE
    retry_period: float = RETRY_PERIOD

    def __post_init__(self) -> None:
        if not self.identity:
            raise ValueError("leader election needs an identity: pass --leader-id (the pod name)")
        if not self.retry_period < self.renew_deadline < self.lease_duration:
            raise ValueError(
                "leader election needs retry period < renew deadline < lease duration, got "
                f"{self.retry_period} / {self.renew_deadline} / {self.lease_duration}"
            )


class Election:
    """The sans-I/O decision core: feed it what was read and what happened, ask what to do.

    `now` is a monotonic clock reading (seconds); `wall` the RFC 3339 time to write into the
    Lease (for humans and other implementations; decisions never read it back).
    """

    def __init__(self, config: ElectionConfig) -> None:
        self.config = config
        self._observed: LeaseRecord | None = None
        self._observed_at = 0.0
        self._renewed_at: float | None = None  # when we last acquired or renewed successfully

    def observe(self, record: LeaseRecord | None, now: float) -> None:
        """A fresh read of the Lease (None: it does not exist)."""
        if record is None or self._observed is None or _changed(self._observed, record):
            self._observed_at = now
        self._observed = record

    def decide(self, now: float, wall: str) -> Action:
        record, me = self._observed, self.config.identity
        if record is None:
            return Create(self._fresh(wall, transitions=0))
        if record.holder == me:
            renewed = replace(record, renew_time=wall, duration=self.config.lease_duration)
            return Update(renewed, acquiring=False)
        if record.holder and now < self._observed_at + record.duration:
            return Wait(record.holder)
        taken = self._fresh(wall, transitions=record.transitions + 1)
        return Update(replace(taken, resource_version=record.resource_version), acquiring=True)

    def succeeded(self, written: LeaseRecord, now: float) -> None:
        """The write was accepted; `written` carries the server's new resourceVersion."""
        self._observed, self._observed_at = written, now
        self._renewed_at = now

    def released(self) -> None:
        self._renewed_at = None

    def is_leader(self, now: float) -> bool:
        """Ours, and renewed within the renew deadline (after it, step down: see module doc)."""
        return (
            self._renewed_at is not None
            and self._observed is not None
            and self._observed.holder == self.config.identity
            and now - self._renewed_at < self.config.renew_deadline
        )

    def holder(self) -> str:
        return self._observed.holder if self._observed else ""

    def release(self, wall: str) -> LeaseRecord | None:
        """The record that gives the Lease up, if we hold it: no holder, 1 s duration."""
        record = self._observed
        if record is None or record.holder != self.config.identity:
            return None
        return replace(record, holder="", duration=1, renew_time=wall)

    def _fresh(self, wall: str, transitions: int) -> LeaseRecord:
        return LeaseRecord(
            holder=self.config.identity,
            duration=self.config.lease_duration,
            acquire_time=wall,
            renew_time=wall,
            transitions=transitions,
        )


def _changed(old: LeaseRecord, new: LeaseRecord) -> bool:
    """A different record (a renewal changes renewTime, so a live holder keeps it fresh)."""
    return (old.holder, old.renew_time, old.resource_version) != (
        new.holder,
        new.renew_time,
        new.resource_version,
    )


def micro_time(now: datetime.datetime | None = None) -> str:
    """RFC 3339 with microseconds, as the API server writes MicroTime."""
    now = now or datetime.datetime.now(datetime.UTC)
    return now.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# --- the I/O: one thread against the API server ---------------------------------------------------


class LeaseElector:
    """Runs an `Election` on Lease `namespace/name`; `is_leader()` may be asked from any thread.

    `on_change(leading)` is called from the elector's thread when leadership starts or stops.
    """

    def __init__(
        self,
        api_client: client.ApiClient,
        namespace: str,
        config: ElectionConfig,
        *,
        name: str = LEASE_NAME,
        on_change: Callable[[bool], None] = lambda leading: None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.api = client.CustomObjectsApi(api_client)
        self.namespace = namespace
        self.name = name
        self.election = Election(config)
        self.on_change = on_change
        self.clock = clock
        self._lock = threading.Lock()
        self._leading = False
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def is_leader(self) -> bool:
        with self._lock:
            return self._leading and self.election.is_leader(self.clock())

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="leader-election", daemon=True)
        self._thread.start()

    def stop(self, release: bool = True, timeout: float = 5.0) -> None:
        """Stop trying; a leader releases the Lease (unless `release` is False: a crash)."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout)
        if release:
            self._release()
        self._set_leading(False)

    def step(self) -> None:
        """One round (the thread runs one every retry period): read the Lease, then act on it."""
        if self.observe():
            self.act()

    def observe(self) -> bool:
        """Read the Lease into the election; False (logged) if it could not be read."""
        return self._guarded(lambda: self.election.observe(self._read(), self.clock()))

    def act(self) -> bool:
        """Decide on what was last read and write it; False if the write was refused or failed."""
        return self._guarded(self._decide_and_write)

    def _decide_and_write(self) -> None:
        action = self.election.decide(self.clock(), micro_time())
        if isinstance(action, Wait):
            return
        written = self._write(action)
        self.election.succeeded(written, self.clock())
        if isinstance(action, Create) or action.acquiring:
            log.info("leader election: %s now leads (%s)", self.election.config.identity, self)

    def _guarded(self, work: Callable[[], None]) -> bool:
        """Run one API step; a failure is logged and leadership lapses at the renew deadline."""
        try:
            work()
            return True
        except ApiException as exc:
            if exc.status == CONFLICT:
                log.info("leader election: %s was written by another replica first", self)
            else:
                log.warning(
                    "leader election on %s: API server answered %s %s", self, exc.status, exc.reason
                )
        except Exception as exc:  # the API server unreachable: keep trying
            log.warning("leader election on %s: %s: %s", self, type(exc).__name__, exc)
        finally:
            self._set_leading(self.election.is_leader(self.clock()))
        return False

    def __str__(self) -> str:
        return f"lease {self.namespace}/{self.name}"

    def _run(self) -> None:
        period = self.election.config.retry_period
        while not self._stopping.is_set():
            self.step()
            self._stopping.wait(period)

    def _set_leading(self, leading: bool) -> None:
        with self._lock:
            changed, self._leading = leading != self._leading, leading
        if changed:
            if not leading:
                log.warning(
                    "leader election: %s stopped leading %s", self.election.config.identity, self
                )
            self.on_change(leading)

    def _read(self) -> LeaseRecord | None:
        try:
            lease = self.api.get_namespaced_custom_object(
                _GROUP,
                _VERSION,
                self.namespace,
                _PLURAL,
                self.name,
                _request_timeout=REQUEST_TIMEOUT,
            )
        except ApiException as exc:
            if exc.status == NOT_FOUND:
                return None
            raise
        return LeaseRecord.from_lease(lease)

    def _write(self, action: Create | Update) -> LeaseRecord:
        record = action.record
        body = {
            "apiVersion": f"{_GROUP}/{_VERSION}",
            "kind": "Lease",
            "metadata": {"name": self.name, "namespace": self.namespace},
            "spec": record.spec(),
        }
        if isinstance(action, Create):
            stored = self.api.create_namespaced_custom_object(
                _GROUP, _VERSION, self.namespace, _PLURAL, body, _request_timeout=REQUEST_TIMEOUT
            )
        else:
            body["metadata"]["resourceVersion"] = record.resource_version
            stored = self.api.replace_namespaced_custom_object(
                _GROUP,
                _VERSION,
                self.namespace,
                _PLURAL,
                self.name,
                body,
                _request_timeout=REQUEST_TIMEOUT,
            )
        return LeaseRecord.from_lease(stored)

    def _release(self) -> None:
        record = self.election.release(micro_time())
        if record is None:
            return
        try:
            self._write(Update(record, acquiring=False))
            log.info("leader election: released %s", self)
        except Exception as exc:  # the successor waits out the duration instead
            log.warning("leader election: could not release %s: %s", self, exc)
        self.election.released()
