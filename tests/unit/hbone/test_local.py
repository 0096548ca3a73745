"""Tunnel.splice's local side with no sockets: a fake TLS shell and a fake local transport.

What must hold: bytes go both ways in order, with no task in between when the windows allow;
credit back to the peer waits while the local transport is over its high-water mark; local EOF
becomes END_STREAM only after the backlog; an abort on one side aborts the other.
"""

from __future__ import annotations

import asyncio

import pytest
from h2.errors import ErrorCodes

from nodemesh.hbone import events as ev
from nodemesh.hbone.local import LocalPump, splice
from nodemesh.hbone.tunnel import Tunnel, TunnelResetError
from nodemesh.tasks import TaskSet


class FakeProto:
    """The sans-I/O object as the tunnel sees it; ``window`` bounds what ``send`` takes."""

    def __init__(self, window: int = 1 << 20, credit_batch: int = 1) -> None:
        self.window = window
        self.credit_batch = credit_batch
        self.sent = bytearray()
        self.acked = 0
        self.calls: list[str] = []

    def send(self, stream_id: int, data) -> int:
        n = min(len(data), self.window)
        self.window -= n
        self.sent += data[:n]
        return n

    def acknowledge(self, stream_id: int, n: int) -> None:
        self.acked += n

    def end(self, stream_id: int) -> None:
        self.calls.append("end")

    def reset(self, stream_id: int, code: int) -> None:
        self.calls.append(f"reset {code}")


class FakeShell:
    label = "peer at 10.0.0.2:15008"
    peer = None

    def __init__(self, proto: FakeProto) -> None:
        self.proto = proto
        self.flushes = 0
        self.is_lost = False
        self.can_send_now = True
        self.tasks = TaskSet("test")

    def flush(self) -> None:
        self.flushes += 1

    def forget(self, tunnel) -> None:
        pass

    async def writable(self) -> None:
        pass


class FakeTransport:
    def __init__(self) -> None:
        self.written = bytearray()
        self.eof_written = self.aborted = self.closed = self.reading_paused = False
        self.protocol = None

    def write(self, data) -> None:
        self.written += data

    def write_eof(self) -> None:
        self.eof_written = True

    def can_write_eof(self) -> bool:
        return True

    def is_closing(self) -> bool:
        return self.closed or self.aborted

    def pause_reading(self) -> None:
        self.reading_paused = True

    def resume_reading(self) -> None:
        self.reading_paused = False

    def set_write_buffer_limits(self, high=None, low=None) -> None:
        pass

    def set_protocol(self, protocol) -> None:
        self.protocol = protocol

    def get_extra_info(self, name, default=None):
        return default

    def abort(self) -> None:
        self.aborted = True

    def close(self) -> None:
        self.closed = True


def spliced(window: int = 1 << 20, early: bytes = b"", credit_batch: int = 1):
    """A tunnel, a fake transport and the running splice task (call inside a loop)."""
    proto = FakeProto(window, credit_batch)
    tunnel = Tunnel(FakeShell(proto), 1, "10.0.0.9:80")  # type: ignore[arg-type]
    transport = FakeTransport()
    reader = asyncio.StreamReader()
    reader.feed_data(early)
    writer = asyncio.StreamWriter(transport, None, reader, asyncio.get_running_loop())  # type: ignore[arg-type]
    task = asyncio.ensure_future(splice(tunnel, reader, writer))
    return proto, tunnel, transport, task


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


def pump_of(transport: FakeTransport) -> LocalPump:
    assert isinstance(transport.protocol, LocalPump)
    return transport.protocol


def feed(pump: LocalPump, data: bytes) -> None:
    buffer = pump.get_buffer(len(data))
    buffer[: len(data)] = data
    pump.buffer_updated(len(data))


def test_bytes_read_before_the_splice_go_first_and_local_reads_go_out_without_a_task():
    async def go():
        proto, tunnel, transport, task = spliced(early=b"early ")
        await settle()
        assert proto.sent == b"early "
        feed(pump_of(transport), b"ping")
        assert proto.sent == b"early ping"  # sent from the callback itself, no await needed
        assert tunnel.bytes_sent == 10
        task.cancel()

    asyncio.run(go())


