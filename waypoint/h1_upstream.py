"""HTTP/1.1 to upstream endpoints: one exchange at a time per connection, connections reused.

An `Http1Upstream` drives the strict client codec over a byte stream (an HBONE tunnel to the
endpoint's agent, or plain TCP to a workload outside the mesh). After a response whose body was
read to its end on a keep-alive connection, the `UpstreamPool` keeps the connection idle for the
next request to the same endpoint, so a steady request rate does not pay a TLS handshake or an
HBONE CONNECT per request. A response abandoned halfway (client gone, timeout) closes its
connection instead: leftover bytes would corrupt the next exchange.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass, field

from waypoint import http1 as h1
from waypoint.http1.convert import response_head
from waypoint.messages import Headers, RequestHead, ResponseHead
from waypoint.streams import ByteStream

log = logging.getLogger("nodemesh.waypoint.upstream")

Endpoint = tuple[str, int]
Connector = Callable[[Endpoint], Awaitable[ByteStream]]
# The traceparent a connector puts on the HBONE CONNECT it opens (ztunnel does), set by the
# pipeline around `acquire`: the connection is opened for that request, in its context (a
# pooled opening runs in a task, which copies the context of the request that started it).
CONNECT_TRACEPARENT: ContextVar[str | None] = ContextVar("connect_traceparent", default=None)


def tunnel_key(stream: object) -> str | None:
    """The HBONE tunnel key of a stream (`TunnelStream`), None for plain TCP: flow events."""
    tunnel = getattr(stream, "tunnel", None)
    return getattr(tunnel, "key", None)


IDLE_PER_ENDPOINT = 32


class UpstreamError(Exception):
    """The upstream failed before a response head: connect failure, reset, bad HTTP."""

    def __init__(self, message: str, *, connect: bool = False, reset: bool = False) -> None:
        super().__init__(message)
        self.connect, self.reset = connect, reset


@dataclass
class UpstreamResponse:
    head: ResponseHead
    chunks: AsyncIterator[bytes]
    trailers: list = field(default_factory=list)  # filled when chunks is exhausted
    upgraded: ByteStream | None = None  # 101: the raw stream, ours to splice
    head_bytes: int = 0
    # The whole body, when it arrived with the head (most small responses): the caller can
    # answer with it at once and hand the connection back, without streaming.
    body: bytes | None = None


class Http1Upstream:
    """One HTTP/1.1 connection to one endpoint."""

    def __init__(self, endpoint: Endpoint, stream: ByteStream) -> None:
        self.endpoint, self.stream = endpoint, stream
        self.conn = h1.ClientConnection()
        self.reusable = False  # the exchange completed on a keep-alive connection
        self.completed = False  # the response was read to its end

    @property
    def tunnel(self) -> str | None:
        """The HBONE tunnel this connection runs in (its key), None over plain TCP."""
        return tunnel_key(self.stream)

    async def send(
        self, head: RequestHead, body: bytes, upgrade: str | None = None
    ) -> UpstreamResponse:
        """Write the request and read up to the response head; the body streams after."""
        self.reusable = self.completed = False
        fields = _fields(head, body)
        if upgrade:  # hop-by-hop, so the neutral head does not carry it: ask the upstream again
            fields += [(b"connection", b"upgrade"), (b"upgrade", upgrade.encode("latin-1"))]
        out = self.conn.send(h1.Request(head.method.encode(), _target(head), headers=fields))
        parts = [out]
        if body:
            parts.append(self.conn.send(h1.Data(body)))
        parts.append(self.conn.send(h1.EndOfMessage()))
        try:
            await self.stream.write(b"".join(parts))
            return await self._response(head.method == "HEAD")
        except (ConnectionError, OSError, EOFError) as exc:
            raise UpstreamError(f"{_where(self.endpoint)}: {exc}", reset=True) from exc
        except h1.RemoteProtocolError as exc:
            raise UpstreamError(f"{_where(self.endpoint)} broke HTTP/1.1: {exc}") from exc

    async def _events(self) -> list[h1.Event]:
        """The next events the connection can give, reading only while it needs data."""
        events = self.conn.next_events()
        while len(events) == 1 and type(events[0]) is h1.NeedData:
            data = await self.stream.read()
            events = self.conn.receive_data(data)
            if not data and len(events) == 1 and type(events[0]) is h1.NeedData:
                raise EOFError("connection closed before the response was complete")
        return events

    async def _response(self, head_only: bool) -> UpstreamResponse:
        pending: list[h1.Event] = []
        while True:
            events = pending or await self._events()
            pending = []
            for i, event in enumerate(events):
                kind = type(event)
                if kind is h1.InformationalResponse and event.status == 101:
                    return self._switched(event)
                if kind is h1.Response:
                    rest = events[i + 1 :]
                    head_bytes = sum(len(k) + len(v) + 4 for k, v in event.headers) + 17
                    whole = self._whole_body(rest)
                    return UpstreamResponse(
                        head=response_head(event),
                        chunks=_empty() if whole is not None else self._body(rest),
                        head_bytes=head_bytes,
                        body=whole,
                    )
                if kind is h1.ConnectionClosed:
                    raise EOFError("upstream closed the connection without a response")

    def _whole_body(self, events: list[h1.Event]) -> bytes | None:
        """The body if `events` hold all of it up to EndOfMessage, else None (stream it)."""
        parts = []
        for event in events:
            kind = type(event)
            if kind is h1.Data:
                parts.append(event.data)
            elif kind is h1.EndOfMessage:
                self.trailers = [(k.decode(), v.decode("latin-1")) for k, v in event.trailers]
                self.reusable = self.conn.keep_alive
                self.completed = True
                return b"".join(parts)
            else:
                return None
        return None

    def _switched(self, event: h1.InformationalResponse) -> UpstreamResponse:
        leftover, _ = self.conn.trailing_data
        head = ResponseHead(
            status=101,
            headers=tuple((k.decode(), v.decode("latin-1")) for k, v in event.headers),
        )
        stream = _Prefixed(self.stream, leftover) if leftover else self.stream
        return UpstreamResponse(head=head, chunks=_empty(), upgraded=stream)

    async def _body(self, first: list[h1.Event]) -> AsyncIterator[bytes]:
        events = first
        while True:
            for event in events:
                kind = type(event)
                if kind is h1.Data:
                    yield bytes(event.data)
                elif kind is h1.EndOfMessage:
                    self.trailers = [(k.decode(), v.decode("latin-1")) for k, v in event.trailers]
                    self.reusable = self.conn.keep_alive
                    self.completed = True
                    return
                elif kind is h1.ConnectionClosed:
                    self.completed = True  # a close-delimited body ends with the connection
                    return
            try:
                events = await self._events()
            except h1.RemoteProtocolError as exc:
                raise UpstreamError(f"{_where(self.endpoint)} broke HTTP/1.1: {exc}") from exc
            except EOFError as exc:
                raise UpstreamError(f"{_where(self.endpoint)}: {exc}", reset=True) from exc

    trailers: Headers = ()


class UpstreamPool:
    """Idle HTTP/1.1 connections by endpoint; `connector` opens new ones."""

    def __init__(self, connector: Connector) -> None:
        self.connector = connector
        self._idle: dict[Endpoint, list[Http1Upstream]] = {}
        self.opened = 0

    async def acquire(self, endpoint: Endpoint) -> Http1Upstream:
        idle = self._idle.get(endpoint)
        while idle:
            return idle.pop()
        try:
            stream = await self.connector(endpoint)
        except Exception as exc:
            raise UpstreamError(f"{_where(endpoint)}: {exc}", connect=True) from exc
        self.opened += 1
        return Http1Upstream(endpoint, stream)

    def release(self, upstream: Http1Upstream) -> None:
        """Back to the pool if the exchange ended cleanly on a keep-alive connection."""
        idle = self._idle.setdefault(upstream.endpoint, [])
        if upstream.reusable and len(idle) < IDLE_PER_ENDPOINT:
            idle.append(upstream)
        else:  # a finished exchange ends cleanly (HTTP/1.0, Connection: close); else reset
            upstream.stream.close(abort=not upstream.completed)

    def discard(self, upstream: Http1Upstream) -> None:
        upstream.stream.close(abort=True)

    def close(self) -> None:
        for idle in self._idle.values():
            for upstream in idle:
                upstream.stream.close()
        self._idle.clear()


class _Prefixed:
    """A stream whose first read returns bytes already received (after a 101)."""

    def __init__(self, stream: ByteStream, first: bytes) -> None:
        self._stream, self._first = stream, first

    async def read(self) -> bytes:
        if self._first:
            first, self._first = self._first, b""
            return first
        return await self._stream.read()

    async def write(self, data) -> None:
        await self._stream.write(data)

    def write_eof(self) -> None:
        self._stream.write_eof()

    def close(self, abort: bool = False) -> None:
        self._stream.close(abort)


async def _empty() -> AsyncIterator[bytes]:
    return
    yield b""


def _target(head: RequestHead) -> bytes:
    return (head.path or "/").encode("latin-1")


def _fields(head: RequestHead, body: bytes) -> list[tuple[bytes, bytes]]:
    """Host first, the end-to-end fields, and the buffered body's own Content-Length (the
    client may have sent it chunked: the codec frames what it is told)."""
    fields = [(b"host", head.authority.encode("latin-1"))]
    fields += [
        (k.encode("ascii"), v.encode("latin-1")) for k, v in head.headers if k != "content-length"
    ]
    if body or head.method in ("POST", "PUT", "PATCH"):
        fields.append((b"content-length", str(len(body)).encode()))
    return fields


def _where(endpoint: Endpoint) -> str:
    return f"upstream {endpoint[0]}:{endpoint[1]}"
