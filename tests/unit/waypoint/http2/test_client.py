"""The upstream-facing end, against a plain h2 server playing the upstream."""

from __future__ import annotations

import h2.events
import h2.settings
import pytest
from h2.errors import ErrorCodes

from tests.unit.waypoint.http2.helpers import ClientPair, of_type, raw_body
from waypoint.http2 import (
    ConnectionTerminated,
    DataReceived,
    Http2Limits,
    InformationalResponseReceived,
    LocalProtocolError,
    ResponseReceived,
    StreamEnded,
    StreamReset,
    TrailersReceived,
)
from waypoint.http2.grpc import GrpcStatus, call_status, grpc_message
from waypoint.messages import RequestHead, ResponseHead

GRPC_CALL = RequestHead(
    method="POST",
    scheme="http",
    authority="reviews.shop.svc.cluster.local:9080",
    path="/shop.Reviews/Get",
    headers=(
        ("host", "stale-host-from-http1:80"),
        ("content-type", "application/grpc"),
        ("te", "trailers"),
    ),
)


def upstream_request(theirs: list) -> h2.events.RequestReceived:
    [request] = of_type(theirs, h2.events.RequestReceived)
    return request


def test_a_request_goes_out_with_pseudo_headers_and_without_a_stale_host():
    pair = ClientPair()
    sid = pair.client.send_request(GRPC_CALL)
    pair.client.send_data(sid, b"\x00\x00\x00\x00\x00")
    pair.client.send_trailers(sid, (("x-end", "1"),))
    _, theirs = pair.pump()
    assert upstream_request(theirs).headers == [
        (b":method", b"POST"),
        (b":scheme", b"http"),
        (b":authority", b"reviews.shop.svc.cluster.local:9080"),
        (b":path", b"/shop.Reviews/Get"),
        (b"content-type", b"application/grpc"),
        (b"te", b"trailers"),
    ]
    assert raw_body(theirs, sid) == b"\x00\x00\x00\x00\x00"
    assert of_type(theirs, h2.events.TrailersReceived)[0].headers == [(b"x-end", b"1")]


def test_informational_then_final_response_then_body_and_trailers():
    pair = ClientPair()
    sid = pair.client.send_request(GRPC_CALL, end_stream=True)
    pair.pump()
    pair.server.send_headers(sid, [(":status", "103"), ("link", "</a.css>; rel=preload")])
    pair.server.send_headers(sid, [(":status", "200"), ("content-type", "application/grpc")])
    pair.server.send_data(sid, b"\x00\x00\x00\x00\x01x")
    pair.server.send_headers(sid, [("grpc-status", "0")], end_stream=True)
    events, _ = pair.pump()
    assert events[0] == InformationalResponseReceived(
        sid, ResponseHead(103, (("link", "</a.css>; rel=preload"),))
    )
    assert events[1] == ResponseReceived(
        sid, ResponseHead(200, (("content-type", "application/grpc"),)), end_stream=False
    )
    assert isinstance(events[2], DataReceived) and events[2].data == b"\x00\x00\x00\x00\x01x"
    assert events[3:] == [TrailersReceived(sid, (("grpc-status", "0"),)), StreamEnded(sid)]
    assert call_status(events[1].head, events[3].trailers) is GrpcStatus.OK
    assert pair.client.live_streams == 0


def test_a_grpc_trailers_only_response_carries_the_status_in_the_head():
    pair = ClientPair()
    sid = pair.client.send_request(GRPC_CALL, end_stream=True)
    pair.pump()
    pair.server.send_headers(
        sid,
        [
            (":status", "200"),
            ("content-type", "application/grpc"),
            ("grpc-status", "5"),
            ("grpc-message", "no review %231"),
        ],
        end_stream=True,
    )
    events, _ = pair.pump()
    assert [type(e) for e in events] == [ResponseReceived, StreamEnded]
    assert events[0].end_stream
    assert call_status(events[0].head) is GrpcStatus.NOT_FOUND
    assert grpc_message(events[0].head.headers) == "no review #1"


