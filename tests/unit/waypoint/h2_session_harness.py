"""A test harness for Http2Session: a session and a raw h2 client on an in-memory pipe.

The handler stands in for the pipeline; tests check what the client saw on the wire (h2's
events) and what the handler and `Reply.done` were given.
"""

from __future__ import annotations

import asyncio
import json

import h2.events

from tests.unit.waypoint.h2_peers import GET, RawPeer, stream_pair
from waypoint.exchange import Downstream, Reply
from waypoint.h2_session import Http2Session
from waypoint.messages import Peer, ResponseHead

PEER = Peer("spiffe://td/ns/shop/sa/client", ("10.0.0.1", 5000), ("198.19.0.10", 80))
GRPC = [
    (":method", "POST"),
    (":scheme", "http"),
    (":path", "/demo.Echo/Say"),
    (":authority", "web"),
    ("content-type", "application/grpc"),
    ("te", "trailers"),
]


class Session:
    """A session on one end of a memory pipe and a raw h2 client on the other."""

    def __init__(self, handler, client_settings=None, **options) -> None:
        self.handler = handler
        self.options = options
        self.client_settings = client_settings or {}
        self.dones: list[tuple[int, BaseException | None]] = []

    async def __aenter__(self) -> Session:
        ours, theirs = stream_pair()
        self.ours = ours
        self.session = Http2Session(ours, self.handler, PEER, PEER.destination, **self.options)
        self.client = RawPeer(theirs, client=True, settings=self.client_settings)
        self.task = asyncio.ensure_future(self.session.run())
        await self.client.send()
        return self

    async def __aexit__(self, *exc) -> None:
        self.client.stream.write_eof()
        await asyncio.wait_for(self.task, 10)

    def done(self, n: int, error: BaseException | None) -> None:
        self.dones.append((n, error))

    async def request(self, headers=GET, body: bytes = b"") -> int:
        sid = self.client.h2.get_next_available_stream_id()
        self.client.h2.send_headers(sid, headers, end_stream=not body)
        if body:
            self.client.h2.send_data(sid, body, end_stream=True)
        await self.client.send()
        return sid

    def status(self, sid: int) -> str:
        (response,) = self.client.of(h2.events.ResponseReceived, sid)
        return dict(response.headers)[":status"]


def replying(reply_for):
    """A handler that answers with `reply_for(downstream)` and records what it was given."""
    seen: list[Downstream] = []

    async def handler(request: Downstream) -> Reply:
        seen.append(request)
        return reply_for(request)

    handler.seen = seen
    return handler


class Blocking:
    """A handler that never answers: records that it started and that it was cancelled."""

    def __init__(self) -> None:
        self.entered = asyncio.Event()
        self.cancelled: list[str] = []

    async def __call__(self, request: Downstream) -> Reply:
        self.entered.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.cancelled.append(request.head.path)
            raise
        raise AssertionError("unreachable")

    async def started(self) -> None:
        await asyncio.wait_for(self.entered.wait(), 10)


def echo(request: Downstream) -> Reply:
    body = json.dumps({"path": request.head.path, "size": len(request.body)}).encode()
    return Reply(ResponseHead(200, (("content-type", "application/json"),)), body=body)
