"""The waypoint process: identity, config, listeners, and the request path wired together.

Start-up, in order, so a failure leaves nothing half-running: trade the pod's service-account
token for the waypoint's own certificate (spiffe://<td>/ns/<ns>/sa/<name>); bind HBONE on the pod
IP (15008), metrics (15020), readiness (15021) and the localhost admin (15000); then follow the
controller's config stream. Readiness turns true once the first config has arrived, so the
Deployment never routes traffic to a waypoint that knows no Service. The certificate is renewed
at half-life over mutual TLS, for new connections both ways; open ones carry on. SIGTERM drains:
readiness goes false, listeners close, open tunnels get `grace` seconds to finish.
"""

from __future__ import annotations

import asyncio
import logging
import random
import socket
import sys
import time
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, start_http_server

from controller import scope
from nodemesh import admin, controlplane
from nodemesh.controlplane import KeyAndCert
from nodemesh.flows import FlowRing
from nodemesh.flows.relay_client import FlowReporter, ReporterMetrics
from nodemesh.flows_admin import flows_route
from nodemesh.hbone.client import HbonePool
from nodemesh.hbone.headers import tunnel_headers
from nodemesh.hbone.server import HboneServer
from nodemesh.identity import SpiffeId
from nodemesh.tasks import TaskSet
from nodemesh.xds.stream import ConfigStream
from waypoint.flows import FlowObserver
from waypoint.h1_upstream import CONNECT_TRACEPARENT, UpstreamPool
from waypoint.h2_pool import Http2Pool, by_protocol
from waypoint.h2_session import http2_server
from waypoint.inbound import Inbound
from waypoint.pipeline import Proxy
from waypoint.spans import SpanRecorder
from waypoint.state import WaypointConfig
from waypoint.streams import ByteStream, TcpStream, TunnelStream
from waypoint.telemetry import WaypointMetrics

log = logging.getLogger("nodemesh.waypoint")
HBONE_PORT = 15008
RENEW_CHECK_SECONDS = 30.0


