"""Message framing from the fields: every request-smuggling shape is refused, byte for byte."""

from __future__ import annotations

import pytest

from waypoint.http1 import (
    ClientConnection,
    Data,
    EndOfMessage,
    Paused,
    RemoteProtocolError,
    Request,
)
from waypoint.http1.framing import (
    CHUNKED,
    NO_BODY,
    UNTIL_CLOSE,
    Framing,
    Kind,
    framing_fields,
    keep_alive,
    remote,
    response_framing,
)

from .helpers import body, get, normalize, refused, serve

POST = b"POST /upload HTTP/1.1\r\nHost: example.test\r\n"


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        (b"Content-Length: 5\r\nContent-Length: 5\r\n", "appears 2 times"),
        (b"Content-Length: 5\r\nContent-Length: 6\r\n", "appears 2 times"),
        (b"Content-Length: 5, 5\r\n", "not a decimal number"),
        (b"Content-Length: 5,5\r\n", "not a decimal number"),
        (b"Content-Length: -5\r\n", "not a decimal number"),
        (b"Content-Length: +5\r\n", "not a decimal number"),
        (b"Content-Length: 0x5\r\n", "not a decimal number"),
        (b"Content-Length: 5 5\r\n", "not a decimal number"),
        (b"Content-Length: 5.0\r\n", "not a decimal number"),
        (b"Content-Length:\r\n", "not a decimal number"),
        (b"Content-Length: \xd9\xa5\r\n", "not a decimal number"),
        (b"Content-Length: 1234567890123456789\r\n", "implausibly large"),
        (b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n", "both present"),
        (b"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n", "both present"),
        (b"Transfer-Encoding: chunked, chunked\r\n", "more than once"),
        (b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n", "more than once"),
        (b"Transfer-Encoding: chunked, gzip\r\n", "does not end in chunked"),
        (b"Transfer-Encoding: xchunked\r\n", "does not end in chunked"),
        (b"Transfer-Encoding: chunkedx\r\n", "does not end in chunked"),
        (b"Transfer-Encoding: gzip\r\n", "does not end in chunked"),
        (b"Transfer-Encoding: identity\r\n", "does not end in chunked"),
        (b"Transfer-Encoding: \r\n", "malformed Transfer-Encoding"),
        (b"Transfer-Encoding: ,\r\n", "malformed Transfer-Encoding"),
        (b"Transfer-Encoding: chunked;q=1\r\n", "malformed Transfer-Encoding"),
        (b'Transfer-Encoding: "chunked"\r\n', "malformed Transfer-Encoding"),
        (b"Transfer-Encoding: chu nked\r\n", "malformed Transfer-Encoding"),
    ],
)
def test_request_smuggling_shapes_are_refused_with_400(fields, words):
    error = refused(POST + fields + b"\r\n" + b"hello", 400)
    assert words in str(error)


@pytest.mark.parametrize("codings", [b"gzip, chunked", b"deflate,chunked", b"x-custom, chunked"])
def test_an_unknown_coding_before_chunked_is_not_implemented(codings):
    error = refused(POST + b"Transfer-Encoding: " + codings + b"\r\n\r\n", 501)
    assert "not implemented" in str(error)


def test_transfer_encoding_in_an_http_1_0_request_is_refused():
    data = b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
    assert "HTTP/1.0" in str(refused(data, 400))


def test_chunked_is_matched_case_insensitively_and_across_empty_list_elements():
    for value in (b"Chunked", b"CHUNKED", b", chunked", b"chunked ,"):
        events = serve(POST + b"Transfer-Encoding: " + value + b"\r\n\r\n2\r\nhi\r\n0\r\n\r\n")
        assert body(events) == b"hi"


def test_content_length_with_leading_zeros_is_one_decimal_number():
    events = serve(POST + b"Content-Length: 005\r\n\r\nhello")
    assert body(events) == b"hello"
    assert isinstance(events[-2], EndOfMessage)


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        (b"", "missing Host"),
        (b"Host: a\r\nHost: a\r\n", "appears 2 times"),
        (b"Host: a\r\nHost: b\r\n", "appears 2 times"),
        (b"Host: a b\r\n", "invalid Host"),
        (b"Host: a/b\r\n", "invalid Host"),
        (b"Host: a@b\r\n", "invalid Host"),
        (b"Host: a:8x\r\n", "invalid Host"),
    ],
)
def test_host_rules_for_http_1_1(fields, words):
    error = refused(b"GET / HTTP/1.1\r\n" + fields + b"\r\n", 400)
    assert words in str(error)


