"""The receive buffer: bounded, resumable searches, and CRLF as the only line end."""

from __future__ import annotations

import pytest

from waypoint.http1 import RemoteProtocolError
from waypoint.http1.buffer import ReceiveBuffer


def buffer(data: bytes) -> ReceiveBuffer:
    buf = ReceiveBuffer()
    buf.feed(data)
    return buf


def test_take_line_waits_for_crlf_and_consumes_it():
    buf = buffer(b"abc")
    assert buf.take_line(10, "line", 400) is None
    buf.feed(b"\r")
    assert buf.take_line(10, "line", 400) is None
    buf.feed(b"\ndef")
    assert buf.take_line(10, "line", 400) == b"abc"
    assert bytes(buf) == b"def"


def test_take_line_refuses_at_the_limit_without_waiting_for_the_line_end():
    buf = buffer(b"a" * 11)
    assert buf.take_line(10, "line", 400) is None  # 10 bytes + CR may still fit
    buf.feed(b"a")
    with pytest.raises(RemoteProtocolError, match="line longer than 10 bytes") as caught:
        buf.take_line(10, "line", 414)
    assert caught.value.status_hint == 414


def test_a_line_of_exactly_the_limit_is_accepted():
    assert buffer(b"a" * 10 + b"\r\n").take_line(10, "line", 400) == b"a" * 10


@pytest.mark.parametrize("data", [b"abc\n", b"\n", b"a\rb\r\n", b"abc\r\r\n"])
def test_take_line_refuses_bare_cr_and_lf(data):
    with pytest.raises(RemoteProtocolError, match="bare"):
        buffer(data).take_line(10, "line", 400)


def test_take_block_returns_the_section_and_consumes_the_empty_line():
    buf = buffer(b"a: 1\r\nb: 2\r\n\r\nrest")
    assert buf.take_block(100, "block", 431) == b"a: 1\r\nb: 2"
    assert bytes(buf) == b"rest"
    assert buffer(b"\r\nrest").take_block(100, "block", 431) == b""
    assert buffer(b"\r").take_block(100, "block", 431) is None


def test_take_block_finds_a_terminator_split_across_feeds():
    buf = ReceiveBuffer()
    pieces = [b"a: 1\r", b"\n", b"b: 2\r\n", b"\r", b"\nrest"]
    results = []
    for piece in pieces:
        buf.feed(piece)
        results.append(buf.take_block(100, "block", 431))
    assert results == [None, None, None, None, b"a: 1\r\nb: 2"]


def test_take_block_is_bounded():
    buf = buffer(b"a: " + b"x" * 20)
    with pytest.raises(RemoteProtocolError, match="block larger than 16 bytes") as caught:
        buf.take_block(16, "block", 431)
    assert caught.value.status_hint == 431
    assert buffer(b"a: 1234567\r\n\r\n").take_block(16, "block", 431) == b"a: 1234567"


def test_take_hands_over_the_whole_buffer_without_copying():
    buf = buffer(b"hello")
    whole = buf.take(100)
    assert whole == b"hello"
    assert len(buf) == 0
    buf.feed(b"abcdef")
    assert buf.take(2) == b"ab"
    assert bytes(buf) == b"cdef"
    assert whole == b"hello"  # later feeds never touch what was handed out


def test_skip_crlf():
    assert buffer(b"\r\nx").skip_crlf() is True
    assert buffer(b"\r").skip_crlf() is None
    assert buffer(b"").skip_crlf() is None
    assert buffer(b"x").skip_crlf() is False
    assert buffer(b"\rx").skip_crlf() is False
