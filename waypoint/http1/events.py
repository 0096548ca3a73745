"""What an HTTP/1.1 connection reports and accepts: plain, immutable data.

Theory of operation: one message is a head event (`Request`, `Response`, or any number of
`InformationalResponse` before a `Response`), then zero or more `Data`, then one `EndOfMessage`.
The same classes flow both ways: `receive_data` returns them, `send` takes them.

Header names are lower-case `bytes` and values are `bytes`, kept in wire order, duplicates and all:
the codec never joins, sorts or decodes them, so a proxy forwards exactly what it validated.
Versions are `b"1.0"` or `b"1.1"`.

Every list that `receive_data` returns ends with one marker that says why parsing stopped:
`NeedData` (read more from the socket), `Paused` (your move: answer the request, or take
`trailing_data` after a protocol switch; stop reading until then) or `ConnectionClosed` (the
peer is done sending). The markers carry no data, so `NEED_DATA`, `PAUSED` and
`CONNECTION_CLOSED` are shared instances.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# (lower-case name, value) pairs in the order they were sent.
Headers = list[tuple[bytes, bytes]]


@dataclass(frozen=True, slots=True)
class Event:
    """Base of everything the connection reports or sends."""


@dataclass(frozen=True, slots=True)
class Request(Event):
    """A request head: `method` is a token, `target` the request-target as sent."""

    method: bytes
    target: bytes
    version: bytes = b"1.1"
    headers: Headers = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class InformationalResponse(Event):
    """A 1xx head (100 Continue, 101 Switching Protocols, 103 Early Hints); never has a body."""

    status: int
    reason: bytes = b""
    version: bytes = b"1.1"
    headers: Headers = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Response(Event):
    """A final (2xx-5xx) response head; an empty reason is filled in when sent."""

    status: int
    reason: bytes = b""
    version: bytes = b"1.1"
    headers: Headers = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Data(Event):
    """A piece of body. Received pieces are fresh objects the caller may keep without copying."""

    data: bytes | bytearray | memoryview


@dataclass(frozen=True, slots=True)
class EndOfMessage(Event):
    """The body is complete; `trailers` only ever come with (and go out with) chunked framing."""

    trailers: Headers = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class ConnectionClosed(Event):
    """The peer closed its sending side (received), or we are closing ours (sent)."""


@dataclass(frozen=True, slots=True)
class NeedData(Event):
    """Marker: nothing more can be parsed until more bytes (or EOF) arrive."""


@dataclass(frozen=True, slots=True)
class Paused(Event):
    """Marker: parsing waits on the caller (finish the response, or switch to a tunnel).

    Bytes already buffered (a pipelined request) stay buffered; call `next_events()` once the
    current exchange is complete. Stop reading from the socket meanwhile: that is the
    backpressure that keeps a pipelining client from filling memory.
    """


NEED_DATA = NeedData()
PAUSED = Paused()
CONNECTION_CLOSED = ConnectionClosed()
MARKERS = (NeedData, Paused, ConnectionClosed)
