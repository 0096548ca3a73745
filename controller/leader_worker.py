"""The thread behind every leader-only writer of the controller in Kubernetes mode
(controller.waypoints_kube's deployer, controller.trust_bundle_kube's publisher).

Each keeps objects in the API server in line with the registry, and only the leader writes
(controller.leader). The controller's event loop must never wait on API writes, so it only
hands the latest wanted state over (`_hand_over`, from the writer's `reconcile`) and one thread
per writer carries it out. A round runs:

- when the state handed over differs from the one last carried out (compared by a fingerprint:
  a registry change that leaves this writer's part as it was costs nothing),
- when leadership is gained (`leadership_changed`): the previous leader's work is not trusted,
- at once after an unsettled round (a 409: an object changed under it, so re-read and re-plan),
- every `resync` seconds even if nothing changed, which repairs an object someone edited or
  deleted (the registry does not watch what the writer writes).

A failed round (API error, unreachable server) is logged with a hint and retried by the next
change or resync; the thread never dies of it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

from kubernetes.client.exceptions import ApiException

S = TypeVar("S")


class LeaderWorker(Generic[S]):
    """Subclasses say what one round does (`_work`), what identifies a state (`_fingerprint`)
    and which permissions a 401/403 points at (`_rbac_hint`)."""

    def __init__(
        self,
        name: str,
        is_leader: Callable[[], bool],
        resync: float,
        log: logging.Logger,
    ) -> None:
        self.name = name  # the prefix of every log line ("waypoint deployer"); the thread's too
        self.is_leader = is_leader
        self.resync = resync
        self._log = log
        self._lock = threading.Lock()
        self._state: S | None = None  # None: nothing handed over yet, nothing to do
        self._done: object = None  # fingerprint of the last state carried out without a conflict
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    # --- what a writer implements

    def _work(self, state: S) -> bool:
        """One round, raising on API errors; False if unsettled (re-plan at once)."""
        raise NotImplementedError

    def _fingerprint(self, state: S) -> object:
        """Equal for two states whose round would write the same."""
        raise NotImplementedError

    def _rbac_hint(self) -> str:
        """What to check when the API server answers 401 or 403."""
        return ""

    # --- the controller's side

    def leadership_changed(self, leading: bool) -> None:
        """controller.leader's on_change: a new leader syncs at once."""
        if leading:
            with self._lock:
                self._done = None
            self._wake.set()

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._run, name=self.name.replace(" ", "-"), daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _hand_over(self, state: S) -> None:
        with self._lock:
            self._state = state
        self._wake.set()

    # --- the thread

    def _run(self) -> None:
        while not self._stopping.is_set():
            woken = self._wake.wait(self.resync)  # False: the resync period passed quietly
            self._wake.clear()
            if self._stopping.is_set():
                return
            with self._lock:
                state, done = self._state, self._done
            if state is None or not self.is_leader():
                continue
            fingerprint = self._fingerprint(state)
            if fingerprint == done and woken:
                continue  # a registry change that left this writer's part as it was
            self._round(state, fingerprint)

    def _round(self, state: S, fingerprint: object) -> None:
        try:
            settled = self._work(state)
        except ApiException as exc:
            self._log.warning(
                "%s: API server answered %s %s; retrying in %.0f s%s",
                self.name,
                exc.status,
                exc.reason,
                self.resync,
                self._rbac_hint() if exc.status in (401, 403) else "",
            )
            return
        except Exception as exc:  # unreachable API server: the next change or resync retries
            self._log.warning("%s: %s: %s", self.name, type(exc).__name__, exc)
            return
        if not settled:
            self._wake.set()
            return
        with self._lock:
            self._done = fingerprint
