"""Chunked bodies: sizes, extensions, the CRLF after data, trailers and their limits."""

from __future__ import annotations

import pytest

from waypoint.http1 import Data, EndOfMessage, Limits, NeedData, Paused, RemoteProtocolError
from waypoint.http1.buffer import ReceiveBuffer
from waypoint.http1.chunked import ChunkedReader, chunk_parts, last_chunk, parse_chunk_line

from .helpers import body, normalize, refused, serve

HEAD = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"


def chunked(payload: bytes, limits: Limits | None = None) -> list:
    return serve(HEAD + payload, limits)


def test_chunks_become_data_and_the_last_chunk_ends_the_message():
    events = chunked(b"5\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\n\r\n")
    assert body(events) == b"hello world"
    assert events[-2:] == [EndOfMessage(), Paused()]


@pytest.mark.parametrize(
    ("line", "size"),
    [
        (b"a", 10),
        (b"A", 10),
        (b"000a", 10),
        (b"ffffffffffffffff", 2**64 - 1),
        (b"0000000000000001", 1),
        (b"1;a", 1),
        (b"1;a=b", 1),
        (b"1;a=b;c", 1),
        (b'1;a="x y;z=\\"q\\""', 1),
        (b'1;a=""', 1),
    ],
)
def test_valid_chunk_lines(line, size):
    assert parse_chunk_line(line) == size


@pytest.mark.parametrize(
    ("line", "words"),
    [
        (b"", "invalid chunk size"),
        (b"-1", "invalid chunk size"),
        (b"+1", "invalid chunk size"),
        (b" 1", "invalid chunk size"),
        (b"g", "invalid chunk size"),
        (b"0x5", "junk after the chunk size"),
        (b"5 ", "junk after the chunk size"),
        (b"5\t", "junk after the chunk size"),
        (b"5z", "junk after the chunk size"),
        (b"00000000000000001", "longer than 16 hex digits"),
        (b"5 ;a=b", "junk after the chunk size"),
        (b"5;", "malformed chunk extension"),
        (b"5;a =b", "malformed chunk extension"),
        (b"5;a= b", "malformed chunk extension"),
        (b"5;a=", "malformed chunk extension"),
        (b"5;=b", "malformed chunk extension"),
        (b'5;a="unterminated', "malformed chunk extension"),
        (b"5;a=b c", "malformed chunk extension"),
        (b"5;a=\x00", "malformed chunk extension"),
        (b'5;a="\x01"', "malformed chunk extension"),
    ],
)
def test_invalid_chunk_lines_are_refused(line, words):
    with pytest.raises(RemoteProtocolError) as caught:
        parse_chunk_line(line)
    assert words in str(caught.value)
    assert caught.value.status_hint == 400


@pytest.mark.parametrize(
    "payload",
    [
        b"5\r\nhelloX\r\n0\r\n\r\n",
        b"5\r\nhello\n0\r\n\r\n",
        b"5\r\nhello\r0\r\n\r\n",
        b"5\r\nhello0\r\n\r\n",
        b"5\r\nhelloo\r\n0\r\n\r\n",
    ],
)
def test_chunk_data_must_be_followed_by_exactly_crlf(payload):
    error = refused(HEAD + payload, 400)
    assert "CRLF" in str(error)


def test_a_short_chunk_is_refused_as_soon_as_the_wrong_byte_arrives():
    server_events = serve(HEAD + b"5\r\nhello")
    assert server_events[-1] == NeedData()
    error = refused(HEAD + b"5\r\nhelloX", 400)
    assert "CRLF" in str(error)


@pytest.mark.parametrize("line_end", [b"\n", b"\r\r\n"])
def test_chunk_lines_end_only_with_crlf(line_end):
    error = refused(HEAD + b"5" + line_end + b"hello\r\n0\r\n\r\n", 400)
    assert "bare" in str(error)


