"""waypoint.streams.TcpStream.write: drain only when it can matter (backpressure or a lost peer)."""

from __future__ import annotations

import asyncio

import pytest

from waypoint.streams import TcpStream


class Transport:
    def __init__(self, buffered: int = 0, closing: bool = False) -> None:
        self.buffered, self.closing = buffered, closing

    def get_write_buffer_size(self) -> int:
        return self.buffered

    def is_closing(self) -> bool:
        return self.closing


class Writer:
    """The two StreamWriter calls TcpStream.write makes, recorded."""

    def __init__(self, transport: Transport, drain_error: Exception | None = None) -> None:
        self.transport, self.drain_error = transport, drain_error
        self.written: list[bytes] = []
        self.drains = 0

    def write(self, data: bytes) -> None:
        self.written.append(data)

    async def drain(self) -> None:
        self.drains += 1
        if self.drain_error is not None:
            raise self.drain_error


def write(writer: Writer, data: bytes = b"x") -> None:
    asyncio.run(TcpStream(None, writer).write(data))  # type: ignore[arg-type]


def test_all_sent_and_open_skips_the_drain():
    writer = Writer(Transport())
    write(writer, b"abc")
    assert (writer.written, writer.drains) == ([b"abc"], 0)


def test_a_buffered_tail_waits_for_the_peer():
    writer = Writer(Transport(buffered=10))
    write(writer)
    assert writer.drains == 1


def test_a_lost_connection_still_raises_from_drain():
    writer = Writer(Transport(closing=True), ConnectionResetError("Connection lost"))
    with pytest.raises(ConnectionResetError):
        write(writer)
