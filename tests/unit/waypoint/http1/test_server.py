"""The server end in whole exchanges: keep-alive, pipelining, 100-continue, tunnels, errors."""

from __future__ import annotations

import pytest

from waypoint.http1 import (
    ConnectionClosed,
    Data,
    EndOfMessage,
    InformationalResponse,
    LocalProtocolError,
    NeedData,
    Paused,
    RemoteProtocolError,
    Request,
    Response,
    ServerConnection,
    State,
)

from .helpers import body, normalize, respond

GET = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"


def request(target: bytes = b"/", *extra: tuple[bytes, bytes], version: bytes = b"1.1") -> Request:
    return Request(b"GET", target, version, [(b"host", b"a"), *extra])


def test_http_1_1_keeps_the_connection_for_the_next_request():
    server = ServerConnection()
    assert server.receive_data(GET) == [request(), EndOfMessage(), Paused()]
    respond(server, 200, b"ok")
    assert (server.our_state, server.their_state) == (State.IDLE, State.IDLE)
    assert server.receive_data(GET) == [request(), EndOfMessage(), Paused()]


def test_pipelined_requests_wait_until_the_current_response_is_complete():
    server = ServerConnection()
    second = b"POST /2 HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc"
    events = server.receive_data(GET + second + b"GET /3 HTTP/1.1\r\nHost: a\r\n\r\n")
    assert events == [request(), EndOfMessage(), Paused()]
    assert server.next_events() == [Paused()]  # still unanswered: nothing more is parsed
    server.send(Response(200, headers=[(b"content-length", b"0")]))
    assert server.next_events() == [Paused()]  # the response is not complete yet
    server.send(EndOfMessage())
    events = server.next_events()
    assert events[0].target == b"/2"
    assert events[1:] == [Data(b"abc"), EndOfMessage(), Paused()]
    respond(server)
    assert server.next_events() == [request(b"/3"), EndOfMessage(), Paused()]


def test_eof_after_pipelined_requests_is_reported_after_them():
    server = ServerConnection()
    assert server.receive_data(GET + GET)[-1] == Paused()
    assert server.receive_data(b"") == [Paused()]
    respond(server)
    # The client half-closed after its second request: that request is still answered.
    assert server.next_events() == [request(), EndOfMessage(), ConnectionClosed()]
    respond(server)
    assert (server.our_state, server.their_state) == (State.MUST_CLOSE, State.CLOSED)


