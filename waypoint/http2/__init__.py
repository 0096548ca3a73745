"""The waypoint's HTTP/2 and gRPC codec: sans-I/O connections over python-hyper's h2.

Theory of operation
-------------------
Each connection object takes the bytes read from its socket (`receive_data`) and returns events;
what it wants written comes out of `data_to_send()`. It never touches a socket or an event loop,
so one asyncio shell drives the HTTP/2 side of the waypoint and the tests drive it with bytes.

* `ServerConnection` faces the client: it turns a request's header block into the
  protocol-neutral `RequestHead` every layer above reads, and the shell answers with
  `send_response`, `send_data` and `send_trailers`.
* `ClientConnection` faces an upstream (h2c, or HTTP/2 inside an HBONE tunnel): `send_request`
  opens a stream; responses come back as `ResponseHead`s.

Both ends share the body path. Inbound, flow control is end to end: the peer's window is credited
only when the shell calls `acknowledge()` after writing the bytes onward, so a slow upstream
slows the client instead of filling memory. Outbound, `send_data` frames what the peer's windows
allow and keeps the rest in a bounded per-stream backlog; `send_capacity()` says how much it
takes, and `WindowOpened` says when to read more from the other side.

A misbehaving peer is contained: a malformed request or response resets that stream only
(RFC 9113 8.1.1); a malformed frame, an oversized or endless header block, a flood of resets
(rapid reset) or of SETTINGS/PING/empty frames ends that one connection with a GOAWAY and a
`ConnectionTerminated` event. Graceful GOAWAY works both ways: `goaway()` lets streams in flight
finish, and so does a peer's GOAWAY, which HBONE's frame gate takes out before h2 sees it.

Modules, bottom up: ``events`` (events and errors), ``limits`` (settings and abuse counters),
``fields`` (header blocks ⇄ heads, validation), ``frames`` (the frame gate), ``h2conn`` (h2's
set-up), ``outbound`` (flow-controlled sending), ``connection`` (both ends), ``server``,
``client``; ``grpc`` reads and builds gRPC statuses.
"""

from waypoint.http2.client import ClientConnection
from waypoint.http2.events import (
    ConnectionTerminated,
    DataReceived,
    Event,
    Http2Error,
    InformationalResponseReceived,
    LocalProtocolError,
    RemoteProtocolError,
    RequestReceived,
    RequestRejected,
    ResponseReceived,
    SendBufferFull,
    StreamClosedError,
    StreamEnded,
    StreamReset,
    TrailersReceived,
    WindowOpened,
)
from waypoint.http2.limits import Http2Limits
from waypoint.http2.server import ServerConnection

__all__ = [
    "ClientConnection",
    "ConnectionTerminated",
    "DataReceived",
    "Event",
    "Http2Error",
    "Http2Limits",
    "InformationalResponseReceived",
    "LocalProtocolError",
    "RemoteProtocolError",
    "RequestReceived",
    "RequestRejected",
    "ResponseReceived",
    "SendBufferFull",
    "ServerConnection",
    "StreamClosedError",
    "StreamEnded",
    "StreamReset",
    "TrailersReceived",
    "WindowOpened",
]