def access_log(line: str) -> None:
    """One JSON line per request on stdout: the waypoint pod's log is its access log."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


@dataclass
class WaypointSettings:
    name: str
    namespace: str
    pod_ip: str
    controller: str  # host of the controller's listeners
    token_file: str  # the pod's service-account token
    bundle_pem: bytes  # trust bundle for the bootstrap connection
    trust_domain: str = "cluster.local"
    bootstrap_port: int = 15011
    mtls_port: int = 15012
    metrics_port: int = 15020
    health_port: int = 15021
    admin_port: int = 15000


class Waypoint:
    def __init__(self, settings: WaypointSettings) -> None:
        self.settings = settings
        self.config = WaypointConfig(settings.trust_domain)
        self.registry = CollectorRegistry()
        self.spans = SpanRecorder()
        self.flows = FlowRing()  # one event per request: /debug/flows
        self.observer = FlowObserver(
            WaypointMetrics(self.registry),
            access_log,
            self.spans,
            ring=self.flows,
            waypoint=f"{settings.namespace}/{settings.name}",
        )
        self.flow_reporter = FlowReporter(self.flows, ReporterMetrics(self.registry))  # → relay
        self.identity: KeyAndCert | None = None
        self.stopping = False
        self._tasks = TaskSet(f"waypoint/{settings.namespace}/{settings.name}")
        self._closers: list = []
        self._stream = ConfigStream(
            f"waypoint~{settings.namespace}~{settings.name}",
            scope.WAYPOINT_TYPE_URLS,
            self._on_config,
        )

    @property
    def spiffe_id(self) -> str:
        s = self.settings
        return f"spiffe://{s.trust_domain}/ns/{s.namespace}/sa/{s.name}"

    # -- config --------------------------------------------------------------------------------
    def _on_config(self, type_url, upserts, removals) -> dict:
        rejected = self.config.apply(type_url, upserts, removals)
        for name, reason in rejected.items():
            log.warning("rejected %s %s: %s", type_url.rsplit(".", 1)[-1], name, reason)
        return rejected

    @property
    def ready(self) -> bool:
        """Every config type has arrived once, and not draining."""
        return not self.stopping and self._stream.synced()

    # -- lifecycle -----------------------------------------------------------------------------
    async def start(self) -> None:
        s = self.settings
        self.identity = await self._bootstrap()
        log.info("waypoint %s/%s is %s", s.namespace, s.name, self.spiffe_id)
        self.hbone_pool = HbonePool(self.identity)
        self.upstreams = UpstreamPool(self._connect)
        self.h2_upstreams = Http2Pool(self._connect, fallback=self.upstreams)
        self.proxy = Proxy(
            name=s.name,
            namespace=s.namespace,
            config=self.config,
            pool=self.upstreams,
            observer=self.observer,
            rng=random.Random(),
            upstream_for=by_protocol(self.upstreams, self.h2_upstreams),
        )
        inbound = Inbound(
            lambda: self.config.state,
            self.proxy.handle,
            http2=http2_server(self.proxy.handle),
            name=self._label(),
        )
        self.hbone = HboneServer(self.identity, inbound)
        sock = socket.create_server((s.pod_ip, HBONE_PORT), reuse_port=False, backlog=1024)
        await self.hbone.serve(sock)
        admin_server = admin.AdminServer(self.routes())
        self._closers.append(await admin.serve(admin_server, "127.0.0.1", s.admin_port))
        health = admin.AdminServer({"/healthz/ready": self._readiness})
        self._closers.append(await admin.serve(health, s.pod_ip, s.health_port))
        if s.metrics_port >= 0:
            self._metrics_server, _ = start_http_server(s.metrics_port, registry=self.registry)
        address = f"{s.controller}:{s.mtls_port}"
        config = self._stream.run(lambda: controlplane.mtls_channel(address, self.identity))
        self._tasks.spawn(config, "config-stream")
        flows = self.flow_reporter.run(lambda: controlplane.mtls_channel(address, self.identity))
        self._tasks.spawn(flows, "flow-reports")  # stopped with the other tasks
        self._tasks.spawn(self._renew_loop(), "renew")

    async def stop(self, grace: float = 10.0) -> None:
        self.stopping = True
        self._tasks.cancel()
        await self._tasks.wait()
        await self.hbone.shutdown(grace)
        await self.hbone_pool.close(grace)
        self.h2_upstreams.close()
        self.upstreams.close()
        for closer in self._closers:
            closer.close()
        if getattr(self, "_metrics_server", None) is not None:
            await asyncio.to_thread(self._metrics_server.shutdown)
            self._metrics_server.server_close()

    async def _bootstrap(self) -> KeyAndCert:
        s = self.settings
        delay = 0.5
        while True:
            try:
                token = controlplane.read_token(s.token_file)
                return await controlplane.bootstrap_workload(
                    f"{s.controller}:{s.bootstrap_port}",
                    s.bundle_pem,
                    token,
                    controlplane.new_key(),
                )
            except controlplane.TokenFileError:
                raise
            except Exception as exc:  # the controller may still be starting: keep trying
                log.warning("bootstrap failed (%s); retrying in %.1fs", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)

    async def _renew_loop(self) -> None:
        from node_agent.agent import renewal_due  # one rule for half-life renewal

        while True:
            await asyncio.sleep(RENEW_CHECK_SECONDS)
            try:
                if self.identity is not None and renewal_due(self.identity, time.time()):
                    channel = controlplane.mtls_channel(
                        f"{self.settings.controller}:{self.settings.mtls_port}", self.identity
                    )
                    try:
                        renewed = await controlplane.workload_certificate(channel, self.spiffe_id)
                    finally:
                        await channel.close()
                    self.identity = renewed
                    self.hbone.update_identity(renewed)
                    self.hbone_pool.update_identity(renewed)
                    log.info("renewed %s until %s", self.spiffe_id, time.ctime(renewed.not_after))
            except Exception:
                log.exception("certificate renewal failed; retrying in %ss", RENEW_CHECK_SECONDS)

    # -- upstream connections ------------------------------------------------------------------
    async def _connect(self, endpoint: tuple[str, int]) -> ByteStream:
        """HBONE to the endpoint's agent when the endpoint is in the mesh, else plain TCP."""
        ip, port = endpoint
        peer = self.config.state.peer_by_address.get(ip)
        if peer is not None and peer.enrolled:
            tunnel = await self.hbone_pool.open(
                (ip, HBONE_PORT),
                SpiffeId.parse(peer.identity),
                f"{ip}:{port}",
                tunnel_headers(self.settings.pod_ip, traceparent=CONNECT_TRACEPARENT.get()),
            )
            return TunnelStream(tunnel)
        reader, writer = await asyncio.open_connection(ip, port)
        return TcpStream(reader, writer)

    def _readiness(self, query) -> dict:
        """Istio's waypoint readiness (15021): ready once the first config has arrived."""
        if not self.ready:
            raise admin.RouteStatus(503, {"ready": False, "why": "no config from the controller"})
        return {"ready": True}

    def _label(self) -> str:
        return f"{self.settings.namespace}/{self.settings.name}"

    def routes(self) -> dict:
        return {
            "/healthz": lambda q: {"ready": self.ready, "synced": self._stream.synced()},
            "/debug/config": lambda q: {
                "generation": self.config.generation,
                "services": sorted(self.config.state.services),
                "routeErrors": dict(self.config.state.route_errors),
                "stream": {t: c.state() for t, c in self._stream.clients.items()},
            },
            "/debug/certs": lambda q: {
                "identity": self.spiffe_id,
                "notAfter": self.identity.not_after if self.identity else None,
            },
            "/debug/spans": lambda q: [span.to_dict() for span in self.spans.spans()],
            "/debug/flows": flows_route(self.flows),  # long-poll: ?since=N&limit=M&wait=S
        }
