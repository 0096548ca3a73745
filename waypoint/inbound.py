"""HBONE into the waypoint: terminate each tunnel, learn what it carries, serve it.

An agent sends the waypoint one CONNECT per client connection, `:authority` = the address the
client dialled (a Service VIP and port), with the client's verified identity on the mTLS
connection and its original address in `Forwarded`. The waypoint refuses tunnels for anything
it does not serve (so a misrouted connection fails loudly at the source agent), then reads the
first bytes to tell the protocols apart, as Envoy's HTTP inspector does:
- the HTTP/2 connection preface → an HTTP/2 session (gRPC included);
- an HTTP/1.x request line → an HTTP/1.1 session;
- anything else → opaque TCP, relayed to one endpoint (L4 only: there is nothing to route on).
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable

from nodemesh.hbone.headers import parse_authority
from nodemesh.hbone.server import TunnelRequest
from waypoint.exchange import Downstream, Reply
from waypoint.h1_session import Http1Session
from waypoint.messages import Peer
from waypoint.state import WaypointState
from waypoint.streams import ByteStream, TunnelStream, splice

log = logging.getLogger("nodemesh.waypoint.inbound")

H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
_HTTP1 = re.compile(rb"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,32} ")  # a method token, then a space
SNIFF_TIMEOUT = 10.0

Handler = Callable[[Downstream], Awaitable[Reply]]
Http2Server = Callable[[ByteStream, bytes, Peer, tuple[str, int]], Awaitable[None]]
TcpRelay = Callable[[ByteStream, bytes, Peer, tuple[str, int]], Awaitable[None]]


class Inbound:
    """The HboneServer handler of a waypoint."""

    def __init__(
        self,
        state: Callable[[], WaypointState],
        handler: Handler,
        *,
        http2: Http2Server | None = None,
        tcp: TcpRelay | None = None,
        name: str = "",
    ) -> None:
        self.state, self.handler, self.http2, self.tcp, self.name = (
            state,
            handler,
            http2,
            tcp,
            name,
        )

    async def __call__(self, request: TunnelRequest) -> None:
        try:
            ip, port = parse_authority(request.authority)
        except ValueError as exc:
            request.refuse(400, str(exc))
            return
        service = self.state().service_by_vip.get(ip)
        if service is None or port not in {p.port for p in service.ports}:
            request.refuse(404, f"waypoint {self.name} serves no Service at {request.authority}")
            return
        peer = Peer(
            identity=str(request.peer_identity),
            address=(_forwarded_for(request.headers) or request.peer_address[0], 0),
            destination=(ip, port),
            extra={"baggage": request.headers.get("baggage", "")},
        )
        stream = TunnelStream(request.accept())
        await self.serve(stream, peer, (ip, port))

    async def serve(self, stream: ByteStream, peer: Peer, destination: tuple[str, int]) -> None:
        try:
            first = await asyncio.wait_for(_sniff(stream), SNIFF_TIMEOUT)
        except (TimeoutError, ConnectionError, OSError):
            stream.close(abort=True)
            return
        if not first:
            stream.close()
            return
        if first.startswith(H2_PREFACE) and self.http2 is not None:
            await self.http2(stream, first, peer, destination)
        elif _HTTP1.match(first):
            await Http1Session(stream, self.handler, peer, destination).run(first)
        elif self.tcp is not None:
            await self.tcp(stream, first, peer, destination)
        else:
            stream.close(abort=True)


async def _sniff(stream: ByteStream) -> bytes:
    """The first bytes, read on while they are still a proper prefix of the HTTP/2 preface.

    A client may send its first bytes in pieces; deciding on "P" alone would hand an HTTP/1.1
    "POST" to the HTTP/2 session. Only a prefix of the 24-byte preface makes us wait for more.
    """
    first = await stream.read()
    while first and len(first) < len(H2_PREFACE) and H2_PREFACE.startswith(first):
        more = await stream.read()
        if not more:
            break
        first += more
    return first


async def relay_tcp(upstream: ByteStream, client: ByteStream, first: bytes) -> None:
    """Opaque TCP through the waypoint: the bytes already read go first."""
    await upstream.write(first)
    await splice(client, upstream)


def _forwarded_for(headers: dict[str, str]) -> str | None:
    value = headers.get("forwarded", "")
    for part in value.split(";"):
        key, _, addr = part.strip().partition("=")
        if key.lower() == "for" and addr:
            return addr.strip('"[]')
    return None
