"""One sans-I/O HTTP/2 connection object driven over one ByteStream: what both shells share.

Theory of operation
-------------------
The codec in `waypoint.http2` never touches a socket: whatever it wants written waits in
`data_to_send()`, and whatever the peer's flow-control windows do not allow yet waits in its
bounded per-stream backlog. Two asyncio shells drive it, the downstream session (`h2_session`)
and the upstream connection pool (`h2_upstream`), and both need the same three things, which
live here so neither reimplements them:

* Ordered writes. Many tasks (one per stream, plus the reader) produce frames; `flush` takes
  `data_to_send()` and writes it under one lock, so frames leave in the order the codec made
  them, and a writer waiting on a slow peer (`ByteStream.write` drains) holds back the others.
  That wait is the backpressure: nothing piles up in this process while the peer does not read.
* Flushes from synchronous code (an RST_STREAM after a cancellation, a WINDOW_UPDATE) through
  `kick`, which schedules one flush on the connection's `TaskSet` instead of dropping the bytes
  until the next write.
* Sending a body within the peer's windows: `send_body` hands the codec at most
  `send_capacity` bytes at a time and sleeps on the stream's `WindowOpened` when it is 0. A slow
  reader therefore stalls the task that feeds it, which stops pulling from the other side.
"""

from __future__ import annotations

import asyncio
import logging

from nodemesh.tasks import TaskSet
from waypoint.http2.connection import Http2Connection
from waypoint.streams import ByteStream

log = logging.getLogger("nodemesh.waypoint.http2")


class H2Wire:
    """Writes for one HTTP/2 connection object, and the per-stream waits for send windows."""

    def __init__(self, stream: ByteStream, conn: Http2Connection, tasks: TaskSet) -> None:
        self.stream, self.conn, self.tasks = stream, conn, tasks
        self._lock = asyncio.Lock()
        self._windows: dict[int, asyncio.Event] = {}
        self._kicked = False
        self.broken: BaseException | None = None  # the write error that ended the connection

    async def flush(self) -> None:
        """Write whatever the codec has queued, in order; raises the stream's write error."""
        async with self._lock:
            data = self.conn.data_to_send()
            if data:
                try:
                    await self.stream.write(data)
                except BaseException as error:
                    self.broken = self.broken or error
                    raise

    def kick(self) -> None:
        """Flush soon, from code that cannot await (a reset, an acknowledgement)."""
        if self._kicked or self.broken is not None:
            return
        self._kicked = True
        self.tasks.spawn(self._kicked_flush(), "flush", awaited=True)

    async def _kicked_flush(self) -> None:
        self._kicked = False
        try:
            await self.flush()
        except Exception as error:  # the reader sees the broken stream and ends the connection
            log.debug("flush failed: %s", error)

    # --- send windows -------------------------------------------------------------------------

    def window_opened(self, stream_id: int) -> None:
        """The codec said `WindowOpened(stream_id)`: wake the task sending on it."""
        event = self._windows.get(stream_id)
        if event is not None:
            event.set()

    def forget(self, stream_id: int) -> None:
        """The stream ended or was reset: wake its sender, which will find it closed."""
        event = self._windows.pop(stream_id, None)
        if event is not None:
            event.set()

    def wake_all(self) -> None:
        """The connection ended: every sender wakes and finds its stream closed."""
        for event in self._windows.values():
            event.set()
        self._windows.clear()

    async def send_body(
        self, stream_id: int, data: bytes | bytearray | memoryview, *, end_stream: bool
    ) -> None:
        """Send `data` on a stream within the peer's windows, waiting for them to open.

        Raises the codec's `StreamClosedError` if the stream is reset (or the connection ends)
        meanwhile, and the stream's write error if the peer stops reading altogether.
        """
        view = memoryview(data).cast("B")
        while True:
            capacity = self.conn.send_capacity(stream_id)
            if capacity == 0 and view:
                await self._window(stream_id)
                continue
            take = min(len(view), capacity)
            last = take == len(view)
            self.conn.send_data(stream_id, view[:take], end_stream=end_stream and last)
            await self.flush()
            if last:
                return
            view = view[take:]

    async def _window(self, stream_id: int) -> None:
        event = self._windows.get(stream_id)
        if event is None:
            event = self._windows[stream_id] = asyncio.Event()
        event.clear()
        await event.wait()
