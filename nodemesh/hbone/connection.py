"""What both ends of an HBONE connection share, without I/O: see ``protocol`` for the theory.

The receive path (frame gate, then the DATA fast path or h2, then translation of h2's events
into HBONE events), the tunnel byte path (send within the windows, acknowledge, end, reset) and
the abuse counter. Plain DATA frames bypass h2's per-frame machinery both ways (``fastdata``);
h2 still owns every window and stream state, so the two paths interleave freely. The
two ends, ``HboneClientConnection`` and ``HboneServerConnection``, live in ``protocol``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings
from h2.errors import ErrorCodes

from nodemesh.h2setup import new_h2
from nodemesh.hbone import fastdata
from nodemesh.hbone.events import (
    ConnectionClosed,
    Data,
    Event,
    LocalProtocolError,
    PeerEnded,
    RemoteProtocolError,
    Reset,
    WindowOpened,
)
from nodemesh.hbone.gate import FrameGate, GoAway
from nodemesh.hbone.headers import MAX_REASON, header_value


@dataclass(frozen=True)
class HboneSettings:
    """What we advertise and enforce on one connection."""

    stream_window: int = 4 << 20  # per tunnel: a 4 MiB bandwidth-delay product before stalling
    connection_window: int = 16 << 20  # shared by all tunnels of the connection
    max_frame_size: int = 1 << 20  # what we accept; what we send is the peer's choice
    max_concurrent_streams: int = 100  # also what a client assumes before the server's SETTINGS
    max_header_list_size: int = 16 << 10  # a CONNECT carries a handful of short headers
    max_resets_per_second: int = 200  # peer resets + our rejections before ENHANCE_YOUR_CALM


@dataclass
class Stream:
    """What this object remembers of a live tunnel; forgotten once both sides ended or reset."""

    answered: bool = False
    local_ended: bool = False
    remote_ended: bool = False


@contextmanager
def caller_errors() -> Iterator[None]:
    """h2 raises its own errors for misuse of its API; they are ours to own (the caller's fault)."""
    try:
        yield
    except h2.exceptions.ProtocolError as error:
        raise LocalProtocolError(str(error) or type(error).__name__) from error


class HboneConnection:
    """What both ends share: the receive path, data, acknowledgements, end and reset."""

    _client: bool

    def __init__(
        self, settings: HboneSettings | None = None, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.settings = s = settings or HboneSettings()
        conn = new_h2(
            self._client,
            max_concurrent_streams=s.max_concurrent_streams,
            stream_window=s.stream_window,
            connection_window=s.connection_window,
            max_frame_size=s.max_frame_size,
            max_header_list_size=s.max_header_list_size,
        )
        self._h2 = conn
        self._gate = FrameGate(
            server=not self._client, max_frame_size=s.max_frame_size, data_frames=True
        )
        self._streams: dict[int, Stream] = {}
        self._behind_h2 = bytearray()  # frames h2 must not know we sent (a graceful GOAWAY)
        self._clock = clock
        self._abuse_window_start = clock()
        self._abuse_count = 0
        self._remote_settings_seen = False  # until then, assume our own stream limit
        self.peer_goaway: GoAway | None = None  # the peer's GOAWAY: no new tunnels from us
        self.closed = False  # we sent a final GOAWAY, or the peer broke the protocol

    # --- bytes in, events out ---------------------------------------------------------------

    def receive_data(self, data: bytes | bytearray | memoryview) -> list[Event]:
        """Feed bytes read from the peer; returns what they meant. Raises RemoteProtocolError."""
        if self.closed:
            return []
        try:
            pieces = self._gate.split(data)
        except RemoteProtocolError as error:
            self.close(error.error_code, str(error))
            raise
        events: list[Event] = []
        for piece in pieces:
            if isinstance(piece, GoAway):
                events.extend(self._on_goaway(piece))
                continue
            if isinstance(piece, fastdata.DataFrameView):
                if self._fast_data(piece, events):
                    continue
                piece = piece.raw
            try:
                received = self._h2.receive_data(piece)
            except h2.exceptions.ProtocolError as error:  # h2 has queued its GOAWAY already
                self.closed = True
                message = str(error) or type(error).__name__
                raise RemoteProtocolError(
                    f"peer broke HTTP/2: {message}", error.error_code
                ) from None
            for event in received:
                events.extend(self._translate(event))
        return events

    def _fast_data(self, frame: fastdata.DataFrameView, events: list[Event]) -> bool:
        """The DATA fast path; False when h2 must see the frame (see ``fastdata``)."""
        if frame.stream_id not in self._streams:
            return False  # h2 decides what data on a gone or unknown stream means
        data = fastdata.receive(self._h2, frame)
        if data is None:
            return False
        events.append(Data(frame.stream_id, data, len(data)))
        return True

    def data_to_send(self) -> bytes:
        """Bytes to write to the peer, in order; empty when there is nothing."""
        out = self._h2.data_to_send()
        if self._behind_h2:
            out += bytes(self._behind_h2)
            self._behind_h2.clear()
        return out

    # --- the tunnel byte path ---------------------------------------------------------------

    def send(self, stream_id: int, data: bytes | bytearray | memoryview) -> int:
        """Frame as much of ``data`` as the windows allow; returns how much. Never buffers more."""
        self._live(stream_id, sending=True)
        view = memoryview(data)
        sent = fastdata.send(self._h2, stream_id, view)
        if sent is not None:
            return sent
        with caller_errors():
            n = min(len(data), self._h2.local_flow_control_window(stream_id))
            view = view[:n]
            step = self._h2.max_outbound_frame_size
            for offset in range(0, n, step):
                self._h2.send_data(stream_id, view[offset : offset + step])
        return max(n, 0)

    def send_window(self, stream_id: int) -> int:
        """How many bytes ``send`` would take right now."""
        with caller_errors():
            return self._h2.local_flow_control_window(stream_id)

    def acknowledge(self, stream_id: int, flow_controlled_length: int) -> None:
        """The shell has passed on a Data event's bytes: let the peer send that much more."""
        if flow_controlled_length and not self.closed:
            try:  # not caller_errors(): this runs per message, and a context manager costs µs
                self._h2.acknowledge_received_data(flow_controlled_length, stream_id)
            except h2.exceptions.ProtocolError as error:
                raise LocalProtocolError(str(error) or type(error).__name__) from error

    @property
    def credit_batch(self) -> int:
        """How many passed-on bytes a shell may gather before calling ``acknowledge``.

        Acknowledging every small message costs more than relaying it, and h2 sends no
        WINDOW_UPDATE before half a window is processed anyway. Held back across all streams,
        this is at most 1/16 of the connection window, and at most 1/16 of a stream window per
        stream, so the peer never stalls on it. The shell must still acknowledge what it holds
        when the stream ends, or the connection window would shrink for good.
        """
        s = self.settings
        return max(1, min(s.stream_window, s.connection_window // s.max_concurrent_streams) // 16)

    def end(self, stream_id: int) -> None:
        """Half-close: our side of the tunnel is done sending (the TCP FIN, carried over)."""
        stream = self._live(stream_id, sending=True)
        with caller_errors():
            self._h2.end_stream(stream_id)
        stream.local_ended = True
        self._forget_if_done(stream_id, stream)

    def reset(self, stream_id: int, error_code: int = ErrorCodes.CANCEL) -> None:
        """Abort a tunnel (the TCP RST, carried over). Idempotent: a gone tunnel is left alone."""
        self._streams.pop(stream_id, None)
        if self.closed:
            return
        with suppress(h2.exceptions.StreamClosedError):
            self._h2.reset_stream(stream_id, error_code)

    def close(self, error_code: int = ErrorCodes.NO_ERROR, reason: str = "") -> None:
        """End the connection now with a final GOAWAY; live tunnels are dropped."""
        if not self.closed:
            self.closed = True
            self._h2.close_connection(error_code, header_value(reason).encode())
        self._streams.clear()

    @property
    def live_streams(self) -> int:
        return len(self._streams)

    # --- translation of h2 events -----------------------------------------------------------

    def _translate(self, event: h2.events.Event) -> list[Event]:
        match event:
            case h2.events.DataReceived():
                return self._on_data(event)
            case h2.events.StreamEnded():
                stream = self._streams.get(event.stream_id)
                if stream is None:
                    return []
                stream.remote_ended = True
                self._forget_if_done(event.stream_id, stream)
                return [PeerEnded(event.stream_id)]
            case h2.events.StreamReset():
                return self._on_reset(event)
            case h2.events.WindowUpdated():
                return [WindowOpened(event.stream_id or 0)]
            case h2.events.RemoteSettingsChanged():
                self._remote_settings_seen = True
                return [WindowOpened(0)]  # a new INITIAL_WINDOW_SIZE changes every window
            case h2.events.ConnectionTerminated():  # a GOAWAY the gate left in a header block
                self.closed = True
                reason = (event.additional_data or b"").decode("utf-8", "replace")
                return [ConnectionClosed(event.error_code or 0, reason, event.last_stream_id or 0)]
        return self._translate_request_or_response(event)

    def _translate_request_or_response(self, event: h2.events.Event) -> list[Event]:
        return []

    def _on_data(self, event: h2.events.DataReceived) -> list[Event]:
        stream = self._streams.get(event.stream_id)
        if stream is None or not event.data:  # nobody will acknowledge it: credit it back now
            if event.flow_controlled_length:
                self._h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            return []
        return [Data(event.stream_id, event.data, event.flow_controlled_length)]

    def _on_reset(self, event: h2.events.StreamReset) -> list[Event]:
        if event.remote_reset and not self._client:
            self._count_abuse(f"peer reset stream {event.stream_id}")
        if self._streams.pop(event.stream_id, None) is None:
            return []
        return [Reset(event.stream_id, int(event.error_code), event.remote_reset)]

    def _on_goaway(self, goaway: GoAway) -> list[Event]:
        self.peer_goaway = goaway
        reason = goaway.debug.decode("utf-8", "replace")
        events: list[Event] = [ConnectionClosed(goaway.error_code, reason, goaway.last_stream_id)]
        # Our streams above last_stream_id were never seen by the peer: refused, safe to retry.
        for stream_id in sorted(self._streams):
            if self._is_ours(stream_id) and stream_id > goaway.last_stream_id:
                del self._streams[stream_id]
                events.append(Reset(stream_id, ErrorCodes.REFUSED_STREAM, remote=True))
        return events

    # --- bookkeeping ------------------------------------------------------------------------

    def _is_ours(self, stream_id: int) -> bool:
        return (stream_id % 2 == 1) == self._client

    def _live(self, stream_id: int, *, sending: bool = False) -> Stream:
        stream = self._streams.get(stream_id)
        if stream is None or self.closed:
            raise LocalProtocolError(f"tunnel {stream_id} is not open (ended, reset or unknown)")
        if sending and stream.local_ended:
            raise LocalProtocolError(f"tunnel {stream_id}: our side already ended")
        return stream

    def _forget_if_done(self, stream_id: int, stream: Stream) -> None:
        if stream.local_ended and stream.remote_ended:
            self._streams.pop(stream_id, None)

    def _count_abuse(self, what: str) -> None:
        """Bound resets and rejections per second: the cheap-for-them, costly-for-us pattern."""
        now = self._clock()
        if now - self._abuse_window_start >= 1.0:
            self._abuse_window_start, self._abuse_count = now, 0
        self._abuse_count += 1
        if self._abuse_count > self.settings.max_resets_per_second:
            self._fail(
                RemoteProtocolError(
                    f"peer reset or sent bad requests on more than "
                    f"{self.settings.max_resets_per_second} streams within a second (last: "
                    f"{what}); closing the connection as an HTTP/2 rapid-reset defence",
                    ErrorCodes.ENHANCE_YOUR_CALM,
                )
            )

    def _fail(self, error: RemoteProtocolError) -> None:
        self.close(error.error_code, str(error)[:MAX_REASON])
        raise error
