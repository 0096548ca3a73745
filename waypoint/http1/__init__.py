"""A strict, sans-I/O HTTP/1.1 codec for the waypoint: bytes in, events out; events in, bytes out.

Theory of operation
-------------------
The waypoint must be correct to the letter of HTTP and safe against hostile input, and it must
not let Python touch every byte. So this package is a protocol object in the h11 mould, with no
socket or event loop in it, stricter than h11 wherever leniency has let requests be smuggled:

* `ServerConnection` parses requests and serializes responses; `ClientConnection` does the
  reverse. `receive_data(bytes)` (b"" for EOF) returns events that end in a marker (`NeedData`,
  `Paused`, `ConnectionClosed`); `send(event)` returns bytes (`send_parts` a list for
  `writelines`).
* Modules, one concern each: `buffer` (bounded, resumable CRLF search), `headers` (start lines
  and field sections), `framing` (what Content-Length / Transfer-Encoding / Connection / Host
  mean), `body` and `chunked` (body readers and writers), `serialize` and `outgoing` (validated
  heads we send), `state` (the transition table), `connection` / `server` / `client` (the glue),
  `convert` (to the protocol-neutral heads of `waypoint.messages`).
* Errors say who is to blame: `RemoteProtocolError(message, status_hint)` for the peer,
  `LocalProtocolError` for the caller (see `errors`). Limits are a `Limits` passed in.

Driving it from an asyncio shell: read into the connection until a marker; on `NeedData` read
more; on `Paused` stop reading until the response is complete, then call `next_events()`; on a
RemoteProtocolError send `Response(error.status_hint)` if nothing was sent yet, then close.
"""

from waypoint.http1.client import ClientConnection
from waypoint.http1.errors import Http1Error, LocalProtocolError, RemoteProtocolError
from waypoint.http1.events import (
    CONNECTION_CLOSED,
    NEED_DATA,
    PAUSED,
    ConnectionClosed,
    Data,
    EndOfMessage,
    Event,
    Headers,
    InformationalResponse,
    NeedData,
    Paused,
    Request,
    Response,
)
from waypoint.http1.limits import Limits
from waypoint.http1.server import ServerConnection
from waypoint.http1.state import Role, State

__all__ = [
    "CONNECTION_CLOSED",
    "NEED_DATA",
    "PAUSED",
    "ClientConnection",
    "ConnectionClosed",
    "Data",
    "EndOfMessage",
    "Event",
    "Headers",
    "Http1Error",
    "InformationalResponse",
    "Limits",
    "LocalProtocolError",
    "NeedData",
    "Paused",
    "RemoteProtocolError",
    "Request",
    "Response",
    "Role",
    "ServerConnection",
    "State",
]
