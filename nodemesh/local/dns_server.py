"""The asyncio shell that serves :func:`nodemesh.local.dns.respond` on UDP and TCP port 53.

The runtime daemon creates the sockets inside each node's network namespace (binding there is the
only namespace-specific step) and hands them over already bound, and for TCP already listening.
The caller keeps owning them: :meth:`ClusterDnsServer.close` stops our loops and the TCP
connections we accepted, but leaves the handed-in sockets open.

Every message goes through one guarded call, so nothing a peer sends can raise out of a serving
loop.  UDP is answered inline: answering is a dictionary lookup, far cheaper than a task.  Each
TCP connection gets a task that reads length-prefixed queries (RFC 7766) one after another until
the peer closes, stays idle too long, or sends a message we cannot parse; in that last case the
framing can no longer be trusted, so only that connection is closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections import Counter
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

from nodemesh.local.dns import PLAIN_UDP_PAYLOAD, Rcode, Response, ZoneSnapshot, respond
from nodemesh.tasks import TaskSet

log = logging.getLogger(__name__)

TCP_IDLE_TIMEOUT = 10.0
"""Seconds a TCP connection may sit between queries (RFC 7766 suggests seconds, not minutes)."""
MAX_TCP_CONNECTIONS = 256
"""Open TCP connections beyond this are closed at once, so idle clients cannot exhaust fds."""
_UDP_RECEIVE_SIZE = 65535
_ERROR_BACKOFF = 0.05  # seconds to pause after a socket error
_FRAME_PREFIX = 2


class ServerClosedError(RuntimeError):
    """serve_udp/serve_tcp was called after close(); build a new server instead."""


@dataclass
class DnsStats:
    """Plain counters for one server; whoever owns a metrics registry exports them."""

    udp_queries: int = 0
    tcp_queries: int = 0
    answers: Counter[Rcode] = field(default_factory=Counter)  # responses sent, by rcode
    truncated: int = 0  # UDP answers cut to a header and question, telling the client to use TCP
    dropped: int = 0  # messages not worth an answer (shorter than a header, or responses)
    tcp_connections: int = 0
    tcp_connections_refused: int = 0  # over MAX_TCP_CONNECTIONS
    send_errors: int = 0
    internal_errors: int = 0  # bugs in respond(); logged with a traceback


class ClusterDnsServer:
    """Answers cluster DNS queries from the current :class:`ZoneSnapshot`."""

    def __init__(
        self,
        zone: ZoneSnapshot,
        *,
        tcp_idle_timeout: float = TCP_IDLE_TIMEOUT,
        max_tcp_connections: int = MAX_TCP_CONNECTIONS,
    ) -> None:
        self._zone = zone
        self._tcp_idle_timeout = tcp_idle_timeout
        self._max_tcp_connections = max_tcp_connections
        self._tasks = TaskSet("dns")
        self._connections: set[asyncio.StreamWriter] = set()
        self._closed = False
        self.stats = DnsStats()

    @property
    def zone(self) -> ZoneSnapshot:
        """The snapshot queries are answered from now."""
        return self._zone

    def update(self, zone: ZoneSnapshot) -> None:
        """Publish a new snapshot; one reference swap, so no query sees half an update."""
        self._zone = zone

    async def serve_udp(self, sock: socket.socket) -> None:
        """Answer datagrams on a bound UDP socket until cancelled or :meth:`close`."""
        self._check_open()
        sock.setblocking(False)
        await self._run(self._udp_loop(sock), f"dns-udp {_describe(sock)}")

    async def serve_tcp(self, sock: socket.socket) -> None:
        """Accept connections on a listening TCP socket until cancelled or :meth:`close`."""
        self._check_open()
        sock.setblocking(False)
        await self._run(self._accept_loop(sock), f"dns-tcp {_describe(sock)}")

    def close(self) -> None:
        """Stop every loop and accepted connection; the handed-in sockets stay the caller's."""
        self._closed = True
        self._tasks.cancel()

    async def wait_closed(self) -> None:
        """Wait until the tasks stopped by :meth:`close` have finished their cleanup."""
        await self._tasks.wait()

    # --- one message --------------------------------------------------------------------------

    def _handle(self, query: bytes, max_udp: int | None) -> Response | None:
        """Answer one message and count it; the one place that guards against our own bugs."""
        try:
            response = respond(query, self._zone, max_udp=max_udp)
        except Exception:
            self.stats.internal_errors += 1
            log.exception("DNS: answering a %d-byte query failed; dropping it", len(query))
            return None
        if response is None:
            self.stats.dropped += 1
            return None
        self.stats.answers[response.rcode] += 1
        self.stats.truncated += int(response.truncated)
        if response.reason:
            log.debug("DNS: FORMERR: %s", response.reason)
        return response

    # --- UDP ----------------------------------------------------------------------------------

    async def _udp_loop(self, sock: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                query, peer = await loop.sock_recvfrom(sock, _UDP_RECEIVE_SIZE)
            except OSError as exc:
                if sock.fileno() < 0:
                    raise  # the caller closed the socket: nothing left to serve
                await _pause_after(exc, "receiving on UDP", sock)
                continue
            self.stats.udp_queries += 1
            response = self._handle(query, PLAIN_UDP_PAYLOAD)
            if response is not None:
                await self._send_datagram(loop, sock, response.wire, peer)

    async def _send_datagram(
        self, loop: asyncio.AbstractEventLoop, sock: socket.socket, wire: bytes, peer: Any
    ) -> None:
        try:
            await loop.sock_sendto(sock, wire, peer)
        except OSError as exc:
            self.stats.send_errors += 1
            log.debug("DNS: cannot send the answer to %s: %s", peer, exc)

    # --- TCP ----------------------------------------------------------------------------------

    async def _accept_loop(self, sock: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                conn, peer = await loop.sock_accept(sock)
            except OSError as exc:
                if sock.fileno() < 0:
                    raise  # the caller closed the socket: nothing left to serve
                await _pause_after(exc, "accepting on TCP", sock)
                continue
            if len(self._connections) >= self._max_tcp_connections:
                self.stats.tcp_connections_refused += 1
                conn.close()
                continue
            self.stats.tcp_connections += 1
            self._spawn(self._serve_connection(conn), f"dns-tcp-conn {peer}")

    async def _serve_connection(self, conn: socket.socket) -> None:
        try:
            reader, writer = await asyncio.open_connection(sock=conn)
        except OSError:
            conn.close()
            return
        self._connections.add(writer)
        try:
            await self._converse(reader, writer)
        except (OSError, TimeoutError, asyncio.IncompleteReadError) as exc:
            log.debug("DNS: TCP connection ended: %r", exc)  # peer left, reset or idled out
        finally:
            self._connections.discard(writer)
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    async def _converse(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Answer framed queries in order until EOF, idleness or an unparseable message."""
        while True:
            async with asyncio.timeout(self._tcp_idle_timeout):
                size = int.from_bytes(await reader.readexactly(_FRAME_PREFIX), "big")
                query = await reader.readexactly(size)
            self.stats.tcp_queries += 1
            response = self._handle(query, None)
            if response is None:
                return
            writer.write(len(response.wire).to_bytes(_FRAME_PREFIX, "big") + response.wire)
            async with asyncio.timeout(self._tcp_idle_timeout):
                await writer.drain()
            if response.rcode is Rcode.FORMERR:
                return

    # --- tasks --------------------------------------------------------------------------------

    async def _run(self, loop_coro: Coroutine[Any, Any, None], name: str) -> None:
        """Run a serving loop as our task: close() ends it quietly, a caller's cancel propagates."""
        task = self._spawn(loop_coro, name)
        try:
            await task
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if self._closed and current is not None and not current.cancelling():
                return
            raise

    def _check_open(self) -> None:
        if self._closed:
            raise ServerClosedError("this DNS server was closed; create a new one")

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        """The only way this module starts a task: keep a reference until it is done."""
        return self._tasks.spawn(coro, name)


async def _pause_after(exc: OSError, doing: str, sock: socket.socket) -> None:
    """Log a socket error (EMFILE, ENOBUFS...) and pause, so a lasting one cannot spin the loop."""
    log.warning("DNS: error %s on %s: %s; retrying", doing, _describe(sock), exc)
    await asyncio.sleep(_ERROR_BACKOFF)


def _describe(sock: socket.socket) -> str:
    """The socket's local address for log lines, or a placeholder once it is closed."""
    try:
        return str(sock.getsockname())
    except OSError:
        return "<closed socket>"
