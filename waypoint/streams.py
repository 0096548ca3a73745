"""Byte streams the waypoint speaks HTTP over: an HBONE tunnel, or a plain TCP connection.

The codecs above are sans-I/O; the sessions that drive them only need "read a chunk, write a
chunk, half-close, abort". Both kinds of stream the waypoint meets (a tunnel from an agent or to
a destination's agent, and a plaintext TCP connection to a workload outside the mesh) are
adapted to that one shape here, so a session never asks which one it holds.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Protocol

from nodemesh.hbone.tunnel import Tunnel, abort_with_rst

READ_CHUNK = 256 * 1024


class ByteStream(Protocol):
    async def read(self) -> bytes:
        """The next chunk; b"" once the peer half-closed."""

    async def write(self, data: bytes | bytearray | memoryview) -> None:
        """Send all of data, waiting for the peer (backpressure)."""

    def write_eof(self) -> None:
        """Half-close our sending side."""

    def close(self, abort: bool = False) -> None:
        """Done with the stream; abort=True resets it instead of ending it cleanly."""


class TunnelStream:
    """An HBONE tunnel (one CONNECT stream) as a ByteStream."""

    def __init__(self, tunnel: Tunnel) -> None:
        self.tunnel = tunnel

    async def read(self) -> bytes:
        return await self.tunnel.read()

    async def write(self, data: bytes | bytearray | memoryview) -> None:
        await self.tunnel.write(data)

    def write_eof(self) -> None:
        self.tunnel.write_eof()

    def close(self, abort: bool = False) -> None:
        if abort:
            self.tunnel.close()
        else:
            self.tunnel.write_eof()


class TcpStream:
    """A plain TCP connection (asyncio streams) as a ByteStream."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def read(self) -> bytes:
        return await self.reader.read(READ_CHUNK)

    async def write(self, data: bytes | bytearray | memoryview) -> None:
        self.writer.write(data)
        transport = self.writer.transport
        # Nothing left in user space (the usual case: the kernel took it all) and the transport
        # is open: drain() would return at once, so skip its two coroutine calls per write.
        # A lost connection makes the transport closing, which takes the drain() path and
        # raises there as before; a buffered tail waits for the peer (backpressure) as before.
        if transport.get_write_buffer_size() or transport.is_closing():
            await self.writer.drain()

    def write_eof(self) -> None:
        if self.writer.can_write_eof():
            with contextlib.suppress(OSError):
                self.writer.write_eof()

    def close(self, abort: bool = False) -> None:
        if abort:
            abort_with_rst(self.writer)
        else:
            self.writer.close()


async def pump(source: ByteStream, sink: ByteStream) -> int:
    """Copy source to sink until EOF, then half-close sink; returns the bytes moved."""
    moved = 0
    while data := await source.read():
        await sink.write(data)
        moved += len(data)
    sink.write_eof()
    return moved


async def splice(a: ByteStream, b: ByteStream) -> tuple[int, int]:
    """Both directions until both ended (an upgraded connection: websocket, CONNECT)."""
    results = await asyncio.gather(pump(a, b), pump(b, a), return_exceptions=True)
    errors = [r for r in results if isinstance(r, BaseException)]
    a.close(abort=bool(errors))
    b.close(abort=bool(errors))
    moved = [r if isinstance(r, int) else 0 for r in results]
    return moved[0], moved[1]
