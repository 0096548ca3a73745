"""HTTP/2 header blocks ⇄ the protocol-neutral heads, with RFC 9113 §8 validation. Pure.

Theory of operation
-------------------
h2 is configured not to validate inbound headers, because it treats every violation as a
connection error: one bad request would end every other request multiplexed with it. RFC 9113
§8.1.1 makes a malformed message a *stream* error, so the rules are applied here instead and a
violation raises `MalformedHeaders`, which the connection turns into RST_STREAM(PROTOCOL_ERROR)
for that stream only.

The rules are stricter than HTTP/2 alone requires where the waypoint forwards to HTTP/1.1: a
field name must be a lower-case token and a value must hold no control character but HTAB, so
nothing accepted here can split a request line or a header when re-encoded as HTTP/1.1 (request
smuggling by downgrade). Connection-specific fields are malformed (§8.2.2), `te` may only say
"trailers", pseudo-headers come first, once each, and only the ones defined for the message kind.

h2 has already done two things by the time a block arrives: joined split `cookie` fields with
"; " (§8.2.3), and checked `content-length` (a bad or conflicting one, or a body of another
length, is a connection error in h2 that this module cannot soften). Values are decoded as
latin-1, which cannot fail, so bytes round-trip when forwarded.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from waypoint.http2.events import LocalProtocolError, MalformedHeaders
from waypoint.messages import Headers, RequestHead, ResponseHead

RawHeaders = list[tuple[bytes, bytes]]

CONNECTION_SPECIFIC = frozenset(
    {b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"upgrade"}
)
_REQUEST_PSEUDO = frozenset({b":method", b":scheme", b":authority", b":path"})
_NAME = re.compile(rb"[!#$%&'*+\-.^_`|~0-9a-z]+\Z")  # RFC 9110 token, lower case (RFC 9113)
_METHOD = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")
_BAD_VALUE = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")  # controls except HTAB: NUL, CR, LF, ...
_PATH = re.compile(rb"/[\x21-\x7e]*\Z")  # origin-form: visible ASCII, no space
_AUTHORITY = re.compile(rb"[A-Za-z0-9\-._~!$&'()*+,;=:\[\]%]+\Z")  # host[:port], no userinfo
_STATUS = re.compile(rb"[1-5][0-9][0-9]\Z")


def parse_request(block: Iterable[tuple[bytes, bytes]]) -> RequestHead:
    """A request header block as a `RequestHead`, or `MalformedHeaders` saying what is wrong."""
    pseudo, headers = _split(block, _REQUEST_PSEUDO)
    method = _required(pseudo, b":method")
    if not _METHOD.match(method):
        raise MalformedHeaders(f":method {_show(method)} is not a token")
    host = [value for name, value in headers if name == "host"]
    headers = [(name, value) for name, value in headers if name != "host"]
    if method == b"CONNECT":
        return _connect_request(pseudo, host, headers)
    scheme = _required(pseudo, b":scheme").lower()
    if scheme not in (b"http", b"https"):
        raise MalformedHeaders(f":scheme {_show(scheme)}: the waypoint serves http and https only")
    path = _required(pseudo, b":path")
    if not (_PATH.match(path) or (path == b"*" and method == b"OPTIONS")):
        raise MalformedHeaders(f":path {_show(path)} is not origin-form ('/...'; '*' for OPTIONS)")
    authority = _authority(pseudo.get(b":authority"), host)
    return RequestHead(
        method=method.decode("latin-1"),
        scheme=scheme.decode("latin-1"),
        authority=authority,
        path=path.decode("latin-1"),
        headers=tuple(headers),
        protocol="HTTP/2",
    )


def parse_response(block: Iterable[tuple[bytes, bytes]]) -> ResponseHead:
    """A response (final or 1xx) header block as a `ResponseHead`; `MalformedHeaders` if bad."""
    pseudo, headers = _split(block, frozenset({b":status"}))
    status = _required(pseudo, b":status")
    if not _STATUS.match(status):
        raise MalformedHeaders(f":status {_show(status)} is not a 3-digit code 100-599")
    if status == b"101":  # RFC 9113 8.6: HTTP/2 has no Upgrade
        raise MalformedHeaders(":status 101 (Switching Protocols) does not exist in HTTP/2")
    return ResponseHead(status=int(status), headers=tuple(headers))


def parse_trailers(block: Iterable[tuple[bytes, bytes]]) -> Headers:
    """A trailer block's fields; pseudo-headers there are malformed (RFC 9113 8.1)."""
    _, headers = _split(block, frozenset())
    return tuple(headers)


