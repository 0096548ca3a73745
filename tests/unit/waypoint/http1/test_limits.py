"""Limits: each ceiling answers its own status, and a trickling peer never grows past one."""

from __future__ import annotations

import pytest

from waypoint.http1 import Limits, NeedData, RemoteProtocolError, ServerConnection

from .helpers import body, refused, serve


def test_the_defaults_are_envoy_like():
    limits = Limits()
    assert (limits.max_header_bytes, limits.max_header_count) == (60 * 1024, 100)
    assert limits.max_body is None


@pytest.mark.parametrize("field", ["max_header_count", "max_request_line", "max_body"])
def test_limits_must_be_positive(field):
    with pytest.raises(ValueError, match=field):
        Limits(**{field: 0})


def test_a_long_request_line_is_414():
    limits = Limits(max_request_line=32)
    line = b"GET /" + b"a" * 11 + b" HTTP/1.1"  # exactly 25 bytes: accepted
    assert serve(line + b"\r\nHost: a\r\n\r\n", limits)[0].target == b"/" + b"a" * 11
    error = refused(b"GET /" + b"a" * 40, 414, limits)
    assert "request line longer than 32" in str(error)


def test_a_large_header_section_is_431():
    limits = Limits(max_header_bytes=64)
    head = b"GET / HTTP/1.1\r\nHost: a\r\nX: " + b"a" * 30 + b"\r\n\r\n"
    assert serve(head, limits)[0].headers[1] == (b"x", b"a" * 30)
    error = refused(b"GET / HTTP/1.1\r\nHost: a\r\nX: " + b"a" * 60, 431, limits)
    assert "header section larger than 64" in str(error)


def test_too_many_header_fields_is_431():
    limits = Limits(max_header_count=3)
    fields = b"".join(b"X-%d: 1\r\n" % i for i in range(2))
    assert len(serve(b"GET / HTTP/1.1\r\nHost: a\r\n" + fields + b"\r\n", limits)[0].headers) == 3
    fields = b"".join(b"X-%d: 1\r\n" % i for i in range(3))
    error = refused(b"GET / HTTP/1.1\r\nHost: a\r\n" + fields + b"\r\n", 431, limits)
    assert "more than 3 header fields" in str(error)


def test_a_content_length_over_the_body_limit_is_413_before_any_body_arrives():
    limits = Limits(max_body=4)
    post = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n"
    assert body(serve(post % 4 + b"abcd", limits)) == b"abcd"
    error = refused(post % 5, 413, limits)
    assert "exceeds the limit of 4" in str(error)


def test_a_slowloris_header_is_refused_once_it_reaches_the_limit():
    limits = Limits(max_header_bytes=1024)
    server = ServerConnection(limits)
    assert server.receive_data(b"GET / HTTP/1.1\r\nX: ") == [NeedData()]
    fed = 0
    with pytest.raises(RemoteProtocolError) as caught:
        while fed < 10 * 1024:
            assert server.receive_data(b"a" * 7) == [NeedData()]
            fed += 7
    assert caught.value.status_hint == 431
    assert fed < 1024  # refused at the limit, not later
