"""From HTTP/1.1 events to the protocol-neutral heads every layer above the codecs reads.

Theory of operation: routing, authorization and telemetry are written once, against
`waypoint.messages.RequestHead` / `ResponseHead`, and never ask which protocol carried a request.
This module is the HTTP/1.1 side of that contract: it decodes names as ASCII (they are tokens)
and values as Latin-1 (the only decoding that cannot fail and round-trips every byte), drops the
hop-by-hop fields that belong to this one connection, and moves what HTTP/2 carries in
pseudo-headers (method, scheme, authority, path) into fields of the head.

The authority is the request-target's own for absolute-form and CONNECT (RFC 9112 §3.2.2 and
§3.2.3: such a target overrides Host), else the Host value; so `host` is not in `headers`, as
`:authority` is not in HTTP/2's. A CONNECT has no path: its `path` is "".
"""

from __future__ import annotations

from waypoint.http1.events import Headers, Request, Response
from waypoint.http1.framing import values
from waypoint.http1.syntax import ABSOLUTE_FORM, list_elements
from waypoint.messages import RequestHead, ResponseHead

# RFC 9110 §7.6.1 and the older Keep-Alive / Proxy-Connection; "te" is kept when it says trailers.
HOP_BY_HOP = frozenset(
    {b"connection", b"keep-alive", b"proxy-connection", b"te", b"transfer-encoding", b"upgrade"}
)


def end_to_end(headers: Headers) -> tuple[tuple[str, str], ...]:
    """Headers without hop-by-hop fields (also those Connection names), decoded."""
    named = set(list_elements(values(headers, b"connection")))
    kept = []
    for name, value in headers:
        hop = name in HOP_BY_HOP or name in named or name.startswith(b"proxy-")
        if hop and not (name == b"te" and value.strip().lower() == b"trailers"):
            continue
        kept.append((name.decode("ascii"), value.decode("latin-1")))
    return tuple(kept)


def request_head(request: Request) -> RequestHead:
    """The protocol-neutral head of a received request (scheme "http" unless absolute-form)."""
    target = request.target.decode("ascii")
    hosts = values(request.headers, b"host")
    authority = hosts[0].decode("latin-1") if hosts else ""
    scheme, path = "http", target
    if request.method == b"CONNECT":
        authority, path = target, ""
    else:
        absolute = ABSOLUTE_FORM.match(request.target)
        if absolute is not None:
            scheme = absolute.group(1).decode("ascii").lower()
            authority = absolute.group(2).decode("ascii")
            path = target[absolute.end() :] or "/"
    headers = tuple((k, v) for k, v in end_to_end(request.headers) if k != "host")
    return RequestHead(
        method=request.method.decode("ascii"),
        scheme=scheme,
        authority=authority,
        path=path,
        headers=headers,
        protocol="HTTP/" + request.version.decode("ascii"),
    )


def response_head(response: Response) -> ResponseHead:
    """The protocol-neutral head of a received final response."""
    return ResponseHead(
        status=response.status,
        headers=end_to_end(response.headers),
        reason=response.reason.decode("latin-1"),
    )
