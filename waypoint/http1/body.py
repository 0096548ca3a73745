"""Body framing in both directions: readers turn bytes into Data/EndOfMessage, writers the reverse.

Theory of operation: once a head is known, `framing` has decided how its body is delimited, and
`reader_for` / `writer_for` return the one object that enforces that decision for the rest of the
message. Readers take whole slices of the receive buffer (the whole buffer is handed over without
a copy when the body claims all of it); writers return a list of parts whose payload is the
caller's own object, so a shell can `writelines` them without joining. Writers check before they
count, so a refused `Data` leaves them as they were.

Chunked reading lives in `chunked`; everything else is short enough to live here.
"""

from __future__ import annotations

from waypoint.http1.buffer import ReceiveBuffer
from waypoint.http1.chunked import ChunkedReader, chunk_parts, forbidden_trailer, last_chunk
from waypoint.http1.errors import LocalProtocolError, RemoteProtocolError
from waypoint.http1.events import Data, EndOfMessage, Headers
from waypoint.http1.framing import Framing, Kind
from waypoint.http1.limits import Limits

Part = bytes | bytearray | memoryview


class ContentLengthReader:
    """Exactly `length` bytes, then EndOfMessage; EOF before that is a truncated message."""

    __slots__ = ("_length", "_remaining")

    def __init__(self, length: int) -> None:
        self._length = self._remaining = length

    def read(self, buf: ReceiveBuffer) -> Data | EndOfMessage | None:
        if not self._remaining:
            return EndOfMessage()
        if not len(buf):
            return None
        data = buf.take(self._remaining)
        self._remaining -= len(data)
        return Data(data)

    def read_eof(self) -> EndOfMessage:
        raise RemoteProtocolError(
            f"connection closed after {self._length - self._remaining} of {self._length} body "
            "bytes announced by Content-Length"
        )


class UntilCloseReader:
    """A response body with neither Content-Length nor chunked: it ends when the peer closes."""

    __slots__ = ("_max_body", "_total")

    def __init__(self, max_body: int | None) -> None:
        self._max_body = max_body
        self._total = 0

    def read(self, buf: ReceiveBuffer) -> Data | None:
        if not len(buf):
            return None
        self._total += len(buf)
        if self._max_body is not None and self._total > self._max_body:
            raise RemoteProtocolError(f"body larger than the limit of {self._max_body} bytes", 413)
        return Data(buf.take(len(buf)))

    def read_eof(self) -> EndOfMessage:
        return EndOfMessage()


BodyReader = ContentLengthReader | UntilCloseReader | ChunkedReader


def reader_for(framing: Framing, limits: Limits) -> BodyReader:
    """The reader that enforces `framing`; a Content-Length over `max_body` is refused up front."""
    if framing.kind is Kind.CHUNKED:
        return ChunkedReader(limits)
    if framing.kind is Kind.CLOSE:
        return UntilCloseReader(limits.max_body)
    if limits.max_body is not None and framing.length > limits.max_body:
        raise RemoteProtocolError(
            f"Content-Length {framing.length} exceeds the limit of {limits.max_body} bytes", 413
        )
    return ContentLengthReader(framing.length)


def _refuse_trailers(trailers: Headers, framing: str) -> None:
    if trailers:
        raise LocalProtocolError(
            f"trailers need chunked framing; this message is framed by {framing}"
        )


class ContentLengthWriter:
    """Passes body through while counting it against the announced length."""

    __slots__ = ("_length", "_remaining", "_what")

    def __init__(self, length: int, what: str = "Content-Length") -> None:
        self._length = self._remaining = length
        self._what = what

    def data(self, data: Part) -> list[Part]:
        if len(data) > self._remaining:
            raise LocalProtocolError(
                f"{len(data)} body bytes overrun the {self._what}: {self._remaining} of "
                f"{self._length} bytes left"
            )
        self._remaining -= len(data)
        return [data] if len(data) else []

    def end(self, trailers: Headers) -> list[Part]:
        _refuse_trailers(trailers, self._what)
        if self._remaining:
            raise LocalProtocolError(
                f"message ended after {self._length - self._remaining} of the {self._length} "
                f"bytes its {self._what} announced; send the rest or close the connection"
            )
        return []


class ChunkedWriter:
    """Frames each Data as one chunk; trailers go out with the last chunk."""

    __slots__ = ()

    def data(self, data: Part) -> list[Part]:
        return chunk_parts(data)

    def end(self, trailers: Headers) -> list[Part]:
        forbidden = forbidden_trailer(trailers)
        if forbidden is not None:
            raise LocalProtocolError(
                f"trailer field {forbidden.decode()!r} cannot be sent: it frames or routes a "
                "message"
            )
        return [last_chunk(trailers)]


class UntilCloseWriter:
    """Passes body through; the message ends when the caller closes the connection."""

    __slots__ = ()

    def data(self, data: Part) -> list[Part]:
        return [data] if len(data) else []

    def end(self, trailers: Headers) -> list[Part]:
        _refuse_trailers(trailers, "closing the connection")
        return []


BodyWriter = ContentLengthWriter | ChunkedWriter | UntilCloseWriter


def writer_for(framing: Framing, no_body_reason: str = "this message") -> BodyWriter:
    """The writer that enforces `framing`; a bodiless message refuses any Data."""
    if framing.kind is Kind.CHUNKED:
        return ChunkedWriter()
    if framing.kind is Kind.CLOSE:
        return UntilCloseWriter()
    if framing.kind is Kind.NONE:
        return ContentLengthWriter(0, f"empty body of {no_body_reason}")
    return ContentLengthWriter(framing.length)
