"""One container of a pod: its process, restart policy with back-off, probes and log file.

The process is started through nodemesh.local.launch, which joins the container's cgroup and the
pod's namespaces and then execs the command, so the pid we wait on is the application itself.
Restart back-off doubles from 1 s up to 30 s (Kubernetes uses 10 s to 5 min; a local cluster wants
faster feedback) and resets once a run has lasted 60 s.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from nodemesh.local import cgroups
from nodemesh.local.launch import launch_argv
from nodemesh.local.probes import run_probe

BACKOFF_START = 1.0
BACKOFF_MAX = 30.0
BACKOFF_RESET_AFTER = 60.0
BASE_ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "HOME": "/root",
    "LANG": "C.UTF-8",
}


@dataclass
class PodContext:
    """What a container needs to know about its pod."""

    name: str
    namespace: str
    netns: str
    node_netns: str
    ip: str
    restart_policy: str
    containers: list[dict]
    grace_seconds: float


@dataclass
class ContainerStatus:
    name: str
    state: str = "Waiting"  # Waiting | Running | Terminated
    reason: str = "ContainerCreating"
    restarts: int = 0
    exit_code: int | None = None
    started_at: float | None = None
    ready: bool = False
    probe_detail: str = ""
    pid: int | None = None

    def to_json(self) -> dict:
        return dict(self.__dict__)


@dataclass
class Container:
    pod: PodContext
    spec: dict
    cgroup: Path
    log_path: Path
    env: dict[str, str]
    on_change: object  # callable() -> None, tells the runtime to republish status
    status: ContainerStatus = field(init=False)
    _proc: asyncio.subprocess.Process | None = field(default=None, init=False)
    _stopping: bool = field(default=False, init=False)

    def __post_init__(self) -> None:
        self.status = ContainerStatus(name=self.spec["name"])

    def _changed(self) -> None:
        self.on_change()  # type: ignore[operator]

    def argv(self) -> list[str]:
        cmd = [*(self.spec.get("command") or []), *(self.spec.get("args") or [])]
        return launch_argv(
            sys.executable,
            self.pod.netns,
            cmd,
            cgroup=str(self.cgroup),
            hostname=self.pod.name,
            workdir=self.spec.get("workingDir"),
        )

    async def run(self) -> None:
        """Run the container until it should stop for good, restarting it by policy."""
        backoff = BACKOFF_START
        cgroups.ensure(self.cgroup)
        while not self._stopping:
            started = time.monotonic()
            code = await self._run_once()
            if self._stopping:
                break
            policy = self.pod.restart_policy
            if policy == "Never" or (policy == "OnFailure" and code == 0):
                break
            if time.monotonic() - started > BACKOFF_RESET_AFTER:
                backoff = BACKOFF_START
            self.status.state, self.status.reason = "Waiting", "CrashLoopBackOff"
            self._changed()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, BACKOFF_MAX)
            self.status.restarts += 1

    async def _run_once(self) -> int:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self._proc = await asyncio.create_subprocess_exec(
                *self.argv(),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                env=self.env,
                start_new_session=True,
            )
        st = self.status
        st.state, st.reason, st.exit_code = "Running", "", None
        st.started_at, st.pid, st.ready = time.time(), self._proc.pid, False
        self._changed()
        probes = asyncio.ensure_future(self._probe_loop())
        try:
            code = await self._proc.wait()
        finally:
            probes.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await probes
        st.state, st.exit_code, st.ready, st.pid = "Terminated", code, False, None
        st.reason = "Completed" if code == 0 else "Error"
        cgroups.kill_tree(self.cgroup)  # leftovers the command forked
        self._changed()
        return code

    async def _probe_loop(self) -> None:
        readiness = self.spec.get("readinessProbe")
        liveness = self.spec.get("livenessProbe")
        if readiness is None:
            self.status.ready = True
            self._changed()
        if readiness is None and liveness is None:
            return
        delay = min(
            float(p.get("initialDelaySeconds", 0)) for p in (readiness, liveness) if p is not None
        )
        await asyncio.sleep(delay)
        failures = 0
        while True:
            if readiness is not None:
                ok, detail = await self._probe(readiness)
                if ok != self.status.ready or detail != self.status.probe_detail:
                    self.status.ready, self.status.probe_detail = ok, detail
                    self._changed()
            if liveness is not None:
                ok, detail = await self._probe(liveness)
                failures = 0 if ok else failures + 1
                if failures >= int(liveness.get("failureThreshold", 3)):
                    self.status.probe_detail = f"liveness failed: {detail}"
                    self._signal(signal.SIGKILL)
                    return
            period = min(
                float(p.get("periodSeconds", 10)) for p in (readiness, liveness) if p is not None
            )
            # Poll fast until first ready so a fresh pod joins its Services quickly.
            await asyncio.sleep(period if self.status.ready else min(period, 0.2))

    async def _probe(self, probe: dict) -> tuple[bool, str]:
        return await run_probe(
            probe,
            node_netns=self.pod.node_netns,
            pod_ip=self.pod.ip,
            pod_netns=self.pod.netns,
            cgroup=str(self.cgroup),
            containers=self.pod.containers,
        )

    def _signal(self, sig: int) -> None:
        if self._proc is not None and self._proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._proc.pid, sig)

    async def stop(self) -> None:
        """SIGTERM, wait out the grace period, then kill everything in the container's cgroup."""
        self._stopping = True
        self._signal(signal.SIGTERM)
        if self._proc is not None and self._proc.returncode is None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._proc.wait(), self.pod.grace_seconds)
        cgroups.kill_tree(self.cgroup)
        if self._proc is not None and self._proc.returncode is None:
            await self._proc.wait()
