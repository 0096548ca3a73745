"""The client end: requests out, responses in, framing by our own request, 502 on a broken peer."""

from __future__ import annotations

import pytest

from waypoint.http1 import (
    ClientConnection,
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
    State,
)

from .helpers import body, client_after, get, normalize

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


def test_a_request_is_written_with_lower_case_names_in_order():
    client = ClientConnection()
    written = client.send(Request(b"GET", b"/x?y=1", b"1.1", [(b"Host", b"a"), (b"X-A", b"1")]))
    assert written == b"GET /x?y=1 HTTP/1.1\r\nhost: a\r\nx-a: 1\r\n\r\n"
    assert client.send(EndOfMessage()) == b""
    assert client.our_state is State.DONE


def test_a_response_completes_the_exchange_and_the_connection_is_reused():
    client = client_after(get())
    events = client.receive_data(OK)
    assert events == [
        Response(200, b"OK", b"1.1", [(b"content-length", b"2")]),
        Data(b"ok"),
        EndOfMessage(),
        NeedData(),
    ]
    assert (client.our_state, client.their_state) == (State.IDLE, State.IDLE)
    client.send(get(b"/2"))


def test_one_request_at_a_time():
    client = ClientConnection()
    client.send(get())
    client.send(EndOfMessage())
    with pytest.raises(LocalProtocolError, match="cannot send Request"):
        client.send(get(b"/2"))


@pytest.mark.parametrize(
    "request_fields",
    [
        [],
        [(b"host", b"a"), (b"host", b"b")],
        [(b"host", b"a"), (b"content-length", b"1"), (b"transfer-encoding", b"chunked")],
        [(b"host", b"a"), (b"transfer-encoding", b"gzip")],
        [(b"host", b"a"), (b"content-length", b"-1")],
        [(b"host", b"a"), (b"x", b"a\r\nInjected: yes")],
        [(b"host", b"a"), (b"x\r\ny", b"1")],
        [(b"host", b"a"), ("x", "1")],
    ],
)
def test_requests_that_break_the_rules_are_refused_before_a_byte_is_written(request_fields):
    client = ClientConnection()
    with pytest.raises(LocalProtocolError):
        client.send(Request(b"GET", b"/", b"1.1", request_fields))
    assert client.our_state is State.IDLE


@pytest.mark.parametrize(
    ("method", "target"), [(b"G T", b"/"), (b"GET", b"/a b"), (b"GET", b""), (b"GET", b"/\r\n")]
)
def test_request_lines_are_validated(method, target):
    with pytest.raises(LocalProtocolError):
        ClientConnection().send(Request(method, target, b"1.1", [(b"host", b"a")]))


def test_request_bodies_by_content_length_chunked_or_none():
    client = ClientConnection()
    client.send(get(b"/", (b"content-length", b"3"), method=b"POST"))
    assert client.send(Data(b"abc")) == b"abc"
    client.send(EndOfMessage())

    client = ClientConnection()
    client.send(get(b"/", (b"transfer-encoding", b"chunked"), method=b"POST"))
    assert client.send(Data(b"abc")) == b"3\r\nabc\r\n"
    assert client.send(EndOfMessage([(b"x", b"1")])) == b"0\r\nx: 1\r\n\r\n"

    client = ClientConnection()
    client.send(get())
    with pytest.raises(LocalProtocolError, match="without Content-Length or chunked"):
        client.send(Data(b"x"))


