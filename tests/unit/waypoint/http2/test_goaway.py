"""GOAWAY without dropping work: streams in flight finish, new ones go elsewhere."""

from __future__ import annotations

import h2.events
import pytest
from h2.errors import ErrorCodes

from tests.unit.waypoint.http2.helpers import GET as GET_BLOCK
from tests.unit.waypoint.http2.helpers import MeshPair, ServerPair, frames_on_the_wire, of_type
from waypoint.http2 import (
    ConnectionTerminated,
    RequestReceived,
    RequestRejected,
    ResponseReceived,
    StreamClosedError,
    StreamEnded,
    StreamReset,
)
from waypoint.messages import RequestHead, ResponseHead

GET = RequestHead("GET", "http", "svc:80", "/")


def test_a_server_drain_finishes_streams_in_flight_and_refuses_later_ones():
    pair = MeshPair()
    first = pair.client.send_request(GET, end_stream=True)
    pair.pump()
    pair.server.goaway()
    later = pair.client.send_request(GET, end_stream=True)  # crosses our GOAWAY on the wire
    client_events, server_events = pair.pump()
    assert client_events == [
        ConnectionTerminated(ErrorCodes.NO_ERROR, "draining", first, remote=True),
        StreamReset(later, ErrorCodes.REFUSED_STREAM, True, "peer's GOAWAY: safe to retry"),
    ]
    [rejected] = server_events
    assert rejected == RequestRejected(later, ErrorCodes.REFUSED_STREAM, rejected.reason)
    assert not pair.server.drained  # `first` is still being served
    pair.server.send_response(first, ResponseHead(200))
    pair.server.send_data(first, b"done", end_stream=True)
    client_events, _ = pair.pump()
    assert client_events[0] == ResponseReceived(first, ResponseHead(200), False)
    assert client_events[-1] == StreamEnded(first)
    assert pair.server.drained and not pair.server.closed


def test_a_clients_goaway_does_not_stop_us_answering_what_it_already_sent():
    pair = ServerPair()
    sid, _ = pair.request()
    pair.client.close_connection(ErrorCodes.NO_ERROR, b"bye", last_stream_id=0)
    events = pair.server.receive_data(pair.client.data_to_send())
    assert events == [ConnectionTerminated(ErrorCodes.NO_ERROR, "bye", 0, remote=True)]
    pair.server.send_response(sid, ResponseHead(200), end_stream=True)  # h2 alone would refuse
    wire = pair.server.data_to_send()
    assert wire[3] == 0x1  # a HEADERS frame
    assert pair.server.live_streams == 0


def test_goaway_with_an_error_closes_at_once():
    pair = ServerPair()
    sid, _ = pair.request(end_stream=False)
    pair.server.goaway(ErrorCodes.INTERNAL_ERROR, reason="shutting down")
    pair.server.goaway()  # idempotent once closed
    _, theirs = pair.pump()
    [goaway] = of_type(theirs, h2.events.ConnectionTerminated)
    assert goaway.error_code == ErrorCodes.INTERNAL_ERROR
    assert goaway.additional_data == b"shutting down"
    with pytest.raises(StreamClosedError):
        pair.server.send_response(sid, ResponseHead(200))
    assert pair.server.closed and pair.server.live_streams == 0
    assert pair.server.receive_data(b"\x00" * 9) == []


def frame_types(wire: bytes) -> list[int]:
    return [kind for kind, _ in frames_on_the_wire(wire)]


def test_a_second_graceful_goaway_is_not_sent():
    pair = ServerPair()
    pair.request(end_stream=False)
    pair.server.goaway()
    pair.server.goaway(reason="again")
    assert frame_types(pair.server.data_to_send()) == [0x7]  # one GOAWAY
    assert pair.server.drain_last_stream_id == 1
    sid = pair.client.get_next_available_stream_id()
    pair.client.send_headers(sid, GET_BLOCK, end_stream=True)  # crossed the GOAWAY
    events = pair.server.receive_data(pair.client.data_to_send())
    assert of_type(events, RequestReceived) == []
    assert events == [RequestRejected(sid, ErrorCodes.REFUSED_STREAM, events[0].reason)]
    assert frame_types(pair.server.data_to_send()) == [0x3]  # RST_STREAM(REFUSED_STREAM)
