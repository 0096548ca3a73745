"""H2Wire: ordered flushes, flushes from sync code, bodies sent within the peer's windows."""

from __future__ import annotations

import asyncio

import h2.events
import pytest
from h2.settings import SettingCodes

from nodemesh.tasks import TaskSet
from tests.unit.waypoint.h2_peers import GET, RawPeer, run, stream_pair
from waypoint.h2_wire import H2Wire
from waypoint.http2 import RequestReceived, ServerConnection, StreamClosedError, WindowOpened
from waypoint.messages import ResponseHead


async def answering(window: int) -> tuple[H2Wire, RawPeer, int]:
    """A server wire with one request received from a client whose stream window is `window`."""
    ours, theirs = stream_pair()
    conn = ServerConnection()
    wire = H2Wire(ours, conn, TaskSet("test"))
    client = RawPeer(theirs, client=True, settings={SettingCodes.INITIAL_WINDOW_SIZE: window})
    client.h2.send_headers(1, GET, end_stream=True)
    await client.send()
    events = conn.receive_data(await ours.read())
    assert any(isinstance(e, RequestReceived) for e in events)
    conn.send_response(1, ResponseHead(200))
    await wire.flush()
    return wire, client, 1


async def feed(wire: H2Wire, stream) -> None:
    """The session's reader, reduced: window events to the wire."""
    while data := await stream.read():
        for event in wire.conn.receive_data(data):
            if isinstance(event, WindowOpened):
                wire.window_opened(event.stream_id)
        await wire.flush()


def test_send_body_waits_for_the_window_and_delivers_everything():
    async def main():
        wire, client, sid = await answering(window=1000)
        reader = asyncio.ensure_future(feed(wire, wire.stream))
        client.auto_ack = True
        sending = asyncio.ensure_future(wire.send_body(sid, b"z" * 50_000, end_stream=True))
        await client.until(client.ended(sid))
        await sending
        assert client.body(sid) == b"z" * 50_000
        reader.cancel()

    run(main())


def test_a_sender_waiting_for_a_window_wakes_with_the_reset_of_its_stream():
    async def main():
        wire, _, sid = await answering(window=1000)
        limit = wire.conn.limits.max_send_buffer
        sending = asyncio.ensure_future(wire.send_body(sid, b"z" * (limit + 2000), end_stream=True))
        for _ in range(20):
            await asyncio.sleep(0)
        assert not sending.done()  # window and backlog are full: it waits
        wire.conn.reset(sid)
        wire.forget(sid)
        with pytest.raises(StreamClosedError):
            await asyncio.wait_for(sending, 10)

    run(main())


def test_kick_flushes_bytes_queued_by_synchronous_code():
    async def main():
        wire, client, sid = await answering(window=65535)
        wire.conn.reset(sid)  # no await here: an RST_STREAM waits in the codec
        wire.kick()
        await client.until(lambda _: client.of(h2.events.StreamReset, sid))

    run(main())
