"""The upstream-facing end: the waypoint's requests out, the upstream's responses in. Pure.

Used for h2c to an upstream, or HTTP/2 inside an HBONE tunnel (the shell feeds this object the
tunnel's bytes). The same body path, flow control and GOAWAY handling as the server end; what
differs is that streams are opened here (`send_request`, within the upstream's advertised
MAX_CONCURRENT_STREAMS, which `available_streams` reports for the connection pool) and responses
are validated: a malformed one resets its stream (`StreamReset` with a reason), never the
connection. A graceful GOAWAY from the upstream lets streams up to its last stream id finish and
reports later ones as `StreamReset(REFUSED_STREAM)`, safe to retry on another connection.
"""

from __future__ import annotations

import h2.events

from waypoint.http2.connection import Http2Connection
from waypoint.http2.events import (
    Event,
    InformationalResponseReceived,
    LocalProtocolError,
    MalformedHeaders,
    ResponseReceived,
)
from waypoint.http2.fields import parse_response, request_block
from waypoint.http2.h2conn import StreamState, caller_errors
from waypoint.messages import RequestHead


class ClientConnection(Http2Connection):
    """The waypoint's end of an HTTP/2 connection to an upstream."""

    _client = True

    def send_request(self, head: RequestHead, end_stream: bool = False) -> int:
        """Open a stream with this request head; returns its stream id. `end_stream`: no body."""
        if self.available_streams <= 0:
            raise LocalProtocolError(
                "no stream can be opened on this connection (the upstream's concurrent-stream "
                "limit is reached, or the connection is going away); use another connection"
            )
        block = request_block(head)
        with caller_errors():
            stream_id = self._h2.get_next_available_stream_id()
            self._h2.send_headers(stream_id, block, end_stream=end_stream)
        self._streams[stream_id] = StreamState(headers_sent=True, local_ended=end_stream)
        self._control_frames.clear()
        return stream_id

    @property
    def available_streams(self) -> int:
        """Streams the upstream allows now (until its SETTINGS arrive, our own limit is assumed)."""
        if self.closed or self.peer_goaway is not None or self.drain_last_stream_id is not None:
            return 0
        limit = self.limits.max_concurrent_streams
        if self._remote_settings_seen:
            limit = self._h2.remote_settings.max_concurrent_streams
        return max(0, limit - self._h2.open_outbound_streams)

    def _on_message(self, event: h2.events.Event) -> list[Event]:
        match event:
            case h2.events.ResponseReceived():
                final = True
            case h2.events.InformationalResponseReceived():
                final = False
            case _:
                return []
        stream = self._streams.get(event.stream_id)
        if stream is None:
            return []
        try:
            head = parse_response(event.headers or [])
        except MalformedHeaders as error:
            return self._reset_malformed(event.stream_id, f"malformed response: {error}")
        if not final:
            return [InformationalResponseReceived(event.stream_id, head)]
        return [ResponseReceived(event.stream_id, head, event.stream_ended is not None)]
