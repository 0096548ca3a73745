"""Start lines and header sections: bytes from the buffer to a validated head event.

Theory of operation: a head is read in two bounded steps. First the start line (request line or
status line) is taken and validated on its own, so a malformed or oversized one is refused before
any header byte is buffered; it has its own limit and status (414 for a request line). Then the
field section up to the empty line is taken in one search and validated by one linear regex over
the whole section (`_FIELD_SECTION`: token, colon, value bytes, CRLF, repeated), so the per-line
Python work is only splitting and lower-casing. Only when the section fails does `_field_error`
walk its lines to say exactly what was wrong.

What is refused here is grammar: obs-fold, whitespace before the colon, names that are not
tokens, values with CTLs, bare CR/LF, unsupported versions (505), malformed targets. What the
fields mean for framing (Content-Length, Transfer-Encoding, Host, Connection) is `framing`'s job.
"""

from __future__ import annotations

import re

from waypoint.http1.buffer import ReceiveBuffer
from waypoint.http1.errors import RemoteProtocolError
from waypoint.http1.events import Headers, InformationalResponse, Request, Response
from waypoint.http1.limits import Limits
from waypoint.http1.syntax import (
    ABSOLUTE_FORM,
    AUTHORITY_FORM,
    FIELD_VALUE_BAD,
    OWS,
    SUPPORTED_VERSIONS,
    TARGET,
    TOKEN,
    TOKEN_CHARS,
    VERSION,
    describe_bad_byte,
)

# field-line *( CRLF field-line ), field-line = token ":" value-bytes (OWS is stripped later).
# Linear: the value class has no CR, so each CRLF is the only way from one line to the next.
_FIELD_LINE = rb"[" + TOKEN_CHARS + rb"]+:[\t\x20-\x7e\x80-\xff]*"
_FIELD_SECTION = re.compile(_FIELD_LINE + rb"(?:\r\n" + _FIELD_LINE + rb")*")


def parse_version(raw: bytes) -> bytes:
    """b"HTTP/1.1" -> b"1.1"; 400 for a malformed version, 505 for one we do not speak."""
    if not VERSION.fullmatch(raw):
        raise RemoteProtocolError(f"malformed HTTP version {raw[:20]!r}: expected HTTP/1.1")
    version = raw[5:]
    if version not in SUPPORTED_VERSIONS:
        raise RemoteProtocolError(
            f"HTTP version {raw.decode()} is not supported: only HTTP/1.0 and HTTP/1.1", 505
        )
    return version


def check_target(method: bytes, target: bytes) -> None:
    """Refuse a request-target that is not in the one form its method allows (RFC 9112 §3.2)."""
    if not TARGET.fullmatch(target):
        raise RemoteProtocolError(
            f"request target {target[:80]!r} has a control character, non-ASCII byte or '#'"
        )
    if method == b"CONNECT":
        if not AUTHORITY_FORM.fullmatch(target):
            raise RemoteProtocolError(
                f"CONNECT target {target[:80]!r} is not authority-form host:port"
            )
        return
    if target == b"*":
        if method != b"OPTIONS":
            raise RemoteProtocolError(f"target '*' is only valid with OPTIONS, not {method!r}")
        return
    if target[0] != 0x2F and not ABSOLUTE_FORM.match(target):  # 0x2F is "/"
        raise RemoteProtocolError(
            f"request target {target[:80]!r} is neither origin-form (/path) nor absolute-form "
            "(http://host/path)"
        )


def parse_request_line(line: bytes) -> tuple[bytes, bytes, bytes]:
    """`METHOD SP target SP HTTP/x.y`, single spaces, nothing else -> (method, target, version)."""
    parts = line.split(b" ")
    if len(parts) != 3 or not all(parts):
        raise RemoteProtocolError(
            f"malformed request line {line[:80]!r}: expected METHOD SP request-target SP "
            "HTTP-version, separated by single spaces"
        )
    method, target, raw_version = parts
    if not TOKEN.fullmatch(method):
        raise RemoteProtocolError(f"invalid method {method[:40]!r}: a method is a token")
    version = parse_version(raw_version)
    check_target(method, target)
    return method, target, version


