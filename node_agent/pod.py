"""One enrolled pod's dataplane: listeners inside its netns, capture, and the three handlers.

    outbound  127.0.0.1:15001 (captured connects)  → routing → HBONE pool | passthrough
    inbound   pod_ip:15008    (HBONE, mTLS)        → L4 policy → the app, from inside the pod
    inbound   127.0.0.1:15006 (captured plaintext) → PeerAuthentication + L4 policy → the app

Every socket is created inside the pod's network namespace (netns.socket_in_netns), so tunnels
leave from the pod's own address. The agent process is not in the pod's cgroup, so its own
connections are never captured.

Inbound delivery preserves the client's address, as ztunnel's in-pod mode does: the socket that
connects to the app is bound to the client's IP (IP_TRANSPARENT; over HBONE the address that
`Forwarded` names, else the tunnel's peer; a waypoint names itself today), the pod's reply
routing (node_agent.pod_routing, set up with its capture) brings the app's replies back to it,
and the capture programs let its SYN through (PodCapture.deliver_from). When that cannot be done
(the pod calling itself, an unusable address, no reply routing, any failure) the agent delivers
from the pod's own address: the app then sees the wrong peer, but the connection goes through.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import logging
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from controller.model import Workload
from controller.model_waypoint import waypoint_identity
from node_agent.pipe import pipe, reset
from node_agent.policy import Connection, decide
from node_agent.routing import Route, build_request
from node_agent.telemetry import (
    ConnectionRecord,
    ConnectionTable,
    Direction,
    ResponseFlag,
    SecurityPolicy,
    claimed_service,
)
from nodemesh.controlplane import KeyAndCert
from nodemesh.hbone import baggage
from nodemesh.hbone.client import HbonePool
from nodemesh.hbone.headers import parse_authority, tunnel_headers
from nodemesh.hbone.server import HboneServer, TunnelRequest
from nodemesh.hbone.tunnel import TunnelRefusedError
from nodemesh.identity import SpiffeId
from nodemesh.local.netns import socket_in_netns
from nodemesh.tasks import TaskSet
from nodemesh.telemetry import canonical_revision, canonical_service

log = logging.getLogger("nodemesh.agent.pod")
OUTBOUND_PORT, INBOUND_PORT, HBONE_PORT = 15001, 15006, 15008
AGENT_MARK = 0x539  # the capture programs pass sockets with this mark (defence in depth)
FORWARDED = "forwarded"
# A transparent connect() to the app answers at once when the app listens (all of it is inside
# the pod netns); one that hangs means the replies do not come back: deliver the old way.
TRANSPARENT_CONNECT_TIMEOUT = 3.0


class Delivery(Protocol):
    """What transparent delivery needs of a pod's capture (node_agent.capture.PodCapture)."""

    @property
    def routed(self) -> bool: ...  # the pod's reply routing is in place
    def deliver_from(self, source: tuple[str, int]) -> bool: ...  # let that SYN past sk_lookup
    def delivered(self, source: tuple[str, int]) -> None: ...


@dataclass
class PodContext:
    """What a pod's handlers need from the agent (read on every connection: always current)."""

    state: Callable[[], object]  # -> AgentState
    policies: Callable[[], object]  # -> PolicyIndex
    pick: Callable  # round robin over endpoints
    original_destination: Callable[[socket.socket], tuple[str, int]]
    connections: ConnectionTable  # metrics and access log of every connection
    # pod id -> its capture (None: not captured, deliver from the pod's own address)
    capture: Callable[[str], Delivery | None] = lambda _uid: None


