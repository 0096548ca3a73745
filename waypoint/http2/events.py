"""What a waypoint HTTP/2 connection reports to its shell (events) and how it fails (errors).

Pure data. Events are protocol-neutral where the layers above care (a request arrives as a
`RequestHead`, a response as a `ResponseHead`) and name their stream by HTTP/2 stream id; the shell
keeps the map from stream id to whatever serves it (an upstream request, a local reply).

Errors say who is to blame, as h11 does: `LocalProtocolError` when the caller misused the object,
`RemoteProtocolError` when the peer misbehaved. A peer's misbehaviour never escapes
`receive_data` as an exception: it is converted once, at that boundary, into a stream reset (a
malformed request or response ends that stream only) or a `ConnectionTerminated` event (a
malformed frame or an abuse pattern ends that one connection).
"""

from __future__ import annotations

from dataclasses import dataclass

from h2.errors import ErrorCodes

from waypoint.messages import Headers, RequestHead, ResponseHead


class Http2Error(Exception):
    """Base of the waypoint's HTTP/2 codec errors."""


class LocalProtocolError(Http2Error):
    """We misused the connection object: a bug in the caller, or a stream that is already gone."""


class StreamClosedError(LocalProtocolError):
    """The stream was reset or finished before this call: a race the shell may safely ignore.

    Raised when, say, an upstream answer arrives after the client reset its stream; the shell
    drops the answer instead of treating it as a bug.
    """


class SendBufferFull(LocalProtocolError):
    """`send_data` was given more than `send_capacity()` allowed: the caller ignored backpressure.

    Read from the upstream at most `send_capacity(stream_id)` bytes, and wait for `WindowOpened`
    when it is 0; this object never buffers more than `Http2Limits.max_send_buffer` per stream.
    """


class RemoteProtocolError(Http2Error):
    """The peer broke HTTP/2 or abused it; `error_code` goes into the GOAWAY we send."""

    def __init__(self, message: str, error_code: int = ErrorCodes.PROTOCOL_ERROR) -> None:
        super().__init__(message)
        self.error_code = int(error_code)


class MalformedHeaders(RemoteProtocolError):
    """A header block broke RFC 9113 §8 rules: a stream error, never the connection's end."""


@dataclass(frozen=True, slots=True)
class Event:
    """Base of everything `receive_data` returns."""


@dataclass(frozen=True, slots=True)
class RequestReceived(Event):
    """Server side: a valid request head. `end_stream` means it has no body."""

    stream_id: int
    head: RequestHead
    end_stream: bool


@dataclass(frozen=True, slots=True)
class RequestRejected(Event):
    """Server side: a request this object refused itself (RST_STREAM), never seen as a request.

    A malformed head (PROTOCOL_ERROR) or one arriving after our graceful GOAWAY (REFUSED_STREAM,
    safe for the client to retry). Nothing to do but count and log it: denials are never silent.
    """

    stream_id: int
    error_code: int
    reason: str


@dataclass(frozen=True, slots=True)
class InformationalResponseReceived(Event):
    """Client side: a 1xx (100 Continue, 103 Early Hints) before the final response."""

    stream_id: int
    head: ResponseHead


@dataclass(frozen=True, slots=True)
class ResponseReceived(Event):
    """Client side: the final response head. `end_stream` with grpc-status = gRPC trailers-only."""

    stream_id: int
    head: ResponseHead
    end_stream: bool


@dataclass(frozen=True, slots=True)
class DataReceived(Event):
    """Body bytes. Call `acknowledge(stream_id, flow_controlled_length)` once passed on."""

    stream_id: int
    data: bytes
    flow_controlled_length: int  # len(data) plus padding: what the peer's window was charged


@dataclass(frozen=True, slots=True)
class TrailersReceived(Event):
    """The trailing header block (gRPC's grpc-status lives here); `StreamEnded` follows."""

    stream_id: int
    trailers: Headers


@dataclass(frozen=True, slots=True)
class StreamEnded(Event):
    """The peer finished sending on this stream (END_STREAM); always its last inbound event."""

    stream_id: int


@dataclass(frozen=True, slots=True)
class StreamReset(Event):
    """The stream was aborted: by the peer (`remote`), or by us for a malformed message.

    Nothing more is sent or received on it; its unacknowledged bytes are already credited back.
    """

    stream_id: int
    error_code: int
    remote: bool
    reason: str = ""


@dataclass(frozen=True, slots=True)
class WindowOpened(Event):
    """Data queued on this stream moved on, or its window grew: `send_capacity` is larger now."""

    stream_id: int


@dataclass(frozen=True, slots=True)
class ConnectionTerminated(Event):
    """A GOAWAY: from the peer (`remote`), or ours after a malformed frame or an abuse pattern.

    Ours (`remote` False): the connection is over; write `data_to_send()` (it carries the GOAWAY)
    and close the socket. The peer's with error_code 0 is a graceful drain: streams up to
    `last_stream_id` may still finish, open no new ones here; any other code means close now.
    """

    error_code: int
    reason: str
    last_stream_id: int
    remote: bool