def test_http_1_0_may_omit_host_but_not_repeat_it():
    assert serve(b"GET / HTTP/1.0\r\n\r\n")[0].version == b"1.0"
    refused(b"GET / HTTP/1.0\r\nHost: a\r\nHost: a\r\n\r\n", 400)


@pytest.mark.parametrize("host", [b"", b"a", b"a:80", b"10.1.2.3:8080", b"[::1]:80", b"[::1]"])
def test_valid_host_values(host):
    assert serve(b"GET / HTTP/1.1\r\nHost: " + host + b"\r\n\r\n")[0].headers == [(b"host", host)]


def test_connection_options_must_be_tokens():
    error = refused(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close, a/b\r\n\r\n", 400)
    assert "Connection option" in str(error)


def test_a_request_without_framing_fields_has_no_body_and_following_bytes_are_the_next_one():
    events = serve(b"GET / HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\n")
    assert normalize(events) == [get_a(), EndOfMessage()]


def get_a() -> Request:
    return Request(b"GET", b"/", b"1.1", [(b"host", b"a")])


@pytest.mark.parametrize(
    ("status", "method", "fields", "expected"),
    [
        (200, b"GET", [(b"content-length", b"5")], Framing(Kind.LENGTH, 5)),
        (200, b"GET", [(b"content-length", b"0")], NO_BODY),
        (200, b"GET", [(b"transfer-encoding", b"chunked")], CHUNKED),
        (200, b"GET", [], UNTIL_CLOSE),
        (200, b"HEAD", [(b"content-length", b"5")], NO_BODY),
        (200, b"HEAD", [(b"transfer-encoding", b"chunked")], NO_BODY),
        (204, b"GET", [(b"content-length", b"0")], NO_BODY),
        (304, b"GET", [(b"content-length", b"5")], NO_BODY),
        (101, b"GET", [], NO_BODY),
        (200, b"CONNECT", [], NO_BODY),
        (407, b"CONNECT", [(b"content-length", b"3")], Framing(Kind.LENGTH, 3)),
        (404, None, [(b"content-length", b"3")], Framing(Kind.LENGTH, 3)),
    ],
)
def test_response_framing_follows_rfc_9112_section_6_3(status, method, fields, expected):
    assert response_framing(status, framing_fields(fields), b"1.1", method, remote) == expected


def test_response_framing_validates_fields_even_for_bodiless_responses():
    fields = [(b"content-length", b"1"), (b"content-length", b"1")]
    with pytest.raises(RemoteProtocolError):
        response_framing(304, framing_fields(fields), b"1.1", b"GET", remote)


@pytest.mark.parametrize(
    ("version", "tokens", "expected"),
    [
        (b"1.1", [], True),
        (b"1.1", [b"close"], False),
        (b"1.1", [b"keep-alive", b"close"], False),
        (b"1.0", [], False),
        (b"1.0", [b"keep-alive"], True),
        (b"1.0", [b"keep-alive", b"close"], False),
    ],
)
def test_keep_alive_rules(version, tokens, expected):
    assert keep_alive(version, tokens) is expected


@pytest.mark.parametrize(
    "fields",
    [
        b"Content-Length: 2\r\nContent-Length: 2\r\n",
        b"Content-Length: 2\r\nTransfer-Encoding: chunked\r\n",
        b"Transfer-Encoding: chunked, gzip\r\n",
    ],
)
def test_a_client_refuses_smuggling_shapes_in_responses_with_502(fields):
    client = ClientConnection()
    client.send(get())
    client.send(EndOfMessage())
    with pytest.raises(RemoteProtocolError) as caught:
        client.receive_data(b"HTTP/1.1 200 OK\r\n" + fields + b"\r\nhi")
    assert caught.value.status_hint == 502


def test_transfer_encoding_in_an_http_1_0_response_is_refused():
    client = ClientConnection()
    client.send(get())
    client.send(EndOfMessage())
    with pytest.raises(RemoteProtocolError):
        client.receive_data(b"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")


def test_a_body_only_reaches_the_caller_as_data_events():
    events = serve(POST + b"Content-Length: 5\r\n\r\nhello")
    assert events[1:] == [Data(b"hello"), EndOfMessage(), Paused()]
