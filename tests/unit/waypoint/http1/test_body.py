"""Body readers and writers on their own: lengths, close-delimited bodies, limits, trailers."""

from __future__ import annotations

import pytest

from waypoint.http1 import Data, EndOfMessage, LocalProtocolError, RemoteProtocolError
from waypoint.http1.body import (
    ChunkedWriter,
    ContentLengthReader,
    ContentLengthWriter,
    UntilCloseReader,
    UntilCloseWriter,
    reader_for,
    writer_for,
)
from waypoint.http1.buffer import ReceiveBuffer
from waypoint.http1.chunked import ChunkedReader
from waypoint.http1.framing import CHUNKED, NO_BODY, UNTIL_CLOSE, Framing, Kind
from waypoint.http1.limits import Limits


def fed(data: bytes) -> ReceiveBuffer:
    buf = ReceiveBuffer()
    buf.feed(data)
    return buf


def test_content_length_reader_stops_at_the_length_and_leaves_the_rest():
    reader, buf = ContentLengthReader(3), fed(b"abcdef")
    assert reader.read(buf) == Data(b"abc")
    assert reader.read(buf) == EndOfMessage()
    assert bytes(buf) == b"def"


def test_content_length_reader_reports_a_truncated_body():
    reader, buf = ContentLengthReader(5), fed(b"ab")
    assert reader.read(buf) == Data(b"ab")
    assert reader.read(buf) is None
    with pytest.raises(RemoteProtocolError, match="after 2 of 5"):
        reader.read_eof()


def test_until_close_reader_takes_everything_and_ends_at_eof():
    reader, buf = UntilCloseReader(None), fed(b"abc")
    assert reader.read(buf) == Data(b"abc")
    assert reader.read(buf) is None
    assert reader.read_eof() == EndOfMessage()


def test_until_close_reader_enforces_the_body_limit():
    reader = UntilCloseReader(4)
    assert reader.read(fed(b"abcd")) == Data(b"abcd")
    with pytest.raises(RemoteProtocolError) as caught:
        reader.read(fed(b"e"))
    assert caught.value.status_hint == 413


@pytest.mark.parametrize(
    ("framing", "kind"),
    [
        (CHUNKED, ChunkedReader),
        (UNTIL_CLOSE, UntilCloseReader),
        (NO_BODY, ContentLengthReader),
        (Framing(Kind.LENGTH, 9), ContentLengthReader),
    ],
)
def test_reader_for_each_framing(framing, kind):
    assert isinstance(reader_for(framing, Limits()), kind)


def test_writers_pass_payload_objects_through():
    payload = memoryview(b"abc")
    assert ContentLengthWriter(3).data(payload)[0] is payload
    assert UntilCloseWriter().data(payload)[0] is payload
    assert ChunkedWriter().data(payload)[1] is payload


def test_a_refused_write_leaves_the_writer_unchanged():
    writer = ContentLengthWriter(3)
    with pytest.raises(LocalProtocolError):
        writer.data(b"abcd")
    assert writer.data(b"abc") == [b"abc"]
    assert writer.end([]) == []


def test_only_chunked_writes_trailers_and_never_framing_ones():
    with pytest.raises(LocalProtocolError, match="trailers need chunked"):
        UntilCloseWriter().end([(b"x", b"1")])
    with pytest.raises(LocalProtocolError, match="content-length"):
        ChunkedWriter().end([(b"content-length", b"1")])
    assert ChunkedWriter().end([(b"x", b"1")]) == [b"0\r\nx: 1\r\n\r\n"]


def test_a_bodiless_writer_says_why_it_refuses_data():
    writer = writer_for(NO_BODY, "a 304 response to GET")
    with pytest.raises(LocalProtocolError, match="304 response to GET"):
        writer.data(b"x")
    assert writer.data(b"") == []
