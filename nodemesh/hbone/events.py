"""What an HBONE connection tells its shell (events) and how it fails (errors). Pure data.

Every event names its tunnel by HTTP/2 stream id; the shell keeps the map from stream id to
whatever it pumps (a local socket, a destination connection).
"""

from __future__ import annotations

from dataclasses import dataclass

from h2.errors import ErrorCodes


class HboneError(Exception):
    """Base of nodemesh's HBONE errors."""


class LocalProtocolError(HboneError):
    """We misused the protocol object (a bug here, or a tunnel that is already gone)."""


class RemoteProtocolError(HboneError):
    """The peer broke HTTP/2 or HBONE; the connection is over, with ``error_code`` in its GOAWAY."""

    def __init__(self, message: str, error_code: int = ErrorCodes.PROTOCOL_ERROR) -> None:
        super().__init__(message)
        self.error_code = int(error_code)


@dataclass(frozen=True, slots=True)
class Event:
    """Base of everything ``receive_data`` returns."""


@dataclass(frozen=True, slots=True)
class TunnelRequested(Event):
    """Server side: a CONNECT to ``authority`` (ip:port) arrived; answer accept() or refuse()."""

    stream_id: int
    authority: str
    headers: dict[str, str]  # lower-case names, no pseudo-headers (forwarded, traceparent, ...)


@dataclass(frozen=True, slots=True)
class RequestRejected(Event):
    """Server side: a request this object answered itself (405 not CONNECT, 400 bad authority).

    The shell has nothing to do but count and log it: denials are never silent.
    """

    stream_id: int
    status: int
    reason: str


@dataclass(frozen=True, slots=True)
class TunnelOpened(Event):
    """Client side: the server answered 2xx; bytes may flow both ways."""

    stream_id: int
    status: int


@dataclass(frozen=True, slots=True)
class TunnelRefused(Event):
    """Client side: the server answered with an error status; ``reason`` is its explanation."""

    stream_id: int
    status: int
    reason: str


@dataclass(frozen=True, slots=True)
class Data(Event):
    """Tunnel bytes. Call ``acknowledge(stream_id, flow_controlled_length)`` once passed on."""

    stream_id: int
    data: bytes
    flow_controlled_length: int  # len(data) plus any padding: what the window was charged


@dataclass(frozen=True, slots=True)
class PeerEnded(Event):
    """The peer half-closed the tunnel (END_STREAM): shut down writing to the local side."""

    stream_id: int


@dataclass(frozen=True, slots=True)
class Reset(Event):
    """The tunnel was aborted (RST_STREAM, or refused by a GOAWAY); ``remote`` says by whom."""

    stream_id: int
    error_code: int
    remote: bool


@dataclass(frozen=True, slots=True)
class WindowOpened(Event):
    """The peer granted more window: retry a ``send`` that fell short (0 = the whole connection)."""

    stream_id: int


@dataclass(frozen=True, slots=True)
class ConnectionClosed(Event):
    """The peer sent GOAWAY: open no more tunnels here.

    Tunnels with a stream id up to ``last_stream_id`` may still finish when ``error_code`` is 0
    (a graceful drain); ours above it were never processed and arrive as ``Reset`` events with
    REFUSED_STREAM, safe to retry on another connection.
    """

    error_code: int
    reason: str
    last_stream_id: int
