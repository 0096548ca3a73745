"""The cluster DNS server in process, on loopback sockets with ephemeral ports.

The runtime daemon binds port 53 inside node network namespaces; here the test binds 127.0.0.1:0
the same way (bound, and listening for TCP) and hands the sockets over. Clients are dnslib's
blocking ``DNSRecord.send`` (run in a thread) and plain asyncio sockets for byte-level cases.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass

import pytest
from dnslib import QTYPE, RCODE, DNSRecord

from nodemesh.local import dns_server
from nodemesh.local.dns import Rcode, ServiceRecord, ZoneSnapshot
from nodemesh.local.dns_server import ClusterDnsServer, ServerClosedError

WEB = "web.default.svc.cluster.local"
ZONE = ZoneSnapshot.build([ServiceRecord("web", "default", "198.19.0.10")], [])
DEADLINE = 10.0


def run(coro: Awaitable[None]) -> None:
    asyncio.run(asyncio.wait_for(coro, DEADLINE))


@dataclass
class Served:
    server: ClusterDnsServer
    udp: tuple[str, int]
    tcp: tuple[str, int]
    udp_sock: socket.socket
    tcp_sock: socket.socket
    tasks: list[asyncio.Task[None]]


@contextlib.asynccontextmanager
async def serving(server: ClusterDnsServer) -> AsyncIterator[Served]:
    """Bind like the runtime does, serve, then close and check the loops ended quietly."""
    udp_sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tcp_sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    with udp_sock, tcp_sock:
        udp_sock.bind(("127.0.0.1", 0))
        tcp_sock.bind(("127.0.0.1", 0))
        tcp_sock.listen(16)
        tasks = [
            asyncio.create_task(server.serve_udp(udp_sock)),
            asyncio.create_task(server.serve_tcp(tcp_sock)),
        ]
        await asyncio.sleep(0)
        try:
            yield Served(
                server, udp_sock.getsockname(), tcp_sock.getsockname(), udp_sock, tcp_sock, tasks
            )
        finally:
            server.close()
            await server.wait_closed()
            assert [await task for task in tasks] == [None, None]  # close() is not an error


async def udp_exchange(addr: tuple[str, int], wire: bytes) -> bytes:
    loop = asyncio.get_running_loop()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setblocking(False)
        await loop.sock_sendto(sock, wire, addr)
        reply, _ = await asyncio.wait_for(loop.sock_recvfrom(sock, 65535), 2)
        return reply


async def send_with_dnslib(q: DNSRecord, addr: tuple[str, int], *, tcp: bool) -> DNSRecord:
    wire = await asyncio.to_thread(q.send, addr[0], addr[1], tcp=tcp, timeout=2)
    reply = DNSRecord.parse(wire)
    assert reply.header.id == q.header.id
    return reply


def frame(wire: bytes) -> bytes:
    return struct.pack("!H", len(wire)) + wire


async def read_frame(reader: asyncio.StreamReader) -> DNSRecord:
    size = int.from_bytes(await asyncio.wait_for(reader.readexactly(2), 2), "big")
    return DNSRecord.parse(await reader.readexactly(size))


async def assert_closed_by_server(reader: asyncio.StreamReader) -> None:
    with contextlib.suppress(ConnectionResetError):
        assert await asyncio.wait_for(reader.read(), 2) == b""


def addresses(reply: DNSRecord) -> list[str]:
    return [str(rr.rdata) for rr in reply.rr if rr.rtype == QTYPE.A]


def test_answers_over_udp_and_tcp_and_counts_by_rcode() -> None:
    async def scenario() -> None:
        async with serving(ClusterDnsServer(ZONE)) as s:
            reply = await send_with_dnslib(DNSRecord.question(WEB), s.udp, tcp=False)
            assert addresses(reply) == ["198.19.0.10"]
            reply = await send_with_dnslib(DNSRecord.question(WEB), s.tcp, tcp=True)
            assert addresses(reply) == ["198.19.0.10"]
            q = DNSRecord.question("web.default.default.svc.cluster.local")
            reply = await send_with_dnslib(q, s.udp, tcp=False)
            assert reply.header.rcode == RCODE.NXDOMAIN
            stats = s.server.stats
            assert (stats.udp_queries, stats.tcp_queries) == (2, 1)
            assert stats.answers == {Rcode.NOERROR: 2, Rcode.NXDOMAIN: 1}

    run(scenario())


def test_update_takes_effect_for_the_next_query() -> None:
    async def scenario() -> None:
        async with serving(ClusterDnsServer(ZONE)) as s:
            q = DNSRecord.question("db.default.svc.cluster.local")
            assert (await send_with_dnslib(q, s.udp, tcp=False)).header.rcode == RCODE.NXDOMAIN
            new = ZoneSnapshot.build([ServiceRecord("db", "default", None, ("198.18.1.7",))], [])
            s.server.update(new)
            assert s.server.zone is new
            assert addresses(await send_with_dnslib(q, s.udp, tcp=False)) == ["198.18.1.7"]
            assert addresses(await send_with_dnslib(q, s.tcp, tcp=True)) == ["198.18.1.7"]

    run(scenario())


def test_udp_garbage_is_survived() -> None:
    async def scenario() -> None:
        async with serving(ClusterDnsServer(ZONE)) as s:
            loop = asyncio.get_running_loop()
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                sock.setblocking(False)
                response = DNSRecord.question(WEB).reply().pack()
                for junk in (b"", b"\x01\x02\x03", bytes(range(256)) * 4, response):
                    await loop.sock_sendto(sock, junk, s.udp)
            formerr = await udp_exchange(s.udp, b"\x12\x34\x01\x00" + b"\xff" * 20)
            assert DNSRecord.parse(formerr).header.rcode == RCODE.FORMERR
            assert addresses(await send_with_dnslib(DNSRecord.question(WEB), s.udp, tcp=False))
            assert s.server.stats.dropped == 3  # empty, 3 bytes, and the response
            assert s.server.stats.answers[Rcode.FORMERR] == 2  # the 1 KiB of junk, and ours

    run(scenario())


def test_large_udp_answer_is_truncated_and_tcp_carries_it() -> None:
    ips = tuple(f"198.18.1.{i}" for i in range(1, 61))
    zone = ZoneSnapshot.build([ServiceRecord("big", "default", None, ips)], [])

    async def scenario() -> None:
        async with serving(ClusterDnsServer(zone)) as s:
            q = DNSRecord.question("big.default.svc.cluster.local")
            over_udp = DNSRecord.parse(await udp_exchange(s.udp, q.pack()))
            assert over_udp.header.tc == 1 and over_udp.rr == []
            over_tcp = await send_with_dnslib(q, s.tcp, tcp=True)
            assert over_tcp.header.tc == 0 and len(over_tcp.rr) == 60
            assert s.server.stats.truncated == 1

    run(scenario())


def test_tcp_connection_carries_several_queries_in_order() -> None:
    async def scenario() -> None:
        async with serving(ClusterDnsServer(ZONE)) as s:
            reader, writer = await asyncio.open_connection(*s.tcp)
            names = [WEB, "nope.default.svc.cluster.local", WEB.upper()]
            queries = [DNSRecord.question(name) for name in names]
            writer.write(b"".join(frame(q.pack()) for q in queries))  # pipelined
            replies = [await read_frame(reader) for _ in queries]
            assert [r.header.id for r in replies] == [q.header.id for q in queries]
            assert [r.header.rcode for r in replies] == [0, RCODE.NXDOMAIN, 0]
            writer.close()
            await writer.wait_closed()

    run(scenario())


@pytest.mark.parametrize(
    ("junk", "answered"),
    [
        (b"\x00\x01\x02", False),  # shorter than a header: nothing to answer, close
        (b"", False),  # an empty frame
        (b"\x12\x34\x01\x00" + b"\xff" * 20, True),  # readable header: FORMERR, then close
    ],
)
def test_malformed_tcp_frame_closes_only_that_connection(junk: bytes, answered: bool) -> None:
    async def scenario() -> None:
        async with serving(ClusterDnsServer(ZONE)) as s:
            bad_reader, bad_writer = await asyncio.open_connection(*s.tcp)
            good_reader, good_writer = await asyncio.open_connection(*s.tcp)
            good_writer.write(frame(DNSRecord.question(WEB).pack()))
            assert addresses(await read_frame(good_reader)) == ["198.19.0.10"]

            bad_writer.write(frame(junk))
            if answered:
                assert (await read_frame(bad_reader)).header.rcode == RCODE.FORMERR
            await assert_closed_by_server(bad_reader)

            good_writer.write(frame(DNSRecord.question(WEB).pack()))
            assert addresses(await read_frame(good_reader)) == ["198.19.0.10"]
            bad_writer.close()
            good_writer.close()

    run(scenario())


def test_idle_tcp_connection_is_closed() -> None:
    async def scenario() -> None:
        async with serving(ClusterDnsServer(ZONE, tcp_idle_timeout=0.2)) as s:
            reader, writer = await asyncio.open_connection(*s.tcp)
            writer.write(b"\x00")  # half a length prefix, then silence
            await assert_closed_by_server(reader)
            writer.close()

    run(scenario())


def test_connections_over_the_limit_are_closed_at_once() -> None:
    async def scenario() -> None:
        async with serving(ClusterDnsServer(ZONE, max_tcp_connections=1)) as s:
            first_reader, first_writer = await asyncio.open_connection(*s.tcp)
            first_writer.write(frame(DNSRecord.question(WEB).pack()))
            await read_frame(first_reader)  # the first connection is being served
            extra_reader, extra_writer = await asyncio.open_connection(*s.tcp)
            await assert_closed_by_server(extra_reader)
            assert s.server.stats.tcp_connections_refused == 1
            first_writer.close()
            extra_writer.close()

    run(scenario())


def test_a_bug_in_answering_does_not_stop_the_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def broken_once(query, zone, *, max_udp):
        calls.append(query)
        if len(calls) == 1:
            raise RuntimeError("bug")
        return real(query, zone, max_udp=max_udp)

    real = dns_server.respond
    monkeypatch.setattr(dns_server, "respond", broken_once)

    async def scenario() -> None:
        async with serving(ClusterDnsServer(ZONE)) as s:
            loop = asyncio.get_running_loop()
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                await loop.sock_sendto(sock, DNSRecord.question(WEB).pack(), s.udp)
            assert addresses(await send_with_dnslib(DNSRecord.question(WEB), s.udp, tcp=False))
            assert s.server.stats.internal_errors == 1

    run(scenario())


def test_close_stops_connections_but_leaves_the_handed_in_sockets_open() -> None:
    async def scenario() -> None:
        server = ClusterDnsServer(ZONE)
        async with serving(server) as s:
            reader, writer = await asyncio.open_connection(*s.tcp)
            writer.write(frame(DNSRecord.question(WEB).pack()))
            await read_frame(reader)
            server.close()
            await server.wait_closed()
            await assert_closed_by_server(reader)
            assert all(task.done() for task in s.tasks)
            assert s.udp_sock.fileno() >= 0 and s.tcp_sock.fileno() >= 0
            writer.close()
        fresh = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        with fresh, pytest.raises(ServerClosedError):
            await server.serve_udp(fresh)

    run(scenario())


def test_cancelling_the_caller_propagates_and_leaves_the_server_usable() -> None:
    async def scenario() -> None:
        server = ClusterDnsServer(ZONE)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.bind(("127.0.0.1", 0))
            task = asyncio.create_task(server.serve_udp(sock))
            await asyncio.sleep(0.01)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            await server.wait_closed()
            again = asyncio.create_task(server.serve_udp(sock))
            reply = await send_with_dnslib(DNSRecord.question(WEB), sock.getsockname(), tcp=False)
            assert addresses(reply) == ["198.19.0.10"]
            server.close()
            assert await again is None

    run(scenario())
