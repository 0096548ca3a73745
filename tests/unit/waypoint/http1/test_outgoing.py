"""What we send: validation against injection, framing choice and Connection fields."""

from __future__ import annotations

import pytest

from waypoint.http1 import InformationalResponse, LocalProtocolError, Request, Response
from waypoint.http1.framing import CHUNKED, NO_BODY, UNTIL_CLOSE, Framing, Kind
from waypoint.http1.outgoing import plan_informational, plan_request, plan_response
from waypoint.http1.serialize import check_fields, status_head


@pytest.mark.parametrize(
    "fields",
    [
        [(b"x", b"a\r\nset-cookie: evil")],
        [(b"x", b"a\nb")],
        [(b"x", b"a\rb")],
        [(b"x", b"a\x00b")],
        [(b"x", b"a\x7fb")],
        [(b"x y", b"1")],
        [(b"x:", b"1")],
        [(b"", b"1")],
        [(b"x", b" padded")],
        [(b"x", b"padded\t")],
        [("x", b"1")],
        [(b"x", "1")],
    ],
)
def test_fields_that_would_inject_or_corrupt_are_refused(fields):
    with pytest.raises(LocalProtocolError):
        check_fields(fields)


def test_fields_are_lower_cased_and_keep_their_order():
    assert check_fields([(b"X-B", b"2"), (b"x-a", b"caf\xc3\xa9 \t x")]) == [
        (b"x-b", b"2"),
        (b"x-a", b"caf\xc3\xa9 \t x"),
    ]


def test_status_head_fills_a_standard_reason_and_refuses_bad_ones():
    assert status_head(404, b"", b"1.1", []) == b"HTTP/1.1 404 Not Found\r\n\r\n"
    assert status_head(599, b"", b"1.1", []) == b"HTTP/1.1 599 \r\n\r\n"
    with pytest.raises(LocalProtocolError):
        status_head(200, b"OK\r\nx: y", b"1.1", [])
    with pytest.raises(LocalProtocolError):
        status_head(200, b"OK", b"2", [])


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ([(b"content-length", b"3")], Framing(Kind.LENGTH, 3)),
        ([(b"transfer-encoding", b"chunked")], CHUNKED),
        ([], NO_BODY),
    ],
)
def test_request_framing_is_what_the_caller_said(fields, expected):
    plan = plan_request(Request(b"POST", b"/", b"1.1", [(b"host", b"a"), *fields]))
    assert plan.framing == expected


def test_request_plans_note_tunnels_and_100_continue():
    connect = plan_request(Request(b"CONNECT", b"a:1", b"1.1", [(b"host", b"a:1")]))
    assert connect.switch == "connect"
    upgrade = plan_request(
        Request(
            b"GET",
            b"/",
            b"1.1",
            [(b"host", b"a"), (b"connection", b"Upgrade"), (b"upgrade", b"h2c")],
        )
    )
    assert upgrade.switch == "upgrade"
    expect = plan_request(
        Request(
            b"PUT",
            b"/",
            b"1.1",
            [(b"host", b"a"), (b"expect", b"100-continue"), (b"content-length", b"1")],
        )
    )
    assert expect.expects_continue


def test_a_response_gets_chunked_for_1_1_and_close_for_1_0():
    chunked = plan_response(Response(200), b"GET", b"1.1", True)
    assert (chunked.framing, chunked.keep_alive) == (CHUNKED, True)
    assert b"transfer-encoding: chunked\r\n" in chunked.head
    closing = plan_response(Response(200), b"GET", b"1.0", True)
    assert (closing.framing, closing.keep_alive) == (UNTIL_CLOSE, False)
    assert b"connection: close\r\n" in closing.head


def test_a_1_0_response_version_is_treated_like_a_1_0_peer():
    plan = plan_response(Response(200, version=b"1.0"), b"GET", b"1.1", True)
    assert plan.head.startswith(b"HTTP/1.0 200 OK\r\n")
    assert plan.framing == UNTIL_CLOSE


def test_closing_rewrites_the_connection_field_so_it_cannot_contradict_itself():
    plan = plan_response(
        Response(200, headers=[(b"content-length", b"0"), (b"connection", b"keep-alive, x-y")]),
        b"GET",
        b"1.1",
        False,
    )
    assert plan.head.endswith(b"content-length: 0\r\nconnection: x-y, close\r\n\r\n")


def test_response_framing_refusals():
    with pytest.raises(LocalProtocolError, match="both present"):
        plan_response(
            Response(200, headers=[(b"content-length", b"1"), (b"transfer-encoding", b"chunked")]),
            b"GET",
            b"1.1",
            True,
        )
    with pytest.raises(LocalProtocolError, match="does not end in chunked"):
        plan_response(
            Response(200, headers=[(b"transfer-encoding", b"gzip")]), b"GET", b"1.1", True
        )


def test_informational_responses_carry_no_framing():
    with pytest.raises(LocalProtocolError, match="cannot carry content-length"):
        plan_informational(InformationalResponse(103, headers=[(b"content-length", b"0")]), b"1.1")
    assert plan_informational(InformationalResponse(103, b"Early Hints"), b"1.1") == (
        b"HTTP/1.1 103 Early Hints\r\n\r\n"
    )