def test_head_responses_have_no_body_whatever_their_length_says():
    client = client_after(get(method=b"HEAD"))
    events = client.receive_data(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n")
    assert normalize(events)[1:] == [EndOfMessage()]
    client.send(get())
    client.send(EndOfMessage())
    assert body(client.receive_data(OK)) == b"ok"


@pytest.mark.parametrize("status", [204, 304])
def test_204_and_304_have_no_body(status):
    client = client_after(get())
    head = b"HTTP/1.1 %d X\r\nContent-Length: 5\r\n\r\n" % status
    events = client.receive_data(head)
    assert normalize(events)[1:] == [EndOfMessage()]
    assert client.their_state is State.IDLE


def test_a_response_without_length_runs_until_close():
    client = client_after(get())
    events = client.receive_data(b"HTTP/1.1 200 OK\r\n\r\nsome")
    events += client.receive_data(b" body")
    events += client.receive_data(b"")
    assert body(events) == b"some body"
    assert events[-2:] == [EndOfMessage(), ConnectionClosed()]
    assert client.our_state is State.MUST_CLOSE


def test_a_chunked_response_with_trailers():
    client = client_after(get())
    events = client.receive_data(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3\r\nabc\r\n0\r\nGrpc-Status: 0\r\n\r\n"
    )
    assert normalize(events)[1:] == [Data(b"abc"), EndOfMessage([(b"grpc-status", b"0")])]


def test_http_1_0_responses_close_unless_keep_alive():
    client = client_after(get())
    client.receive_data(b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n")
    assert client.our_state is State.MUST_CLOSE
    client = client_after(get())
    client.receive_data(b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\nConnection: keep-alive\r\n\r\n")
    assert client.our_state is State.IDLE


def test_connection_close_in_a_response_ends_the_connection():
    client = client_after(get())
    client.receive_data(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
    assert (client.our_state, client.their_state) == (State.MUST_CLOSE, State.MUST_CLOSE)
    with pytest.raises(LocalProtocolError):
        client.send(get())


def test_expect_100_continue_from_the_client_side():
    client = ClientConnection()
    client.send(get(b"/", (b"expect", b"100-continue"), (b"content-length", b"2"), method=b"PUT"))
    assert client.waiting_for_100_continue
    events = client.receive_data(b"HTTP/1.1 100 Continue\r\n\r\n")
    assert events == [InformationalResponse(100, b"Continue", b"1.1", []), NeedData()]
    assert not client.waiting_for_100_continue
    client.send(Data(b"ok"))
    client.send(EndOfMessage())
    assert body(client.receive_data(OK)) == b"ok"


def test_an_early_final_response_while_the_request_body_is_unsent():
    client = ClientConnection()
    client.send(get(b"/", (b"content-length", b"100"), method=b"PUT"))
    events = client.receive_data(
        b"HTTP/1.1 413 Too Large\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    assert events[0].status == 413
    assert events[-2:] == [EndOfMessage(), Paused()]
    assert client.our_state is State.SEND_BODY


def test_upgrade_from_the_client_side_with_trailing_bytes():
    client = ClientConnection()
    client.send(get(b"/chat", (b"connection", b"upgrade"), (b"upgrade", b"websocket")))
    client.send(EndOfMessage())
    assert client.our_state is State.MIGHT_SWITCH
    events = client.receive_data(
        b"HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n"
        b"\x81\x02hi"
    )
    assert events[0].status == 101
    assert events[-1] == Paused()
    assert client.trailing_data == (b"\x81\x02hi", False)
    assert client.our_state is State.SWITCHED


def test_an_unasked_101_is_the_servers_error():
    client = client_after(get())
    with pytest.raises(RemoteProtocolError, match="unasked") as caught:
        client.receive_data(b"HTTP/1.1 101 Switching Protocols\r\n\r\n")
    assert caught.value.status_hint == 502


def test_connect_from_the_client_side():
    client = client_after(Request(b"CONNECT", b"db:5432", b"1.1", [(b"host", b"db:5432")]))
    events = client.receive_data(b"HTTP/1.1 200 Connection Established\r\n\r\nserver-hello")
    assert events[0].status == 200
    assert events[-1] == Paused()
    assert client.trailing_data == (b"server-hello", False)
    assert client.our_state is State.SWITCHED


def test_a_refused_connect_has_a_body_and_stays_http():
    client = client_after(Request(b"CONNECT", b"db:5432", b"1.1", [(b"host", b"db:5432")]))
    events = client.receive_data(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 2\r\n\r\nno")
    assert body(events) == b"no"
    assert client.our_state is State.IDLE


def test_bytes_while_no_request_is_outstanding_are_refused():
    client = ClientConnection()
    with pytest.raises(RemoteProtocolError, match="no request was outstanding") as caught:
        client.receive_data(b"HTTP/1.1 408 Request Timeout\r\n\r\n")
    assert caught.value.status_hint == 502


def test_the_server_closing_an_idle_connection_is_a_clean_close():
    client = ClientConnection()
    assert client.receive_data(b"") == [ConnectionClosed()]


def test_the_server_closing_before_a_response_is_an_error():
    client = client_after(get())
    with pytest.raises(RemoteProtocolError, match="before responding") as caught:
        client.receive_data(b"")
    assert caught.value.status_hint == 502


def test_every_response_error_is_502_even_for_limits():
    from waypoint.http1 import Limits

    client = ClientConnection(Limits(max_body=1))
    client.send(get())
    client.send(EndOfMessage())
    with pytest.raises(RemoteProtocolError) as caught:
        client.receive_data(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    assert caught.value.status_hint == 502
    assert "exceeds the limit" in str(caught.value)


def test_a_client_refuses_to_send_responses():
    with pytest.raises(LocalProtocolError, match="not Response"):
        ClientConnection().send(Response(200))
