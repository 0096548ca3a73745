"""Where a local cluster's flow events are: every agent's and every waypoint's admin endpoint.

Theory of operation: admin endpoints listen on 127.0.0.1 only (DESIGN.md, Security notes), so
each is reached from inside its own network namespace through `nodemesh.local.admin_client`, as
`meshctl certs --node` reaches an agent: an agent's in its node's netns, a waypoint's in the
waypoint pod's netns (found in the runtime's published status by the Gateway API label the
waypoint Deployment's pods carry). `sources` lists them; `poll` asks one for its next page.

The controller relay (one stream for the whole cluster, issue 6) is not built yet; when it is,
`meshctl trace --follow` reads it instead of visiting each node.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from controller.model_waypoint import GATEWAY_NAME_LABEL
from nodemesh.flows.event import FlowEvent
from nodemesh.flows.follow import Follower
from nodemesh.local import cluster
from nodemesh.local.admin_client import AdminError, get_json
from nodemesh.local.runtime import load_plan
from nodemesh.local.state import StateDir

ADMIN_PORT = 15000  # agents and waypoints alike, 127.0.0.1 in their own netns


@dataclass(frozen=True)
class Source:
    """One component serving `/debug/flows`: "agent node1", "waypoint shop/waypoint-7f9c"."""

    name: str
    netns: str
    port: int = ADMIN_PORT


def sources(state: StateDir) -> list[Source]:
    """Every agent (one per node) and every running waypoint pod of the cluster, now."""
    found = [Source(f"agent {node.name}", node.netns) for node in load_plan(state).nodes]
    for pod in cluster.read_status(state).get("pods", []):
        meta = pod.get("metadata", {})
        netns = (pod.get("sandbox") or {}).get("netns")
        if (meta.get("labels") or {}).get(GATEWAY_NAME_LABEL) and netns:
            found.append(Source(f"waypoint {meta['namespace']}/{meta['name']}", netns))
    return found


def poll(source: Source, path: str, timeout: float = 5.0) -> dict | None:
    """The source's answer to `path`, or None when it cannot be reached now (restarting)."""
    try:
        answer = get_json(source.netns, source.port, path, timeout=timeout)
    except (AdminError, OSError):  # OSError: its netns is gone (pod deleted, node down)
        return None
    return answer if isinstance(answer, dict) else None


def poll_round(
    state: StateDir, follower: Follower, *, drain: bool = False
) -> list[list[FlowEvent]]:
    """One visit to every source; with `drain`, each is read until it has nothing more."""
    batches = []
    for source in sources(state):
        while True:
            answer = poll(source, follower.path(source.name))
            if answer is None:
                break
            batches.append(follower.receive(source.name, answer))
            if not drain or follower.drained(answer):
                break
    return batches


def rounds(
    state: StateDir,
    follower: Follower,
    interval: float = 0.5,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[list[list[FlowEvent]]]:
    """Poll rounds forever, `interval` apart; sources are looked up again every round, so a
    waypoint deployed (or an agent restarted) while following joins the stream."""
    while True:
        yield poll_round(state, follower, drain=True)
        follower.started = True
        sleep(interval)
