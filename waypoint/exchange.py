"""What a downstream session hands the proxy, and what the proxy hands back.

A session (HTTP/1.1 or HTTP/2) decodes one request into a `Downstream`; the proxy pipeline answers
with a `Reply`: a response head and either a fixed body or a stream of chunks read from the
upstream, plus trailers once the stream ends. Keeping this contract protocol-neutral lets one
pipeline serve both codecs, and lets the session own framing (Content-Length, chunked, DATA
frames), flow control and the connection's fate.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from waypoint.messages import Headers, Peer, RequestHead, ResponseHead
from waypoint.streams import ByteStream


@dataclass
class Downstream:
    """One decoded request: head, its whole body (buffered, so a retry can resend it), trailers."""

    head: RequestHead
    body: bytes
    peer: Peer
    trailers: Headers = ()
    # The HBONE :authority the client dialled (Service VIP:port or pod IP:port).
    destination: tuple[str, int] = ("", 0)
    # Bytes of the request head as received (telemetry's request size).
    head_bytes: int = 0
    # HTTP/1.1 Upgrade asked for (Connection: upgrade), e.g. "websocket"; hop-by-hop, so it is
    # not in head.headers and the upstream session re-adds it.
    upgrade: str | None = None


@dataclass
class Reply:
    """The response to send back; `chunks` streams the body, else `body` is all of it."""

    head: ResponseHead
    body: bytes = b""
    chunks: AsyncIterator[bytes] | None = None
    # Called after `chunks` is exhausted: the upstream's trailers (gRPC status lives there).
    trailers: Callable[[], Headers] = lambda: ()
    # 101 Switching Protocols: the upstream stream to splice with the client's.
    upgraded: ByteStream | None = None
    # Called once the session has written the whole response (or failed to): (body bytes sent,
    # error or None). The proxy finishes telemetry here, when duration and sizes are known.
    done: Callable[[int, BaseException | None], None] = field(default=lambda n, e: None)


def text_reply(status: int, text: str, headers: Headers = ()) -> Reply:
    """A small local answer (404, 503, 504...) with a plain-text body that says why."""
    body = (text.rstrip("\n") + "\n").encode()
    head = ResponseHead(
        status=status,
        headers=(
            ("content-type", "text/plain; charset=utf-8"),
            ("content-length", str(len(body))),
            *headers,
        ),
    )
    return Reply(head=head, body=body)