class PodDataplane:
    def __init__(self, workload: Workload, identity: KeyAndCert, ctx: PodContext) -> None:
        self.workload = workload
        self.ctx = ctx
        self.netns = workload.netns
        self.ip = workload.addresses[0]
        self.tasks = TaskSet(f"pod/{workload.namespace}/{workload.name}")
        # Who this pod is, for a waypoint's telemetry (it knows only the Services it serves).
        self.baggage = baggage.encode(
            workload.namespace,
            workload.name,
            workload.owner,
            canonical_service(workload),
            canonical_revision(workload),
        )
        self.pool = HbonePool(identity, socket_factory=self._socket)
        self.hbone = HboneServer(identity, self._on_tunnel)
        self.outbound_sock = self._listener("127.0.0.1", OUTBOUND_PORT)
        self.inbound_sock = self._listener("127.0.0.1", INBOUND_PORT)
        self.hbone_sock = self._listener(self.ip, HBONE_PORT)
        self._servers: list[asyncio.AbstractServer] = []

    # -- sockets in the pod's namespace --------------------------------------------------------
    def _socket(self) -> socket.socket:
        sock = socket_in_netns(self.netns)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_MARK, AGENT_MARK)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    def _listener(self, ip: str, port: int) -> socket.socket:
        return socket_in_netns(self.netns, bind=(ip, port), listen=1024)

    async def _connect(self, ip: str, port: int):
        sock = self._socket()
        try:
            await asyncio.get_running_loop().sock_connect(sock, (ip, port))
        except BaseException:
            sock.close()
            raise
        return await asyncio.open_connection(sock=sock, limit=256 * 1024)

    async def _deliver(self, ip: str, port: int, client_ip: str | None):
        """Connect to the app at (ip, port), from `client_ip` when possible (see the module)."""
        source = delivery_source(client_ip, self.workload.addresses)
        capture = self.ctx.capture(self.workload.uid) if source else None
        if source and capture is not None and capture.routed:
            try:
                return await self._connect_from(capture, source, ip, port)
            except ConnectionRefusedError:
                raise  # the app does not listen there: the old way would be refused too
            except (OSError, TimeoutError) as exc:
                log.warning(
                    "%s: delivering from the client's address %s failed (%s); delivering from"
                    " the pod's own address, so the app sees %s as the peer",
                    self.workload.name,
                    source,
                    exc or type(exc).__name__,
                    self.ip,
                )
        return await self._connect(ip, port)

    async def _connect_from(self, capture: Delivery, source: str, ip: str, port: int):
        sock = socket_in_netns(self.netns, bind=(source, 0), transparent=True)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_MARK, AGENT_MARK)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            bound = sock.getsockname()[:2]
            if not capture.deliver_from(bound):
                raise OSError(errno.EADDRINUSE, f"{bound[0]}:{bound[1]} is being delivered from")
            try:
                await asyncio.wait_for(
                    asyncio.get_running_loop().sock_connect(sock, (ip, port)),
                    TRANSPARENT_CONNECT_TIMEOUT,
                )
            finally:
                capture.delivered(bound)
        except BaseException:
            sock.close()
            raise
        return await asyncio.open_connection(sock=sock, limit=256 * 1024)

    # -- lifecycle -----------------------------------------------------------------------------
    async def start(self) -> None:
        self._servers.append(await asyncio.start_server(self._on_outbound, sock=self.outbound_sock))
        self._servers.append(await asyncio.start_server(self._on_plaintext, sock=self.inbound_sock))
        self.tasks.spawn(self.hbone.serve(self.hbone_sock), "hbone")

    async def stop(self, grace: float = 5.0) -> None:
        for server in self._servers:
            server.close()
        await self.hbone.shutdown(grace)
        await self.pool.close(grace)
        await self.tasks.finish(grace)
        for sock in (self.outbound_sock, self.inbound_sock, self.hbone_sock):
            sock.close()

    # -- outbound ------------------------------------------------------------------------------
    async def _on_outbound(self, reader, writer) -> None:
        sock = writer.get_extra_info("socket")
        try:
            dst_ip, dst_port = self.ctx.original_destination(sock)
        except Exception as exc:
            log.warning(
                "%s: captured connection without an original destination: %s",
                self.workload.name,
                exc,
            )
            reset(writer)
            return
        req = build_request(self.workload, dst_ip, dst_port, self.ctx.state(), self.ctx.pick)
        tunneled = req.route in (Route.DIRECT, Route.WAYPOINT)
        record = self.ctx.connections.open(
            ConnectionRecord(
                direction=Direction.OUTBOUND,
                # The app connected from the pod (capture sent it to 127.0.0.1:15001): name the
                # pod's address with the app's port, which joins the capture and `meshctl trace`.
                source_address=(self.ip, writer.get_extra_info("peername")[1]),
                destination_address=req.authority,
                security_policy=SecurityPolicy.MUTUAL_TLS if tunneled else SecurityPolicy.NONE,
                source=self.workload,
                destination=req.destination,
                service=req.service,
                source_principal=self.workload.identity,
                destination_principal=req.expected_identity,
                route=req.route,
            )
        )
        try:
            if tunneled:
                tunnel = await self.pool.open(
                    req.tunnel_to,
                    SpiffeId.parse(req.expected_identity),
                    f"{req.authority[0]}:{req.authority[1]}",
                    tunnel_headers(self.ip, baggage=self._baggage_for(req.service)),
                )
                record.tunnel = tunnel.key  # the destination agent records the same key
                sent, received = await tunnel.splice(reader, writer)
            elif req.route is Route.PASSTHROUGH:
                upstream = await self._connect(*req.authority)
                sent, received = await pipe((reader, writer), upstream)
            else:
                reset(writer)
                self.ctx.connections.close(record, req.reason, ResponseFlag.NO_HEALTHY_UPSTREAM)
                return
        except Exception as exc:
            reset(writer)
            flag = (
                ResponseFlag.DENY if isinstance(exc, TunnelRefusedError) else ResponseFlag.CONNECT
            )
            self.ctx.connections.close(record, f"{req.reason}: {exc}", flag)
            return
        self.ctx.connections.close(record, sent=sent, received=received)

    def _baggage_for(self, service) -> str:
        """This pod's baggage plus the Service dialled, so the destination agent can label its
        series with it (it checks the claim against its own config: telemetry.claimed_service)."""
        return baggage.with_service(self.baggage, service.hostname if service else None)

    # -- inbound over HBONE --------------------------------------------------------------------
    async def _on_tunnel(self, request: TunnelRequest) -> None:
        try:
            ip, port = parse_authority(request.authority)
        except ValueError as exc:
            request.refuse(400, str(exc))
            return
        if ip not in self.workload.addresses:
            request.refuse(400, f"{request.authority} is not pod {self.workload.name}")
            return
        peer = str(request.peer_identity)
        waypoint = waypoint_identity(self.workload)
        source_ip = tunnel_source(request.headers, request.peer_address[0], peer, waypoint)
        if waypoint is not None and peer != waypoint:
            reason = (
                f"{self.workload.namespace}/{self.workload.name} takes traffic only through "
                f"its waypoint {self.workload.namespace}/{self.workload.waypoint} ({waypoint}), "
                f"not directly from {peer}"
            )
            log.info("refused %s → %s:%s: %s", peer, ip, port, reason)
            request.refuse(403, reason)
            record = self._inbound_record((source_ip, 0), ip, port, None, peer, request)
            self.ctx.connections.close(record, reason, ResponseFlag.DENY)
            return
        conn = Connection(peer, source_ip, ip, port, via_waypoint=waypoint is not None, tls=True)
        decision = decide(conn, self.workload, self.ctx.policies())
        record = self._inbound_record(
            (source_ip, 0), ip, port, decision, str(request.peer_identity), request
        )
        if not decision.allowed:
            log.info(
                "denied %s → %s/%s:%s: %s",
                request.peer_identity,
                self.workload.namespace,
                self.workload.name,
                port,
                decision.reason,
            )
            request.refuse(403, decision.reason)
            self.ctx.connections.close(record, decision.reason, ResponseFlag.DENY)
            return
        try:
            upstream = await self._deliver(ip, port, source_ip)
        except OSError as exc:
            reason = f"{self.workload.name} refused port {port}: {exc.strerror}"
            request.refuse(503, reason)
            self.ctx.connections.close(record, reason, ResponseFlag.CONNECT)
            return
        received, sent = await request.accept().splice(*upstream)
        self.ctx.connections.close(record, sent=sent, received=received)

    # -- inbound plaintext ---------------------------------------------------------------------
    async def _on_plaintext(self, reader, writer) -> None:
        dst_ip, dst_port = writer.get_extra_info("sockname")[:2]
        client = writer.get_extra_info("peername")[:2]  # its port joins the sk_lookup capture
        src_ip = client[0]
        decision = decide(
            Connection(None, src_ip, dst_ip, dst_port), self.workload, self.ctx.policies()
        )
        record = self._inbound_record(client, dst_ip, dst_port, decision, None)
        if not decision.allowed:
            log.info(
                "denied plaintext %s → %s/%s:%s: %s",
                src_ip,
                self.workload.namespace,
                self.workload.name,
                dst_port,
                decision.reason,
            )
            reset(writer)
            self.ctx.connections.close(record, decision.reason, ResponseFlag.DENY)
            return
        try:
            upstream = await self._deliver(dst_ip, dst_port, src_ip)
        except OSError as exc:
            reset(writer)
            self.ctx.connections.close(record, str(exc), ResponseFlag.CONNECT)
            return
        received, sent = await pipe((reader, writer), upstream)
        self.ctx.connections.close(record, sent=sent, received=received)

    def _inbound_record(
        self, source, dst_ip, dst_port, decision, principal, tunnel: TunnelRequest | None = None
    ) -> ConnectionRecord:
        """`source`: the client's (ip, port), the port 0 over HBONE (the CONNECT names only the
        client's IP); a plaintext client's real port is what its sk_lookup capture is joined on
        (node_agent.capture_events). `tunnel`: the HBONE request it arrived on; its key and
        traceparent join the trace, its baggage the Service the client dialled, if confirmed."""
        state = self.ctx.state()
        service = None
        if tunnel is not None:
            claim = baggage.claimed_service(tunnel.headers.get("baggage"))
            service = claimed_service(state.services, claim, self.workload, dst_port)
        return self.ctx.connections.open(
            ConnectionRecord(
                direction=Direction.INBOUND,
                source_address=tuple(source),
                destination_address=(dst_ip, dst_port),
                security_policy=SecurityPolicy.MUTUAL_TLS if principal else SecurityPolicy.NONE,
                source=state.peer_by_address.get(source[0]),
                destination=self.workload,
                service=service,
                source_principal=principal,
                destination_principal=self.workload.identity,
                decision=decision,
                tunnel=tunnel.stream.key if tunnel is not None else None,
                traceparent=tunnel.headers.get("traceparent") if tunnel is not None else None,
            )
        )


