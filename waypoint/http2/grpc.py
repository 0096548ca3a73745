"""gRPC as the waypoint sees it: recognising a call, reading its outcome, answering one. Pure.

Theory of operation
-------------------
A gRPC call is an HTTP/2 request with ``content-type: application/grpc`` (or ``+proto``,
``+json``, ``;params``) and ``te: trailers``. Its response is HTTP 200 whatever happens; the
outcome is the ``grpc-status`` trailer, with a percent-encoded ``grpc-message``. A call that
fails before any message is "trailers-only": one HEADERS frame with END_STREAM carrying
``:status 200`` and ``grpc-status`` together. So, for a proxy:

* The outcome of a call (for telemetry, and for retry-on UNAVAILABLE) is ``grpc-status`` from the
  trailers, or from the response head of a trailers-only response (`call_status`).
* An upstream that is not gRPC-aware (a plain HTTP proxy or load balancer answering 503) sends
  an HTTP status and no ``grpc-status``; gRPC's http-grpc-status-mapping.md says what a client
  makes of it (`status_from_http`). That table is for reading only, never to pick an HTTP status.
* The waypoint's own refusals (no route, denied, upstream down, timeout) go to a gRPC client as a
  trailers-only response (`local_reply`), not as a bare HTTP error: the client reads grpc-status
  and grpc-message, and a bare 503 would lose the message. A timeout the proxy enforced is
  DEADLINE_EXCEEDED, not the table's UNAVAILABLE for 504: the deadline is what ran out.

gRPC-Web (``application/grpc-web*``) carries its trailers in the body and is not gRPC here.
"""

from __future__ import annotations

import re
from enum import IntEnum
from urllib.parse import unquote_to_bytes

from waypoint.messages import Headers, RequestHead, ResponseHead

GRPC_STATUS = "grpc-status"
GRPC_MESSAGE = "grpc-message"
GRPC_TIMEOUT = "grpc-timeout"
MAX_MESSAGE = 1024  # characters of a grpc-message we build: enough to explain, bounded


class GrpcStatus(IntEnum):
    """gRPC status codes (grpc/doc/statuscodes.md)."""

    OK = 0
    CANCELLED = 1
    UNKNOWN = 2
    INVALID_ARGUMENT = 3
    DEADLINE_EXCEEDED = 4
    NOT_FOUND = 5
    ALREADY_EXISTS = 6
    PERMISSION_DENIED = 7
    RESOURCE_EXHAUSTED = 8
    FAILED_PRECONDITION = 9
    ABORTED = 10
    OUT_OF_RANGE = 11
    UNIMPLEMENTED = 12
    INTERNAL = 13
    UNAVAILABLE = 14
    DATA_LOSS = 15
    UNAUTHENTICATED = 16


# gRPC's doc/http-grpc-status-mapping.md; every other HTTP status is UNKNOWN.
_FROM_HTTP = {
    400: GrpcStatus.INTERNAL,
    401: GrpcStatus.UNAUTHENTICATED,
    403: GrpcStatus.PERMISSION_DENIED,
    404: GrpcStatus.UNIMPLEMENTED,
    429: GrpcStatus.UNAVAILABLE,
    502: GrpcStatus.UNAVAILABLE,
    503: GrpcStatus.UNAVAILABLE,
    504: GrpcStatus.UNAVAILABLE,
}
# The proxy's own replies: what actually happened, where the table would blur it.
_LOCAL_REPLY = {**_FROM_HTTP, 408: GrpcStatus.DEADLINE_EXCEEDED, 504: GrpcStatus.DEADLINE_EXCEEDED}

_CONTENT_TYPE = re.compile(r"application/grpc(?:[+;].*)?\Z", re.IGNORECASE | re.DOTALL)
_TIMEOUT = re.compile(r"([0-9]{1,8})([HMSmun])\Z")
_TIMEOUT_UNITS = {"H": 3600.0, "M": 60.0, "S": 1.0, "m": 1e-3, "u": 1e-6, "n": 1e-9}


def is_grpc(content_type: str | None) -> bool:
    """True for application/grpc, application/grpc+proto, application/grpc;... (not grpc-web)."""
    return content_type is not None and _CONTENT_TYPE.match(content_type.strip()) is not None


def is_grpc_request(head: RequestHead) -> bool:
    return is_grpc(head.header("content-type"))


def grpc_status(headers: Headers) -> GrpcStatus | None:
    """The grpc-status in a trailer block (or trailers-only head); None if absent.

    A value that is not a known code reads as UNKNOWN, as gRPC clients treat it.
    """
    value = _first(headers, GRPC_STATUS)
    if value is None:
        return None
    value = value.strip()
    if not (value.isascii() and value.isdigit()):
        return GrpcStatus.UNKNOWN
    try:
        return GrpcStatus(int(value))
    except ValueError:
        return GrpcStatus.UNKNOWN


def grpc_message(headers: Headers) -> str:
    """The grpc-message, percent-decoded (malformed escapes are kept as sent); "" if absent."""
    value = _first(headers, GRPC_MESSAGE)
    if not value:
        return ""
    return unquote_to_bytes(value).decode("utf-8", "replace")


def status_from_http(http_status: int) -> GrpcStatus:
    """What a gRPC client makes of an HTTP status that came without grpc-status."""
    return _FROM_HTTP.get(http_status, GrpcStatus.UNKNOWN)


def call_status(head: ResponseHead, trailers: Headers = ()) -> GrpcStatus:
    """The outcome of a call from its response head and trailers.

    grpc-status in the head (trailers-only) or the trailers wins; without it a non-200 status is
    mapped by the table, and a 200 that never said how the call ended is UNKNOWN (grpc-java's
    "missing GRPC status in response").
    """
    for block in (head.headers, trailers):
        status = grpc_status(block)
        if status is not None:
            return status
    if head.status != 200:
        return status_from_http(head.status)
    return GrpcStatus.UNKNOWN


def error_response(status: GrpcStatus, message: str = "", headers: Headers = ()) -> ResponseHead:
    """A trailers-only response: send it with `send_response(..., end_stream=True)`."""
    fields: list[tuple[str, str]] = [
        ("content-type", "application/grpc"),
        (GRPC_STATUS, str(int(status))),
    ]
    if message:
        fields.append((GRPC_MESSAGE, encode_message(message[:MAX_MESSAGE])))
    return ResponseHead(200, (*fields, *headers))


def local_reply(http_status: int, message: str, headers: Headers = ()) -> ResponseHead:
    """The proxy's own error as a gRPC client should get it (e.g. 503 → 14, 504 → 4)."""
    return error_response(_LOCAL_REPLY.get(http_status, GrpcStatus.UNKNOWN), message, headers)


def encode_message(message: str) -> str:
    """grpc-message encoding: UTF-8, then percent-encode every byte outside 0x20-0x7E and '%'."""
    return "".join(
        chr(b) if 0x20 <= b <= 0x7E and b != 0x25 else f"%{b:02X}"
        for b in message.encode("utf-8", "replace")  # a lone surrogate becomes "?"
    )


def grpc_timeout(headers: Headers) -> float | None:
    """The grpc-timeout header in seconds ("100m" → 0.1); None if absent or malformed."""
    value = _first(headers, GRPC_TIMEOUT)
    match = _TIMEOUT.match(value.strip()) if value else None
    if match is None:
        return None
    return int(match.group(1)) * _TIMEOUT_UNITS[match.group(2)]


def _first(headers: Headers, name: str) -> str | None:
    for key, value in headers:
        if key == name:
            return value
    return None
