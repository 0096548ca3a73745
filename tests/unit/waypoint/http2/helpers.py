"""Wiring for the HTTP/2 codec tests: our connection objects against plain h2 peers, in memory.

Like h2's own tests, nothing here opens a socket: `pump` moves bytes between the two ends until
both are quiet and returns what each end reported. The raw h2 peers are free to send what a
well-behaved client or upstream never would (validation off), which is what the abuse tests need.
"""

from __future__ import annotations

from dataclasses import dataclass

import h2.config
import h2.connection
import h2.events

from waypoint.http2 import ClientConnection, DataReceived, Http2Limits, ServerConnection

GET = [(":method", "GET"), (":scheme", "https"), (":path", "/"), (":authority", "svc.ns:80")]
MiB = 1 << 20


@dataclass
class Clock:
    """An injectable monotonic clock that moves only when a test says so."""

    now: float = 0.0

    def __call__(self) -> float:
        return self.now


def raw_peer(*, client: bool, validate: bool = True) -> h2.connection.H2Connection:
    """A plain h2 endpoint; with validate=False it sends whatever header block it is given."""
    config = h2.config.H2Configuration(
        client_side=client,
        header_encoding=None,
        validate_outbound_headers=validate,
        normalize_outbound_headers=validate,
        validate_inbound_headers=validate,
    )
    conn = h2.connection.H2Connection(config)
    conn.initiate_connection()
    return conn


class ServerPair:
    """Our `ServerConnection` facing a raw h2 client."""

    def __init__(self, limits: Http2Limits | None = None, *, validate: bool = True) -> None:
        self.clock = Clock()
        self.server = ServerConnection(limits, clock=self.clock)
        self.client = raw_peer(client=True, validate=validate)
        self.heard: list = []  # everything the raw client ever received, across pumps
        self.pump()

    def pump(self) -> tuple[list, list]:
        """Deliver everything both ways until quiet; returns (server events, raw client events)."""
        ours, theirs = [], []
        while True:
            to_server, to_client = self.client.data_to_send(), self.server.data_to_send()
            if not to_server and not to_client:
                return ours, theirs
            ours += self.server.receive_data(to_server)
            if to_client:
                received = self.client.receive_data(to_client)
                theirs += received
                self.heard += received

    def request(self, headers=None, *, end_stream: bool = True) -> tuple[int, list]:
        """The raw client opens a stream; returns its id and what the server reported."""
        stream_id = self.client.get_next_available_stream_id()
        self.client.send_headers(stream_id, headers or GET, end_stream=end_stream)
        ours, _ = self.pump()
        return stream_id, ours


class ClientPair:
    """Our `ClientConnection` facing a raw h2 server (an upstream)."""

    def __init__(self, limits: Http2Limits | None = None, *, validate: bool = True) -> None:
        self.client = ClientConnection(limits, clock=Clock())
        self.server = raw_peer(client=False, validate=validate)
        self.pump()

    def pump(self) -> tuple[list, list]:
        """Deliver everything both ways until quiet; returns (client events, raw server events)."""
        ours, theirs = [], []
        while True:
            to_server, to_client = self.client.data_to_send(), self.server.data_to_send()
            if not to_server and not to_client:
                return ours, theirs
            if to_server:
                theirs += self.server.receive_data(to_server)
            ours += self.client.receive_data(to_client)


class MeshPair:
    """Our client and our server back to back: the waypoint talking to a waypoint."""

    def __init__(self, limits: Http2Limits | None = None) -> None:
        self.client = ClientConnection(limits, clock=Clock())
        self.server = ServerConnection(limits, clock=Clock())
        self.pump()

    def pump(self) -> tuple[list, list]:
        """Deliver everything both ways until quiet; returns (client events, server events)."""
        client_events, server_events = [], []
        while True:
            to_server, to_client = self.client.data_to_send(), self.server.data_to_send()
            if not to_server and not to_client:
                return client_events, server_events
            server_events += self.server.receive_data(to_server)
            client_events += self.client.receive_data(to_client)


def of_type(events: list, kind: type) -> list:
    return [e for e in events if isinstance(e, kind)]


def body(events: list, stream_id: int | None = None) -> bytes:
    """The body bytes our connection delivered (DataReceived), optionally for one stream."""
    return b"".join(
        e.data for e in events if isinstance(e, DataReceived) and stream_id in (None, e.stream_id)
    )


def raw_body(events: list, stream_id: int) -> bytes:
    """The body bytes a raw h2 peer received on one stream."""
    return b"".join(
        e.data for e in events if isinstance(e, h2.events.DataReceived) and e.stream_id == stream_id
    )


def raw_ack(conn: h2.connection.H2Connection, events: list) -> None:
    """The raw peer consumed everything it received: credit the windows back."""
    for e in events:
        if isinstance(e, h2.events.DataReceived) and e.flow_controlled_length:
            conn.acknowledge_received_data(e.flow_controlled_length, e.stream_id)


def frames_on_the_wire(wire: bytes) -> list[tuple[int, bytes]]:
    """(frame type, payload) of each frame in `wire`, read from the 9-byte frame headers."""
    frames, offset = [], 0
    while offset < len(wire):
        length = int.from_bytes(wire[offset : offset + 3], "big")
        frames.append((wire[offset + 3], wire[offset + 9 : offset + 9 + length]))
        offset += 9 + length
    return frames