@pytest.mark.parametrize(
    "block",
    [
        [(":status", "200"), ("Content-Type", "text/plain")],
        [("content-type", "text/plain")],
        [(":status", "200"), ("connection", "keep-alive")],
        [(":status", "2000")],
        [(":status", "200"), (":path", "/")],
        [(":status", "200"), ("x-a", "1\n2")],
    ],
)
def test_a_malformed_response_resets_only_its_stream(block):
    pair = ClientPair(validate=False)
    bad = pair.client.send_request(GRPC_CALL, end_stream=True)
    good = pair.client.send_request(GRPC_CALL, end_stream=True)
    pair.pump()
    pair.server.send_headers(bad, block, end_stream=True)
    pair.server.send_headers(good, [(":status", "200")], end_stream=True)
    events, theirs = pair.pump()
    reset = events[0]
    assert isinstance(reset, StreamReset) and reset.stream_id == bad
    assert (reset.error_code, reset.remote) == (ErrorCodes.PROTOCOL_ERROR, False)
    assert reset.reason.startswith("malformed response: ")
    assert events[1:] == [ResponseReceived(good, ResponseHead(200), True), StreamEnded(good)]
    assert not of_type(theirs, h2.events.ConnectionTerminated)


def test_a_101_response_does_not_exist_in_http2():
    pair = ClientPair(validate=False)
    sid = pair.client.send_request(GRPC_CALL, end_stream=True)
    pair.pump()
    pair.server.send_headers(sid, [(":status", "101")])
    [reset] = pair.pump()[0]
    assert reset.stream_id == sid and "101" in reset.reason


def test_available_streams_follow_the_upstreams_settings():
    pair = ClientPair()
    assert pair.client.available_streams == 100  # the raw server advertises h2's default
    pair.server.update_settings({h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: 2})
    pair.pump()
    pair.client.send_request(GRPC_CALL)
    pair.client.send_request(GRPC_CALL)
    assert pair.client.available_streams == 0
    with pytest.raises(LocalProtocolError, match="another connection"):
        pair.client.send_request(GRPC_CALL)


def test_before_the_upstreams_settings_our_own_limit_is_assumed():
    from waypoint.http2 import ClientConnection

    client = ClientConnection(Http2Limits(max_concurrent_streams=7))
    assert client.available_streams == 7


def test_an_upstream_goaway_refuses_the_streams_it_never_saw():
    pair = ClientPair()
    first = pair.client.send_request(GRPC_CALL, end_stream=True)
    pair.pump()
    later = pair.client.send_request(GRPC_CALL, end_stream=True)
    # The upstream drains having seen `first` only (its GOAWAY crossed our second request).
    pair.server.close_connection(ErrorCodes.NO_ERROR, b"upgrade", last_stream_id=first)
    events = pair.client.receive_data(pair.server.data_to_send())
    assert events == [
        ConnectionTerminated(ErrorCodes.NO_ERROR, "upgrade", first, remote=True),
        StreamReset(later, ErrorCodes.REFUSED_STREAM, True, "peer's GOAWAY: safe to retry"),
    ]
    assert pair.client.available_streams == 0
    assert pair.client.live_streams == 1  # `first` may still finish (see test_goaway)


def test_the_upstream_may_reset_a_stream_and_the_others_carry_on():
    pair = ClientPair()
    a = pair.client.send_request(GRPC_CALL, end_stream=True)
    b = pair.client.send_request(GRPC_CALL, end_stream=True)
    pair.pump()
    pair.server.reset_stream(a, ErrorCodes.REFUSED_STREAM)
    pair.server.send_headers(b, [(":status", "204")], end_stream=True)
    events, _ = pair.pump()
    assert events == [
        StreamReset(a, ErrorCodes.REFUSED_STREAM, remote=True),
        ResponseReceived(b, ResponseHead(204), True),
        StreamEnded(b),
    ]
