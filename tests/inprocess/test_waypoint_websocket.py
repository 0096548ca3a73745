"""Websocket through the waypoint: a real `websockets` client and server, Upgrade end to end.

The HTTP/1.1 session hands the client's `Upgrade: websocket` to the upstream, relays its 101,
then splices both connections; anything but websocket is not allowed to switch protocols (an
`h2c` upgrade would carry every later request past the L7 layers).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import pytest

from tests.inprocess.waypoint_rig import VIP, Rig, peers, service

websockets = pytest.importorskip("websockets")


@dataclass
class WsBackend:
    name: str
    port: int


async def echo(connection) -> None:
    async for message in connection:
        await connection.send(f"echo {message}")


def test_a_websocket_upgrade_works_end_to_end():
    async def main():
        async with websockets.serve(echo, "127.0.0.1", 0) as server:
            backend = WsBackend("ws", server.sockets[0].getsockname()[1])
            async with Rig([service("web", [backend], vip=VIP)], peers([backend])) as rig:
                async with websockets.connect(f"ws://127.0.0.1:{rig.port}/chat") as ws:
                    for text in ("hello", "x" * 100_000, "bye"):
                        await ws.send(text)
                        assert await ws.recv() == f"echo {text}"
                # counted when the spliced connection ends, after the client closed it
                counted = await rig.eventually_metric(
                    "istio_requests_total", 1, response_code="101"
                )
                assert counted == 1

    asyncio.run(asyncio.wait_for(main(), 60))


async def _switch_on_any_upgrade(reader, writer) -> None:
    """A backend that says 101 to whatever upgrade it is offered, 200 "no upgrade" otherwise."""
    head = await reader.readuntil(b"\r\n\r\n")
    if b"\r\nupgrade:" in head.lower():
        writer.write(b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n\r\n")
    else:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nno upgrade")
    await writer.drain()
    writer.close()


def test_an_h2c_upgrade_is_not_relayed():
    async def main():
        server = await asyncio.start_server(_switch_on_any_upgrade, "127.0.0.1", 0)
        backend = WsBackend("eager", server.sockets[0].getsockname()[1])
        async with server, Rig([service("web", [backend], vip=VIP)], peers([backend])) as rig:
            reader, writer = await asyncio.open_connection("127.0.0.1", rig.port)
            writer.write(
                b"GET / HTTP/1.1\r\nHost: web\r\nConnection: Upgrade, HTTP2-Settings\r\n"
                b"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA\r\n\r\n"
            )
            status = await asyncio.wait_for(reader.readline(), 10)
            assert status.startswith(b"HTTP/1.1 200"), status  # never switched
            writer.close()

    asyncio.run(asyncio.wait_for(main(), 60))
