"""Http2Session, requests in and responses out: buffering, limits, flow control, trailers."""

from __future__ import annotations

import asyncio
import itertools
import json

import h2.config
import h2.connection
import h2.events
from h2.errors import ErrorCodes
from h2.settings import SettingCodes
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.unit.waypoint.h2_peers import GET, RawPeer, run, stream_pair
from tests.unit.waypoint.h2_session_harness import GRPC, PEER, Session, echo, replying
from waypoint.exchange import Downstream, Reply
from waypoint.h2_session import Http2Session
from waypoint.http2 import Http2Limits
from waypoint.messages import ResponseHead

# --- requests in ------------------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(body=st.binary(max_size=20_000), cuts=st.lists(st.integers(0, 30_000), max_size=12))
def test_a_request_split_anyhow_arrives_whole(body, cuts):
    client = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    client.initiate_connection()
    headers = [(":method", "POST"), (":scheme", "http"), (":path", "/p?q=1"), (":authority", "w")]
    client.send_headers(1, headers)
    client.send_data(1, body)
    client.send_headers(1, [("x-trailer", "t")], end_stream=True)
    wire = client.data_to_send()
    points = sorted({0, len(wire), *(c % (len(wire) + 1) for c in cuts)})
    pieces = [wire[a:b] for a, b in itertools.pairwise(points)]
    handler = replying(echo)

    async def main():
        ours, theirs = stream_pair()
        session = Http2Session(ours, handler, PEER, PEER.destination)
        task = asyncio.ensure_future(session.run(pieces[0]))
        for piece in pieces[1:]:
            await theirs.write(piece)
        peer = RawPeer(theirs, client=True, conn=client)
        await peer.until(peer.ended(1))
        theirs.write_eof()
        await task

    run(main())
    (request,) = handler.seen
    assert (request.head.path, request.body, request.trailers) == (
        "/p?q=1",
        body,
        (("x-trailer", "t"),),
    )
    assert request.head.protocol == "HTTP/2"


def test_streams_are_served_concurrently():
    async def main():
        arrived = asyncio.Event()

        async def handler(request: Downstream) -> Reply:
            if request.head.path == "/first":
                await arrived.wait()  # only the second request can release the first
            else:
                arrived.set()
            return echo(request)

        async with Session(handler) as s:
            first = await s.request([*GET[:2], (":path", "/first"), GET[3]])
            second = await s.request([*GET[:2], (":path", "/second"), GET[3]])
            await s.client.until(lambda _: all(s.client.ended(i)(_) for i in (first, second)))
            assert (s.status(first), s.status(second)) == ("200", "200")

    run(main())


def test_a_body_larger_than_the_stream_window_is_acknowledged_as_it_is_buffered():
    handler = replying(echo)
    size = 3 * 1024 * 1024  # three times the stream window the session advertises

    async def main():
        async with Session(handler) as s:
            await s.client.until(lambda _: s.client.h2.remote_settings.initial_window_size > 65535)
            sid = s.client.h2.get_next_available_stream_id()
            s.client.h2.send_headers(sid, [(":method", "POST"), *GET[1:]])
            left = size
            while left:
                window = s.client.h2.local_flow_control_window(sid)
                if window == 0:  # stalls forever unless the session credits what it buffered
                    seen = len(s.client.events)
                    await s.client.until(lambda events, n=seen: len(events) > n)
                    continue
                n = min(window, left, s.client.h2.max_outbound_frame_size)
                left -= n
                s.client.h2.send_data(sid, b"b" * n, end_stream=not left)
                await s.client.send()
            await s.client.until(s.client.ended(sid))
            assert json.loads(s.client.body(sid))["size"] == size

    run(main())


def test_a_body_over_the_limit_gets_413_and_a_no_error_reset():
    handler = replying(echo)

    async def main():
        async with Session(handler, max_body=1000) as s:
            sid = s.client.h2.get_next_available_stream_id()
            s.client.h2.send_headers(sid, [(":method", "POST"), *GET[1:]])
            s.client.h2.send_data(sid, b"x" * 2000)  # and more to come: the client is not done
            await s.client.send()
            await s.client.until(lambda _: s.client.of(h2.events.StreamReset, sid))
            assert s.status(sid) == "413"
            assert b"1000-byte" in s.client.body(sid)
            (reset,) = s.client.of(h2.events.StreamReset, sid)
            assert reset.error_code == ErrorCodes.NO_ERROR
            assert handler.seen == []

    run(main())


