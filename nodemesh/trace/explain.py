"""`meshctl trace FROM TO --explain`: the path a connection would take, worked out from config.

Theory of operation. The mesh's decisions are pure functions of pushed state (DESIGN.md; STYLE.md
"routing decisions are pure functions"), so the path a probe would take can be computed instead
of sent. `explain` does exactly what the datapath does, in order, with the same functions:

1. translate the stored objects into the controller's `MeshSnapshot` (`controller.translate`);
2. capture: an enrolled source pod's connect() is captured to its node's agent; any other pod's
   leaves in plaintext (a Service VIP is then resolved by kube-proxy, first endpoint);
3. the source agent: `node_agent.routing.build_request` with the source node's own `AgentState`
   decides direct, waypoint, passthrough, or refusal (no endpoint, no usable waypoint);
4. through a waypoint (`nodemesh.trace.waypoint_path`): authorization, route, retries, endpoint;
5. the destination agent and delivery (`nodemesh.trace.inbound`): the waypoint-only rule, then
   PeerAuthentication and AuthorizationPolicy via `node_agent.policy.decide`.

Each step becomes a `Hop` carrying the function's own reason; the first hop that ends the path
carries the verdict. Where configuration cannot say what will happen (which endpoint round robin
picks, which backend a weighted split draws), the first endpoint is taken, the draw uses the
caller's `rng`, and the trace's notes say so. Nothing here does I/O: the CLI reads the objects
(`controller.registry_local.LocalRegistry.objects`) and renders the result.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence

from controller.model import DEFAULT_TRUST_DOMAIN, Endpoint, Service, Workload
from controller.translate import translate
from node_agent.routing import HBONE_PORT, Request, Route, build_request
from nodemesh.trace.hops import Component, Hop, Trace, Verdict
from nodemesh.trace.inbound import Arrival, arrive
from nodemesh.trace.probe import HttpProbe, Probe, Target, resolve_target, source_workload
from nodemesh.trace.views import MeshView
from nodemesh.trace.waypoint_path import Entry, through_waypoint
from waypoint.messages import Peer

FIRST_ENDPOINT_NOTE = "endpoint: the first ready one (the agent and the waypoint round-robin)"
DEFAULT_HTTP_NOTE = "no --http given: the waypoint hop is explained for GET /"


def explain(
    objects: Iterable[dict],
    probe: Probe,
    *,
    trust_domain: str = DEFAULT_TRUST_DOMAIN,
    rng: random.Random | None = None,
) -> Trace:
    """The path of `probe` through the mesh `objects` describe (stored manifests + pod status)."""
    objects = list(objects)
    view = MeshView(translate(objects, trust_domain=trust_domain).snapshot)
    source = source_workload(view.snapshot, probe)
    target = resolve_target(view.snapshot, objects, probe)
    path = _Path(view, source, target, probe.http, rng or random.Random(0))
    hops = path.run()
    return Trace(
        source=f"{source.namespace}/{source.name}",
        destination=f"{target.label} ({target.ip}:{target.port})",
        hops=tuple(hops),
        request=f"{probe.http.method} {probe.http.path}" if probe.http else None,
        notes=tuple(path.notes),
    )


class _Path:
    """One explanation in progress: the inputs, and the notes on what had to be assumed."""

    def __init__(self, view, source: Workload, target: Target, http, rng) -> None:
        self.view, self.source, self.target, self.http, self.rng = view, source, target, http, rng
        self.notes: list[str] = []

    def run(self) -> list[Hop]:
        if not self.source.enrolled:
            return self._outside_the_mesh()
        req = build_request(
            self.source,
            self.target.ip,
            self.target.port,
            self.view.agent(self.source.node),
            self._pick,
        )
        return [self._captured(), self._source_agent(req), *self._after(req)]

    # -- the source side -----------------------------------------------------------------------
    def _captured(self) -> Hop:
        reason = "connect() captured in the pod (cgroup/connect4) to its agent's outbound 15001"
        return Hop(Component.CAPTURE, self._pod_name(), "captured", reason)

    def _source_agent(self, req: Request) -> Hop:
        stop = {Route.NO_ENDPOINTS: Verdict.UNROUTABLE, Route.NO_WAYPOINT: Verdict.UNROUTABLE}
        details = (("authority", f"{req.authority[0]}:{req.authority[1]}"),)
        return Hop(
            Component.SOURCE_AGENT,
            self.source.node,
            req.route.value,
            req.reason,
            code=req.route.value,
            details=details,
            verdict=stop.get(req.route),
        )

    def _after(self, req: Request) -> list[Hop]:
        if req.route is Route.DIRECT:
            return [self._tunnel(req), *arrive(self.view, self._arrival(req))]
        if req.route is Route.WAYPOINT:
            return [self._tunnel(req), *self._waypoint(req)]
        if req.route is Route.PASSTHROUGH:
            return self._passthrough(req)
        return []  # refused at the source agent: its hop carries the verdict

    def _tunnel(self, req: Request) -> Hop:
        details = (
            ("source_identity", self.source.identity),
            ("destination_identity", req.expected_identity or ""),
        )
        ip, port = req.tunnel_to or ("?", HBONE_PORT)
        reason = (
            f"HBONE {self.source.addresses[0]} → {ip}:{port}, :authority {_text(req.authority)}"
        )
        return Hop(Component.TUNNEL, f"{self.source.node} → {ip}", "mTLS", reason, details=details)

    def _arrival(self, req: Request) -> Arrival:
        return Arrival(
            req.destination, req.authority, self.source.addresses[0], self.source.identity
        )

    def _waypoint(self, req: Request) -> list[Hop]:
        namespace, name = _waypoint_of(req)
        waypoint = self.view.agent(self.source.node).waypoint(namespace, name)
        client = Peer(self.source.identity, (self.source.addresses[0], 0), req.authority)
        entry = Entry(namespace, name, req.tunnel_to[0], waypoint.identity, client)
        if self.http is None:
            self.notes.append(DEFAULT_HTTP_NOTE)
        passage = through_waypoint(self.view, entry, self.http or HttpProbe(), self.rng)
        onward = arrive(self.view, passage.onward) if passage.onward else []
        return [*passage.hops, *onward]

    def _passthrough(self, req: Request) -> list[Hop]:
        if req.destination is not None and not req.destination.enrolled:
            return arrive(self.view, Arrival(req.destination, req.authority, "", None))
        where = _text(req.authority)
        return [
            Hop(Component.DELIVERY, where, "left the mesh", req.reason, verdict=Verdict.FORWARDED)
        ]

    # -- a source outside the mesh -------------------------------------------------------------
    def _outside_the_mesh(self) -> list[Hop]:
        reason = "pod not enrolled in the mesh: not captured, its connections leave in plaintext"
        hops = [Hop(Component.CAPTURE, self._pod_name(), "not captured", reason)]
        destination = self.target.ip, self.target.port
        service = self.view.snapshot.services_by_vip.get(self.target.ip)
        if service is not None:
            hop, destination = self._kube_proxy(service)
            hops.append(hop)
            if destination is None:
                return hops
        peer = self.view.agent(self.source.node).peer_by_address.get(destination[0])
        if peer is None:
            reason = f"{_text(destination)} is unknown to the mesh"
            hops.append(
                Hop(
                    Component.DELIVERY,
                    _text(destination),
                    "left the mesh",
                    reason,
                    verdict=Verdict.FORWARDED,
                )
            )
            return hops
        return hops + arrive(self.view, Arrival(peer, destination, self.source.addresses[0], None))

    def _kube_proxy(self, service: Service) -> tuple[Hop, tuple[str, int] | None]:
        port = self.target.port
        ready = [e for e in service.endpoints if any(sp == port for sp, _ in e.ports)]
        if not ready:
            reason = f"service {service.key} has no ready endpoint for port {port}"
            hop = Hop(
                Component.KUBE_PROXY, self.source.node, "refuse", reason, verdict=Verdict.UNROUTABLE
            )
            return hop, None
        endpoint = self._pick(service, ready)
        address = endpoint.address, next(tp for sp, tp in endpoint.ports if sp == port)
        reason = f"service {service.key} → endpoint {_text(address)} (plaintext, outside the mesh)"
        return Hop(Component.KUBE_PROXY, self.source.node, "endpoint", reason), address

    # -- helpers -------------------------------------------------------------------------------
    def _pick(self, service: Service, endpoints: Sequence[Endpoint]) -> Endpoint:
        """The explanation's endpoint choice: the first, said so once in the notes."""
        if len(endpoints) > 1 and FIRST_ENDPOINT_NOTE not in self.notes:
            self.notes.append(FIRST_ENDPOINT_NOTE)
        return endpoints[0]

    def _pod_name(self) -> str:
        return f"pod {self.source.namespace}/{self.source.name}"


def _waypoint_of(req: Request) -> tuple[str, str]:
    """Which waypoint build_request chose: the Service's, else the destination pod's."""
    if req.service is not None and req.service.waypoint:
        return req.service.namespace, req.service.waypoint
    return req.destination.namespace, req.destination.waypoint


def _text(address: tuple[str, int]) -> str:
    return f"{address[0]}:{address[1]}"