def parse_status_line(line: bytes) -> tuple[bytes, int, bytes]:
    """`HTTP/x.y SP 3DIGIT SP reason` -> (version, status, reason).

    The SP before an empty reason is optional here: many servers omit it, and reading it either
    way cannot change where the message ends.
    """
    raw_version, _, rest = line.partition(b" ")
    version = parse_version(raw_version)
    code, _, reason = rest.partition(b" ")
    if len(code) != 3 or not code.isdigit() or not 100 <= int(code) <= 599:
        raise RemoteProtocolError(f"malformed status code {code[:20]!r}: expected 100-599")
    if FIELD_VALUE_BAD.search(reason):
        raise RemoteProtocolError(f"reason phrase has {describe_bad_byte(reason)}")
    return version, int(code), reason


def parse_fields(block: bytes, max_count: int, what: str) -> Headers:
    """A field section (CRLF-separated lines) -> [(lower-case name, value)], order kept, OWS
    around each value removed."""
    if not block:
        return []
    if block.count(b"\r\n") >= max_count:
        raise RemoteProtocolError(f"more than {max_count} {what} fields", 431)
    if not _FIELD_SECTION.fullmatch(block):
        raise _field_error(block, what)
    return [
        (name.lower(), value.strip(OWS))
        for name, _, value in (line.partition(b":") for line in block.split(b"\r\n"))
    ]


def _field_error(block: bytes, what: str) -> RemoteProtocolError:
    """Find the line of `block` that failed and say precisely why (the slow path, errors only)."""
    for line in block.split(b"\r\n"):
        name, colon, value = line.partition(b":")
        if not colon or not TOKEN.fullmatch(name) or FIELD_VALUE_BAD.search(value):
            return _line_error(line, what)
    return RemoteProtocolError(f"malformed {what} section")  # unreachable: some line failed


def _line_error(line: bytes, what: str) -> RemoteProtocolError:
    """Say why `line` is not `name ":" OWS value OWS`."""
    shown = line[:60]
    name, colon, value = line.partition(b":")
    if line[:1] in (b" ", b"\t"):
        reason = "starts with whitespace: obs-fold line folding is refused (RFC 9112 §5.2)"
    elif not colon:
        reason = "has no colon"
    elif not name:
        reason = "has an empty field name"
    elif name[-1:] in (b" ", b"\t"):
        reason = (
            "has whitespace between the field name and the colon (RFC 9112 §5.1), "
            "a request-smuggling shape"
        )
    elif not TOKEN.fullmatch(name):
        reason = "has a field name that is not a token"
    else:
        reason = f"has {describe_bad_byte(value.strip(OWS))} in its value"
    return RemoteProtocolError(f"{what} line {shown!r} {reason}")


class RequestHeadReader:
    """Reads one request head across as many `read` calls as the bytes need."""

    __slots__ = ("_blank_seen", "_limits", "_start")

    def __init__(self, limits: Limits) -> None:
        self._limits = limits
        self._start: tuple[bytes, bytes, bytes] | None = None
        self._blank_seen = False

    @property
    def started(self) -> bool:
        """Whether a request line was read (EOF now is a truncated request).

        A lone leftover CRLF followed by EOF is not a request: old clients send it after a body.
        """
        return self._start is not None

    def read(self, buf: ReceiveBuffer) -> Request | None:
        limits = self._limits
        while self._start is None:
            line = buf.take_line(limits.max_request_line, "request line", 414)
            if line is None:
                return None
            if line:
                self._start = parse_request_line(line)
            elif self._blank_seen:
                raise RemoteProtocolError("more than one empty line before a request line")
            else:  # RFC 9112 §2.2: tolerate one CRLF left over after a previous body
                self._blank_seen = True
        block = buf.take_block(limits.max_header_bytes, "header section", 431)
        if block is None:
            return None
        method, target, version = self._start
        headers = parse_fields(block, limits.max_header_count, "header")
        return Request(method, target, version, headers)


class ResponseHeadReader:
    """Reads one response head (1xx or final) across as many `read` calls as the bytes need."""

    __slots__ = ("_limits", "_start")

    def __init__(self, limits: Limits) -> None:
        self._limits = limits
        self._start: tuple[bytes, int, bytes] | None = None

    @property
    def started(self) -> bool:
        return self._start is not None

    def read(self, buf: ReceiveBuffer) -> Response | InformationalResponse | None:
        limits = self._limits
        if self._start is None:
            line = buf.take_line(limits.max_request_line, "status line", 502)
            if line is None:
                return None
            self._start = parse_status_line(line)
        block = buf.take_block(limits.max_header_bytes, "header section", 431)
        if block is None:
            return None
        version, status, reason = self._start
        headers = parse_fields(block, limits.max_header_count, "header")
        kind = InformationalResponse if status < 200 else Response
        return kind(status, reason, version, headers)
