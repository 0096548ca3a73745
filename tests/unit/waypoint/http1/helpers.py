"""Byte-level helpers for the HTTP/1.1 codec tests: feed bytes, compare events, pair two ends."""

from __future__ import annotations

import pytest

from waypoint.http1 import (
    ClientConnection,
    ConnectionClosed,
    Data,
    EndOfMessage,
    Limits,
    NeedData,
    Paused,
    RemoteProtocolError,
    Request,
    Response,
    ServerConnection,
)

MARKER_TYPES = (NeedData, Paused, ConnectionClosed)


def body(events: list) -> bytes:
    """All Data bytes among `events`, joined."""
    return b"".join(bytes(event.data) for event in events if isinstance(event, Data))


def normalize(events: list) -> list:
    """Merge adjacent Data and drop NeedData/Paused markers (they depend on how bytes were split).

    ConnectionClosed is kept: it is an event as well as a marker.
    """
    out: list = []
    for event in events:
        if isinstance(event, NeedData | Paused):
            continue
        if isinstance(event, Data):
            if out and isinstance(out[-1], Data):
                out[-1] = Data(bytes(out[-1].data) + bytes(event.data))
            else:
                out.append(Data(bytes(event.data)))
            continue
        out.append(event)
    return out


def serve(data: bytes, limits: Limits | None = None) -> list:
    """Feed `data` to a fresh server in one piece; the events, marker included."""
    return ServerConnection(limits).receive_data(data)


def refused(data: bytes, status: int, limits: Limits | None = None) -> RemoteProtocolError:
    """Feed `data` to a fresh server; it must raise RemoteProtocolError with `status`."""
    server = ServerConnection(limits)
    with pytest.raises(RemoteProtocolError) as caught:
        server.receive_data(data)
    assert caught.value.status_hint == status, str(caught.value)
    return caught.value


def refused_eventually(data: bytes, status: int) -> RemoteProtocolError:
    """Like `refused`, but `data` is fed byte by byte: the error must come at some point."""
    server = ServerConnection()
    with pytest.raises(RemoteProtocolError) as caught:
        for i in range(len(data)):
            server.receive_data(data[i : i + 1])
        server.receive_data(b"")
    assert caught.value.status_hint == status, str(caught.value)
    return caught.value


def respond(server: ServerConnection, status: int = 200, content: bytes = b"") -> bytes:
    """Send a complete Content-Length response; the bytes written."""
    head = Response(status, headers=[(b"content-length", str(len(content)).encode())])
    return server.send(head) + server.send(Data(content)) + server.send(EndOfMessage())


def client_after(request: Request, request_body: bytes = b"") -> ClientConnection:
    """A client that already sent `request` (and its body, then EndOfMessage)."""
    client = ClientConnection()
    client.send(request)
    if request_body:
        client.send(Data(request_body))
    client.send(EndOfMessage())
    return client


def get(target: bytes = b"/", *extra: tuple[bytes, bytes], method: bytes = b"GET") -> Request:
    return Request(method, target, b"1.1", [(b"host", b"example.test"), *extra])
