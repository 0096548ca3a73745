"""Http2Upstream and H2Exchange against a raw h2 server over in-memory streams."""

from __future__ import annotations

import asyncio

import h2.connection
import h2.events
import pytest
from h2.errors import ErrorCodes
from h2.settings import SettingCodes
from hyperframe.frame import GoAwayFrame
from hypothesis import given
from hypothesis import strategies as st

from nodemesh.tasks import TaskSet
from tests.unit.waypoint.h2_peers import RawPeer, run, stream_pair
from waypoint.h1_upstream import UpstreamError
from waypoint.h2_upstream import Http2Upstream, NotHttp2, settings_first
from waypoint.http2 import Http2Limits
from waypoint.messages import RequestHead

HEAD = RequestHead("POST", "http", "web", "/demo.Echo/Say", (("te", "trailers"),), "HTTP/2")
ENDPOINT = ("10.0.0.2", 8080)


def server_preface() -> bytes:
    server = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
    server.initiate_connection()
    return server.data_to_send()


# --- settings_first -----------------------------------------------------------------------------


def test_every_prefix_of_a_server_preface_is_undecided_then_accepted():
    preface = server_preface()
    for n in range(len(preface) + 1):
        expected = None if n < 9 else True
        assert settings_first(preface[:n]) is expected, n


@pytest.mark.parametrize(
    "answer",
    [b"HTTP/1.1 505 HTTP Version Not Supported\r\n", b"HTTP/1.0 400 Bad Request", b"SSH-2"],
)
def test_an_http1_answer_is_refused_from_its_fourth_byte(answer):
    assert settings_first(answer[:3]) is None
    assert settings_first(answer[:4]) is False


@given(st.binary(min_size=4, max_size=64).filter(lambda b: b[3] != 0x4))
def test_anything_but_a_settings_frame_type_is_refused(data):
    assert settings_first(data) is False


def test_a_settings_ack_or_a_frame_on_a_stream_is_not_a_preface():
    ack = b"\x00\x00\x00\x04\x01\x00\x00\x00\x00"
    on_stream = b"\x00\x00\x00\x04\x00\x00\x00\x00\x01"
    assert settings_first(ack) is False
    assert settings_first(on_stream) is False


# --- one connection ----------------------------------------------------------------------------


class Upstream:
    """Our connection on one end of a memory pipe, a raw h2 server on the other."""

    def __init__(self, limits: Http2Limits | None = None, settings: dict | None = None) -> None:
        self.limits, self.settings = limits, settings

    async def __aenter__(self) -> Upstream:
        ours, theirs = stream_pair()
        self.tasks = TaskSet("test")
        self.conn = Http2Upstream(ENDPOINT, ours, tasks=self.tasks, limits=self.limits)
        self.server = RawPeer(theirs, client=False, settings=self.settings)
        await self.server.send()
        await self.conn.handshake()
        return self

    async def __aexit__(self, *exc) -> None:
        self.conn.close()

    async def requested(self, n: int = 1) -> list[int]:
        """Wait until the server has `n` complete requests; their stream ids."""
        await self.server.until(lambda _: len(self.server.of(h2.events.StreamEnded)) >= n)
        return [e.stream_id for e in self.server.of(h2.events.StreamEnded)]

    async def respond(self, sid: int, body: bytes = b"", trailers=None) -> None:
        ended = not body and not trailers
        self.server.h2.send_headers(sid, [(":status", "200")], end_stream=ended)
        if body:
            self.server.h2.send_data(sid, body, end_stream=not trailers)
        if trailers:
            self.server.h2.send_headers(sid, trailers, end_stream=True)
        await self.server.send()


def test_a_response_streams_back_with_its_trailers():
    async def main():
        async with Upstream() as up:
            exchange = up.conn.reserve()
            sending = asyncio.ensure_future(exchange.send(HEAD, b"\0\0\0\0\x01x"))
            (sid,) = await up.requested()
            assert up.server.body(sid) == b"\0\0\0\0\x01x"
            await up.respond(sid, b"answer", [("grpc-status", "0")])
            response = await sending
            assert response.head.status == 200
            assert [c async for c in response.chunks] == [b"answer"]
            assert exchange.trailers == (("grpc-status", "0"),)
            assert up.conn.exchanges == {} and up.conn.reserved == 0

    run(main())


def test_a_request_body_beyond_the_upstream_window_waits_for_it():
    async def main():
        window = {SettingCodes.INITIAL_WINDOW_SIZE: 16384}
        async with Upstream(settings=window) as up:
            up.server.auto_ack = True
            body = bytes(range(256)) * 800  # 200 KiB through a 16 KiB window
            sending = asyncio.ensure_future(up.conn.reserve().send(HEAD, body))
            (sid,) = await up.requested()
            assert up.server.body(sid) == body
            await up.respond(sid)
            assert (await sending).head.status == 200

    run(main())


