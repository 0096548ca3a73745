"""Start lines and header sections, byte by byte: what is accepted, and each refusal's status."""

from __future__ import annotations

import pytest

from waypoint.http1 import ClientConnection, NeedData, RemoteProtocolError, Request
from waypoint.http1.headers import parse_fields, parse_request_line, parse_status_line

from .helpers import get, refused, refused_eventually, serve

HOST = b"Host: example.test\r\n"


def test_a_plain_request_is_parsed_with_lower_case_names_in_wire_order():
    events = serve(
        b"GET /a?b=1 HTTP/1.1\r\nHost: example.test\r\nX-B: 2\r\nx-a: 1\r\nX-B: 3\r\n\r\n"
    )
    request = events[0]
    assert request == Request(
        b"GET",
        b"/a?b=1",
        b"1.1",
        [(b"host", b"example.test"), (b"x-b", b"2"), (b"x-a", b"1"), (b"x-b", b"3")],
    )


def test_optional_whitespace_around_values_is_removed_but_inner_whitespace_kept():
    request = serve(b"GET / HTTP/1.1\r\n" + HOST + b"X:  \t a \t b \t\r\nY:\r\n\r\n")[0]
    assert request.headers[1:] == [(b"x", b"a \t b"), (b"y", b"")]


def test_obs_text_in_values_is_kept_as_bytes():
    request = serve(b"GET / HTTP/1.1\r\n" + HOST + b"X: caf\xc3\xa9\r\n\r\n")[0]
    assert request.headers[1] == (b"x", b"caf\xc3\xa9")


def test_one_leading_empty_line_is_tolerated_but_not_two():
    assert serve(b"\r\nGET / HTTP/1.1\r\n" + HOST + b"\r\n")[0].method == b"GET"
    error = refused(b"\r\n\r\nGET / HTTP/1.1\r\n" + HOST + b"\r\n", 400)
    assert "empty line" in str(error)


@pytest.mark.parametrize(
    ("line", "status", "words"),
    [
        (b"GET  / HTTP/1.1", 400, "single spaces"),
        (b"GET / HTTP/1.1 ", 400, "single spaces"),
        (b" GET / HTTP/1.1", 400, "single spaces"),
        (b"GET /a b HTTP/1.1", 400, "single spaces"),
        (b"GET\t/ HTTP/1.1", 400, "single spaces"),
        (b"GET /", 400, "single spaces"),
        (b"G(T / HTTP/1.1", 400, "method"),
        (b"G\x00T / HTTP/1.1", 400, "method"),
        (b"GET /\x7f HTTP/1.1", 400, "control character"),
        (b"GET /\x01 HTTP/1.1", 400, "control character"),
        (b"GET /caf\xc3\xa9 HTTP/1.1", 400, "non-ASCII"),
        (b"GET /a#frag HTTP/1.1", 400, "'#'"),
        (b"GET a/b HTTP/1.1", 400, "origin-form"),
        (b"GET * HTTP/1.1", 400, "OPTIONS"),
        (b"CONNECT /x HTTP/1.1", 400, "authority-form"),
        (b"CONNECT example.test HTTP/1.1", 400, "authority-form"),
        (b"GET / HTTP/2.0", 505, "not supported"),
        (b"GET / HTTP/1.2", 505, "not supported"),
        (b"GET / HTTP/0.9", 505, "not supported"),
        (b"GET / http/1.1", 400, "malformed HTTP version"),
        (b"GET / HTTP/1.10", 400, "malformed HTTP version"),
        (b"GET / HTTP/1", 400, "malformed HTTP version"),
    ],
)
def test_malformed_request_lines_are_refused(line, status, words):
    error = refused(line + b"\r\n" + HOST + b"\r\n", status)
    assert words in str(error)


def test_a_bad_request_line_is_refused_before_the_header_section_arrives():
    refused(b"GET / HTTP/3.0\r\nHost: exa", 505)


@pytest.mark.parametrize(
    "data",
    [
        b"GET / HTTP/1.1\n" + HOST + b"\r\n",
        b"GET / HTTP/1.1\r\r\n" + HOST + b"\r\n",
        b"GET /\r HTTP/1.1\r\n" + HOST + b"\r\n",
        b"GET / HTTP/1.1\r\nHost: example.test\n\r\n",
        b"GET / HTTP/1.1\r\nHost: example.test\nX: 1\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: example.test\rX: 1\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: example.test\r\n\n",
        b"GET / HTTP/1.1\r\nHost: example.test\n\n",
    ],
)
def test_bare_cr_or_lf_anywhere_in_a_head_is_refused(data):
    error = refused_eventually(data, 400)
    assert "CR" in str(error) or "LF" in str(error)


@pytest.mark.parametrize("tail", [b"\n", b"\nX: 1", b"\r\nX: 1\n", b"\n\n"])
def test_a_bare_lf_in_the_field_section_is_refused_without_waiting_for_its_end(tail):
    error = refused(b"GET / HTTP/1.1\r\nHost: example.test" + tail, 400)
    assert "bare LF" in str(error)


