"""What each component holds, rebuilt from one snapshot exactly as the real ones build it.

An explanation is only worth as much as its fidelity: it must decide with the very state the
node agent or waypoint would hold, not with a re-reading of the manifests. So the views go the
real way, resource by resource: `controller.scope` picks what a subscriber gets,
`controller.wanted.wanted_for` encodes it as xDS resources, and the agent's `AgentConfig` or
the waypoint's `WaypointConfig` decodes and indexes it (a resource either would reject is missing
here too). Views are built on first use and kept for the life of one `MeshView`, which explains
against one snapshot only.
"""

from __future__ import annotations

from controller import scope
from controller.model import MeshSnapshot
from controller.wanted import ResourceCache, wanted_for
from node_agent.policy import PolicyIndex
from node_agent.state import AgentConfig, AgentState
from waypoint.state import WaypointConfig, WaypointState


class MeshView:
    """The agents' and waypoints' states for one snapshot, each built once, on demand."""

    def __init__(self, snapshot: MeshSnapshot) -> None:
        self.snapshot = snapshot
        self._cache = ResourceCache()
        self._agents: dict[str, AgentState] = {}
        self._policies: dict[str, PolicyIndex] = {}
        self._waypoints: dict[tuple[str, str], WaypointState] = {}

    @property
    def trust_domain(self) -> str:
        return self.snapshot.trust_domain

    def agent(self, node: str) -> AgentState:
        """What the agent of `node` holds (AgentConfig.apply on its scope, type by type)."""
        if node not in self._agents:
            config = AgentConfig()
            keys = scope.for_node(self.snapshot, node)
            for type_url, resources in wanted_for(self.snapshot, keys, self._cache).items():
                config.apply(type_url, list(resources.values()), [])
            self._agents[node] = config.state
        return self._agents[node]

    def agent_policies(self, node: str) -> PolicyIndex:
        """The agent's compiled policies, built as `NodeAgent.policies` builds them."""
        if node not in self._policies:
            state = self.agent(node)
            self._policies[node] = PolicyIndex.build(
                [*state.authorization, *state.peer_authentication],
                trust_domain=self.trust_domain,
            )
        return self._policies[node]

    def waypoint(self, namespace: str, name: str) -> WaypointState:
        """What waypoint `namespace/name` holds (WaypointConfig.apply on its scope)."""
        key = (namespace, name)
        if key not in self._waypoints:
            config = WaypointConfig(self.trust_domain)
            keys = scope.for_waypoint(self.snapshot, namespace, name)
            for type_url, resources in wanted_for(self.snapshot, keys, self._cache).items():
                if type_url in scope.WAYPOINT_TYPE_URLS:
                    config.apply(type_url, list(resources.values()), [])
            self._waypoints[key] = config.state
        return self._waypoints[key]
