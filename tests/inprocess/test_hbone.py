"""HBONE end to end on loopback: real TLS 1.3, real certificates from the CA, real sockets.

A test here plays the three parties of the traffic path: the source app (a plain TCP client),
the outbound agent (an HbonePool, with a local listener that splices into tunnels where the
test needs it), the inbound agent (an HboneServer whose handler connects to the destination) and
the destination app (an echo or bulk server on 127.0.0.1).
"""

from __future__ import annotations

import asyncio
import hashlib
import socket
import ssl
import time

import pytest

from controller.ca import CertificateAuthority
from nodemesh import controlplane
from nodemesh.controlplane import KeyAndCert
from nodemesh.hbone.client import HboneConnectError, HbonePool, PeerIdentityMismatch
from nodemesh.hbone.events import HboneError
from nodemesh.hbone.headers import parse_authority, tunnel_headers
from nodemesh.hbone.protocol import HboneClientConnection, HboneSettings
from nodemesh.hbone.server import HboneServer, TunnelRequest
from nodemesh.hbone.tls import client_context
from nodemesh.hbone.tunnel import TunnelRefusedError, TunnelResetError
from nodemesh.identity import SpiffeId

TD = "cluster.local"
WEB = SpiffeId(TD, "shop", "web")
DB = SpiffeId(TD, "shop", "db")
MiB = 1 << 20
BOUND = 60  # seconds: a hang guard, never a timing assertion


def issue(ca: CertificateAuthority, who: SpiffeId) -> KeyAndCert:
    key = controlplane.new_key()
    issued = ca.sign_csr(controlplane.csr_pem(key).encode(), who)
    return KeyAndCert(
        controlplane.key_pem(key),
        issued.chain_pem,
        ca.trust_bundle_pem(),
        int(issued.not_after.timestamp()),
    )


@pytest.fixture(scope="module")
def ca(tmp_path_factory):
    return CertificateAuthority.load_or_create(tmp_path_factory.mktemp("ca"), TD)


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, BOUND))


def listening_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    return sock


async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """The destination app: echo everything, then half-close when the client does."""
    try:
        while data := await reader.read(256 << 10):
            writer.write(data)
            await writer.drain()
        writer.write_eof()
    except ConnectionResetError:  # a tunnel reset reaches the app as a TCP reset
        pass
    writer.close()


class Mesh:
    """An inbound agent (HboneServer) in front of a destination app, and an outbound pool."""

    def __init__(self, ca, destination=echo, decide=None, server_identity=DB) -> None:
        self.ca = ca
        self.destination = destination
        self.decide = decide  # request -> (status, reason) to refuse, or None to accept
        self.requests: list[TunnelRequest] = []
        self.server_identity = issue(ca, server_identity)

    async def __aenter__(self) -> Mesh:
        self.app = await asyncio.start_server(self.destination, "127.0.0.1", 0)
        self.app_port = self.app.sockets[0].getsockname()[1]
        self.server = HboneServer(self.server_identity, self.handle)
        sock = listening_socket()
        self.hbone = sock.getsockname()
        await self.server.serve(sock)
        self.pool = HbonePool(issue(self.ca, WEB), idle_timeout=30)
        return self

    async def __aexit__(self, *exc) -> None:
        await self.pool.close(grace=1)
        await self.server.shutdown(grace=1)
        self.app.close()

    @property
    def authority(self) -> str:
        return f"127.0.0.1:{self.app_port}"

    async def handle(self, request: TunnelRequest) -> None:
        """The inbound agent: authorize, then connect to the original destination and pump."""
        self.requests.append(request)
        refusal = self.decide(request) if self.decide else None
        if refusal:
            request.refuse(*refusal)
            return
        host, port = parse_authority(request.authority)
        reader, writer = await asyncio.open_connection(host, port, limit=1 * MiB)
        await request.accept().splice(reader, writer)

    async def open(self, expected=DB):
        return await self.pool.open(
            self.hbone, expected, self.authority, tunnel_headers("10.9.8.7")
        )


async def read_all(tunnel) -> bytes:
    chunks = []
    while data := await tunnel.read():
        chunks.append(data)
    return b"".join(chunks)


async def echo_through(mesh: Mesh, payload: bytes) -> bytes:
    tunnel = await mesh.open()
    await tunnel.write(payload)
    tunnel.write_eof()
    return await read_all(tunnel)


def test_echo_through_a_tunnel_and_the_server_sees_the_client_identity(ca):
    async def go():
        async with Mesh(ca) as mesh:
            answer = await echo_through(mesh, b"hello through HBONE")
            [request] = mesh.requests
            return answer, request

    answer, request = run(go())
    assert answer == b"hello through HBONE"
    assert request.peer_identity == WEB
    assert request.authority.startswith("127.0.0.1:")
    assert request.headers["forwarded"] == "for=10.9.8.7"


