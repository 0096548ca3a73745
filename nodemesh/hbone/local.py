"""The local side of ``Tunnel.splice``: a plain TCP connection pumped by callbacks, not tasks.

Theory of operation
-------------------
Relaying a small request used to cost two task wake-ups per direction per agent (a StreamReader
waking a reader task, the tunnel's inbox waking another). ``splice`` instead takes the local
connection's transport over from the asyncio streams and sets ``LocalPump``, a BufferedProtocol,
as its protocol:

* local → tunnel: each read lands in one reused buffer and goes straight into the tunnel from
  ``buffer_updated`` (framed and flushed at once) as far as the HTTP/2 windows and the TLS
  transport allow. What does not fit is copied aside, reading pauses, and one task waits for
  window and writes it; reading resumes when it is through. Local EOF becomes END_STREAM
  after everything before it.
* tunnel → local: the tunnel writes DATA straight to this transport from the connection's event
  dispatch (``Tunnel._attach``) and credits the window back at once, unless the transport is
  over its high-water mark (``pause_writing``); then credit waits for ``resume_writing``, so a
  slow local reader still stalls the remote sender within one stream window. END_STREAM
  becomes a local ``write_eof``.

An abort on either side aborts the other, as before: a reset tunnel resets the local TCP
connection (RST), a local error resets the tunnel with CONNECT_ERROR.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from collections import deque
from typing import TYPE_CHECKING

from h2.errors import ErrorCodes

if TYPE_CHECKING:
    from nodemesh.hbone.tunnel import Tunnel

LOCAL_CHUNK = 256 << 10  # read size on the local (plaintext) side
LOCAL_HIGH_WATER = 1 << 20


class LocalPump(asyncio.BufferedProtocol):
    """Moves bytes between one local transport and one tunnel; ``finished`` says when done."""

    def __init__(self, tunnel: Tunnel, transport: asyncio.Transport) -> None:
        self._tunnel = tunnel
        self._transport = transport
        self._view = memoryview(bytearray(LOCAL_CHUNK))
        self._backlog: deque[bytes] = deque()  # read, not yet taken by the windows
        self._writer: asyncio.Task[None] | None = None  # the one task that waits for window
        self._local_eof = self._up_done = self._down_done = False
        self.finished: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    # --- local transport callbacks ----------------------------------------------------------

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._view

    def buffer_updated(self, nbytes: int) -> None:
        self.forward(self._view[:nbytes])

    def eof_received(self) -> bool:
        self._local_eof = True
        if self._writer is None:
            self._end_up()
        return True  # keep the other direction open: the half-close travels on

    def pause_writing(self) -> None:
        self._tunnel._sink_paused(True)

    def resume_writing(self) -> None:
        self._tunnel._sink_paused(False)

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(exc or ConnectionResetError("the local connection closed before the tunnel"))

    # --- what the tunnel calls --------------------------------------------------------------

    def write(self, data: bytes) -> None:
        if not self._transport.is_closing():
            self._transport.write(data)

    def peer_ended(self) -> None:
        if self._transport.can_write_eof() and not self._transport.is_closing():
            with contextlib.suppress(OSError):
                self._transport.write_eof()
        self._down_done = True
        self._finish_if_done()

    def tunnel_failed(self, error: BaseException) -> None:
        self._fail(error)

    # --- the up direction -------------------------------------------------------------------

    def forward(self, view: memoryview) -> None:
        """Send what the windows take now; keep the rest for the writer task, reading paused."""
        if self.finished.done():
            return
        sent = 0
        if self._writer is None:
            try:
                sent = self._tunnel._send_now(view)
            except Exception as error:
                self._fail(error)
                return
        if sent < len(view):
            self._backlog.append(bytes(view[sent:]))
            if self._writer is None:
                self._transport.pause_reading()
                self._writer = asyncio.get_running_loop().create_task(self._drain_backlog())

    async def _drain_backlog(self) -> None:
        try:
            while self._backlog:
                await self._tunnel.write(self._backlog.popleft())
        except Exception as error:
            self._fail(error)
            return
        finally:
            self._writer = None
        if self._local_eof:
            self._end_up()
        elif not self._transport.is_closing():
            self._transport.resume_reading()

    def _end_up(self) -> None:
        self._tunnel.write_eof()
        self._up_done = True
        self._finish_if_done()

    # --- the end ----------------------------------------------------------------------------

    def _finish_if_done(self) -> None:
        if self._up_done and self._down_done and not self.finished.done():
            self.finished.set_result(None)

    def _fail(self, error: BaseException) -> None:
        if not self.finished.done():
            self.finished.set_exception(error)
        self.stop()

    def stop(self) -> None:
        """Cancel the writer task, if any (the splice is over)."""
        if self._writer is not None:
            self._writer.cancel()


async def splice(
    tunnel: Tunnel, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> tuple[int, int]:
    """``Tunnel.splice``: see the module docstring. Returns (bytes sent, bytes received)."""
    transport: asyncio.Transport = writer.transport  # type: ignore[assignment]
    pump = LocalPump(tunnel, transport)
    try:
        leftover, eof = _take_over(reader, transport)
        transport.set_write_buffer_limits(high=LOCAL_HIGH_WATER)
        transport.set_protocol(pump)
        tunnel._attach(pump)
        if leftover:
            pump.forward(memoryview(leftover))
        if eof:
            pump.eof_received()
        elif not transport.is_closing():
            transport.resume_reading()  # the StreamReader may have paused it
        await pump.finished
    except BaseException:
        pump.stop()
        tunnel.close(ErrorCodes.CONNECT_ERROR)
        abort_with_rst(writer)
        raise
    writer.close()
    return tunnel.bytes_sent, tunnel.bytes_received


def _take_over(reader: asyncio.StreamReader, transport: asyncio.Transport) -> tuple[bytes, bool]:
    """What the StreamReader already holds (bytes, EOF seen), so that nothing read is lost.

    The StreamReader keeps its buffer in ``_buffer``: stable since asyncio began, and the only
    way to switch protocols on an open stream without reading through a task first.
    """
    if (error := reader.exception()) is not None:
        raise error
    if transport.is_closing():
        raise ConnectionResetError("the local connection closed before the tunnel was spliced")
    leftover = bytes(reader._buffer)  # type: ignore[attr-defined]
    reader._buffer.clear()  # type: ignore[attr-defined]
    return leftover, reader.at_eof() or reader._eof  # type: ignore[attr-defined]


def abort_with_rst(writer: asyncio.StreamWriter) -> None:
    """Close a local TCP connection with RST, so an abort on the far side is seen as one here."""
    sock = writer.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()