@pytest.mark.parametrize(
    ("field", "words"),
    [
        (b" X: folded", "obs-fold"),
        (b"\tX: folded", "obs-fold"),
        (b"X : 1", "between the field name and the colon"),
        (b"X\t: 1", "between the field name and the colon"),
        (b"X-No-Colon", "no colon"),
        (b": empty-name", "empty field name"),
        (b"X(Y): 1", "not a token"),
        (b"X\x00: 1", "not a token"),
        (b"X: a\x00b", "NUL"),
        (b"X: a\x01b", "0x01"),
        (b"X: a\x7fb", "0x7f"),
        (b"X: a\x1bb", "0x1b"),
    ],
)
def test_malformed_field_lines_are_refused(field, words):
    error = refused(b"GET / HTTP/1.1\r\n" + HOST + field + b"\r\n\r\n", 400)
    assert words in str(error)


def test_obs_fold_continuation_line_is_refused():
    error = refused(b"GET / HTTP/1.1\r\n" + HOST + b"X: a\r\n  continued\r\n\r\n", 400)
    assert "obs-fold" in str(error)


def test_whitespace_between_start_line_and_first_field_is_refused():
    error = refused(b"GET / HTTP/1.1\r\n Host: example.test\r\n\r\n", 400)
    assert "obs-fold" in str(error)


@pytest.mark.parametrize(
    "target",
    [b"/", b"/a/b?c=d&e=%20", b"http://example.test/x", b"https://example.test", b"*"],
)
def test_every_request_target_form_is_accepted_where_its_method_allows(target):
    method = b"OPTIONS" if target == b"*" else b"GET"
    request = serve(method + b" " + target + b" HTTP/1.1\r\n" + HOST + b"\r\n")[0]
    assert request.target == target


def test_connect_takes_authority_form_including_ip_literals():
    for target in (b"example.test:443", b"10.0.0.1:8080", b"[2001:db8::1]:443"):
        request = serve(b"CONNECT " + target + b" HTTP/1.1\r\nHost: " + target + b"\r\n\r\n")[0]
        assert request.target == target


def test_unknown_methods_that_are_tokens_are_parsed_for_the_caller_to_judge():
    assert serve(b"PURGE-ALL / HTTP/1.1\r\n" + HOST + b"\r\n")[0].method == b"PURGE-ALL"


def test_parse_request_line_returns_the_three_parts():
    assert parse_request_line(b"POST /x HTTP/1.0") == (b"POST", b"/x", b"1.0")


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (b"HTTP/1.1 200 OK", (b"1.1", 200, b"OK")),
        (b"HTTP/1.0 404 Not Found", (b"1.0", 404, b"Not Found")),
        (b"HTTP/1.1 204 ", (b"1.1", 204, b"")),
        (b"HTTP/1.1 204", (b"1.1", 204, b"")),
        (b"HTTP/1.1 500 caf\xc3\xa9 \t x", (b"1.1", 500, b"caf\xc3\xa9 \t x")),
    ],
)
def test_status_lines_parse(line, expected):
    assert parse_status_line(line) == expected


@pytest.mark.parametrize(
    ("line", "status"),
    [
        (b"HTTP/1.1 20 OK", 400),
        (b"HTTP/1.1 2000 OK", 400),
        (b"HTTP/1.1 099 Low", 400),
        (b"HTTP/1.1 600 High", 400),
        (b"HTTP/1.1 +20 OK", 400),
        (b"HTTP/1.1 200 O\x00K", 400),
        (b"HTTP/2 200 OK", 400),
        (b"HTTP/2.0 200 OK", 505),
        (b"ICY 200 OK", 400),
    ],
)
def test_malformed_status_lines_are_refused(line, status):
    with pytest.raises(RemoteProtocolError) as caught:
        parse_status_line(line)
    assert caught.value.status_hint == status


def test_a_client_reports_a_broken_status_line_as_502():
    client = ClientConnection()
    client.send(get())
    with pytest.raises(RemoteProtocolError) as caught:
        client.receive_data(b"HTTP/1.1 2x0 OK\r\n\r\n")
    assert caught.value.status_hint == 502


def test_parse_fields_counts_against_its_limit():
    assert parse_fields(b"a: 1\r\nb: 2", 2, "header") == [(b"a", b"1"), (b"b", b"2")]
    assert parse_fields(b"", 2, "header") == []
    with pytest.raises(RemoteProtocolError) as caught:
        parse_fields(b"a: 1\r\nb: 2\r\nc: 3", 2, "header")
    assert caught.value.status_hint == 431


def test_a_head_split_anywhere_waits_for_more_data():
    data = b"GET / HTTP/1.1\r\nHost: example.test\r\n\r\n"
    for cut in range(1, len(data)):
        events = serve(data[:cut])
        assert events == [NeedData()], cut
