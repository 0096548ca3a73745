"""What both ends of a waypoint HTTP/2 connection share, without I/O (theory in the package doc).

The receive path (frame gate, then h2, then translation of h2's events into the waypoint's), the
body path (send within the windows with a bounded backlog, acknowledge what the application
consumed, trailers, reset), graceful and immediate GOAWAY, and the control-frame flood counter.
`ServerConnection` and `ClientConnection` add what only one end does: requests or responses.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import suppress

import h2.events
import h2.exceptions
from h2.connection import ConnectionState
from h2.errors import ErrorCodes
from hyperframe.frame import GoAwayFrame

from nodemesh.hbone.events import RemoteProtocolError as GateError
from nodemesh.hbone.headers import header_value
from waypoint.http2.events import (
    ConnectionTerminated,
    DataReceived,
    Event,
    LocalProtocolError,
    MalformedHeaders,
    RemoteProtocolError,
    StreamClosedError,
    StreamEnded,
    StreamReset,
    TrailersReceived,
    WindowOpened,
)
from waypoint.http2.fields import parse_trailers, trailers_block
from waypoint.http2.frames import GoAway, Http2FrameGate
from waypoint.http2.h2conn import StreamState, caller_errors, new_h2
from waypoint.http2.limits import Http2Limits, SlidingWindow
from waypoint.http2.outbound import SendQueue
from waypoint.messages import Headers


class Http2Connection:
    """The receive path, the body path and GOAWAY, shared by both ends."""

    _client: bool

    def __init__(
        self, limits: Http2Limits | None = None, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limits = lim = limits or Http2Limits()
        self._h2 = new_h2(self._client, lim)
        self._gate = Http2FrameGate(
            server=not self._client,
            max_frame_size=lim.max_frame_size,
            max_header_block=lim.max_header_block,
        )
        self._out = SendQueue(self._h2, lim.max_send_buffer)
        self._control_frames = SlidingWindow(lim.max_control_frames, lim.control_window, clock)
        self._streams: dict[int, StreamState] = {}
        self._unacked: dict[int, int] = {}  # flow-controlled bytes delivered, not yet consumed
        self._behind_h2 = bytearray()  # frames h2 must not know we sent (a graceful GOAWAY)
        self._windows_changed = False
        self._remote_settings_seen = False  # until then, assume the peer takes our limits
        self.peer_goaway: GoAway | None = None  # the peer's GOAWAY: open no new streams
        self.drain_last_stream_id: int | None = None  # our graceful GOAWAY's last stream id
        self.closed = False  # a final GOAWAY was sent: nothing more happens here

    # --- bytes in, events out ---------------------------------------------------------------

    def receive_data(self, data: bytes | bytearray | memoryview) -> list[Event]:
        """Feed bytes read from the peer; returns what they meant, in order.

        Never raises for the peer's mistakes: a malformed message resets its stream, a malformed
        frame or an abuse pattern returns only `ConnectionTerminated` (every stream is gone, so
        nothing else of the batch matters) and leaves a GOAWAY in `data_to_send()`.
        """
        if self.closed:
            return []
        events: list[Event] = []
        try:
            for piece in self._split(data):
                if isinstance(piece, GoAway):
                    events += self._on_goaway(piece)
                else:
                    self._receive_frames(piece, events)
        except RemoteProtocolError as error:
            return [self._terminate(error)]  # this batch's streams die with the connection
        return self._end_of_batch(events)

    def data_to_send(self) -> bytes:
        """Bytes to write to the peer, in order; empty when there is nothing."""
        out = self._h2.data_to_send()
        if self._behind_h2:
            out += bytes(self._behind_h2)
            self._behind_h2.clear()
        return out

    # --- the body path ----------------------------------------------------------------------

    def send_data(
        self, stream_id: int, data: bytes | bytearray | memoryview, end_stream: bool = False
    ) -> int:
        """Send body bytes: frames what the windows allow, queues the rest (bounded).

        Returns how many bytes of this stream now wait for the peer's window. Raises
        `SendBufferFull` past `send_capacity(stream_id)`.
        """
        stream = self._sendable(stream_id)
        with caller_errors():
            queued = self._out.send(stream_id, data, end_stream)
        self._control_frames.clear()  # we did useful work: pings since are not a flood
        if end_stream:
            stream.local_ended = True
            self._forget_if_done(stream_id, stream)
        return queued

    def send_trailers(self, stream_id: int, trailers: Headers) -> None:
        """End the stream with a trailer block (after any queued data), e.g. gRPC's status."""
        if not trailers:
            self.send_data(stream_id, b"", end_stream=True)
            return
        stream = self._sendable(stream_id)
        with caller_errors():
            self._out.send_trailers(stream_id, trailers_block(trailers))
        self._control_frames.clear()
        stream.local_ended = True
        self._forget_if_done(stream_id, stream)

    def send_capacity(self, stream_id: int) -> int:
        """How many bytes `send_data` takes now; 0 means wait for `WindowOpened(stream_id)`."""
        self._sendable(stream_id)
        with caller_errors():
            return self._out.capacity(stream_id)

    def queued(self, stream_id: int) -> int:
        """Bytes of this stream waiting for the peer's window."""
        return self._out.queued(stream_id)

    def acknowledge(self, stream_id: int, flow_controlled_length: int) -> None:
        """The application consumed a `DataReceived`: let the peer send that much more.

        Call it after the bytes were written onward, so a slow upstream slows the client instead
        of filling this process. Acknowledging more than was delivered, or after a reset (whose
        bytes are credited back already), is ignored.
        """
        owed = self._unacked.get(stream_id, 0)
        n = min(flow_controlled_length, owed)
        if n <= 0 or self.closed:
            return
        if n == owed:
            del self._unacked[stream_id]
        else:
            self._unacked[stream_id] = owed - n
        with caller_errors():
            self._h2.acknowledge_received_data(n, stream_id)

    def reset(self, stream_id: int, error_code: int = ErrorCodes.CANCEL) -> None:
        """Abort a stream (RST_STREAM). Idempotent: a stream already gone is left alone."""
        self._forget(stream_id)
        if not self.closed:
            with suppress(h2.exceptions.NoSuchStreamError):  # includes StreamClosedError
                self._h2.reset_stream(stream_id, error_code)

    # --- the end of the connection ----------------------------------------------------------

    def goaway(self, error_code: int = ErrorCodes.NO_ERROR, *, reason: str = "") -> None:
        """Send GOAWAY. NO_ERROR drains: streams already received finish, new ones are refused.

        Any other code ends the connection now. The graceful frame is written behind h2's back
        (h2 would refuse to send anything after its own GOAWAY, killing the streams in flight).
        Close the socket once `closed`, or once draining and `live_streams` is 0.
        """
        if self.closed:
            return
        if error_code != ErrorCodes.NO_ERROR:
            self._close(error_code, reason)
            return
        if self.drain_last_stream_id is not None:
            return
        last = self._h2.highest_inbound_stream_id
        self.drain_last_stream_id = last
        frame = GoAwayFrame(0, last_stream_id=last, error_code=ErrorCodes.NO_ERROR)
        frame.additional_data = header_value(reason or "draining").encode()
        self._behind_h2 += frame.serialize()

    @property
    def live_streams(self) -> int:
        return len(self._streams)

    # --- translation of h2's events ---------------------------------------------------------

    def _split(self, data: bytes | bytearray | memoryview) -> list[memoryview | bytes | GoAway]:
        try:
            return self._gate.split(data)
        except GateError as error:  # the HBONE gate's own error type: same meaning, converted
            raise RemoteProtocolError(str(error), error.error_code) from None

    def _receive_frames(self, piece: memoryview | bytes, events: list[Event]) -> None:
        try:
            received = self._h2.receive_data(piece)
        except h2.exceptions.ProtocolError as error:
            message = str(error) or type(error).__name__
            raise RemoteProtocolError(f"peer broke HTTP/2: {message}", error.error_code) from None
        for event in received:
            events += self._translate(event)

    def _translate(self, event: h2.events.Event) -> list[Event]:
        match event:
            case h2.events.DataReceived():
                return self._on_data(event)
            case h2.events.TrailersReceived():
                return self._on_trailers(event)
            case h2.events.StreamEnded():
                return self._on_stream_ended(event.stream_id)
            case h2.events.StreamReset():
                return self._on_reset(event)
            case h2.events.WindowUpdated():
                self._windows_changed = True
            case h2.events.RemoteSettingsChanged():
                self._remote_settings_seen = self._windows_changed = True
                self._count_control_frame("SETTINGS")
            case h2.events.PingReceived():
                self._count_control_frame("PING")
            case _:
                return self._on_message(event)
        return []

    def _on_message(self, event: h2.events.Event) -> list[Event]:
        """A request or response head (the ends differ here); anything else is ignored."""
        return []

    def _on_data(self, event: h2.events.DataReceived) -> list[Event]:
        sid, length = event.stream_id, event.flow_controlled_length or 0
        if not event.data and event.stream_ended is None:
            self._count_control_frame("empty DATA")
        if sid not in self._streams or not event.data:  # nobody will acknowledge it: credit now
            if length:
                self._h2.acknowledge_received_data(length, sid)
            return []
        self._unacked[sid] = self._unacked.get(sid, 0) + length
        return [DataReceived(sid, event.data, length)]

    def _on_trailers(self, event: h2.events.TrailersReceived) -> list[Event]:
        if event.stream_id not in self._streams:
            return []
        try:
            trailers = parse_trailers(event.headers or [])
        except MalformedHeaders as error:
            return self._reset_malformed(event.stream_id, f"malformed trailers: {error}")
        return [TrailersReceived(event.stream_id, trailers)]

    def _on_stream_ended(self, stream_id: int) -> list[Event]:
        stream = self._streams.get(stream_id)
        if stream is None:
            return []
        stream.remote_ended = True
        self._forget_if_done(stream_id, stream)
        return [StreamEnded(stream_id)]

    def _on_reset(self, event: h2.events.StreamReset) -> list[Event]:
        stream = self._forget(event.stream_id)
        if stream is None:
            return []
        if event.remote_reset:
            self._on_peer_reset(event.stream_id, stream)
        return [StreamReset(event.stream_id, int(event.error_code or 0), event.remote_reset)]

    def _on_peer_reset(self, stream_id: int, stream: StreamState) -> None:
        """The server counts resets here (rapid reset); a client has nothing to do."""

    def _on_goaway(self, goaway: GoAway) -> list[Event]:
        self.peer_goaway = goaway
        reason = goaway.debug.decode("utf-8", "replace")
        events: list[Event] = [
            ConnectionTerminated(goaway.error_code, reason, goaway.last_stream_id, remote=True)
        ]
        # Our streams above last_stream_id were never seen by the peer: refused, safe to retry.
        for stream_id in sorted(self._streams):
            if self._is_ours(stream_id) and stream_id > goaway.last_stream_id:
                self._forget(stream_id)
                events.append(
                    StreamReset(
                        stream_id, ErrorCodes.REFUSED_STREAM, True, "peer's GOAWAY: safe to retry"
                    )
                )
        return events

    def _end_of_batch(self, events: list[Event]) -> list[Event]:
        """Windows opened during this batch: move the backlogs on once, say which moved."""
        if not self._windows_changed:
            return events
        self._windows_changed = False
        with caller_errors():
            moved = self._out.flush()
        for stream_id in moved:
            events.append(WindowOpened(stream_id))
            stream = self._streams.get(stream_id)
            if stream is not None:
                self._forget_if_done(stream_id, stream)
        if moved:
            self._control_frames.clear()
        return events

    # --- bookkeeping ------------------------------------------------------------------------

    def _is_ours(self, stream_id: int) -> bool:
        return (stream_id % 2 == 1) == self._client

    def _sendable(self, stream_id: int) -> StreamState:
        stream = self._streams.get(stream_id)
        if stream is None or self.closed:
            raise StreamClosedError(
                f"stream {stream_id} is not open (reset, finished, never opened, or the "
                "connection is closed)"
            )
        if stream.local_ended:
            raise LocalProtocolError(f"stream {stream_id}: our side already ended")
        if not stream.headers_sent:
            raise LocalProtocolError(f"stream {stream_id}: send the response head first")
        return stream

    def _forget_if_done(self, stream_id: int, stream: StreamState) -> None:
        """Both sides ended and nothing waits to be sent: the stream is over."""
        if stream.local_ended and stream.remote_ended and not self._out.queued(stream_id):
            del self._streams[stream_id]

    def _forget(self, stream_id: int) -> StreamState | None:
        """The stream was reset: drop its backlog and credit back what was never consumed."""
        stream = self._streams.pop(stream_id, None)
        self._out.drop(stream_id)
        owed = self._unacked.pop(stream_id, 0)
        if owed and not self.closed:
            self._h2.acknowledge_received_data(owed, stream_id)
        return stream

    def _reset_malformed(self, stream_id: int, reason: str) -> list[Event]:
        self.reset(stream_id, ErrorCodes.PROTOCOL_ERROR)
        return [StreamReset(stream_id, ErrorCodes.PROTOCOL_ERROR, remote=False, reason=reason)]

    def _count_control_frame(self, kind: str) -> None:
        if self._control_frames.hit():
            raise RemoteProtocolError(
                f"peer sent more than {self.limits.max_control_frames} SETTINGS/PING/empty DATA "
                f"frames within {self.limits.control_window:g} s while we sent nothing (last: "
                f"{kind}); closing as a control-frame flood",
                ErrorCodes.ENHANCE_YOUR_CALM,
            )

    def _terminate(self, error: RemoteProtocolError) -> ConnectionTerminated:
        """The peer's fault ends this connection: GOAWAY with its code and our reason."""
        self._close(error.error_code, str(error))
        last = self._h2.highest_inbound_stream_id
        return ConnectionTerminated(error.error_code, str(error), last, remote=False)

    def _close(self, error_code: int, reason: str) -> None:
        self.closed = True
        if self._h2.state_machine.state != ConnectionState.CLOSED:  # h2 may have sent its own
            self._h2.close_connection(error_code, header_value(reason).encode())
        self._streams.clear()
        self._unacked.clear()
        self._out.clear()
