"""Header blocks ⇄ heads: what is accepted, what is malformed, and that heads round-trip."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.unit.waypoint.http2.helpers import MeshPair, of_type
from waypoint.http2 import LocalProtocolError, RequestReceived
from waypoint.http2.events import MalformedHeaders
from waypoint.http2.fields import (
    CONNECTION_SPECIFIC,
    parse_request,
    parse_response,
    parse_trailers,
    request_block,
    response_block,
)
from waypoint.messages import RequestHead, ResponseHead

BASE = [(b":method", b"GET"), (b":scheme", b"https"), (b":path", b"/"), (b":authority", b"a:1")]

TOKEN = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyz"
names = st.text(TOKEN, min_size=1, max_size=12).filter(
    lambda n: n.encode() not in CONNECTION_SPECIFIC and n not in ("host", "te")
)
values = st.text(
    st.characters(min_codepoint=0x20, max_codepoint=0xFF).filter(lambda c: c != "\x7f"), max_size=20
).map(str.strip)
heads = st.builds(
    RequestHead,
    method=st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=1, max_size=8).filter(
        lambda m: m != "CONNECT"
    ),
    scheme=st.sampled_from(["http", "https"]),
    authority=st.from_regex(r"[a-z0-9.-]{1,20}(:[0-9]{1,5})?", fullmatch=True),
    path=st.from_regex(r"/[!-~]{0,30}", fullmatch=True),
    headers=st.lists(st.tuples(names, values), max_size=6).map(tuple),
    protocol=st.just("HTTP/2"),
)


@given(heads)
def test_every_valid_request_head_round_trips(head):
    assert parse_request(request_block(head)) == head


@settings(max_examples=30, deadline=None)
@given(heads)
def test_request_heads_round_trip_through_real_h2_connections(head):
    pair = MeshPair()
    pair.client.send_request(head, end_stream=True)
    _, server_events = pair.pump()
    [received] = of_type(server_events, RequestReceived)
    assert received.head == head


@given(st.lists(st.tuples(st.binary(max_size=10), st.binary(max_size=10)), max_size=8))
def test_any_block_parses_or_is_malformed_nothing_else(block):
    for parse in (parse_request, parse_response, parse_trailers):
        try:
            parse(block)
        except MalformedHeaders as error:
            assert str(error)


@given(
    st.integers(min_value=100, max_value=599).filter(lambda s: s != 101),
    st.lists(st.tuples(names, values), max_size=4),
)
def test_every_valid_response_head_round_trips(status, headers):
    head = ResponseHead(status, tuple(headers))
    assert parse_response(response_block(head)) == head


def test_te_trailers_is_kept_in_any_case_and_normalised():
    head = parse_request([*BASE, (b"te", b"Trailers")])
    assert head.headers == (("te", "trailers"),)


def test_options_star_is_the_only_asterisk_path():
    options = [(b":method", b"OPTIONS"), *BASE[1:2], (b":path", b"*"), BASE[3]]
    assert parse_request(options).path == "*"
    with pytest.raises(MalformedHeaders, match="origin-form"):
        parse_request([*BASE[:2], (b":path", b"*"), BASE[3]])


def test_values_may_carry_latin1_bytes_and_tabs_inside():
    head = parse_request([*BASE, (b"x-name", b"caf\xe9\tbar")])
    assert head.header("x-name") == "caf\xe9\tbar"
    assert request_block(head)[-1] == (b"x-name", b"caf\xe9\tbar")


def test_a_trailer_block_may_not_carry_pseudo_headers():
    assert parse_trailers([(b"grpc-status", b"0")]) == (("grpc-status", "0"),)
    with pytest.raises(MalformedHeaders, match="not allowed"):
        parse_trailers([(b":status", b"200")])


def test_connect_blocks_carry_only_method_and_authority():
    head = RequestHead("CONNECT", "", "10.0.0.1:443", "", (("x-a", "1"),))
    block = request_block(head)
    assert block == [(b":method", b"CONNECT"), (b":authority", b"10.0.0.1:443"), (b"x-a", b"1")]
    assert parse_request(block) == RequestHead(
        "CONNECT", "", "10.0.0.1:443", "", (("x-a", "1"),), protocol="HTTP/2"
    )


def test_host_is_used_when_authority_is_absent_and_dropped_when_present():
    host_only = [*BASE[:3], (b"host", b"svc:80")]
    assert parse_request(host_only).authority == "svc:80"
    head = RequestHead("GET", "http", "svc:80", "/", (("host", "old:80"), ("x", "1")))
    assert (b"host", b"old:80") not in request_block(head)
    no_authority = RequestHead("GET", "http", "", "/", (("host", "svc:80"),))
    assert (b"host", b"svc:80") in request_block(no_authority)
    with pytest.raises(MalformedHeaders, match="more than one host"):
        parse_request([*BASE[:3], (b"host", b"a"), (b"host", b"b")])


def test_bad_status_lines_are_malformed():
    for status in (b"99", b"600", b"20x", b"", b"101"):
        with pytest.raises(MalformedHeaders):
            parse_response([(b":status", status)])


def test_text_we_cannot_put_on_the_wire_is_the_callers_error():
    with pytest.raises(LocalProtocolError, match="latin-1"):
        request_block(RequestHead("GET", "http", "svc", "/✓"))