def request_block(head: RequestHead) -> RawHeaders:
    """What `send_request` puts on the wire: pseudo-headers from the head's fields, then headers.

    `host` is dropped when `authority` is set: in HTTP/2 `:authority` carries it, and a second,
    possibly different copy is a routing confusion waiting to happen (RFC 9113 8.3.1).
    """
    if head.method == "CONNECT":
        block = [(b":method", b"CONNECT"), (b":authority", _encode(head.authority))]
    else:
        block = [(b":method", _encode(head.method)), (b":scheme", _encode(head.scheme))]
        if head.authority:
            block.append((b":authority", _encode(head.authority)))
        block.append((b":path", _encode(head.path)))
    skip_host = bool(head.authority)
    return block + _encode_fields(
        (name, value) for name, value in head.headers if not (skip_host and name == "host")
    )


def response_block(head: ResponseHead) -> RawHeaders:
    """What `send_response` puts on the wire (the reason phrase does not exist in HTTP/2)."""
    return [(b":status", str(head.status).encode("ascii")), *_encode_fields(head.headers)]


def trailers_block(trailers: Headers) -> RawHeaders:
    return _encode_fields(trailers)


# --- the shared rules -------------------------------------------------------------------------


def _split(
    block: Iterable[tuple[bytes, bytes]], allowed_pseudo: frozenset[bytes]
) -> tuple[dict[bytes, bytes], list[tuple[str, str]]]:
    """Pseudo-headers (known, once each, all first) and the validated regular fields."""
    pseudo: dict[bytes, bytes] = {}
    headers: list[tuple[str, str]] = []
    for name, value in block:
        if name[:1] == b":":
            if headers:
                raise MalformedHeaders(f"pseudo-header {_show(name)} after a regular header")
            if name not in allowed_pseudo:
                raise MalformedHeaders(f"pseudo-header {_show(name)} is not allowed here")
            if name in pseudo:
                raise MalformedHeaders(f"pseudo-header {_show(name)} appears twice")
            pseudo[name] = value
            continue
        headers.append(_field(name, value))
    return pseudo, headers


def _field(name: bytes, value: bytes) -> tuple[str, str]:
    if not _NAME.match(name):
        raise MalformedHeaders(f"header name {_show(name)} is not a lower-case token")
    if name in CONNECTION_SPECIFIC:
        raise MalformedHeaders(f"connection-specific header {_show(name)} is not allowed in HTTP/2")
    if _BAD_VALUE.search(value):
        raise MalformedHeaders(f"header {_show(name)}: value holds a control character")
    if value[:1] in (b" ", b"\t") or value[-1:] in (b" ", b"\t"):
        raise MalformedHeaders(f"header {_show(name)}: value starts or ends with whitespace")
    if name == b"te":
        if value.lower() != b"trailers":
            raise MalformedHeaders(f"te {_show(value)}: HTTP/2 allows only 'trailers'")
        value = b"trailers"
    return name.decode("ascii"), value.decode("latin-1")


def _connect_request(
    pseudo: dict[bytes, bytes], host: list[str], headers: list[tuple[str, str]]
) -> RequestHead:
    """RFC 9113 8.5: CONNECT carries only :method and :authority (host:port, no scheme/path)."""
    if b":scheme" in pseudo or b":path" in pseudo:
        raise MalformedHeaders("CONNECT must not carry :scheme or :path (extended CONNECT is off)")
    authority = _authority(_required(pseudo, b":authority"), host)
    if not authority.rpartition(":")[2].isdigit():
        raise MalformedHeaders(f"CONNECT :authority {authority[:80]!r} has no port")
    return RequestHead("CONNECT", "", authority, "", tuple(headers), protocol="HTTP/2")


def _authority(authority: bytes | None, host: list[str]) -> str:
    """:authority, else Host (RFC 9113 8.3.1); both present and different is malformed."""
    if len(host) > 1:
        raise MalformedHeaders("more than one host header")
    if authority is None:
        if not host:
            raise MalformedHeaders("neither :authority nor host: the request names no authority")
        authority = host[0].encode("latin-1")
    elif host and host[0].encode("latin-1") != authority:
        raise MalformedHeaders(f"host {host[0][:80]!r} differs from :authority {_show(authority)}")
    if not _AUTHORITY.match(authority):
        raise MalformedHeaders(f":authority {_show(authority)} is not host[:port]")
    return authority.decode("latin-1")


def _required(pseudo: dict[bytes, bytes], name: bytes) -> bytes:
    value = pseudo.get(name)
    if not value:
        raise MalformedHeaders(f"{name.decode()} is missing or empty")
    return value


def _encode(text: str) -> bytes:
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError:
        raise LocalProtocolError(
            f"{text[:80]!r} has characters outside latin-1; HTTP fields are bytes, encode first"
        ) from None


def _encode_fields(fields: Iterable[tuple[str, str]]) -> RawHeaders:
    return [(_encode(name), _encode(value)) for name, value in fields]


def _show(raw: bytes) -> str:
    """A bounded, printable rendering of peer bytes for an error message and the logs."""
    return repr(raw[:80].decode("latin-1"))
