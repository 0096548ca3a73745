"""The client-facing end: HTTP/2 requests in, responses out, and the rapid-reset defence. Pure.

A request arrives as `RequestReceived` with a validated `RequestHead`; a malformed one never
reaches the layers above (`RequestRejected`, RST_STREAM(PROTOCOL_ERROR) for that stream only).
The shell answers with `send_response`, then `send_data` and optionally `send_trailers`.

Rapid reset (CVE-2023-44487): opening a stream costs the client one frame and the waypoint an
upstream request, and RST_STREAM frees the client's concurrency slot at once, so MAX_CONCURRENT
STREAMS alone bounds nothing. Two defences:

* Streams the client resets before we finished answering, and requests we had to reject, are
  counted in a sliding window; past `Http2Limits.max_resets` the connection ends with
  GOAWAY(ENHANCE_YOUR_CALM).
* A request whose reset arrives in the same batch of bytes is dropped silently from the events,
  so the layers above never start upstream work for it.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import h2.events
from h2.errors import ErrorCodes

from waypoint.http2.connection import Http2Connection
from waypoint.http2.events import (
    Event,
    LocalProtocolError,
    MalformedHeaders,
    RemoteProtocolError,
    RequestReceived,
    RequestRejected,
    StreamClosedError,
    StreamReset,
)
from waypoint.http2.fields import parse_request, response_block
from waypoint.http2.h2conn import StreamState, caller_errors
from waypoint.http2.limits import Http2Limits, SlidingWindow
from waypoint.messages import ResponseHead


class ServerConnection(Http2Connection):
    """The waypoint's end of a client's HTTP/2 (or gRPC) connection."""

    _client = False

    def __init__(
        self, limits: Http2Limits | None = None, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        super().__init__(limits, clock=clock)
        self._resets = SlidingWindow(self.limits.max_resets, self.limits.reset_window, clock)

    def send_response(self, stream_id: int, head: ResponseHead, end_stream: bool = False) -> None:
        """Send the final response head; `end_stream` for no body (gRPC trailers-only, 204)."""
        if not 200 <= head.status <= 599:
            raise LocalProtocolError(
                f"status {head.status}: send_response takes a final status 200-599 "
                "(send_informational for 1xx)"
            )
        stream = self._answerable(stream_id)
        with caller_errors():
            self._h2.send_headers(stream_id, response_block(head), end_stream=end_stream)
        stream.headers_sent = True
        self._control_frames.clear()
        if end_stream:
            stream.local_ended = True
            self._forget_if_done(stream_id, stream)

    def send_informational(self, stream_id: int, head: ResponseHead) -> None:
        """Send a 1xx (100 Continue, 103 Early Hints) before the final response."""
        if not 100 <= head.status <= 199 or head.status == 101:
            raise LocalProtocolError(f"status {head.status} is not an HTTP/2 informational status")
        self._answerable(stream_id)
        with caller_errors():
            self._h2.send_headers(stream_id, response_block(head))

    @property
    def drained(self) -> bool:
        """Our graceful GOAWAY went out and every stream it let finish has finished."""
        return self.drain_last_stream_id is not None and not self._streams

    def _answerable(self, stream_id: int) -> StreamState:
        stream = self._streams.get(stream_id)
        if stream is None or self.closed:
            raise StreamClosedError(f"stream {stream_id} is not open (reset, finished or unknown)")
        if stream.headers_sent:
            raise LocalProtocolError(f"stream {stream_id} was already answered")
        return stream

    def _on_message(self, event: h2.events.Event) -> list[Event]:
        if not isinstance(event, h2.events.RequestReceived):
            return []
        sid = event.stream_id
        if self.drain_last_stream_id is not None and sid > self.drain_last_stream_id:
            self.reset(sid, ErrorCodes.REFUSED_STREAM)  # the client retries on a new connection
            reason = "the connection is draining (GOAWAY sent); retry on a new connection"
            return [RequestRejected(sid, ErrorCodes.REFUSED_STREAM, reason)]
        try:
            head = parse_request(event.headers or [])
        except MalformedHeaders as error:
            self.reset(sid, ErrorCodes.PROTOCOL_ERROR)
            self._count_reset(f"malformed request on stream {sid}")
            return [RequestRejected(sid, ErrorCodes.PROTOCOL_ERROR, f"malformed request: {error}")]
        self._streams[sid] = StreamState()
        return [RequestReceived(sid, head, event.stream_ended is not None)]

    def _on_peer_reset(self, stream_id: int, stream: StreamState) -> None:
        if not stream.local_ended:
            self._count_reset(f"client reset stream {stream_id} before its response ended")

    def _count_reset(self, what: str) -> None:
        if self._resets.hit():
            raise RemoteProtocolError(
                f"client reset or sent malformed requests on more than {self.limits.max_resets} "
                f"streams within {self.limits.reset_window:g} s (last: {what}); closing the "
                "connection as an HTTP/2 rapid-reset defence (CVE-2023-44487)",
                ErrorCodes.ENHANCE_YOUR_CALM,
            )

    def _end_of_batch(self, events: list[Event]) -> list[Event]:
        return super()._end_of_batch(_drop_stillborn(events))


def _drop_stillborn(events: list[Event]) -> list[Event]:
    """Requests opened and reset by the client within one batch: the shell never sees them."""
    opened = {e.stream_id for e in events if isinstance(e, RequestReceived)}
    stillborn = {
        e.stream_id
        for e in events
        if isinstance(e, StreamReset) and e.remote and e.stream_id in opened
    }
    if not stillborn:
        return events
    return [e for e in events if getattr(e, "stream_id", None) not in stillborn]
