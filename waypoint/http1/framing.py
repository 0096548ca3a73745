"""What a message's fields say about its body and its connection (RFC 9112 §6, §9).

Theory of operation: request smuggling lives in the gap between two parsers that disagree on where
a message ends. This module leaves no gap to disagree in: a message is framed by exactly one
well-formed Content-Length, or by a Transfer-Encoding that is exactly `chunked`, or (responses
only) by the connection closing; every ambiguous shape is refused, even ones that RFC 9112 would
let a lenient recipient repair (two identical Content-Lengths, "5, 5", CL beside TE).

The fields that matter are gathered in one pass (`framing_fields`), not looked up one scan of
the header list at a time: this runs for every message on the proxy's request path.

The same checks serve both directions. A `fail` callable builds the error, so the messages are
identical: `remote` raises RemoteProtocolError for what a peer sent, `local` raises
LocalProtocolError for what our caller asked us to send.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass

from waypoint.http1.errors import LocalProtocolError, RemoteProtocolError
from waypoint.http1.events import Headers
from waypoint.http1.syntax import HOST, TOKEN, list_elements

Fail = Callable[[str, int], Exception]
# The values of the fields that frame or route a message, by lower-case name.
Fields = dict[bytes, list[bytes]]
FRAMING_NAMES = frozenset(
    {b"content-length", b"transfer-encoding", b"connection", b"host", b"upgrade", b"expect"}
)
# Past 18 digits a length cannot be honest, and int() of a huge digit string costs CPU.
_MAX_LENGTH_DIGITS = 18


def remote(message: str, status: int) -> Exception:
    return RemoteProtocolError(message, status)


def local(message: str, status: int) -> Exception:
    return LocalProtocolError(message)


class Kind(enum.Enum):
    NONE = "no body"
    LENGTH = "Content-Length"
    CHUNKED = "chunked"
    CLOSE = "until close"


@dataclass(frozen=True, slots=True)
class Framing:
    """How a body is delimited; `length` only matters for Kind.LENGTH."""

    kind: Kind
    length: int = 0


NO_BODY = Framing(Kind.NONE)
CHUNKED = Framing(Kind.CHUNKED)
UNTIL_CLOSE = Framing(Kind.CLOSE)


def values(headers: Headers, name: bytes) -> list[bytes]:
    """Every value of the (lower-case) field `name`, in order."""
    return [value for key, value in headers if key == name]


def framing_fields(headers: Headers) -> Fields:
    """The values of every FRAMING_NAMES field, gathered in one pass over `headers`."""
    found: Fields = {}
    for name, value in headers:
        if name in FRAMING_NAMES:
            found.setdefault(name, []).append(value)
    return found


def content_length(fields: Fields, fail: Fail) -> int | None:
    """The one Content-Length, or None. Any repetition is refused, even of the same value."""
    found = fields.get(b"content-length")
    if not found:
        return None
    if len(found) > 1:
        raise fail(
            f"Content-Length appears {len(found)} times: refused even when the values agree, "
            "a request-smuggling shape",
            400,
        )
    raw = found[0]
    if not raw.isdigit():
        raise fail(
            f"Content-Length {raw[:40]!r} is not a decimal number (lists such as '5, 5', signs "
            "and spaces are refused)",
            400,
        )
    if len(raw) > _MAX_LENGTH_DIGITS:
        raise fail(f"Content-Length {raw[:40]!r} is implausibly large", 400)
    return int(raw)


def is_chunked(fields: Fields, version: bytes, has_length: bool, fail: Fail) -> bool:
    """Whether Transfer-Encoding frames the body; refuses every shape but exactly `chunked`."""
    found = fields.get(b"transfer-encoding")
    if not found:
        return False
    if version == b"1.0":
        raise fail("Transfer-Encoding in an HTTP/1.0 message is refused (RFC 9112 §6.1)", 400)
    if has_length:
        raise fail(
            "Content-Length and Transfer-Encoding both present: refused, a request-smuggling shape",
            400,
        )
    codings = list_elements(found)
    bad = [coding for coding in codings if not TOKEN.fullmatch(coding)]
    if not codings or bad:
        raise fail(f"malformed Transfer-Encoding {b', '.join(found)[:80]!r}", 400)
    if codings.count(b"chunked") > 1:
        raise fail("Transfer-Encoding applies chunked more than once", 400)
    if codings[-1] != b"chunked":
        raise fail(
            f"Transfer-Encoding {b', '.join(codings)[:80]!r} does not end in chunked: the body "
            "length cannot be determined",
            400,
        )
    if len(codings) > 1:
        raise fail(
            f"transfer coding {codings[0][:40]!r} is not implemented: only 'chunked' alone is",
            501,
        )
    return True


def request_framing(fields: Fields, version: bytes, fail: Fail) -> Framing:
    """RFC 9112 §6.3 for requests: chunked, else Content-Length, else no body."""
    length = content_length(fields, fail)
    if is_chunked(fields, version, length is not None, fail):
        return CHUNKED
    if length:
        return Framing(Kind.LENGTH, length)
    return NO_BODY


def has_no_body(status: int, request_method: bytes | None) -> bool:
    """Responses that end with their head whatever their fields say (RFC 9112 §6.3 1-2)."""
    if request_method == b"HEAD" or status < 200 or status in (204, 304):
        return True
    return request_method == b"CONNECT" and status < 300


def response_framing(
    status: int, fields: Fields, version: bytes, request_method: bytes | None, fail: Fail
) -> Framing:
    """RFC 9112 §6.3 for responses; the framing fields are validated even when unused."""
    length = content_length(fields, fail)
    chunked = is_chunked(fields, version, length is not None, fail)
    if has_no_body(status, request_method):
        return NO_BODY
    if chunked:
        return CHUNKED
    if length is not None:
        return Framing(Kind.LENGTH, length) if length else NO_BODY
    return UNTIL_CLOSE


def connection_tokens(fields: Fields, fail: Fail) -> list[bytes]:
    """The lower-case options of every Connection field; anything but tokens is refused."""
    tokens = list_elements(fields.get(b"connection", ()))
    for token in tokens:
        if not TOKEN.fullmatch(token):
            raise fail(f"Connection option {token[:40]!r} is not a token", 400)
    return tokens


def keep_alive(version: bytes, tokens: list[bytes]) -> bool:
    """HTTP/1.1 persists unless told `close`; HTTP/1.0 only when it asks for `keep-alive`."""
    if b"close" in tokens:
        return False
    return version == b"1.1" or b"keep-alive" in tokens


def check_host(fields: Fields, version: bytes, fail: Fail) -> None:
    """HTTP/1.1 needs exactly one Host; HTTP/1.0 at most one (RFC 9112 §3.2)."""
    hosts = fields.get(b"host", ())
    if len(hosts) > 1:
        raise fail(f"Host appears {len(hosts)} times: a request names one host", 400)
    if not hosts:
        if version == b"1.1":
            raise fail("missing Host header: HTTP/1.1 requires one (RFC 9112 §3.2)", 400)
        return
    if not HOST.fullmatch(hosts[0]):
        raise fail(f"invalid Host {hosts[0][:80]!r}: expected host[:port]", 400)


def switch_proposal(method: bytes, version: bytes, fields: Fields, tokens: list[bytes]) -> str:
    """'connect' for CONNECT, 'upgrade' for Connection: upgrade + Upgrade, else ''.

    RFC 9110 §7.8: an Upgrade in an HTTP/1.0 request is ignored (a 1.0 intermediary may have
    forwarded it without understanding it).
    """
    if method == b"CONNECT":
        return "connect"
    if version == b"1.1" and b"upgrade" in tokens and any(fields.get(b"upgrade", ())):
        return "upgrade"
    return ""


def expects_continue(version: bytes, fields: Fields) -> bool:
    """Whether the client waits for 100 Continue before sending its body (HTTP/1.1 only)."""
    if version != b"1.1" or b"expect" not in fields:
        return False
    return b"100-continue" in list_elements(fields[b"expect"])
