"""Where a local cluster's flow events are: every agent's and every waypoint's admin endpoint.

Theory of operation: admin endpoints listen on 127.0.0.1 only (DESIGN.md, Security notes), so
each is reached from inside its own network namespace through `nodemesh.local.admin_client`, as
`meshctl certs --node` reaches an agent: an agent's in its node's netns, a waypoint's in the
waypoint pod's netns (found in the runtime's published status by the Gateway API label the
waypoint Deployment's pods carry). `sources` lists them; `poll` asks one for its next page.

The controller relays every component's events into one ring (controller/flows_relay.py), served
on its own admin endpoint (127.0.0.1:15010 in node1's netns, where local mode runs it) with the
same `/debug/flows` contract; `pick_sources` makes that one source the whole cluster when the
relay answers, and falls back to visiting each component (with the reason) when it does not.

The polling loop (`poll_round`, `rounds`) knows a source only by the `FlowSource` interface
(nodemesh.flows.follow: a name and `get_json(path, timeout)`), so a Kubernetes cluster's
controller replicas, reached through the API server's port-forward (nodemesh.flows_kube), are
followed by the same loop as a local cluster's netns sockets.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from controller.model_waypoint import GATEWAY_NAME_LABEL
from nodemesh.flows.event import FlowEvent
from nodemesh.flows.follow import FlowSource, Follower
from nodemesh.local import cluster
from nodemesh.local.admin_client import AdminError, get_json
from nodemesh.local.runtime import load_plan
from nodemesh.local.state import StateDir
from nodemesh.local.system import ADMIN_PORT as CONTROLLER_ADMIN_PORT
from nodemesh.local.system import controller_node

ADMIN_PORT = 15000  # agents and waypoints alike, 127.0.0.1 in their own netns
RELAY = "controller relay"
SourceFinder = Callable[[StateDir], "list[Source]"]


class RelayUnavailable(RuntimeError):
    """`--source relay` was asked for and the controller's relay does not answer."""


@dataclass(frozen=True)
class Source:
    """One component serving `/debug/flows`: "agent node1", "waypoint shop/waypoint-7f9c"."""

    name: str
    netns: str
    port: int = ADMIN_PORT

    def get_json(self, path: str, timeout: float) -> object:
        """GET `path` from a socket inside the netns (raises AdminError or OSError)."""
        return get_json(self.netns, self.port, path, timeout=timeout)


def sources(state: StateDir) -> list[Source]:
    """Every agent (one per node) and every running waypoint pod of the cluster, now."""
    found = [Source(f"agent {node.name}", node.netns) for node in load_plan(state).nodes]
    for pod in cluster.read_status(state).get("pods", []):
        meta = pod.get("metadata", {})
        netns = (pod.get("sandbox") or {}).get("netns")
        if (meta.get("labels") or {}).get(GATEWAY_NAME_LABEL) and netns:
            found.append(Source(f"waypoint {meta['namespace']}/{meta['name']}", netns))
    return found


def relay_sources(state: StateDir) -> list[Source]:
    """The controller's relay: one source holding every agent's and waypoint's events."""
    node = controller_node(load_plan(state))
    return [Source(RELAY, node.netns, CONTROLLER_ADMIN_PORT)]


def pick_sources(state: StateDir, forced: str | None) -> tuple[SourceFinder, str | None]:
    """Where to read: `forced` ("relay" | "components") or, unset, the relay when it answers.
    Returns the source finder and, when falling back, a note saying why."""
    if forced == "components":
        return sources, None
    (relay,) = relay_sources(state)
    try:
        get_json(relay.netns, relay.port, "/debug/flows/sources", timeout=2.0)
    except (AdminError, OSError) as exc:
        if forced == "relay":
            raise RelayUnavailable(
                f"the controller's flow relay does not answer ({exc}); is the controller "
                "running (meshctl get pods -n nodemesh-system)? --source components reads "
                "each agent and waypoint instead"
            ) from exc
        note = f"note: the controller's flow relay does not answer ({exc}); polling each component"
        return sources, note
    return relay_sources, None


def poll(source: FlowSource, path: str, timeout: float = 5.0) -> dict | None:
    """The source's answer to `path`, or None when it cannot be reached now (restarting)."""
    try:
        answer = source.get_json(path, timeout)
    except (AdminError, OSError):  # OSError: its netns is gone (pod deleted, node down)
        return None
    return answer if isinstance(answer, dict) else None


def poll_round(
    found: Iterable[FlowSource], follower: Follower, *, drain: bool = False
) -> list[list[FlowEvent]]:
    """One visit to every source; with `drain`, each is read until it has nothing more."""
    batches = []
    for source in found:
        while True:
            answer = poll(source, follower.path(source.name))
            if answer is None:
                break
            batches.append(follower.receive(source.name, answer))
            if not drain or follower.drained(answer):
                break
    return batches


def rounds(
    find: Callable[[], Iterable[FlowSource]],
    follower: Follower,
    interval: float = 0.5,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[list[list[FlowEvent]]]:
    """Poll rounds forever, `interval` apart; sources are looked up again every round (`find`),
    so a waypoint deployed (or an agent or controller restarted) while following joins."""
    while True:
        yield poll_round(find(), follower, drain=True)
        follower.started = True
        sleep(interval)