def test_trailers_are_parsed_like_headers_and_returned_with_end_of_message():
    events = chunked(b"2\r\nhi\r\n0\r\nX-Checksum: abc\r\nX-Other:  1 \r\n\r\n")
    assert normalize(events)[1:] == [
        Data(b"hi"),
        EndOfMessage([(b"x-checksum", b"abc"), (b"x-other", b"1")]),
    ]


@pytest.mark.parametrize("name", [b"Content-Length", b"Transfer-Encoding", b"Host"])
def test_trailers_that_frame_or_route_are_refused(name):
    error = refused(HEAD + b"0\r\n" + name + b": 1\r\n\r\n", 400)
    assert "trailer" in str(error)


def test_malformed_trailers_are_refused():
    assert "obs-fold" in str(refused(HEAD + b"0\r\nX: 1\r\n folded\r\n\r\n", 400))
    assert "bare LF" in str(refused(HEAD + b"0\r\nX: 1\n\r\n", 400))


def test_chunk_extensions_are_bounded():
    limits = Limits(max_chunk_extensions=8)
    assert body(chunked(b"1;abc=def\r\nx\r\n0\r\n\r\n", limits)) == b"x"
    error = refused(HEAD + b"1;abc=defg\r\nx\r\n0\r\n\r\n", 400, limits)
    assert "chunk extensions longer than 8 bytes" in str(error)


def test_a_chunk_line_that_never_ends_is_refused_at_its_limit_not_buffered():
    limits = Limits(max_chunk_extensions=64)
    error = refused(HEAD + b"1;" + b"a" * 200, 400, limits)
    assert "chunk-size line longer than 80 bytes" in str(error)


def test_trailer_section_is_bounded():
    limits = Limits(max_trailer_bytes=32)
    assert chunked(b"0\r\nX: " + b"a" * 20 + b"\r\n\r\n", limits)[-2] == EndOfMessage(
        [(b"x", b"a" * 20)]
    )
    error = refused(HEAD + b"0\r\nX: " + b"a" * 40, 431, limits)
    assert "trailer section larger than 32" in str(error)


def test_trailer_count_is_bounded_by_the_header_count():
    limits = Limits(max_header_count=3)
    trailers = b"".join(b"X-%d: 1\r\n" % i for i in range(4))
    assert refused(HEAD + b"0\r\n" + trailers + b"\r\n", 431, limits)


def test_chunked_body_limit_is_413_at_the_chunk_that_crosses_it():
    limits = Limits(max_body=8)
    assert body(chunked(b"4\r\nabcd\r\n4\r\nefgh\r\n0\r\n\r\n", limits)) == b"abcdefgh"
    error = refused(HEAD + b"4\r\nabcd\r\n5\r\n", 413, limits)
    assert "limit of 8" in str(error)


def test_eof_inside_a_chunked_body_is_a_truncated_message():
    reader = ChunkedReader(Limits())
    buf = ReceiveBuffer()
    buf.feed(b"5\r\nhel")
    assert reader.read(buf) == Data(b"hel")
    assert reader.read(buf) is None
    with pytest.raises(RemoteProtocolError) as caught:
        reader.read_eof()
    assert "chunk data" in str(caught.value)


def test_large_chunk_data_is_handed_over_in_the_pieces_it_arrives_in():
    reader = ChunkedReader(Limits())
    buf = ReceiveBuffer()
    buf.feed(b"10\r\n0123456789")
    assert reader.read(buf) == Data(b"0123456789")
    buf.feed(b"abcdef\r\n0\r\n\r\n")
    assert [reader.read(buf), reader.read(buf)] == [Data(b"abcdef"), EndOfMessage()]


def test_writing_chunks_and_the_last_chunk():
    payload = memoryview(b"hello")
    parts = chunk_parts(payload)
    assert parts[1] is payload  # passed through, not copied
    assert b"".join(parts) == b"5\r\nhello\r\n"
    assert chunk_parts(b"") == []
    assert last_chunk([(b"x", b"1")]) == b"0\r\nx: 1\r\n\r\n"
    assert last_chunk([]) == b"0\r\n\r\n"
