"""`python -m perf.waypoint_standalone`: the waypoint's request path as its own process (bench).

Theory of operation: the benchmark must read the waypoint's CPU time and RSS from /proc, so the
waypoint cannot share a process with the load generator. This shell builds what a controller
push would (a `WaypointState` with one Service whose VIP and single endpoint point at the
backend), and serves the real request path (`Inbound` sniffing, the HTTP/1.1 session, the
`Proxy` pipeline, the upstream pool, metrics, spans and the access log) on a plain loopback TCP
listener, exactly as `tests/inprocess/waypoint_rig.py` does: each accepted connection is served
as if an agent had tunnelled it for `VIP:80` from `CLIENT_ID`. No cluster, no HBONE, no
controller, no metrics exporter (the registry is filled but nobody scrapes it).

Once listening it prints one JSON line on stdout, `{"port": N, "http2": bool, "why": str}`, so
the caller learns the port it bound (``--listen 127.0.0.1:0`` picks a free one) and whether
HTTP/2 is wired; SIGTERM or SIGINT stops it. The event loop is the data plane's (uvloop unless
NODEMESH_EVENT_LOOP=asyncio), so the figures are the production loop's.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import random
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TextIO

from prometheus_client import CollectorRegistry, disable_created_metrics

from controller.model import Endpoint, PeerWorkload, Service, ServicePort
from nodemesh.eventloop import event_loop_factory
from waypoint.exchange import Downstream, Reply
from waypoint.h1_upstream import UpstreamPool
from waypoint.inbound import Http2Server, Inbound
from waypoint.messages import Peer
from waypoint.observer import RequestObserver
from waypoint.pipeline import Proxy
from waypoint.spans import SpanRecorder
from waypoint.state import WaypointConfig, WaypointState
from waypoint.streams import ByteStream, TcpStream
from waypoint.telemetry import WaypointMetrics

NS = "bench"
NAME = "waypoint"
VIP = "198.19.255.10"  # inside 198.18.0.0/15, the benchmarking block; never routed here
SERVICE_PORT = 80
CLIENT_ID = f"spiffe://cluster.local/ns/{NS}/sa/client"

Handler = Callable[[Downstream], Awaitable[Reply]]


def parse_address(text: str) -> tuple[str, int]:
    """'HOST:PORT' → (host, port), with a message that says what was expected."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r}: expected HOST:PORT, e.g. 127.0.0.1:8080")
    return host, int(port)


def bench_state(backend: tuple[str, int]) -> WaypointState:
    """One Service at VIP:80 whose only endpoint is the backend, reached in plaintext.

    No HTTPRoute: the waypoint's default route (the Service itself) applies, which is what a
    namespace that only asks for a waypoint gets.
    """
    ip, port = backend
    service = Service(
        name="backend",
        namespace=NS,
        hostname=f"backend.{NS}.svc.cluster.local",
        vips=(VIP,),
        ports=(ServicePort("http", SERVICE_PORT, "http", "TCP", "http"),),
        endpoints=(Endpoint("uid-backend", ip, ((SERVICE_PORT, port),)),),
        waypoint=NAME,
    )
    # Not enrolled: the upstream connector speaks plain TCP, as to a workload outside the mesh.
    peer = PeerWorkload("uid-backend", "backend", NS, (ip,), "node1", "", "", enrolled=False)
    return WaypointState.build([service], [peer], [], [], "cluster.local")


def http2_server(handler: Handler) -> tuple[Http2Server | None, str]:
    """The HTTP/2 server for `Inbound(http2=...)`, or None and why not.

    `waypoint.h2_session` was written alongside this benchmark; in a checkout without it (or
    with a different entry point) HTTP/2 through the waypoint is reported as unavailable
    instead of failing the whole benchmark.
    """
    try:
        from waypoint import h2_session
    except ImportError as exc:
        return None, f"waypoint.h2_session is not importable ({exc})"
    factory = getattr(h2_session, "http2_server", None)
    if factory is None:
        return None, "waypoint.h2_session has no http2_server(handler)"
    return factory(handler), ""


class Standalone:
    """The waypoint's request path on one loopback listener; `serve()` runs until `stop()`."""

    def __init__(self, backend: tuple[str, int], access_log: TextIO | None = None) -> None:
        self.config = WaypointConfig()
        self.config.state = bench_state(backend)
        self.registry = CollectorRegistry()
        sink = _line_writer(access_log) if access_log is not None else None
        observer = RequestObserver(WaypointMetrics(self.registry), sink, SpanRecorder())
        self.pool = UpstreamPool(_connect)
        self.proxy = Proxy(
            name=NAME,
            namespace=NS,
            config=self.config,
            pool=self.pool,
            observer=observer,
            rng=random.Random(),
        )
        self.http2, self.http2_why = http2_server(self.proxy.handle)
        self.inbound = Inbound(
            lambda: self.config.state, self.proxy.handle, http2=self.http2, name=f"{NS}/{NAME}"
        )
        self._stop = asyncio.Event()

    async def _on_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = Peer(CLIENT_ID, writer.get_extra_info("peername")[:2], (VIP, SERVICE_PORT))
        await self.inbound.serve(TcpStream(reader, writer), peer, (VIP, SERVICE_PORT))

    async def serve(self, listen: tuple[str, int], out: TextIO) -> None:
        server = await asyncio.start_server(self._on_client, *listen, backlog=1024)
        port = server.sockets[0].getsockname()[1]
        out.write(
            json.dumps({"port": port, "http2": self.http2 is not None, "why": self.http2_why})
        )
        out.write("\n")
        out.flush()
        try:
            await self._stop.wait()
        finally:
            server.close()
            self.pool.close()

    def stop(self) -> None:
        self._stop.set()


async def _connect(endpoint: tuple[str, int]) -> ByteStream:
    reader, writer = await asyncio.open_connection(*endpoint)
    return TcpStream(reader, writer)


def _line_writer(out: TextIO) -> Callable[[str], None]:
    """Access log lines to a file, as the real waypoint writes them to stdout (one per request)."""

    def write(line: str) -> None:
        out.write(line + "\n")
        out.flush()

    return write


async def run(args: argparse.Namespace) -> None:
    with contextlib.ExitStack() as stack:
        log_file = stack.enter_context(args.access_log.open("a")) if args.access_log else None
        standalone = Standalone(args.backend, log_file)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, standalone.stop)
        await standalone.serve(args.listen, sys.stdout)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m perf.waypoint_standalone", description=__doc__)
    p.add_argument("--listen", type=parse_address, required=True, help="HOST:PORT (port 0: any)")
    p.add_argument("--backend", type=parse_address, required=True, help="HOST:PORT of HTTP/1.1")
    p.add_argument("--access-log", type=Path, help="append JSON access log lines here")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    disable_created_metrics()
    with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
        runner.run(run(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
