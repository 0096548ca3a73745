"""The chunked transfer coding (RFC 9112 §7.1), read strictly and written plainly.

Theory of operation: a chunked body is a loop of `size[;ext] CRLF data CRLF`, ended by a zero
size, an optional trailer section and an empty line. The reader is a small phase machine
(size line -> data -> CRLF -> ... -> trailers) that resumes wherever the bytes ran out; data
passes through as slices of the receive buffer, never byte by byte.

Strictness is the point: the size is 1-16 hex digits and nothing else (no sign, `0x`, spaces or
junk), an extension is exactly `;token[=token|quoted-string]` and all of them together fit in
`Limits.max_chunk_extensions`, chunk data is followed by exactly CRLF, and trailers may not carry
the fields that frame or route a message. Each of these is a place where two lenient parsers
have been shown to disagree about where a body ends.
"""

from __future__ import annotations

import enum
import re

from waypoint.http1.buffer import ReceiveBuffer
from waypoint.http1.errors import RemoteProtocolError
from waypoint.http1.events import Data, EndOfMessage, Headers
from waypoint.http1.headers import parse_fields
from waypoint.http1.limits import Limits
from waypoint.http1.syntax import TOKEN_CHARS

_TOKEN = rb"[" + TOKEN_CHARS + rb"]+"
_QUOTED = rb'"(?:[\t !#-\[\]-~\x80-\xff]|\\[\t -~\x80-\xff])*"'
_CHUNK_LINE = re.compile(
    rb"([0-9A-Fa-f]{1,16})((?:;" + _TOKEN + rb"(?:=(?:" + _TOKEN + rb"|" + _QUOTED + rb"))?)*)"
)
_MAX_SIZE_DIGITS = 16
# Fields that frame or route a message; a trailer carrying one could re-frame or re-route it
# for a downstream that merges trailers into the header section.
FORBIDDEN_TRAILERS = frozenset({b"content-length", b"transfer-encoding", b"host"})


def parse_chunk_line(line: bytes, max_extensions: int = 1024) -> int:
    """`1*16HEXDIG *( ";" token [ "=" ( token / quoted-string ) ] )` -> the chunk size."""
    match = _CHUNK_LINE.fullmatch(line)
    if match is None:
        raise RemoteProtocolError(_chunk_line_problem(line))
    if len(match.group(2)) > max_extensions:
        raise RemoteProtocolError(f"chunk extensions longer than {max_extensions} bytes")
    return int(match.group(1), 16)


def _chunk_line_problem(line: bytes) -> str:
    shown = line[:40]
    digits = len(line) - len(line.lstrip(b"0123456789abcdefABCDEF"))
    if digits == 0:
        return f"invalid chunk size in {shown!r}: expected 1 to 16 hex digits, no sign, 0x or space"
    if digits > _MAX_SIZE_DIGITS:
        return f"chunk size in {shown!r} is longer than {_MAX_SIZE_DIGITS} hex digits"
    if line[digits : digits + 1] != b";":
        return f"junk after the chunk size in {shown!r}"
    return f"malformed chunk extension in {shown!r}: expected ;token[=token|quoted-string]"


def forbidden_trailer(trailers: Headers) -> bytes | None:
    """The first trailer name that frames or routes a message, or None."""
    for name, _ in trailers:
        if name in FORBIDDEN_TRAILERS:
            return name
    return None


class _Phase(enum.Enum):
    SIZE = "chunk-size line"
    DATA = "chunk data"
    DATA_END = "CRLF after chunk data"
    TRAILERS = "trailer section"
    DONE = "done"


class ChunkedReader:
    """Turns a chunked body into Data events and one EndOfMessage(trailers)."""

    __slots__ = ("_limits", "_phase", "_remaining", "_total")

    def __init__(self, limits: Limits) -> None:
        self._limits = limits
        self._phase = _Phase.SIZE
        self._remaining = 0  # bytes left in the current chunk
        self._total = 0  # body bytes so far, against Limits.max_body

    def read(self, buf: ReceiveBuffer) -> Data | EndOfMessage | None:
        while True:
            phase = self._phase
            if phase is _Phase.DATA:
                return self._read_data(buf)
            if phase is _Phase.SIZE:
                if not self._read_size(buf):
                    return None
            elif phase is _Phase.DATA_END:
                if not self._read_data_end(buf):
                    return None
            else:
                return self._read_trailers(buf)

    def read_eof(self) -> EndOfMessage:
        raise RemoteProtocolError(
            f"connection closed in the middle of a chunked body (while reading the "
            f"{self._phase.value}, after {self._total} body bytes)"
        )

    def _read_size(self, buf: ReceiveBuffer) -> bool:
        limit = _MAX_SIZE_DIGITS + self._limits.max_chunk_extensions
        line = buf.take_line(limit, "chunk-size line", 400)
        if line is None:
            return False
        size = parse_chunk_line(line, self._limits.max_chunk_extensions)
        if size == 0:
            self._phase = _Phase.TRAILERS
            return True
        max_body = self._limits.max_body
        if max_body is not None and self._total + size > max_body:
            raise RemoteProtocolError(
                f"chunked body larger than the limit of {max_body} bytes", 413
            )
        self._remaining = size
        self._phase = _Phase.DATA
        return True

    def _read_data(self, buf: ReceiveBuffer) -> Data | None:
        if not len(buf):
            return None
        data = buf.take(self._remaining)
        self._remaining -= len(data)
        self._total += len(data)
        if not self._remaining:
            self._phase = _Phase.DATA_END
        return Data(data)

    def _read_data_end(self, buf: ReceiveBuffer) -> bool:
        found = buf.skip_crlf()
        if found is None:
            return False
        if not found:
            raise RemoteProtocolError("chunk data is not followed by exactly CRLF")
        self._phase = _Phase.SIZE
        return True

    def _read_trailers(self, buf: ReceiveBuffer) -> EndOfMessage | None:
        block = buf.take_block(self._limits.max_trailer_bytes, "trailer section", 431)
        if block is None:
            return None
        trailers = parse_fields(block, self._limits.max_header_count, "trailer")
        forbidden = forbidden_trailer(trailers)
        if forbidden is not None:
            raise RemoteProtocolError(
                f"trailer field {forbidden.decode()!r} is refused: it frames or routes a message"
            )
        self._phase = _Phase.DONE
        return EndOfMessage(trailers)


def chunk_parts(data: bytes | bytearray | memoryview) -> list[bytes | bytearray | memoryview]:
    """One chunk on the wire; the payload itself is passed through, not copied."""
    if not len(data):
        return []  # an empty chunk would end the body
    return [b"%x\r\n" % len(data), data, b"\r\n"]


def last_chunk(trailers: Headers) -> bytes:
    """The zero-size chunk, the trailer fields (already validated) and the final CRLF."""
    fields = b"".join(name + b": " + value + b"\r\n" for name, value in trailers)
    return b"0\r\n" + fields + b"\r\n"
