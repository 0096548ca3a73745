"""The client-facing end: requests in, responses out, malformed requests cost only their stream."""

from __future__ import annotations

import h2.events
import pytest
from h2.errors import ErrorCodes
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.unit.waypoint.http2.helpers import (
    GET,
    ServerPair,
    body,
    frames_on_the_wire,
    of_type,
    raw_body,
    raw_peer,
)
from waypoint.http2 import (
    ConnectionTerminated,
    DataReceived,
    Event,
    Http2Limits,
    LocalProtocolError,
    RequestReceived,
    RequestRejected,
    ServerConnection,
    StreamClosedError,
    StreamEnded,
    StreamReset,
    TrailersReceived,
)
from waypoint.http2.grpc import GrpcStatus, error_response
from waypoint.messages import RequestHead, ResponseHead

# --- requests and responses --------------------------------------------------------------------


def test_a_request_arrives_as_a_request_head_and_the_response_carries_trailers():
    pair = ServerPair()
    headers = [*GET[:2], (":path", "/shop/cart?id=7"), GET[3], ("te", "trailers"), ("x-b3", "1")]
    sid, events = pair.request(headers)
    assert events == [
        RequestReceived(
            sid,
            RequestHead(
                method="GET",
                scheme="https",
                authority="svc.ns:80",
                path="/shop/cart?id=7",
                headers=(("te", "trailers"), ("x-b3", "1")),
                protocol="HTTP/2",
            ),
            end_stream=True,
        ),
        StreamEnded(sid),
    ]
    pair.server.send_response(sid, ResponseHead(200, (("content-type", "text/plain"),)))
    pair.server.send_data(sid, b"hello, ")
    pair.server.send_data(sid, b"world")
    pair.server.send_trailers(sid, (("x-checksum", "abc"),))
    _, theirs = pair.pump()
    [response] = of_type(theirs, h2.events.ResponseReceived)
    assert response.headers == [(b":status", b"200"), (b"content-type", b"text/plain")]
    assert raw_body(theirs, sid) == b"hello, world"
    [trailers] = of_type(theirs, h2.events.TrailersReceived)
    assert trailers.headers == [(b"x-checksum", b"abc")]
    assert isinstance(theirs[-1], h2.events.StreamEnded)
    assert pair.server.live_streams == 0


def test_a_request_body_and_its_trailers_arrive_in_order_then_the_end():
    pair = ServerPair()
    sid, events = pair.request([*GET, ("content-type", "application/grpc")], end_stream=False)
    assert events == [RequestReceived(sid, events[0].head, end_stream=False)]
    pair.client.send_data(sid, b"\x00\x00\x00\x00\x02hi")
    pair.client.send_headers(sid, [("grpc-trace", "x")], end_stream=True)
    events, _ = pair.pump()
    assert [type(e) for e in events] == [DataReceived, TrailersReceived, StreamEnded]
    assert events[0].data == b"\x00\x00\x00\x00\x02hi"
    assert events[1] == TrailersReceived(sid, (("grpc-trace", "x"),))


def test_a_grpc_trailers_only_error_is_one_headers_frame_that_ends_the_stream():
    pair = ServerPair()
    sid, _ = pair.request()
    reply = error_response(GrpcStatus.UNAVAILABLE, "no healthy upstream: 100% down")
    pair.server.send_response(sid, reply, end_stream=True)
    _, theirs = pair.pump()
    [response] = of_type(theirs, h2.events.ResponseReceived)
    assert response.stream_ended is not None
    assert dict(response.headers) == {
        b":status": b"200",
        b"content-type": b"application/grpc",
        b"grpc-status": b"14",
        b"grpc-message": b"no healthy upstream: 100%25 down",
    }
    assert pair.server.live_streams == 0


def test_an_informational_response_precedes_the_final_one():
    pair = ServerPair()
    sid, _ = pair.request([*GET, ("expect", "100-continue")], end_stream=False)
    pair.server.send_informational(sid, ResponseHead(100))
    pair.server.send_response(sid, ResponseHead(204), end_stream=True)
    _, theirs = pair.pump()
    kinds = [type(e) for e in theirs if not isinstance(e, h2.events.StreamEnded)]
    assert kinds == [h2.events.InformationalResponseReceived, h2.events.ResponseReceived]


def test_split_cookies_are_joined_and_host_is_folded_into_the_authority():
    pair = ServerPair()
    headers = [*GET[:3], ("host", "svc.ns:80"), ("cookie", "a=1"), ("cookie", "b=2")]
    _, [request, _] = pair.request(headers)
    assert request.head.authority == "svc.ns:80"
    assert request.head.header("host") is None
    assert request.head.header_values("cookie") == ["a=1; b=2"]


