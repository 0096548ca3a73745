"""A waypoint on loopback for in-process tests: real backends, real clients, no cluster.

`Rig` runs the waypoint's request path (sessions, pipeline, upstream pools, telemetry) behind a
plain TCP listener on 127.0.0.1 instead of HBONE: each accepted connection is served as if an
agent had tunnelled it for `VIP:80` from `CLIENT_ID`, HTTP/1.1 or HTTP/2 (prior knowledge) as
the client speaks. Backends are small threaded HTTP/1.1 servers, an h2c server (`H2Backend`)
and a grpcio server (`GrpcBackend`; both in `h2_backends`) on loopback; the Services' endpoints
point at them.
"""

from __future__ import annotations

import asyncio
import http.server
import json
import random
import threading
import time
from dataclasses import dataclass, field, replace

from prometheus_client import CollectorRegistry

from controller.model import Endpoint, HttpRoute, PeerWorkload, RouteParent, Service, ServicePort
from waypoint.h1_upstream import UpstreamPool
from waypoint.h2_pool import Http2Pool, by_protocol
from waypoint.h2_session import http2_server
from waypoint.inbound import Inbound
from waypoint.messages import Peer
from waypoint.observer import RequestObserver
from waypoint.pipeline import Proxy
from waypoint.spans import SpanRecorder
from waypoint.state import WaypointConfig, WaypointState
from waypoint.streams import TcpStream
from waypoint.telemetry import WaypointMetrics

NS = "shop"
CLIENT_ID = "spiffe://cluster.local/ns/shop/sa/client"
VIP = "198.19.0.10"