def test_a_chunk_is_acknowledged_only_when_the_next_is_asked_for():
    async def main():
        async with Upstream(limits=Http2Limits(stream_window=65535)) as up:
            sending = asyncio.ensure_future(up.conn.reserve().send(HEAD, b""))
            (sid,) = await up.requested()
            up.server.h2.send_headers(sid, [(":status", "200")])
            up.server.h2.send_data(sid, b"a" * 60000)
            await up.server.send()
            chunks = aiter((await sending).chunks)
            assert await anext(chunks) == b"a" * 60000
            for _ in range(20):
                await asyncio.sleep(0)
            assert up.server.h2.local_flow_control_window(sid) == 5535  # not credited yet
            following = asyncio.ensure_future(anext(chunks))
            await up.server.until(lambda _: up.server.h2.local_flow_control_window(sid) == 65535)
            up.server.h2.send_data(sid, b"b", end_stream=True)
            await up.server.send()
            assert await following == b"b"

    run(main())


def test_abandoning_an_exchange_resets_its_stream_with_cancel():
    async def main():
        async with Upstream() as up:
            exchange = up.conn.reserve()
            sending = asyncio.ensure_future(exchange.send(HEAD, b"x"))
            (sid,) = await up.requested()
            up.server.h2.send_headers(sid, [(":status", "200")])
            up.server.h2.send_data(sid, b"part")  # and more to come
            await up.server.send()
            await sending
            exchange.abandon()  # the client went away before reading the body
            await up.server.until(lambda _: up.server.of(h2.events.StreamReset, sid))
            assert up.server.of(h2.events.StreamReset, sid)[0].error_code == ErrorCodes.CANCEL

    run(main())


def test_cancelling_a_send_resets_the_upstream_stream():
    async def main():
        async with Upstream() as up:
            sending = asyncio.ensure_future(up.conn.reserve().send(HEAD, b"x"))
            (sid,) = await up.requested()
            sending.cancel()  # the client reset its stream: the pipeline's task is cancelled
            await up.server.until(lambda _: up.server.of(h2.events.StreamReset, sid))
            assert up.server.of(h2.events.StreamReset, sid)[0].error_code == ErrorCodes.CANCEL
            assert up.conn.exchanges == {}

    run(main())


def test_a_refused_stream_is_a_connect_failure_and_a_reset_is_a_reset():
    async def main():
        async with Upstream() as up:
            refused = asyncio.ensure_future(up.conn.reserve().send(HEAD, b""))
            reset = asyncio.ensure_future(up.conn.reserve().send(HEAD, b""))
            first, second = await up.requested(2)
            up.server.h2.reset_stream(first, ErrorCodes.REFUSED_STREAM)
            up.server.h2.reset_stream(second, ErrorCodes.INTERNAL_ERROR)
            await up.server.send()
            with pytest.raises(UpstreamError) as refusal:
                await refused
            with pytest.raises(UpstreamError) as failure:
                await reset
            assert refusal.value.connect and "REFUSED_STREAM" in str(refusal.value)
            assert failure.value.reset and not failure.value.connect

    run(main())


def test_a_graceful_goaway_lets_the_stream_in_flight_finish_and_takes_no_new_ones():
    async def main():
        async with Upstream() as up:
            exchange = up.conn.reserve()
            sending = asyncio.ensure_future(exchange.send(HEAD, b""))
            (sid,) = await up.requested()
            goaway = GoAwayFrame(0, last_stream_id=sid, error_code=ErrorCodes.NO_ERROR)
            await up.server.stream.write(goaway.serialize())  # behind h2's back: it would stop
            await up.respond(sid, b"done")
            response = await sending
            assert up.conn.available == 0 and not up.conn.retired
            assert [c async for c in response.chunks] == [b"done"]
            assert up.conn.retired

    run(main())


def test_eof_fails_every_exchange_on_the_connection():
    async def main():
        async with Upstream() as up:
            sending = asyncio.ensure_future(up.conn.reserve().send(HEAD, b""))
            await up.requested()
            up.server.stream.write_eof()
            with pytest.raises(UpstreamError) as lost:
                await sending
            assert lost.value.reset and "closed the connection" in str(lost.value)
            assert up.conn.available == 0 and up.conn.retired

    run(main())


def test_an_http1_server_fails_the_handshake_with_what_it_said():
    async def main():
        ours, theirs = stream_pair()
        conn = Http2Upstream(ENDPOINT, ours, tasks=TaskSet("test"), limits=None)
        await theirs.write(b"HTTP/1.1 505 HTTP Version Not Supported\r\n\r\n")
        with pytest.raises(NotHttp2) as refused:
            await conn.handshake()
        assert refused.value.connect
        assert "505" in str(refused.value) and "10.0.0.2:8080" in str(refused.value)

    run(main())