def delivery_source(client_ip: str | None, pod_addresses) -> str | None:
    """The address to deliver to the app from, or None for the pod's own (the old way): a pod
    reaching itself (hairpin) needs nothing, and only a unicast IPv4 address can be bound (the
    pod network and its reply routing are IPv4; `Forwarded` may carry anything)."""
    try:
        addr = ipaddress.ip_address((client_ip or "").strip())
    except ValueError:
        return None
    unusable = addr.is_loopback or addr.is_unspecified or addr.is_multicast or addr.is_reserved
    if addr.version != 4 or unusable or str(addr) in pod_addresses:
        return None
    return str(addr)


def tunnel_source(headers: dict[str, str], peer_ip: str, peer: str, waypoint: str | None) -> str:
    """The client address policy and delivery use for a tunnel from `peer` (its SPIFFE ID).

    A source agent's tunnel leaves from the client pod's own address, so the TCP peer is the
    client. Only the pod's own waypoint speaks for somebody else: its `Forwarded: for=` is taken,
    as ztunnel takes it from waypoints alone. From any other peer the header is ignored, or any
    mesh workload could pick the address an ipBlocks rule matches and the address the app sees.
    """
    forwarded = _forwarded_for(headers) if waypoint is not None and peer == waypoint else None
    return forwarded or peer_ip


def _forwarded_for(headers: dict[str, str]) -> str | None:
    value = headers.get(FORWARDED, "")
    for part in value.split(";"):
        key, _, addr = part.strip().partition("=")
        if key.lower() == "for" and addr:
            return addr.strip('"[]')
    return None
