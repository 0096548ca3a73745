"""The waypoint's own answers to gRPC calls, in the shape a gRPC client can read.

Theory of operation: when the waypoint itself answers a request (no route, denied, rate limited,
no healthy upstream, timed out) the pipeline builds a small text reply with an HTTP status. A
gRPC client reads the outcome of a call from grpc-status, not from the HTTP status, and would
lose the text; so for a gRPC call (HTTP/2 with content-type application/grpc) that reply is
turned into a trailers-only response: HTTP 200 with grpc-status and the text as grpc-message,
e.g. 503 → UNAVAILABLE, 504 → DEADLINE_EXCEEDED, 403 → PERMISSION_DENIED
(`waypoint.http2.grpc.local_reply`). Telemetry records what the client got.

The pipeline's own replies are the ones with a fixed body; an upstream's response always
streams (`Reply.chunks`), and already carries its own gRPC status, so it is never touched.
"""

from __future__ import annotations

from dataclasses import replace

from waypoint.exchange import Reply
from waypoint.http2 import grpc
from waypoint.messages import RequestHead

_DROPPED = frozenset({"content-type", "content-length"})  # they described the text body


def grpc_shaped(request: RequestHead, reply: Reply) -> Reply:
    """`reply` as a gRPC trailers-only response if it is the waypoint's own answer to a call."""
    if request.protocol != "HTTP/2" or not grpc.is_grpc_request(request):
        return reply
    if reply.chunks is not None or reply.upgraded is not None:
        return reply  # the upstream's response
    if grpc.grpc_status(reply.head.headers) is not None:
        return reply  # already gRPC-shaped
    text = reply.body.decode("utf-8", "replace").strip()
    message = text or f"the waypoint answered HTTP {reply.head.status}"
    kept = tuple((k, v) for k, v in reply.head.headers if k not in _DROPPED)
    return replace(reply, head=grpc.local_reply(reply.head.status, message, kept), body=b"")
