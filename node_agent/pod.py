"""One enrolled pod's dataplane: listeners inside its netns, capture, and the three handlers.

    outbound  127.0.0.1:15001 (captured connects)  → routing → HBONE pool | passthrough
    inbound   pod_ip:15008    (HBONE, mTLS)        → L4 policy → the app, from inside the pod
    inbound   127.0.0.1:15006 (captured plaintext) → PeerAuthentication + L4 policy → the app

Every socket is created inside the pod's network namespace (netns.socket_in_netns), so tunnels
leave from the pod's own address and the app sees connections from where they really came. The
agent process is not in the pod's cgroup, so its own connections are never captured.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable
from dataclasses import dataclass

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


@dataclass
class PodContext:
    """What a pod's handlers need from the agent (read on every connection: always current)."""

    state: Callable[[], object]  # -> AgentState
    policies: Callable[[], object]  # -> PolicyIndex
    pick: Callable  # round robin over endpoints
    original_destination: Callable[[socket.socket], tuple[str, int]]
    connections: ConnectionTable  # metrics and access log of every connection


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
                source_address=writer.get_extra_info("peername")[:2],
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
                    tunnel_headers(self.ip, baggage=self.baggage),
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
        source_ip = _forwarded_for(request.headers) or request.peer_address[0]
        peer = str(request.peer_identity)
        waypoint = waypoint_identity(self.workload)
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
            upstream = await self._connect(ip, port)
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
            upstream = await self._connect(dst_ip, dst_port)
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
        traceparent join the trace."""
        return self.ctx.connections.open(
            ConnectionRecord(
                direction=Direction.INBOUND,
                source_address=tuple(source),
                destination_address=(dst_ip, dst_port),
                security_policy=SecurityPolicy.MUTUAL_TLS if principal else SecurityPolicy.NONE,
                source=self.ctx.state().peer_by_address.get(source[0]),
                destination=self.workload,
                source_principal=principal,
                destination_principal=self.workload.identity,
                decision=decision,
                tunnel=tunnel.stream.key if tunnel is not None else None,
                traceparent=tunnel.headers.get("traceparent") if tunnel is not None else None,
            )
        )


def _forwarded_for(headers: dict[str, str]) -> str | None:
    value = headers.get(FORWARDED, "")
    for part in value.split(";"):
        key, _, addr = part.strip().partition("=")
        if key.lower() == "for" and addr:
            return addr.strip('"[]')
    return None
