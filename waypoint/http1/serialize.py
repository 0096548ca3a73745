"""Heads to bytes, after checking that what the caller asks us to send is valid HTTP/1.1.

Theory of operation: a proxy copies values it got from one peer into messages for another, so
header injection is one careless forward away. Every name, value, method, target and reason the
caller hands to `send` is checked against the same grammar the parser enforces (`syntax`), and a
CR, LF or other control character raises LocalProtocolError before a byte is produced. Names are
lower-cased on the way out, the same form the parser reports.
"""

from __future__ import annotations

import re
from http import HTTPStatus

from waypoint.http1.errors import LocalProtocolError
from waypoint.http1.events import Headers
from waypoint.http1.syntax import (
    FIELD_VALUE_BAD,
    SUPPORTED_VERSIONS,
    TARGET,
    TOKEN,
    describe_bad_byte,
)

# A value FIELD_VALUE_BAD finds nothing in, with no SP or HTAB at either end (or empty).
_VISIBLE = rb"[\x21-\x7e\x80-\xff]"
_VALUE_OK = re.compile(rb"(?:" + _VISIBLE + rb"(?:[\t\x20-\x7e\x80-\xff]*" + _VISIBLE + rb")?)?")


def check_fields(headers: Headers, what: str = "header") -> Headers:
    """Validated (lower-case name, value) pairs; LocalProtocolError names the first bad one."""
    out: Headers = []
    for name, value in headers:
        if not isinstance(name, bytes) or not isinstance(value, bytes):
            raise LocalProtocolError(
                f"{what} names and values are bytes; got {type(name).__name__} "
                f"{type(value).__name__} for {name!r}: encode them first"
            )
        if not TOKEN.fullmatch(name):
            raise LocalProtocolError(f"{what} name {name[:60]!r} is not a token")
        if _VALUE_OK.fullmatch(value):  # the common case in one match; else say what is wrong
            out.append((name.lower(), value))
            continue
        if FIELD_VALUE_BAD.search(value):
            raise LocalProtocolError(
                f"{what} {name.decode()!r} has {describe_bad_byte(value)} in its value: refused, "
                "it would inject or corrupt fields"
            )
        if value[:1] in (b" ", b"\t") or value[-1:] in (b" ", b"\t"):
            raise LocalProtocolError(
                f"{what} {name.decode()!r} value has leading or trailing whitespace; strip it"
            )
        out.append((name.lower(), value))
    return out


def check_version(version: bytes) -> None:
    if version not in SUPPORTED_VERSIONS:
        raise LocalProtocolError(f"version {version!r} cannot be sent: use b'1.0' or b'1.1'")


def write_fields(headers: Headers) -> bytes:
    """Already validated fields, then the empty line that ends the section."""
    return b"".join(name + b": " + value + b"\r\n" for name, value in headers) + b"\r\n"


def request_head(method: bytes, target: bytes, version: bytes, headers: Headers) -> bytes:
    """The request line and `headers` (validated by the caller with `check_fields`)."""
    if not isinstance(method, bytes) or not TOKEN.fullmatch(method):
        raise LocalProtocolError(f"method {method!r} is not a token")
    if not isinstance(target, bytes) or not TARGET.fullmatch(target):
        raise LocalProtocolError(
            f"request target {target!r} is empty or has a space, control character, "
            "non-ASCII byte or '#'"
        )
    check_version(version)
    return method + b" " + target + b" HTTP/" + version + b"\r\n" + write_fields(headers)


def status_head(status: int, reason: bytes, version: bytes, headers: Headers) -> bytes:
    """The status line (a standard reason when `reason` is empty) and `headers`."""
    if not isinstance(status, int) or not 100 <= status <= 599:
        raise LocalProtocolError(f"status {status!r} is not a status code (100-599)")
    if not isinstance(reason, bytes) or FIELD_VALUE_BAD.search(reason):
        raise LocalProtocolError(f"reason phrase {reason!r} is not bytes without control chars")
    check_version(version)
    if not reason:
        reason = _standard_reason(status)
    return b"HTTP/%s %d %s\r\n" % (version, status, reason) + write_fields(headers)


def _standard_reason(status: int) -> bytes:
    try:
        return HTTPStatus(status).phrase.encode("ascii")
    except ValueError:
        return b""
