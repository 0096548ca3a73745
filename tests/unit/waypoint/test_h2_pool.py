"""Http2Pool: connection sharing, new connections when needed, the HTTP/1.1 fallback."""

from __future__ import annotations

import asyncio

import h2.events
import pytest
from h2.settings import SettingCodes

from tests.unit.waypoint.h2_peers import RawPeer, run, stream_pair
from waypoint.h1_upstream import Http1Upstream, UpstreamError, UpstreamPool
from waypoint.h2_pool import Http2Pool, by_protocol
from waypoint.h2_upstream import H2Exchange, NotHttp2
from waypoint.messages import RequestHead

HEAD = RequestHead("GET", "http", "web", "/", (), "HTTP/2")
ENDPOINT = ("10.0.0.2", 8080)


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


class Endpoints:
    """A connector to in-memory servers: h2c ones that answer "ok", or HTTP/1.1-only ones."""

    def __init__(self, kind: str = "h2", settings: dict | None = None) -> None:
        self.kind, self.settings = kind, settings
        self.connects: list[tuple[str, int]] = []
        self.servers: list[asyncio.Task] = []
        self.peers: list[RawPeer] = []

    async def __call__(self, endpoint):
        self.connects.append(endpoint)
        if self.kind == "down":
            raise ConnectionRefusedError(f"connection to {endpoint} refused")
        ours, theirs = stream_pair()
        serve = self._h2 if self.kind == "h2" else self._http1
        self.servers.append(asyncio.ensure_future(serve(theirs)))
        return ours

    async def _h2(self, stream) -> None:
        peer = RawPeer(stream, client=False, settings=self.settings)
        self.peers.append(peer)
        await peer.send()
        answered: set[int] = set()

        def waiting(events) -> list[int]:
            ended = [e.stream_id for e in events if isinstance(e, h2.events.StreamEnded)]
            return [sid for sid in ended if sid not in answered]

        while not peer.closed:
            await peer.until(lambda events: peer.closed or waiting(events))
            for sid in waiting(peer.events):
                answered.add(sid)
                peer.h2.send_headers(sid, [(":status", "200")])
                peer.h2.send_data(sid, b"ok", end_stream=True)
            await peer.send()

    async def _http1(self, stream) -> None:
        if await stream.read():  # the preface, or nothing from an HTTP/1.1 client
            await stream.write(b"HTTP/1.1 505 HTTP Version Not Supported\r\n\r\n")
            stream.write_eof()


async def get(pool: Http2Pool) -> bytes:
    exchange = await pool.acquire(ENDPOINT)
    response = await exchange.send(HEAD, b"")
    body = b"".join([c async for c in response.chunks])
    pool.release(exchange)
    return body


def test_concurrent_requests_share_one_connection():
    async def main():
        endpoints = Endpoints()
        pool = Http2Pool(endpoints)
        assert await asyncio.gather(*(get(pool) for _ in range(20))) == [b"ok"] * 20
        assert await get(pool) == b"ok"
        assert (len(endpoints.connects), pool.opened) == (1, 1)
        pool.close()

    run(main())


def test_a_connection_out_of_streams_makes_the_pool_open_another():
    async def main():
        endpoints = Endpoints(settings={SettingCodes.MAX_CONCURRENT_STREAMS: 1})
        pool = Http2Pool(endpoints)
        first = await pool.acquire(ENDPOINT)  # holds the only stream until it is sent
        assert await get(pool) == b"ok"
        assert pool.opened == 2
        response = await first.send(HEAD, b"")
        assert [c async for c in response.chunks] == [b"ok"]
        pool.close()

    run(main())


def test_a_lost_connection_is_replaced():
    async def main():
        endpoints = Endpoints()
        pool = Http2Pool(endpoints)
        assert await get(pool) == b"ok"
        endpoints.peers[0].stream.write_eof()  # the upstream closes its idle connection
        await asyncio.wait_for(endpoints.servers[0], 10)
        for _ in range(20):
            await asyncio.sleep(0)
        assert await get(pool) == b"ok"
        assert pool.opened == 2
        pool.close()

    run(main())


def test_an_http1_endpoint_falls_back_and_is_probed_again_later():
    async def main():
        endpoints, clock = Endpoints("http1"), Clock()
        fallback = UpstreamPool(endpoints)
        pool = Http2Pool(endpoints, fallback=fallback, relearn_after=60, clock=clock)
        first = await pool.acquire(ENDPOINT)
        assert isinstance(first, Http1Upstream)
        assert len(endpoints.connects) == 2  # the refused probe, then HTTP/1.1
        pool.discard(first)
        clock.now = 59
        assert isinstance(await pool.acquire(ENDPOINT), Http1Upstream)
        assert len(endpoints.connects) == 3  # remembered: no second probe
        clock.now = 60
        await pool.acquire(ENDPOINT)
        assert len(endpoints.connects) == 5  # probed again, refused again
        assert pool.opened == 0

    run(main())


def test_without_a_fallback_an_http1_endpoint_is_a_connect_failure():
    async def main():
        pool = Http2Pool(Endpoints("http1"))
        with pytest.raises(NotHttp2) as refused:
            await pool.acquire(ENDPOINT)
        assert refused.value.connect and "HTTP/1.1 505" in str(refused.value)

    run(main())


def test_a_connector_failure_is_a_connect_failure_for_every_waiter():
    async def main():
        pool = Http2Pool(Endpoints("down"))
        results = await asyncio.gather(
            *(pool.acquire(ENDPOINT) for _ in range(3)), return_exceptions=True
        )
        assert all(isinstance(r, UpstreamError) and r.connect for r in results)
        assert all("refused" in str(r) for r in results)

    run(main())


def test_release_and_discard_go_back_where_the_upstream_came_from():
    async def main():
        endpoints = Endpoints()
        pool = Http2Pool(endpoints, fallback=UpstreamPool(endpoints))
        exchange = await pool.acquire(ENDPOINT)
        assert isinstance(exchange, H2Exchange)
        pool.discard(exchange)  # never sent: its reservation is given back
        (connection,) = pool._connections[ENDPOINT]
        assert connection.reserved == 0
        stream, _ = stream_pair()
        http1 = Http1Upstream(ENDPOINT, stream)
        pool.discard(http1)
        assert stream.aborted
        pool.close()

    run(main())


def test_by_protocol_sends_http2_requests_to_the_http2_pool():
    http1, http2 = object(), object()
    choose = by_protocol(http1, http2)
    assert choose("HTTP/2") is http2
    assert (choose("HTTP/1.1"), choose("HTTP/1.0")) == (http1, http1)