def test_connect_has_only_method_and_authority():
    pair = ServerPair()
    _, [request] = pair.request(
        [(":method", "CONNECT"), (":authority", "10.0.0.1:5432")], end_stream=False
    )
    assert (request.head.method, request.head.authority) == ("CONNECT", "10.0.0.1:5432")
    assert (request.head.scheme, request.head.path) == ("", "")


# --- malformed requests end only their stream -------------------------------------------------

MALFORMED = {
    "missing :path": [(":method", "GET"), (":scheme", "https"), (":authority", "a")],
    "empty :method": [(":method", ""), *GET[1:]],
    "unknown pseudo": [*GET, (":bogus", "1")],
    ":status in a request": [*GET, (":status", "200")],
    "duplicate :path": [*GET, (":path", "/admin")],
    "pseudo after regular": [GET[0], ("x-a", "1"), *GET[1:]],
    "upper-case name": [*GET, ("X-Up", "1")],
    "connection header": [*GET, ("connection", "close")],
    "transfer-encoding": [*GET, ("transfer-encoding", "chunked")],
    "te other than trailers": [*GET, ("te", "gzip")],
    "CR LF in a value": [*GET, ("x-a", "1\r\nx-injected: 2")],
    "space-padded value": [*GET, ("x-a", " 1")],
    "absolute-form path": [*GET[:2], (":path", "http://evil/"), GET[3]],
    "space in path": [*GET[:2], (":path", "/a b"), GET[3]],
    "host differs from :authority": [*GET, ("host", "other:80")],
    "no authority at all": [(":method", "GET"), (":scheme", "https"), (":path", "/")],
    "userinfo in authority": [*GET[:3], (":authority", "user@svc:80")],
    "unsupported scheme": [(":method", "GET"), (":scheme", "ftp"), *GET[2:]],
    "CONNECT with a path": [(":method", "CONNECT"), (":authority", "a:1"), (":path", "/")],
    "CONNECT without a port": [(":method", "CONNECT"), (":authority", "a")],
    "extended CONNECT": [(":method", "CONNECT"), (":protocol", "websocket"), *GET[1:]],
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_a_malformed_request_resets_only_its_stream_while_another_completes(case):
    pair = ServerPair(validate=False)
    good, events = pair.request(end_stream=False)
    assert of_type(events, RequestReceived)
    bad, events = pair.request(MALFORMED[case])
    [rejected] = events
    assert isinstance(rejected, RequestRejected)
    assert (rejected.stream_id, rejected.error_code) == (bad, ErrorCodes.PROTOCOL_ERROR)
    assert rejected.reason.startswith("malformed request: ")
    pair.client.send_data(good, b"still here", end_stream=True)
    events, _ = pair.pump()
    assert body(events, good) == b"still here"
    [reset] = of_type(pair.heard, h2.events.StreamReset)
    assert (reset.stream_id, reset.error_code) == (bad, ErrorCodes.PROTOCOL_ERROR)
    pair.server.send_response(good, ResponseHead(200), end_stream=True)
    _, theirs = pair.pump()
    assert of_type(theirs, h2.events.ResponseReceived)[0].stream_id == good
    assert not of_type(theirs, h2.events.ConnectionTerminated)
    assert not pair.server.closed


def test_malformed_trailers_reset_the_stream_with_a_reason():
    pair = ServerPair(validate=False)
    sid, _ = pair.request(end_stream=False)
    pair.client.send_headers(sid, [(":path", "/again")], end_stream=True)
    events, _ = pair.pump()
    assert events == [StreamReset(sid, ErrorCodes.PROTOCOL_ERROR, False, events[0].reason)]
    assert "pseudo-header" in events[0].reason
    assert of_type(pair.heard, h2.events.StreamReset)[0].error_code == ErrorCodes.PROTOCOL_ERROR


def test_a_bad_content_length_ends_the_connection_because_h2_says_so():
    """h2 checks content-length itself and treats a mismatch as a connection error."""
    pair = ServerPair()
    sid, _ = pair.request([*GET, ("content-length", "3")], end_stream=False)
    pair.client.send_data(sid, b"four", end_stream=True)
    events, _ = pair.pump()
    [ended] = of_type(events, ConnectionTerminated)
    assert ended.error_code == ErrorCodes.PROTOCOL_ERROR and not ended.remote
    assert of_type(pair.heard, h2.events.ConnectionTerminated)


# --- the caller's mistakes ---------------------------------------------------------------------


def test_caller_mistakes_are_local_errors():
    pair = ServerPair()
    sid, _ = pair.request()
    with pytest.raises(LocalProtocolError, match="response head first"):
        pair.server.send_data(sid, b"x")
    with pytest.raises(LocalProtocolError, match="final status"):
        pair.server.send_response(sid, ResponseHead(103))
    with pytest.raises(LocalProtocolError, match="latin-1"):
        pair.server.send_response(sid, ResponseHead(200, (("x-name", "✓"),)))
    pair.server.send_response(sid, ResponseHead(200))
    with pytest.raises(LocalProtocolError, match="already answered"):
        pair.server.send_response(sid, ResponseHead(200))
    pair.server.send_data(sid, b"", end_stream=True)
    with pytest.raises(StreamClosedError):
        pair.server.send_data(sid, b"late")
    with pytest.raises(StreamClosedError):
        pair.server.send_response(99, ResponseHead(200))


def test_answering_a_stream_the_client_reset_is_a_stream_closed_race():
    pair = ServerPair()
    sid, _ = pair.request(end_stream=False)
    pair.client.reset_stream(sid, ErrorCodes.CANCEL)
    events, _ = pair.pump()
    assert events == [StreamReset(sid, ErrorCodes.CANCEL, remote=True)]
    with pytest.raises(StreamClosedError):
        pair.server.send_response(sid, ResponseHead(200))
    pair.server.reset(sid)  # idempotent


# --- settings advertised -----------------------------------------------------------------------


def test_the_client_learns_our_limits_and_windows():
    pair = ServerPair()
    remote = pair.client.remote_settings
    assert remote.max_concurrent_streams == 100
    assert remote.max_header_list_size == 60 * 1024
    assert remote.initial_window_size == 1 << 20
    assert remote.max_frame_size == 1 << 20
    assert remote.enable_push == 0
    assert pair.client.outbound_flow_control_window == 16 << 20


def test_a_client_over_the_advertised_stream_limit_loses_the_connection():
    """h2 treats MAX_CONCURRENT_STREAMS overflow as a connection error (RFC allows a stream one)."""
    server = ServerConnection(Http2Limits(max_concurrent_streams=2))
    client = raw_peer(client=True)  # it has not read our SETTINGS, so it does not hold back
    for stream_id in (1, 3, 5):
        client.send_headers(stream_id, GET)
    [ended] = server.receive_data(client.data_to_send())  # the batch dies with the connection
    assert isinstance(ended, ConnectionTerminated)
    assert ended.error_code == ErrorCodes.PROTOCOL_ERROR and "inbound streams" in ended.reason
    assert server.closed


# --- any bytes at all --------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(garbage=st.binary(min_size=1, max_size=300))
def test_no_bytes_make_receive_data_raise(garbage):
    server = ServerConnection()
    client = raw_peer(client=True)
    events = server.receive_data(client.data_to_send() + garbage)  # must not raise
    assert all(isinstance(event, Event) for event in events)
    if server.closed:
        assert isinstance(events[-1], ConnectionTerminated)
        assert server.receive_data(b"more") == []


@pytest.mark.parametrize(
    "garbage",
    [
        b"GET / HTTP/1.1\r\nHost: svc\r\n\r\n",  # HTTP/1.1 sent to an HTTP/2-only port
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\xff\xff\xff\x04\x00\x00\x00\x00\x00",  # huge frame
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x01\x08\x00\x00\x00\x00\x00\x00",  # bad size
    ],
)
def test_garbage_terminates_the_connection_with_a_goaway(garbage):
    server = ServerConnection()
    server.data_to_send()  # our preface, already written
    [ended] = server.receive_data(garbage)
    assert isinstance(ended, ConnectionTerminated) and not ended.remote
    assert ended.error_code != ErrorCodes.NO_ERROR
    [(kind, payload)] = frames_on_the_wire(server.data_to_send())
    assert kind == 0x7  # GOAWAY, with the same code
    assert int.from_bytes(payload[4:8], "big") == ended.error_code
    assert server.closed and server.receive_data(b"more") == []


@settings(max_examples=60, deadline=None)
@given(cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=8))
def test_a_request_split_at_any_points_gives_the_same_events(cuts):
    client = raw_peer(client=True)
    client.send_headers(1, [*GET, ("te", "trailers")])
    client.send_data(1, b"x" * 100)
    client.send_headers(1, [("grpc-status", "0")], end_stream=True)
    wire = client.data_to_send()
    whole = ServerConnection().receive_data(wire)
    server = ServerConnection()
    pieces, start = [], 0
    for cut in sorted({min(c, len(wire)) for c in cuts}):
        pieces.append(wire[start:cut])
        start = cut
    pieces.append(wire[start:])
    split = [event for piece in pieces for event in server.receive_data(piece)]
    assert body(split) == body(whole) == b"x" * 100
    assert [e for e in split if not isinstance(e, DataReceived)] == [
        e for e in whole if not isinstance(e, DataReceived)
    ]