def test_peer_data_is_written_locally_and_credited_unless_the_transport_is_full():
    async def go():
        proto, tunnel, transport, task = spliced()
        await settle()
        tunnel._on_event(ev.Data(1, b"pong", 4))
        assert (transport.written, proto.acked) == (b"pong", 4)
        pump_of(transport).pause_writing()
        tunnel._on_event(ev.Data(1, b"held", 6))  # padding counts toward the window
        assert (transport.written, proto.acked) == (b"pongheld", 4)
        pump_of(transport).resume_writing()
        assert proto.acked == 10
        assert tunnel.bytes_received == 8
        task.cancel()

    asyncio.run(go())


def test_credit_is_batched_and_what_is_held_is_given_back_when_the_peer_ends():
    async def go():
        proto, tunnel, transport, task = spliced(credit_batch=10)
        await settle()
        tunnel._on_event(ev.Data(1, b"abcd", 4))
        assert (transport.written, proto.acked) == (b"abcd", 0)
        tunnel._on_event(ev.Data(1, b"efghij", 6))
        assert proto.acked == 10
        tunnel._on_event(ev.Data(1, b"klm", 3))
        assert proto.acked == 10
        tunnel._on_event(ev.PeerEnded(1))
        assert proto.acked == 13 and transport.eof_written
        task.cancel()

    asyncio.run(go())


def test_what_the_window_does_not_take_waits_with_reading_paused_and_eof_comes_after_it():
    async def go():
        proto, tunnel, transport, task = spliced(window=3)
        await settle()
        pump = pump_of(transport)
        feed(pump, b"abcdef")
        assert proto.sent == b"abc" and transport.reading_paused
        pump.eof_received()
        await settle()
        assert proto.calls == []  # END_STREAM must not overtake the backlog
        proto.window = 100
        tunnel._on_event(ev.WindowOpened(1))
        await settle()
        assert proto.sent == b"abcdef" and proto.calls == ["end"]
        tunnel._on_event(ev.PeerEnded(1))
        assert await task == (6, 0)
        assert transport.eof_written and transport.closed and not transport.aborted

    asyncio.run(go())


def test_reading_resumes_once_the_backlog_is_through():
    async def go():
        proto, tunnel, transport, task = spliced(window=2)
        await settle()
        feed(pump_of(transport), b"xyz")
        assert transport.reading_paused
        proto.window = 10
        tunnel._on_event(ev.WindowOpened(1))
        await settle()
        assert proto.sent == b"xyz" and not transport.reading_paused
        task.cancel()

    asyncio.run(go())


def test_a_reset_tunnel_resets_the_local_connection():
    async def go():
        _, tunnel, transport, task = spliced()
        await settle()
        tunnel._on_event(ev.Reset(1, ErrorCodes.CANCEL, remote=True))
        with pytest.raises(TunnelResetError):
            await task
        assert transport.aborted

    asyncio.run(go())


def test_a_local_error_resets_the_tunnel_with_connect_error():
    async def go():
        proto, tunnel, transport, task = spliced()
        await settle()
        pump_of(transport).connection_lost(ConnectionResetError("reset by the app"))
        with pytest.raises(ConnectionResetError):
            await task
        assert proto.calls == [f"reset {ErrorCodes.CONNECT_ERROR}"]
        assert tunnel.error is not None and transport.aborted

    asyncio.run(go())


def test_data_and_end_that_arrived_before_the_splice_are_delivered_and_credited():
    async def go():
        proto = FakeProto()
        tunnel = Tunnel(FakeShell(proto), 1, "10.0.0.9:80")  # type: ignore[arg-type]
        tunnel._on_event(ev.Data(1, b"before", 6))
        tunnel._on_event(ev.PeerEnded(1))
        transport = FakeTransport()
        reader = asyncio.StreamReader()
        reader.feed_eof()
        writer = asyncio.StreamWriter(transport, None, reader, asyncio.get_running_loop())  # type: ignore[arg-type]
        assert await splice(tunnel, reader, writer) == (0, 6)
        assert transport.written == b"before" and transport.eof_written
        assert proto.acked == 6 and proto.calls == ["end"]

    asyncio.run(go())