def test_a_grpc_body_over_the_limit_is_resource_exhausted_trailers_only():
    async def main():
        async with Session(replying(echo), max_body=10) as s:
            sid = await s.request(GRPC, b"\0\0\0\0\x20" + b"m" * 32)
            await s.client.until(s.client.ended(sid))
            (response,) = s.client.of(h2.events.ResponseReceived, sid)
            assert response.stream_ended is not None  # trailers-only: one HEADERS, END_STREAM
            assert dict(response.headers)["grpc-status"] == "8"

    run(main())


# --- responses out ----------------------------------------------------------------------------


def test_response_data_stays_within_the_client_window_and_pulls_lazily():
    pulls = []

    async def chunks():
        for i in range(8):
            pulls.append(i)
            yield bytes([65 + i]) * 65536

    async def main():
        reply = Reply(ResponseHead(200), chunks=chunks())
        limits = Http2Limits(max_send_buffer=65536)
        window = {SettingCodes.INITIAL_WINDOW_SIZE: 16384}
        async with Session(replying(lambda r: reply), window, limits=limits) as s:
            sid = await s.request()
            await s.client.until(lambda _: len(s.client.body(sid)) >= 16384)
            for _ in range(50):  # let the session run as far as it can without a new window
                await asyncio.sleep(0)
            assert len(s.client.body(sid)) == 16384
            assert len(pulls) <= 3  # window + the bounded backlog, not the whole body
            s.client.auto_ack = True
            s.client.ack(s.client.events)
            await s.client.send()
            await s.client.until(s.client.ended(sid))
            assert s.client.body(sid) == b"".join(bytes([65 + i]) * 65536 for i in range(8))
            assert len(pulls) == 8

    run(main())


def test_trailers_end_the_stream_and_a_grpc_status_head_is_trailers_only():
    async def body():
        yield b"\0\0\0\0\x02hi"

    def reply_for(request: Downstream) -> Reply:
        if request.head.path.endswith("Missing"):
            head = ResponseHead(200, (("content-type", "application/grpc"), ("grpc-status", "5")))
            return Reply(head, chunks=body())  # the upstream's trailers-only answer
        trailers = (("grpc-status", "0"),)
        return Reply(ResponseHead(200), chunks=body(), trailers=lambda: trailers)

    async def main():
        async with Session(replying(reply_for)) as s:
            ok = await s.request(GRPC, b"\0\0\0\0\0")
            missing = await s.request([*GRPC[:2], (":path", "/demo.Echo/Missing"), *GRPC[3:]])
            await s.client.until(lambda _: all(s.client.ended(i)(_) for i in (ok, missing)))
            (trailers,) = s.client.of(h2.events.TrailersReceived, ok)
            assert dict(trailers.headers) == {"grpc-status": "0"}
            assert s.client.body(ok) == b"\0\0\0\0\x02hi"
            (head,) = s.client.of(h2.events.ResponseReceived, missing)
            assert head.stream_ended is not None and dict(head.headers)["grpc-status"] == "5"
            assert s.client.of(h2.events.DataReceived, missing) == []

    run(main())


def test_connection_specific_fields_of_an_http1_upstream_are_dropped_and_head_has_no_body():
    def reply_for(request: Downstream) -> Reply:
        fields = (("connection", "keep-alive"), ("transfer-encoding", "chunked"), ("x-a", "1"))
        return Reply(ResponseHead(200, fields), body=b"body")

    async def main():
        async with Session(replying(reply_for)) as s:
            sid = await s.request([(":method", "HEAD"), *GET[1:]])
            await s.client.until(s.client.ended(sid))
            (response,) = s.client.of(h2.events.ResponseReceived, sid)
            assert dict(response.headers) == {":status": "200", "x-a": "1"}
            assert s.client.body(sid) == b""

    run(main())


def test_expect_100_continue_is_answered_since_the_body_is_buffered_anyway():
    handler = replying(echo)

    async def main():
        async with Session(handler) as s:
            sid = s.client.h2.get_next_available_stream_id()
            s.client.h2.send_headers(
                sid, [(":method", "PUT"), *GET[1:], ("expect", "100-continue")]
            )
            await s.client.send()
            await s.client.until(lambda _: s.client.of(h2.events.InformationalResponseReceived))
            s.client.h2.send_data(sid, b"body", end_stream=True)
            await s.client.send()
            await s.client.until(s.client.ended(sid))
            assert json.loads(s.client.body(sid))["size"] == 4

    run(main())
