"""In-memory wiring for the HTTP/2 shells' unit tests: byte streams and a raw h2 peer.

`stream_pair()` gives two connected `ByteStream`s backed by queues, so a session or an upstream
connection runs on the event loop with no socket. `RawPeer` is plain python-hyper h2 on the far
end: the test writes frames with it and reads back the events the shell's bytes meant. Waits are
bounded by `DEADLINE` only so a bug fails the test instead of hanging it; nothing is timed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import h2.config
import h2.connection
import h2.events
import h2.settings

from nodemesh.hbone.gate import FrameGate, GoAway

DEADLINE = 10.0
GET = [(":method", "GET"), (":scheme", "http"), (":path", "/"), (":authority", "web")]


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, DEADLINE * 3))


class MemoryStream:
    """One end of an in-memory connection; b"" on read means the other end half-closed."""

    def __init__(self, inbox: asyncio.Queue, outbox: asyncio.Queue) -> None:
        self.inbox, self.outbox = inbox, outbox
        self.written = 0
        self.eof_sent = self.closed = self.aborted = False

    async def read(self) -> bytes:
        if self.closed:
            raise ConnectionResetError("stream closed here")
        return await self.inbox.get()

    async def write(self, data) -> None:
        if self.closed or self.eof_sent:
            raise ConnectionResetError("writing to a closed stream")
        self.written += len(data)
        await self.outbox.put(bytes(data))

    def write_eof(self) -> None:
        if not self.eof_sent and not self.closed:
            self.eof_sent = True
            self.outbox.put_nowait(b"")

    def close(self, abort: bool = False) -> None:
        self.write_eof()
        self.closed, self.aborted = True, self.aborted or abort


def stream_pair() -> tuple[MemoryStream, MemoryStream]:
    a_to_b: asyncio.Queue = asyncio.Queue()
    b_to_a: asyncio.Queue = asyncio.Queue()
    return MemoryStream(b_to_a, a_to_b), MemoryStream(a_to_b, b_to_a)


class RawPeer:
    """A plain h2 endpoint over a `MemoryStream`, driven step by step by the test."""

    def __init__(
        self,
        stream: MemoryStream,
        *,
        client: bool,
        settings: dict | None = None,
        conn: h2.connection.H2Connection | None = None,  # one the test already wrote with
    ) -> None:
        self.h2 = conn or self._new(client, settings)
        self.stream = stream
        self._gate = FrameGate(server=not client, max_frame_size=(1 << 24) - 1)
        self.events: list = []
        self.closed = False
        self.auto_ack = False  # credit every DATA frame as soon as it arrives

    @staticmethod
    def _new(client: bool, settings: dict | None) -> h2.connection.H2Connection:
        config = h2.config.H2Configuration(client_side=client, header_encoding="utf-8")
        conn = h2.connection.H2Connection(config)
        if settings:  # in force from the first frame, as the waypoint's own are
            conn.local_settings = h2.settings.Settings(client=client, initial_values=settings)
        conn.initiate_connection()
        return conn

    def _receive(self, data: bytes) -> list:
        """h2's events, with each GOAWAY as `ConnectionTerminated` kept away from h2 itself.

        Like the waypoint's own codec: h2 refuses every frame after a GOAWAY, so it could not
        see the streams a graceful GOAWAY lets finish.
        """
        events: list = []
        for piece in self._gate.split(data):
            if isinstance(piece, GoAway):
                event = h2.events.ConnectionTerminated()
                event.error_code, event.last_stream_id = piece.error_code, piece.last_stream_id
                event.additional_data = piece.debug
                events.append(event)
            else:
                events += self.h2.receive_data(bytes(piece))
        return events

    def ack(self, events: list) -> None:
        """The test consumed these DATA frames: credit the windows back."""
        for event in events:
            if isinstance(event, h2.events.DataReceived) and event.flow_controlled_length:
                self.h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)

    async def send(self) -> None:
        data = self.h2.data_to_send()
        if data:
            await self.stream.write(data)

    async def until(self, done: Callable[[list], bool]) -> list:
        """Read and answer (SETTINGS ACKs) until `done(all events so far)`; the events."""

        async def loop() -> list:
            while not done(self.events):
                data = await self.stream.inbox.get()
                if not data:
                    self.closed = True
                    break
                received = self._receive(data)
                self.events += received
                if self.auto_ack:
                    self.ack(received)
                await self.send()
            return self.events

        return await asyncio.wait_for(loop(), DEADLINE)

    def of(self, kind: type, stream_id: int | None = None) -> list:
        return [
            e
            for e in self.events
            if isinstance(e, kind) and stream_id in (None, getattr(e, "stream_id", None))
        ]

    def body(self, stream_id: int) -> bytes:
        return b"".join(e.data for e in self.of(h2.events.DataReceived, stream_id))

    def ended(self, stream_id: int) -> Callable[[list], bool]:
        """A predicate: the stream ended (END_STREAM or reset) or the connection went away."""

        def done(events: list) -> bool:
            return self.closed or any(
                (
                    isinstance(e, h2.events.StreamEnded | h2.events.StreamReset)
                    and e.stream_id == stream_id
                )
                or isinstance(e, h2.events.ConnectionTerminated)
                for e in events
            )

        return done


def terminated(events: list) -> bool:
    return any(isinstance(e, h2.events.ConnectionTerminated) for e in events)
