"""The benchmark client's HTTP/1.1, sans-I/O: fixed GET requests out, finished responses in.

Theory of operation: an open-loop load generator needs to know exactly when each response has
fully arrived, on keep-alive connections, and nothing more. Requests on one connection are
answered in order (RFC 9112 9.3), so each request's tag (its due time) waits in a FIFO and the
response that ends next finishes the oldest tag. The parser only frames: a status line, headers
up to the empty line, then a body delimited by Content-Length or chunked coding (trailers
skipped); 1xx, 204 and 304 heads carry no body. A response framed by connection close cannot
tell when it ends on a kept-alive connection, so it is refused with `BenchProtocolError`, as is
anything malformed: a benchmark must not count garbage as a served request.

Same shape as h11: `request(tag)` queues bytes, `data_to_send()` hands them out,
`receive_data(bytes)` returns the `Completed` responses. No socket, no clock.
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass
from typing import Generic, TypeVar

Tag = TypeVar("Tag")

_STATUS_LINE = re.compile(rb"HTTP/1\.[01] (\d{3})(?: [^\r\n]*)?")
_CHUNK_SIZE = re.compile(rb"([0-9A-Fa-f]{1,15})(?:;[^\r\n]*)?")
MAX_HEAD = 64 * 1024


class BenchProtocolError(Exception):
    """The server under test answered something the benchmark cannot count as a response."""


@dataclass(frozen=True)
class Completed(Generic[Tag]):
    tag: Tag  # what request() was given for the request this response answers
    status: int  # the final status code; 0 when the stream was reset (HTTP/2 only)


def build_request(authority: str, path: str = "/") -> bytes:
    return (
        f"GET {path} HTTP/1.1\r\nhost: {authority}\r\nuser-agent: nodemesh-bench\r\n\r\n"
    ).encode("ascii")


class Http1Client(Generic[Tag]):
    """One keep-alive HTTP/1.1 connection's worth of framing."""

    def __init__(self, authority: str, path: str = "/") -> None:
        self._request = build_request(authority, path)
        self._out = bytearray()
        self._buf = bytearray()
        self._tags: deque[Tag] = deque()
        self._status = 0
        self._body_left = 0  # bytes of the current body (or chunk) still to come
        self._state = "head"  # head | body | chunk-size | chunk-data | chunk-end | trailers

    @property
    def outstanding(self) -> int:
        """Requests sent and not yet answered."""
        return len(self._tags)

    def request(self, tag: Tag) -> None:
        self._tags.append(tag)
        self._out += self._request

    def data_to_send(self) -> bytes:
        out, self._out = bytes(self._out), bytearray()
        return out

    def receive_data(self, data: bytes) -> list[Completed[Tag]]:
        self._buf += data
        done: list[Completed[Tag]] = []
        while self._step(done):
            pass
        return done

    # -- the framing state machine: each step consumes one piece, or says it needs more -------
    def _step(self, done: list[Completed[Tag]]) -> bool:
        if self._state == "head":
            return self._head(done)
        if self._state in ("body", "chunk-data"):
            return self._body(done)
        return self._line(done)

    def _head(self, done: list[Completed[Tag]]) -> bool:
        end = self._buf.find(b"\r\n\r\n")
        if end < 0:
            if len(self._buf) > MAX_HEAD:
                raise BenchProtocolError(f"response head longer than {MAX_HEAD} bytes")
            return False
        head = bytes(self._buf[:end])
        del self._buf[: end + 4]
        status, length, chunked = _parse_head(head)
        if 100 <= status < 200:
            return True  # an interim response: the final one follows
        self._status = status
        if chunked:
            self._state = "chunk-size"
        elif status in (204, 304) or length == 0:
            self._finish(done)
        elif length is None:
            raise BenchProtocolError(
                f"{status} response has neither Content-Length nor chunked coding; "
                "the benchmark needs responses that keep the connection reusable"
            )
        else:
            self._state, self._body_left = "body", length
        return True

    def _body(self, done: list[Completed[Tag]]) -> bool:
        if not self._buf:
            return False
        taken = min(self._body_left, len(self._buf))
        del self._buf[:taken]
        self._body_left -= taken
        if self._body_left:
            return False
        if self._state == "body":
            self._finish(done)
        else:
            self._state = "chunk-end"
        return True

    def _line(self, done: list[Completed[Tag]]) -> bool:
        end = self._buf.find(b"\r\n")
        if end < 0:
            if len(self._buf) > MAX_HEAD:
                raise BenchProtocolError("chunked framing line too long")
            return False
        line = bytes(self._buf[:end])
        del self._buf[: end + 2]
        if self._state == "chunk-size":
            size = _chunk_size(line)
            self._state, self._body_left = ("trailers", 0) if size == 0 else ("chunk-data", size)
        elif self._state == "chunk-end":
            if line:
                raise BenchProtocolError(f"expected CRLF after a chunk, got {line[:40]!r}")
            self._state = "chunk-size"
        elif not line:  # the empty line that ends the trailers
            self._finish(done)
        return True

    def _finish(self, done: list[Completed[Tag]]) -> None:
        if not self._tags:
            raise BenchProtocolError(f"a {self._status} response arrived for no request")
        done.append(Completed(self._tags.popleft(), self._status))
        self._state = "head"


def _parse_head(head: bytes) -> tuple[int, int | None, bool]:
    """(status, Content-Length or None, chunked) from a response head without its blank line."""
    lines = head.split(b"\r\n")
    match = _STATUS_LINE.fullmatch(lines[0])
    if match is None:
        raise BenchProtocolError(f"not an HTTP/1.1 status line: {lines[0][:60]!r}")
    length: int | None = None
    chunked = False
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        if not sep:
            raise BenchProtocolError(f"header line without a colon: {line[:60]!r}")
        name, value = name.strip().lower(), value.strip()
        if name == b"content-length":
            if not value.isdigit():
                raise BenchProtocolError(f"bad Content-Length {value[:30]!r}")
            length = int(value)
        elif name == b"transfer-encoding":
            chunked = value.lower().endswith(b"chunked")
    return int(match.group(1)), length, chunked


def _chunk_size(line: bytes) -> int:
    match = _CHUNK_SIZE.fullmatch(line)
    if match is None:
        raise BenchProtocolError(f"bad chunk size line {line[:40]!r}")
    return int(match.group(1), 16)
