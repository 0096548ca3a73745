"""The live trace's I/O on a local cluster: run the probe in a pod, read every component's flows.

Theory of operation: a pod is entered the way `meshctl exec` enters it
(`nodemesh.local.launch`: the pod's cgroup first, so capture sees the probe, then its netns);
flow events are read from each agent's and waypoint's admin `/debug/flows` through
`nodemesh.flows_local`, with one cursor per component. The first read asks for the newest
`LOOKBACK` events: their last sequence number is the cursor, and the events themselves are the
history a reused waypoint connection is looked up in. A component that cannot be reached is
skipped for that round; one that appears later (a waypoint pod just started) is read from its
start, since everything it holds is new.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from nodemesh.flows.event import FlowEvent
from nodemesh.flows.query import MAX_LIMIT
from nodemesh.flows_local import Source, poll, sources
from nodemesh.local.launch import launch_argv
from nodemesh.local.state import StateDir

LOOKBACK = 500  # events per component read as history before the probe
FLOWS = "/debug/flows?since={since}&limit={limit}"


class PodRunner:
    """Runs a command in one pod's cgroup and netns (`sandbox` from the runtime's status)."""

    def __init__(self, sandbox: dict, container: str, hostname: str) -> None:
        self.sandbox, self.container, self.hostname = sandbox, container, hostname

    def __call__(self, argv: list[str], timeout: float) -> tuple[int, str, str]:
        full = launch_argv(
            sys.executable,
            self.sandbox["netns"],
            argv,
            cgroup=str(Path(self.sandbox["cgroup"]) / self.container),
            hostname=self.hostname,
        )
        try:
            done = subprocess.run(full, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return 28, "000 0", f"the probe did not finish within {timeout:g} s"
        return done.returncode, done.stdout, done.stderr


class LocalFlows:
    """`FlowReader` over every agent and waypoint of the local cluster in `state`."""

    def __init__(self, state: StateDir) -> None:
        self.state = state
        self.cursors: dict[str, int] = {}

    def start(self) -> list[FlowEvent]:
        history: list[FlowEvent] = []
        for source in sources(self.state):
            history += self._read(source, -LOOKBACK, LOOKBACK)
        return history

    def next(self) -> list[FlowEvent]:
        events: list[FlowEvent] = []
        for source in sources(self.state):
            events += self._read(source, self.cursors.get(source.name, 0), MAX_LIMIT)
        return events

    def _read(self, source: Source, since: int, limit: int) -> list[FlowEvent]:
        answer = poll(source, FLOWS.format(since=since, limit=limit), timeout=2.0)
        if answer is None:
            return []
        self.cursors[source.name] = int(answer["next"])
        return [FlowEvent.from_dict(row) for row in answer.get("events", [])]
