"""From HTTP/1.1 events to waypoint.messages heads: authority, path, hop-by-hop fields."""

from __future__ import annotations

from waypoint.http1 import Request, Response
from waypoint.http1.convert import request_head, response_head
from waypoint.messages import RequestHead, ResponseHead


def test_an_origin_form_request():
    head = request_head(
        Request(b"GET", b"/a/b?x=1", b"1.1", [(b"host", b"svc.ns:8080"), (b"x-id", b"7")])
    )
    assert head == RequestHead(
        method="GET",
        scheme="http",
        authority="svc.ns:8080",
        path="/a/b?x=1",
        headers=(("x-id", "7"),),
        protocol="HTTP/1.1",
    )
    assert head.path_only == "/a/b"


def test_hop_by_hop_fields_and_those_connection_names_are_dropped():
    request = Request(
        b"GET",
        b"/",
        b"1.1",
        [
            (b"host", b"a"),
            (b"connection", b"keep-alive, x-hop"),
            (b"keep-alive", b"timeout=5"),
            (b"x-hop", b"1"),
            (b"te", b"gzip"),
            (b"transfer-encoding", b"chunked"),
            (b"upgrade", b"websocket"),
            (b"proxy-authorization", b"secret"),
            (b"x-end", b"2"),
        ],
    )
    assert request_head(request).headers == (("x-end", "2"),)


def test_te_trailers_is_end_to_end():
    head = request_head(Request(b"POST", b"/", b"1.1", [(b"host", b"a"), (b"te", b"trailers")]))
    assert head.header("te") == "trailers"


def test_absolute_form_overrides_host():
    head = request_head(
        Request(b"GET", b"HTTPS://real.test:8443", b"1.1", [(b"host", b"spoofed.test")])
    )
    assert (head.scheme, head.authority, head.path) == ("https", "real.test:8443", "/")


def test_connect_names_its_authority_and_has_no_path():
    head = request_head(Request(b"CONNECT", b"db.test:5432", b"1.1", [(b"host", b"db.test:5432")]))
    assert (head.method, head.authority, head.path) == ("CONNECT", "db.test:5432", "")


def test_values_are_latin_1_so_every_byte_round_trips():
    head = request_head(Request(b"GET", b"/", b"1.0", [(b"x", b"caf\xc3\xa9")]))
    assert head.header("x").encode("latin-1") == b"caf\xc3\xa9"
    assert (head.authority, head.protocol) == ("", "HTTP/1.0")


def test_a_response_head():
    response = Response(
        503, b"Unavailable", b"1.1", [(b"retry-after", b"1"), (b"connection", b"close")]
    )
    assert response_head(response) == ResponseHead(503, (("retry-after", "1"),), "Unavailable")
