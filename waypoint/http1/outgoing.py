"""Decisions for the heads we send: which framing the body gets, and what Connection says.

Theory of operation: the caller states the message; this module makes it well-framed for the
peer we are talking to and says so in the head, once, before any body byte is written:

* Requests: Content-Length when given, `Transfer-Encoding: chunked` when the caller set it
  (a proxy forwarding a body of unknown length sets it), otherwise the request has no body.
* Responses: Content-Length when given; otherwise chunked for an HTTP/1.1 peer, and for an
  HTTP/1.0 peer the body runs until we close (any chunked header is dropped: 1.0 cannot read it).
  Responses that cannot have a body (HEAD, 1xx, 204, 304, 2xx to CONNECT) get no framing added.
* Connection: when the connection will close after this response, the head says `close`; when
  an HTTP/1.0 peer asked for keep-alive and gets it, the head says `keep-alive`.

The checks that frame received messages (`framing`) run here too, with `local` errors, so we
never send a shape we would refuse.
"""

from __future__ import annotations

from dataclasses import dataclass

from waypoint.http1 import framing as fr
from waypoint.http1.errors import LocalProtocolError
from waypoint.http1.events import Headers, InformationalResponse, Request, Response
from waypoint.http1.serialize import check_fields, request_head, status_head


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A head ready to write and what it commits the rest of the message to."""

    head: bytes
    framing: fr.Framing
    keep_alive: bool
    # "connect" or "upgrade" when the request asks to turn the connection into a tunnel.
    switch: str = ""
    # The request carries Expect: 100-continue (the caller should wait before sending a body).
    expects_continue: bool = False


def plan_request(event: Request) -> Outgoing:
    """Validate and frame a request we are about to send."""
    headers = check_fields(event.headers)
    version = event.version
    head = request_head(event.method, event.target, version, headers)
    fields = fr.framing_fields(headers)
    fr.check_host(fields, version, fr.local)
    framing = fr.request_framing(fields, version, fr.local)
    tokens = fr.connection_tokens(fields, fr.local)
    return Outgoing(
        head,
        framing,
        fr.keep_alive(version, tokens),
        fr.switch_proposal(event.method, version, fields, tokens),
        fr.expects_continue(version, fields) and framing.kind is not fr.Kind.NONE,
    )


def plan_informational(event: InformationalResponse, peer_version: bytes) -> bytes:
    """A 1xx head; HTTP/1.0 clients cannot receive one (RFC 9110 §15.2)."""
    if not isinstance(event.status, int) or not 100 <= event.status <= 199:
        raise LocalProtocolError(f"InformationalResponse needs a 1xx status, not {event.status!r}")
    if peer_version == b"1.0":
        raise LocalProtocolError("an HTTP/1.0 client cannot receive a 1xx response")
    headers = check_fields(event.headers)
    _refuse_framing(headers, f"a {event.status} response")
    return status_head(event.status, event.reason, event.version, headers)


def plan_response(
    event: Response, request_method: bytes | None, peer_version: bytes, keep_alive: bool
) -> Outgoing:
    """Validate and frame a final response to a request with `request_method` (None: unknown)."""
    status = event.status
    if not isinstance(status, int) or not 200 <= status <= 599:
        raise LocalProtocolError(f"Response needs a 2xx-5xx status, not {status!r}")
    headers = check_fields(event.headers)
    if status == 204 or (request_method == b"CONNECT" and status < 300):
        _refuse_framing(headers, f"a {status} response to {(request_method or b'?').decode()}")
    # The older of our version and the peer's decides: 1.0 on either side has no chunked coding
    # and closes unless keep-alive is said out loud.
    version = b"1.0" if b"1.0" in (event.version, peer_version) else b"1.1"
    fields = fr.framing_fields(headers)
    framing, headers = _response_framing(status, headers, fields, request_method, version)
    tokens = fr.connection_tokens(fields, fr.local)
    keep_alive = keep_alive and framing.kind is not fr.Kind.CLOSE
    keep_alive = keep_alive and b"close" not in tokens
    headers = _connection_fields(headers, tokens, keep_alive, version)
    return Outgoing(status_head(status, event.reason, event.version, headers), framing, keep_alive)


def _response_framing(
    status: int,
    headers: Headers,
    fields: fr.Fields,
    request_method: bytes | None,
    version: bytes,
) -> tuple[fr.Framing, Headers]:
    length = fr.content_length(fields, fr.local)
    chunked = fr.is_chunked(fields, b"1.1", length is not None, fr.local)
    if version == b"1.0" and chunked:
        headers = [(name, value) for name, value in headers if name != b"transfer-encoding"]
    if fr.has_no_body(status, request_method):
        return fr.NO_BODY, headers
    if length is not None:
        return fr.Framing(fr.Kind.LENGTH, length), headers
    if version == b"1.0":
        return fr.UNTIL_CLOSE, headers
    if not chunked:
        headers = [*headers, (b"transfer-encoding", b"chunked")]
    return fr.CHUNKED, headers


def _refuse_framing(headers: Headers, what: str) -> None:
    for name, _ in headers:
        if name in (b"content-length", b"transfer-encoding"):
            raise LocalProtocolError(f"{what} cannot carry {name.decode()} (RFC 9110)")


def _connection_fields(
    headers: Headers, tokens: list[bytes], keep_alive: bool, version: bytes
) -> Headers:
    """Make the Connection field agree with what will happen to the connection."""
    if keep_alive:
        if version == b"1.0" and b"keep-alive" not in tokens:
            return [*headers, (b"connection", b"keep-alive")]
        return headers
    if b"close" in tokens and b"keep-alive" not in tokens:
        return headers
    options = [token for token in tokens if token not in (b"keep-alive", b"close")]
    others = [(name, value) for name, value in headers if name != b"connection"]
    return [*others, (b"connection", b", ".join([*options, b"close"]))]
