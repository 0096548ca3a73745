"""Http2Session when things end: client resets, upstream and handler failures, GOAWAY, EOF."""

from __future__ import annotations

import asyncio

import h2.events
from h2.errors import ErrorCodes

from tests.unit.waypoint.h2_peers import GET, run, terminated
from tests.unit.waypoint.h2_session_harness import Blocking, Session, echo, replying
from waypoint.exchange import Downstream, Reply
from waypoint.h1_upstream import UpstreamError
from waypoint.messages import ResponseHead

# --- resets, failures, the connection's end ---------------------------------------------------


def test_a_client_reset_cancels_the_handler():
    async def main():
        handler = Blocking()
        async with Session(handler) as s:
            sid = await s.request()
            await handler.started()
            s.client.h2.reset_stream(sid, ErrorCodes.CANCEL)
            await s.client.send()
            for _ in range(20):
                await asyncio.sleep(0)
            assert handler.cancelled == ["/"]
            assert s.session.requests == {}

    run(main())


def test_a_reset_while_streaming_calls_done_once_with_the_error_and_closes_the_body():
    closed = []

    async def chunks():
        try:
            yield b"first"
            await asyncio.Event().wait()
            yield b"never"
        finally:
            closed.append(True)

    async def main():
        s = Session(None)
        s.handler = replying(lambda r: Reply(ResponseHead(200), chunks=chunks(), done=s.done))
        async with s:
            sid = await s.request()
            await s.client.until(lambda _: s.client.body(sid) == b"first")
            s.client.h2.reset_stream(sid, ErrorCodes.CANCEL)
            await s.client.send()
            for _ in range(20):
                await asyncio.sleep(0)
        assert len(s.dones) == 1 and s.dones[0][0] == 5
        assert isinstance(s.dones[0][1], asyncio.CancelledError)
        assert closed == [True]

    run(main())


def test_an_upstream_failure_mid_body_resets_the_stream_and_nothing_else():
    async def chunks():
        yield b"partial"
        raise UpstreamError("upstream 10.0.0.2:80: connection reset", reset=True)

    async def main():
        s = Session(None)

        def reply_for(request: Downstream) -> Reply:
            if request.head.path == "/ok":
                return echo(request)
            return Reply(ResponseHead(200), chunks=chunks(), done=s.done)

        s.handler = replying(reply_for)
        async with s:
            bad = await s.request()
            await s.client.until(lambda _: s.client.of(h2.events.StreamReset, bad))
            (reset,) = s.client.of(h2.events.StreamReset, bad)
            assert reset.error_code == ErrorCodes.INTERNAL_ERROR
            assert s.client.of(h2.events.StreamEnded, bad) == []  # never looks complete
            ok = await s.request([*GET[:2], (":path", "/ok"), GET[3]])
            await s.client.until(s.client.ended(ok))
            assert s.status(ok) == "200"
        assert [type(e) for _, e in s.dones] == [UpstreamError]

    run(main())


def test_a_protocol_error_ends_the_connection_with_goaway_and_cancels_handlers():
    async def main():
        handler = Blocking()
        async with Session(handler) as s:
            await s.request()
            await handler.started()
            await s.client.stream.write(b"\x00\x00\x01\x00\x00\x00\x00\x00\x00x")  # DATA on 0
            await s.client.until(terminated)
            (goaway,) = s.client.of(h2.events.ConnectionTerminated)
            assert goaway.error_code == ErrorCodes.PROTOCOL_ERROR
            await asyncio.wait_for(s.task, 10)
            assert handler.cancelled == ["/"]

    run(main())


def test_eof_cancels_what_is_still_running():
    async def main():
        handler = Blocking()
        async with Session(handler) as s:
            await s.request()
            await handler.started()
        assert handler.cancelled == ["/"]

    run(main())


def test_an_idle_connection_gets_a_graceful_goaway():
    async def main():
        async with Session(replying(echo), idle_timeout=0.01) as s:
            await s.client.until(terminated)
            (goaway,) = s.client.of(h2.events.ConnectionTerminated)
            assert goaway.error_code == ErrorCodes.NO_ERROR

    run(main())


def test_drain_finishes_streams_in_flight_refuses_new_ones_then_closes():
    async def main():
        entered, go = asyncio.Event(), asyncio.Event()

        async def handler(request: Downstream) -> Reply:
            entered.set()
            await go.wait()
            return echo(request)

        async with Session(handler) as s:
            first = await s.request()
            await asyncio.wait_for(entered.wait(), 10)
            s.session.drain()
            late = await s.request()  # sent before the client has read the GOAWAY
            await s.client.until(lambda _: s.client.of(h2.events.StreamReset, late))
            (goaway,) = s.client.of(h2.events.ConnectionTerminated)
            assert (goaway.error_code, goaway.last_stream_id) == (ErrorCodes.NO_ERROR, first)
            (refused,) = s.client.of(h2.events.StreamReset, late)
            assert refused.error_code == ErrorCodes.REFUSED_STREAM
            go.set()
            await s.client.until(lambda _: s.client.closed)  # EOF once the last stream ended
            assert s.status(first) == "200"

    run(main())


def test_a_handler_bug_resets_its_stream_only():
    async def handler(request: Downstream) -> Reply:
        if request.head.path == "/bug":
            raise RuntimeError("bug")
        return echo(request)

    async def main():
        async with Session(handler) as s:
            bug = await s.request([*GET[:2], (":path", "/bug"), GET[3]])
            ok = await s.request()
            await s.client.until(lambda _: all(s.client.ended(i)(_) for i in (bug, ok)))
            assert (
                s.client.of(h2.events.StreamReset, bug)[0].error_code == ErrorCodes.INTERNAL_ERROR
            )
            assert s.status(ok) == "200"

    run(main())


def test_a_stalled_upload_is_idle_too():
    async def main():
        handler = replying(echo)
        async with Session(handler, idle_timeout=0.01) as s:
            sid = s.client.h2.get_next_available_stream_id()
            s.client.h2.send_headers(sid, [(":method", "POST"), *GET[1:]])
            s.client.h2.send_data(sid, b"half a body")  # ... and nothing more
            await s.client.send()
            await s.client.until(terminated)
            (goaway,) = s.client.of(h2.events.ConnectionTerminated)
            assert goaway.error_code == ErrorCodes.NO_ERROR
            assert handler.seen == []

    run(main())