class Backend:
    """A threaded HTTP/1.1 server that answers its name; `fail_every` makes every n-th a 503.

    `held=True` makes every request wait for `gate` (set by the test, or on exit) after it is
    counted, so "in flight" is a fact the test controls rather than a race against a delay.
    """

    def __init__(
        self, name: str, fail_every: int = 0, delay: float = 0.0, held: bool = False
    ) -> None:
        self.name, self.fail_every, self.delay = name, fail_every, delay
        self.count = 0
        self.gate = threading.Event()
        if not held:
            self.gate.set()
        self.lock = threading.Lock()
        backend = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def _answer(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body_in = self.rfile.read(length) if length else b""
                with backend.lock:
                    backend.count += 1
                    n = backend.count
                backend.gate.wait(60)
                if backend.delay:
                    time.sleep(backend.delay)
                status = 503 if backend.fail_every and n % backend.fail_every == 0 else 200
                body = json.dumps(
                    {
                        "backend": backend.name,
                        "path": self.path,
                        "method": self.command,
                        "headers": dict(self.headers.items()),
                        "body": body_in.decode("latin-1"),
                    }
                ).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PUT = do_DELETE = _answer

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.server.handle_error = lambda request, address: None  # resets are part of the tests
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Backend:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.gate.set()
        self.server.shutdown()
        self.server.server_close()

    async def until_count(self, count: int) -> None:
        """Until `count` requests have arrived (held ones included)."""
        while self.count < count:
            await asyncio.sleep(0.01)


def service(name: str, backends: list[Backend], port: int = 80, vip: str | None = None) -> Service:
    return Service(
        name=name,
        namespace=NS,
        hostname=f"{name}.{NS}.svc.cluster.local",
        vips=(vip,) if vip else (),
        ports=(ServicePort("http", port, "http", "TCP", "http"),),
        endpoints=tuple(
            Endpoint(f"uid-{b.name}", "127.0.0.1", ((port, b.port),)) for b in backends
        ),
        waypoint="waypoint",
    )


def peers(backends: list[Backend]) -> list[PeerWorkload]:
    # Plaintext endpoints (not enrolled): the rig's upstream connector speaks plain TCP.
    return [
        PeerWorkload(f"uid-{b.name}", b.name, NS, ("127.0.0.1",), "node1", "", "", enrolled=False)
        for b in backends
    ]


def route(name: str, rules: list[dict], parent: str = "web") -> HttpRoute:
    return HttpRoute(
        name=name,
        namespace=NS,
        parents=(RouteParent(NS, parent, 0, ""),),
        hostnames=(),
        rules=json.dumps(rules),
    )


@dataclass
class Rig:
    services: list[Service]
    peers: list[PeerWorkload]
    routes: list[HttpRoute] = field(default_factory=list)
    policies: list = field(default_factory=list)
    traffic: dict = field(default_factory=dict)
    seed: int = 7

    async def __aenter__(self) -> Rig:
        self.config = WaypointConfig()
        state = WaypointState.build(
            self.services, self.peers, self.routes, self.policies, "cluster.local"
        )
        self.config.state = replace(state, traffic_policies=self.traffic)
        self.registry = CollectorRegistry()
        self.log: list[str] = []
        self.spans = SpanRecorder()
        observer = RequestObserver(WaypointMetrics(self.registry), self.log.append, self.spans)
        self.pool = UpstreamPool(self._connect)
        self.h2pool = Http2Pool(self._connect, fallback=self.pool)
        self.proxy = Proxy(
            name="waypoint",
            namespace=NS,
            config=self.config,
            pool=self.pool,
            observer=observer,
            rng=random.Random(self.seed),
            upstream_for=by_protocol(self.pool, self.h2pool),
        )
        inbound = Inbound(
            lambda: self.config.state,
            self.proxy.handle,
            http2=http2_server(self.proxy.handle),
            name=f"{NS}/waypoint",
        )

        async def on_client(reader, writer) -> None:
            peer = Peer(CLIENT_ID, writer.get_extra_info("peername")[:2], (VIP, 80))
            await inbound.serve(TcpStream(reader, writer), peer, (VIP, 80))

        self.server = await asyncio.start_server(on_client, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc) -> None:
        self.server.close()
        self.h2pool.close()
        self.pool.close()

    @staticmethod
    async def _connect(endpoint):
        reader, writer = await asyncio.open_connection(*endpoint)
        return TcpStream(reader, writer)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def eventually_metric(self, name: str, expected: float, **labels) -> float:
        """The metric once it reaches `expected`: a request is counted just after its last byte
        went out, so a client may see the answer a moment before the count moves."""
        for _ in range(500):
            value = self.metric(name, **labels)
            if value >= expected:
                return value
            await asyncio.sleep(0.01)
        return self.metric(name, **labels)

    def metric(self, name: str, **labels) -> float:
        total = 0.0
        for family in self.registry.collect():
            for sample in family.samples:
                if sample.name == name and all(
                    sample.labels.get(k) == v for k, v in labels.items()
                ):
                    total += sample.value
        return total


async def curl(*args: str, stdin: bytes | None = None) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        "curl",
        "-sS",
        *args,
        stdin=asyncio.subprocess.PIPE if stdin is not None else None,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate(stdin)
    return proc.returncode, out.decode(), err.decode()


async def curl_many(url: str, count: int, *args: str) -> list[tuple[int, str]]:
    """`count` requests on one keep-alive connection; [(status, body)]."""
    config = "".join(f'url = "{url}"\n' for _ in range(count))
    marker = "\n@@%{http_code}@@\n"
    rc, out, err = await curl("-K", "-", "-w", marker, *args, stdin=config.encode())
    assert rc == 0, err
    results = []
    for chunk in out.split("@@\n")[:-1]:
        body, _, code = chunk.rpartition("\n@@")
        results.append((int(code), body))
    return results


async def nghttp(*args: str) -> tuple[int, str, str]:
    """nghttp2's client; an http:// URL is HTTP/2 with prior knowledge unless -u (upgrade)."""
    proc = await asyncio.create_subprocess_exec(
        "nghttp",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    return proc.returncode, out.decode(errors="replace"), err.decode(errors="replace")
