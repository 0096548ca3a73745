"""Sending within the peer's flow-control windows, with a bounded backlog per stream. Pure.

Theory of operation
-------------------
HTTP/2 lets the receiver say how many bytes it will take (per stream and per connection); a
proxy that ignores this either breaks the protocol or buffers without bound while a slow client
reads. `send` frames at once what the windows allow and keeps the rest in that stream's backlog;
`flush`, called when the peer opens a window, moves backlogs on round-robin one frame per stream
per turn, so one large download cannot starve the other streams of the shared connection window.

The backlog is bounded (`max_buffer` bytes per stream) and `capacity` says how much `send` takes
now: the shell reads at most that much from the upstream and waits for the next window otherwise,
so a slow client slows the upstream instead of growing this process. The end of a stream (an
END_STREAM flag or a trailer block) waits behind the backlog, so it is never sent before the data.

Queued bytes are copied (the shell may reuse its read buffer); bytes framed at once are copied
only by h2's own frame serialisation.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import h2.connection

from waypoint.http2.events import SendBufferFull


@dataclass
class _Backlog:
    chunks: deque[memoryview] = field(default_factory=deque)
    size: int = 0
    end_stream: bool = False
    trailers: list[tuple[bytes, bytes]] | None = None


class SendQueue:
    """Per-stream backlogs in front of one `H2Connection`'s send path."""

    def __init__(self, conn: h2.connection.H2Connection, max_buffer: int) -> None:
        self._h2 = conn
        self._max_buffer = max_buffer
        self._backlogs: dict[int, _Backlog] = {}

    def capacity(self, stream_id: int) -> int:
        """Bytes `send` accepts now: what the window frames at once plus free backlog room."""
        backlog = self._backlogs.get(stream_id)
        if backlog is None:
            return max(0, self._h2.local_flow_control_window(stream_id)) + self._max_buffer
        return max(0, self._max_buffer - backlog.size)

    def queued(self, stream_id: int) -> int:
        backlog = self._backlogs.get(stream_id)
        return backlog.size if backlog else 0

    def send(self, stream_id: int, data: bytes | bytearray | memoryview, end_stream: bool) -> int:
        """Frame what fits, queue the rest; returns the stream's backlog size afterwards."""
        view = memoryview(data).cast("B")
        if len(view) > self.capacity(stream_id):
            raise SendBufferFull(
                f"stream {stream_id}: {len(view)} bytes offered but only "
                f"{self.capacity(stream_id)} fit now; read no more than send_capacity() from "
                "the upstream and wait for WindowOpened"
            )
        backlog = self._backlogs.get(stream_id)
        if backlog is None:
            sent = self._frame(stream_id, view, end_stream)
            if sent == len(view):
                return 0
            backlog = self._backlogs[stream_id] = _Backlog()
            view = view[sent:]
        if view:
            backlog.chunks.append(memoryview(bytes(view)))  # the caller may reuse its buffer
            backlog.size += len(view)
        backlog.end_stream = backlog.end_stream or end_stream
        return backlog.size

    def send_trailers(self, stream_id: int, block: list[tuple[bytes, bytes]]) -> None:
        """Trailers end the stream; they wait for any backlog (HEADERS are not flow controlled)."""
        backlog = self._backlogs.get(stream_id)
        if backlog is None:
            self._h2.send_headers(stream_id, block, end_stream=True)
        else:
            backlog.trailers = block

    def drop(self, stream_id: int) -> None:
        """Forget a stream's backlog (it was reset)."""
        self._backlogs.pop(stream_id, None)

    def clear(self) -> None:
        self._backlogs.clear()

    def flush(self) -> list[int]:
        """Move backlogs on as far as the windows allow; returns the streams that moved."""
        moved: dict[int, None] = {}
        progress = True
        while progress and self._backlogs:
            progress = False
            for stream_id in list(self._backlogs):
                if self._send_one_frame(stream_id):
                    moved[stream_id] = None
                    progress = True
        return list(moved)

    def _frame(self, stream_id: int, view: memoryview, end_stream: bool) -> int:
        """Frame as much of `view` as the windows allow now; END_STREAM if all of it went."""
        n = min(len(view), max(0, self._h2.local_flow_control_window(stream_id)))
        ending = end_stream and n == len(view)
        step = self._h2.max_outbound_frame_size
        for offset in range(0, n, step):
            end = min(n, offset + step)
            self._h2.send_data(stream_id, view[offset:end], end_stream=ending and end == n)
        if ending and n == 0:
            self._h2.end_stream(stream_id)
        return n

    def _send_one_frame(self, stream_id: int) -> bool:
        """One frame from the stream's backlog if its window allows; its end once drained.

        A backlog in the table is never empty: it is created for bytes that did not fit and
        removed with its last byte.
        """
        backlog = self._backlogs[stream_id]
        window = self._h2.local_flow_control_window(stream_id)
        if window <= 0:
            return False
        chunk = backlog.chunks[0]
        take = min(len(chunk), window, self._h2.max_outbound_frame_size)
        if take < len(chunk):
            backlog.chunks[0] = chunk[take:]
        else:
            backlog.chunks.popleft()
        backlog.size -= take
        drained = backlog.size == 0
        ending = drained and backlog.end_stream and backlog.trailers is None
        self._h2.send_data(stream_id, chunk[:take], end_stream=ending)
        if drained:
            del self._backlogs[stream_id]
            if backlog.trailers is not None:
                self._h2.send_headers(stream_id, backlog.trailers, end_stream=True)
        return True