def test_fifty_concurrent_tunnels_share_one_pooled_connection(ca):
    async def go():
        async with Mesh(ca) as mesh:
            payloads = [f"tunnel {i} ".encode() * (i + 1) * 100 for i in range(50)]
            answers = await asyncio.gather(*(echo_through(mesh, p) for p in payloads))
            return payloads, answers, len(mesh.pool.connections()), len(mesh.server.connections)

    payloads, answers, client_connections, server_connections = run(go())
    assert answers == payloads
    assert client_connections == server_connections == 1


def pattern(size: int, seed: int) -> bytes:
    block = hashlib.sha256(seed.to_bytes(4, "big")).digest() * (MiB // 32)
    return block * (size // MiB)


async def bulk_app(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """The destination: send 64 MiB while hashing what arrives, then report the digest."""
    outgoing = pattern(64 * MiB, 2)

    async def send() -> None:
        view = memoryview(outgoing)
        for offset in range(0, len(view), MiB):
            writer.write(view[offset : offset + MiB])
            await writer.drain()

    sender = asyncio.ensure_future(send())
    digest, received = hashlib.sha256(), 0
    while data := await reader.read(MiB):
        digest.update(data)
        received += len(data)
    await sender
    writer.write(f"|{received}:{digest.hexdigest()}".encode())
    writer.write_eof()
    writer.close()


def test_64_mib_both_ways_arrive_intact(ca, capsys):
    outgoing = pattern(64 * MiB, 1)

    async def go():
        async with Mesh(ca, destination=bulk_app) as mesh:
            # the source app talks plain TCP to an "outbound listener" that splices into HBONE
            async def outbound(reader, writer):
                tunnel = await mesh.open()
                spliced.set_result(await tunnel.splice(reader, writer))

            spliced = asyncio.get_running_loop().create_future()
            listener = await asyncio.start_server(outbound, "127.0.0.1", 0, limit=MiB)
            port = listener.sockets[0].getsockname()[1]
            reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=MiB)
            started = time.perf_counter()

            async def send():
                view = memoryview(outgoing)
                for offset in range(0, len(view), MiB):
                    writer.write(view[offset : offset + MiB])
                    await writer.drain()
                writer.write_eof()

            sender = asyncio.ensure_future(send())
            back = bytearray()
            while data := await reader.read(MiB):
                back += data
            await sender
            elapsed = time.perf_counter() - started
            writer.close()
            listener.close()
            body, _, report = bytes(back).rpartition(b"|")
            return hashlib.sha256(body).hexdigest(), report.decode(), elapsed, await spliced

    digest, report, elapsed, spliced = run(go())
    received, _, their_digest = report.partition(":")
    assert int(received) == len(outgoing)
    assert their_digest == hashlib.sha256(outgoing).hexdigest()  # what arrived at the destination
    assert digest == hashlib.sha256(pattern(64 * MiB, 2)).hexdigest()  # what came back
    assert spliced == (64 * MiB, 64 * MiB + len(report) + 1)  # (sent, received) by the source
    with capsys.disabled():
        rate = 2 * 64 / elapsed
        print(f"\n[hbone] 64 MiB each way through one tunnel in {elapsed:.2f}s ({rate:.0f} MiB/s)")


def test_a_client_certificate_from_a_foreign_ca_is_refused_at_the_handshake(ca, tmp_path):
    foreign = CertificateAuthority.load_or_create(tmp_path / "foreign", TD)

    async def go():
        async with Mesh(ca) as mesh:
            stranger = HbonePool(issue(foreign, WEB))
            stranger._context.load_verify_locations(cadata=ca.trust_bundle_pem().decode())
            with pytest.raises(HboneError) as caught:
                await stranger.open(mesh.hbone, DB, mesh.authority)
            await stranger.close(grace=0)
            return caught.value, mesh.requests

    error, requests = run(go())
    assert requests == []
    assert "unknown ca" in str(error).lower() or "certificate" in str(error).lower(), error


def test_a_server_with_another_identity_than_expected_is_refused(ca):
    async def go():
        async with Mesh(ca, server_identity=SpiffeId(TD, "shop", "impostor")) as mesh:
            with pytest.raises(PeerIdentityMismatch) as caught:
                await mesh.open(expected=DB)
            return str(caught.value), mesh.hbone, mesh.requests

    message, (host, port), requests = run(go())
    assert message == (
        f"peer at {host}:{port} presented spiffe://cluster.local/ns/shop/sa/impostor but "
        "spiffe://cluster.local/ns/shop/sa/db was expected"
    )
    assert requests == []


def test_a_refusal_reaches_the_client_with_its_reason(ca):
    def deny(request):
        return 403, f"denied by AuthorizationPolicy shop/db-allow: {request.peer_identity}"

    async def go():
        async with Mesh(ca, decide=deny) as mesh:
            with pytest.raises(TunnelRefusedError) as caught:
                await mesh.open()
            echoed = None
            mesh.decide = None  # the same pooled connection still serves the next tunnel
            echoed = await echo_through(mesh, b"after a refusal")
            return caught.value, echoed, len(mesh.pool.connections())

    error, echoed, connections = run(go())
    assert error.status == 403
    assert error.reason == f"denied by AuthorizationPolicy shop/db-allow: {WEB}"
    assert "403" in str(error) and "shop/db-allow" in str(error)
    assert echoed == b"after a refusal" and connections == 1


def test_a_malformed_frame_closes_only_its_own_connection(ca):
    async def go():
        async with Mesh(ca) as mesh:
            good = await mesh.open()
            await good.write(b"before ")
            # a second, misbehaving client with a valid certificate
            context = client_context(issue(ca, WEB))
            reader, writer = await asyncio.open_connection(*mesh.hbone, ssl=context)
            writer.write(HboneClientConnection().data_to_send())
            writer.write(b"\x00\x00\x04\x00\x00\x00\x00\x00\x00" + b"junk")  # DATA on stream 0
            await writer.drain()
            goaway = await reader.read()  # the server says why, then closes
            writer.close()
            await good.write(b"and after")
            good.write_eof()
            return goaway, await read_all(good), len(mesh.server.connections)

    goaway, echoed, connections = run(go())
    assert b"\x07\x00\x00\x00\x00\x00" in goaway  # a GOAWAY frame header on stream 0
    assert echoed == b"before and after"
    assert connections == 1


def test_graceful_drain_lets_an_open_tunnel_finish(ca):
    async def go():
        async with Mesh(ca) as mesh:
            tunnel = await mesh.open()
            await tunnel.write(b"started before the drain, ")
            draining = asyncio.ensure_future(mesh.server.shutdown(grace=BOUND))
            await asyncio.sleep(0.05)  # let the GOAWAY reach the client
            assert not draining.done()
            await tunnel.write(b"finished during it")
            tunnel.write_eof()
            echoed = await read_all(tunnel)
            await draining
            with pytest.raises((HboneConnectError, TunnelResetError)):
                await mesh.open()  # the listener is closed now
            return echoed

    assert run(go()) == b"started before the drain, finished during it"


def test_the_pool_verifies_the_server_chain(ca, tmp_path):
    foreign = CertificateAuthority.load_or_create(tmp_path / "other", TD)

    async def go():
        async with Mesh(ca) as mesh:
            lost = HbonePool(issue(foreign, WEB))
            with pytest.raises(HboneConnectError, match="TLS handshake"):
                await lost.open(mesh.hbone, None, mesh.authority)
            await lost.close(grace=0)

    run(go())


def test_a_full_connection_makes_the_pool_open_another(ca):
    async def go():
        async with Mesh(ca) as mesh:
            mesh.server.settings = HboneSettings(max_concurrent_streams=2)
            tunnels = [await mesh.open() for _ in range(5)]
            counts = len(mesh.pool.connections()), len(mesh.server.connections)
            for tunnel in tunnels:
                await tunnel.write(b"x")
                tunnel.write_eof()
                assert await read_all(tunnel) == b"x"
            return counts

    assert run(go()) == (3, 3)


def test_idle_connections_close_and_identities_do_not_share_one(ca):
    async def go():
        async with Mesh(ca) as mesh:
            mesh.pool.idle_timeout = 0.05
            assert await echo_through(mesh, b"one") == b"one"
            other = await mesh.pool.open(mesh.hbone, None, mesh.authority)  # another pool key
            shells = mesh.pool.connections()
            other.close()
            await asyncio.wait([shell.lost for shell in shells], timeout=BOUND)
            return len(shells), mesh.pool.connections(), mesh.server.connections

    shells, left, server_left = run(go())
    assert shells == 2 and left == [] and server_left == set()


def test_tls_is_1_3_with_h2(ca):
    context = client_context(issue(ca, WEB))
    assert context.minimum_version == ssl.TLSVersion.TLSv1_3
    assert context.verify_mode == ssl.CERT_REQUIRED and not context.check_hostname


def test_rotating_certificates_keeps_open_tunnels_and_new_handshakes_use_the_new_one(ca):
    async def exchange(tunnel, data: bytes) -> bytes:
        await tunnel.write(data)
        got = b""
        while len(got) < len(data):
            got += await tunnel.read()
        return got

    async def go():
        async with Mesh(ca) as mesh:
            tunnel = await mesh.open()
            assert await exchange(tunnel, b"before rotation") == b"before rotation"
            renewed = issue(ca, DB)
            mesh.server.update_identity(renewed)
            mesh.pool.update_identity(issue(ca, WEB))
            assert await exchange(tunnel, b"after rotation") == b"after rotation"  # not dropped
            with pytest.raises(ValueError):
                mesh.pool.update_identity(issue(ca, DB))  # a pool keeps its identity
            fresh = HbonePool(issue(ca, WEB))
            try:
                second = await fresh.open(
                    mesh.hbone, DB, mesh.authority, tunnel_headers("10.9.8.7")
                )
                assert await exchange(second, b"new handshake") == b"new handshake"
                shell = fresh.connections()[0]
                presented = shell.transport.get_extra_info("ssl_object").getpeercert(True)
            finally:
                await fresh.close(grace=1)
            tunnel.close()
            return renewed, presented

    renewed, presented = run(go())
    from cryptography import x509

    want = x509.load_pem_x509_certificate(renewed.chain_pem).serial_number
    assert x509.load_der_x509_certificate(presented).serial_number == want
