"""Pump bytes between two plain TCP streams, both ways, with half-close and backpressure.

For the legs that carry no TLS: a passthrough to a destination outside the mesh, and the last hop
from the agent to the application inside the destination pod. Reads are large (256 KiB) and each
write waits for drain, so a slow side stalls the other instead of growing buffers.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct

CHUNK = 256 * 1024


async def _one_way(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> int:
    moved = 0
    while data := await reader.read(CHUNK):
        writer.write(data)
        moved += len(data)
        await writer.drain()
    if writer.can_write_eof():
        with contextlib.suppress(OSError):
            writer.write_eof()  # half-close travels on; the other direction may still run
    return moved


async def pipe(
    a: tuple[asyncio.StreamReader, asyncio.StreamWriter],
    b: tuple[asyncio.StreamReader, asyncio.StreamWriter],
) -> tuple[int, int]:
    """Run until both directions ended; returns (bytes a→b, bytes b→a). Closes both."""
    forward = asyncio.ensure_future(_one_way(a[0], b[1]))
    backward = asyncio.ensure_future(_one_way(b[0], a[1]))
    try:
        results = await asyncio.gather(forward, backward, return_exceptions=True)
    finally:
        for _, writer in (a, b):
            writer.close()
    sent, received = (r if isinstance(r, int) else 0 for r in results)
    return sent, received


def reset(writer: asyncio.StreamWriter) -> None:
    """Close with RST (SO_LINGER 0): a refused connection should fail fast and visibly."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()