def test_connection_close_from_the_client_makes_the_server_close_after_answering():
    server = ServerConnection()
    server.receive_data(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n" + GET)
    written = respond(server)
    assert b"connection: close\r\n" in written
    assert (server.our_state, server.their_state) == (State.MUST_CLOSE, State.MUST_CLOSE)
    assert server.next_events() == [Paused()]  # requests after "close" are never parsed
    assert server.receive_data(b"") == [ConnectionClosed()]


def test_connection_close_from_the_server_response():
    server = ServerConnection()
    server.receive_data(GET)
    server.send(Response(200, headers=[(b"content-length", b"0"), (b"connection", b"close")]))
    server.send(EndOfMessage())
    assert server.our_state is State.MUST_CLOSE
    assert server.send(ConnectionClosed()) == b""
    assert server.our_state is State.CLOSED


def test_http_1_0_closes_unless_it_asks_for_keep_alive():
    server = ServerConnection()
    server.receive_data(b"GET / HTTP/1.0\r\n\r\n")
    written = respond(server)
    assert written.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"connection: close\r\n" in written
    assert server.our_state is State.MUST_CLOSE

    server = ServerConnection()
    server.receive_data(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    written = respond(server)
    assert b"connection: keep-alive\r\n" in written
    assert server.our_state is State.IDLE


def test_http_1_0_peers_get_close_delimited_bodies_when_no_length_is_given():
    server = ServerConnection()
    server.receive_data(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    head = server.send(Response(200, headers=[(b"transfer-encoding", b"chunked")]))
    assert b"transfer-encoding" not in head
    assert b"connection: close\r\n" in head
    assert server.send(Data(b"raw")) == b"raw"
    server.send(EndOfMessage())
    assert server.our_state is State.MUST_CLOSE


def test_http_1_1_peers_get_chunked_bodies_when_no_length_is_given():
    server = ServerConnection()
    server.receive_data(GET)
    head = server.send(Response(200))
    assert head == b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"
    assert server.send(Data(b"abc")) == b"3\r\nabc\r\n"
    assert server.send(EndOfMessage([(b"x-sum", b"1")])) == b"0\r\nx-sum: 1\r\n\r\n"
    assert server.our_state is State.IDLE


@pytest.mark.parametrize(
    ("method", "status", "fields"),
    [
        (b"HEAD", 200, [(b"content-length", b"100")]),
        (b"GET", 304, [(b"content-length", b"100")]),
        (b"GET", 204, []),
    ],
)
def test_bodiless_responses_take_no_data_and_no_framing_is_added(method, status, fields):
    server = ServerConnection()
    server.receive_data(method + b" / HTTP/1.1\r\nHost: a\r\n\r\n")
    head = server.send(Response(status, headers=fields))
    assert b"transfer-encoding" not in head
    with pytest.raises(LocalProtocolError, match="overrun"):
        server.send(Data(b"x"))
    assert server.send(EndOfMessage()) == b""
    assert server.our_state is State.IDLE


def test_a_204_with_framing_fields_is_refused():
    server = ServerConnection()
    server.receive_data(GET)
    with pytest.raises(LocalProtocolError, match="204"):
        server.send(Response(204, headers=[(b"content-length", b"0")]))
    assert server.our_state is State.SEND_RESPONSE  # nothing changed: another answer can go


def test_expect_100_continue_is_tracked_until_the_body_or_an_answer():
    server = ServerConnection()
    head = b"PUT / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n"
    assert server.receive_data(head)[-1] == NeedData()
    assert server.client_is_waiting_for_100_continue
    assert server.send(InformationalResponse(100)) == b"HTTP/1.1 100 Continue\r\n\r\n"
    assert not server.client_is_waiting_for_100_continue
    assert server.receive_data(b"ok") == [Data(b"ok"), EndOfMessage(), Paused()]
    respond(server)
    assert server.our_state is State.IDLE


def test_a_final_answer_to_a_waiting_client_closes_the_connection():
    server = ServerConnection()
    head = b"PUT / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 9\r\n\r\n"
    server.receive_data(head)
    written = respond(server, 417)
    assert b"connection: close\r\n" in written
    assert server.our_state is State.MUST_CLOSE


def test_expect_100_continue_is_ignored_without_a_body_or_in_http_1_0():
    server = ServerConnection()
    server.receive_data(b"GET / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n\r\n")
    assert not server.client_is_waiting_for_100_continue
    server = ServerConnection()
    server.receive_data(b"PUT / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n")
    assert not server.client_is_waiting_for_100_continue


def test_the_body_arriving_ends_the_wait_for_100_continue():
    server = ServerConnection()
    head = b"PUT / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n"
    server.receive_data(head + b"o")
    assert not server.client_is_waiting_for_100_continue


UPGRADE = (
    b"GET /chat HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, Upgrade\r\n"
    b"Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\r\n"
)


def test_upgrade_switches_after_101_and_hands_back_trailing_bytes():
    server = ServerConnection()
    events = server.receive_data(UPGRADE + b"\x81\x05hello")
    assert normalize(events)[1:] == [EndOfMessage()]
    assert events[-1] == Paused()
    assert server.their_state is State.MIGHT_SWITCH
    server.receive_data(b"\x81\x01!")
    head = server.send(
        InformationalResponse(
            101, headers=[(b"connection", b"upgrade"), (b"upgrade", b"websocket")]
        )
    )
    assert head.startswith(b"HTTP/1.1 101 Switching Protocols\r\n")
    assert (server.our_state, server.their_state) == (State.SWITCHED, State.SWITCHED)
    assert server.trailing_data == (b"\x81\x05hello\x81\x01!", False)
    assert server.next_events() == [Paused()]
    with pytest.raises(LocalProtocolError, match="tunnel"):
        server.receive_data(b"more")


def test_a_declined_upgrade_continues_as_plain_http():
    server = ServerConnection()
    server.receive_data(UPGRADE + GET)
    respond(server, 200, b"no")
    assert server.next_events() == [request(), EndOfMessage(), Paused()]


def test_upgrade_needs_connection_upgrade_and_http_1_1():
    server = ServerConnection()
    server.receive_data(b"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n")
    with pytest.raises(LocalProtocolError, match="did not ask"):
        server.send(InformationalResponse(101))
    assert server.our_state is State.SEND_RESPONSE

    server = ServerConnection()
    server.receive_data(b"GET / HTTP/1.0\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n")
    assert server.their_state is State.MUST_CLOSE  # not MIGHT_SWITCH: 1.0 cannot upgrade
    with pytest.raises(LocalProtocolError, match=r"HTTP/1\.0"):
        server.send(InformationalResponse(101))


def test_101_is_refused_before_the_upgrade_request_body_is_complete():
    server = ServerConnection()
    server.receive_data(UPGRADE.replace(b"\r\n\r\n", b"\r\nContent-Length: 4\r\n\r\nab"))
    with pytest.raises(LocalProtocolError):
        server.send(InformationalResponse(101))


CONNECT = b"CONNECT db.test:5432 HTTP/1.1\r\nHost: db.test:5432\r\n\r\n"


def test_connect_switches_on_2xx_and_keeps_the_early_tunnel_bytes():
    server = ServerConnection()
    events = server.receive_data(CONNECT + b"\x16\x03\x01")
    assert events[0] == Request(b"CONNECT", b"db.test:5432", b"1.1", [(b"host", b"db.test:5432")])
    assert events[1:] == [EndOfMessage(), Paused()]
    server.receive_data(b"")
    assert server.send(Response(200)) == b"HTTP/1.1 200 OK\r\n\r\n"
    assert server.our_state is State.SWITCHED
    assert server.trailing_data == (b"\x16\x03\x01", True)


def test_connect_refused_with_a_non_2xx_stays_http():
    server = ServerConnection()
    server.receive_data(CONNECT)
    respond(server, 403, b"denied")
    assert (server.our_state, server.their_state) == (State.IDLE, State.IDLE)


def test_a_2xx_to_connect_cannot_carry_framing():
    server = ServerConnection()
    server.receive_data(CONNECT)
    with pytest.raises(LocalProtocolError, match="CONNECT"):
        server.send(Response(200, headers=[(b"content-length", b"0")]))


def test_a_bad_request_can_be_answered_then_the_connection_is_over():
    server = ServerConnection()
    with pytest.raises(RemoteProtocolError) as caught:
        server.receive_data(b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1, 1\r\n\r\n")
    assert server.their_state is State.ERROR
    written = respond(server, caught.value.status_hint, b"bad")
    assert written.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert b"connection: close\r\n" in written
    assert server.our_state is State.MUST_CLOSE
    with pytest.raises(LocalProtocolError, match="already broke"):
        server.receive_data(GET)


def test_an_error_in_the_body_after_the_head_still_allows_an_answer():
    server = ServerConnection()
    head = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
    with pytest.raises(RemoteProtocolError):
        server.receive_data(head + b"zz\r\n")
    assert server.our_state is State.SEND_RESPONSE
    respond(server, 400)
    assert server.our_state is State.MUST_CLOSE


def test_eof_in_the_middle_of_a_head_or_body_is_an_error():
    server = ServerConnection()
    server.receive_data(b"GET / HTTP/1.1\r\nHo")
    with pytest.raises(RemoteProtocolError, match="middle of a message head"):
        server.receive_data(b"")

    server = ServerConnection()
    server.receive_data(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nab")
    with pytest.raises(RemoteProtocolError, match="2 of 5"):
        server.receive_data(b"")


def test_eof_between_requests_is_a_clean_close_even_after_one_stray_crlf():
    server = ServerConnection()
    assert server.receive_data(b"") == [ConnectionClosed()]
    assert server.their_state is State.CLOSED
    assert server.next_events() == [ConnectionClosed()]
    with pytest.raises(LocalProtocolError, match="after EOF"):
        server.receive_data(b"x")

    server = ServerConnection()
    server.receive_data(b"\r\n")
    assert server.receive_data(b"") == [ConnectionClosed()]


def test_a_half_closed_client_still_gets_its_answer():
    server = ServerConnection()
    assert server.receive_data(GET) == [request(), EndOfMessage(), Paused()]
    assert server.receive_data(b"") == [ConnectionClosed()]
    respond(server)
    assert server.our_state is State.MUST_CLOSE


def test_a_peer_pipelining_past_the_paused_limit_is_refused():
    from waypoint.http1 import Limits

    server = ServerConnection(Limits(max_buffered_while_paused=64))
    server.receive_data(GET)
    server.receive_data(GET)
    with pytest.raises(RemoteProtocolError, match="stop reading"):
        server.receive_data(b"x" * 64)


def test_the_server_refuses_to_send_requests_or_out_of_order_events():
    server = ServerConnection()
    with pytest.raises(LocalProtocolError, match="not Request"):
        server.send(request())
    with pytest.raises(LocalProtocolError, match="cannot send Data in state IDLE"):
        server.send(Data(b"x"))
    server.receive_data(GET)
    with pytest.raises(LocalProtocolError, match="1xx"):
        server.send(InformationalResponse(200))
    with pytest.raises(LocalProtocolError, match="2xx-5xx"):
        server.send(Response(101))


def test_content_length_is_enforced_on_what_we_send():
    server = ServerConnection()
    server.receive_data(GET)
    server.send(Response(200, headers=[(b"content-length", b"3")]))
    with pytest.raises(LocalProtocolError, match="overrun"):
        server.send(Data(b"abcd"))
    assert server.send(Data(b"ab")) == b"ab"
    with pytest.raises(LocalProtocolError, match="2 of the 3"):
        server.send(EndOfMessage())
    with pytest.raises(LocalProtocolError, match="trailers need chunked"):
        server.send(EndOfMessage([(b"x", b"1")]))
    server.send(Data(b"c"))
    server.send(EndOfMessage())
    assert server.our_state is State.IDLE


def test_send_parts_passes_the_body_object_through():
    server = ServerConnection()
    server.receive_data(GET)
    server.send(Response(200, headers=[(b"content-length", b"5")]))
    payload = memoryview(b"hello")
    assert server.send_parts(Data(payload))[0] is payload


def test_a_request_body_is_delivered_in_order():
    server = ServerConnection()
    events = server.receive_data(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n01234")
    assert events[-1] == NeedData()
    events += server.receive_data(b"56789GET")
    assert body(events) == b"0123456789"
    assert events[-2:] == [EndOfMessage(), Paused()]


def test_a_408_on_an_idle_connection_closes_it():
    server = ServerConnection()
    written = respond(server, 408)
    assert b"connection: close\r\n" in written
    assert server.our_state is State.MUST_CLOSE
    assert server.send(ConnectionClosed()) == b""


def test_data_for_a_head_response_names_the_method():
    server = ServerConnection()
    server.receive_data(b"HEAD / HTTP/1.1\r\nHost: a\r\n\r\n")
    server.send(Response(200, headers=[(b"content-length", b"10")]))
    with pytest.raises(LocalProtocolError, match="response to HEAD"):
        server.send(Data(b"x"))
