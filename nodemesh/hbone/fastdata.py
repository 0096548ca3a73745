"""The DATA-frame fast path: plain tunnel bytes framed and accounted without h2's machinery. Pure.

Theory of operation
-------------------
h2 spends tens of microseconds on every frame (hyperframe objects, two state machines, logging
calls, event objects), which is most of the per-message cost of relaying small messages. For
the one frame an HBONE tunnel carries all the time, a DATA frame on an open stream, what h2 does
comes down to a few counters, and this module does exactly that to h2's own counters, so h2
stays the single owner of connection state and every other frame still goes through it:

* receiving: charge the frame to the connection and stream inbound windows (the ones
  ``acknowledge_received_data`` later credits) and to the stream's received-length count;
* sending: write the 9-byte header and the payload into h2's outbound buffer, behind whatever h2
  queued before, and charge the connection and stream outbound windows.

The fast path takes a frame only in the plain case: connection open, stream open in the right
direction, no END_STREAM, no padding, no content-length to police, nothing half-parsed inside
h2, and the frame within both windows. Anything else returns "not taken" and the caller hands
the frame to h2, which applies every rule (and raises for the peer's violations) as before. The
h2 attributes read here are pinned by tests in tests/unit/hbone/test_fastdata.py, so an h2
upgrade that moves them fails there rather than silently.
"""

from __future__ import annotations

from dataclasses import dataclass

import h2.connection
import h2.stream

HEADER_LENGTH = 9
DATA, END_STREAM, PADDED = 0x0, 0x1, 0x8
_OPEN_CONNECTION = (
    h2.connection.ConnectionState.CLIENT_OPEN,
    h2.connection.ConnectionState.SERVER_OPEN,
)
_CAN_RECEIVE = (h2.stream.StreamState.OPEN, h2.stream.StreamState.HALF_CLOSED_LOCAL)
_CAN_SEND = (h2.stream.StreamState.OPEN, h2.stream.StreamState.HALF_CLOSED_REMOTE)


@dataclass(frozen=True, slots=True)
class DataFrameView:
    """A whole DATA frame found by the gate: header fields plus the raw bytes, not copied."""

    stream_id: int
    flags: int
    raw: memoryview  # header and body, for handing to h2 when the fast path declines

    @property
    def payload(self) -> memoryview:
        return self.raw[HEADER_LENGTH:]

    @property
    def plain(self) -> bool:
        """No END_STREAM (a state change) and no padding (a length to validate): fast-path fit."""
        return not self.flags & (END_STREAM | PADDED) and len(self.raw) > HEADER_LENGTH


def receive(conn: h2.connection.H2Connection, frame: DataFrameView) -> bytes | None:
    """Account ``frame`` as h2 would and return its payload, or None: give it to h2 instead."""
    if not frame.plain or conn.state_machine.state not in _OPEN_CONNECTION:
        return None
    pending = conn.incoming_buffer
    if pending._data or pending._preamble_len or pending._headers_buffer:
        return None  # h2 holds part of the stream: it must see the bytes in order
    stream = conn.streams.get(frame.stream_id)
    if stream is None or stream.state_machine.state not in _CAN_RECEIVE:
        return None
    if getattr(stream, "_expected_content_length", None) is not None:
        return None
    n = len(frame.raw) - HEADER_LENGTH
    conn_window = conn._inbound_flow_control_window_manager
    stream_window = stream._inbound_window_manager
    if n > conn_window.current_window_size or n > stream_window.current_window_size:
        return None  # a flow-control violation: h2 raises it with the right GOAWAY
    conn_window.current_window_size -= n
    stream_window.current_window_size -= n
    stream._actual_content_length += n
    return bytes(frame.payload)


def send(conn: h2.connection.H2Connection, stream_id: int, data: memoryview) -> int | None:
    """Frame as much of ``data`` as the windows allow into h2's output; None: use h2 instead."""
    if conn.state_machine.state not in _OPEN_CONNECTION:
        return None
    stream = conn.streams.get(stream_id)
    if stream is None or stream.state_machine.state not in _CAN_SEND:
        return None
    n = min(len(data), conn.outbound_flow_control_window, stream.outbound_flow_control_window)
    if n <= 0:
        return 0
    data, step = data[:n], conn.max_outbound_frame_size
    out = conn._data_to_send
    tail = b"\x00\x00" + stream_id.to_bytes(4, "big")  # type DATA, no flags, stream id
    for offset in range(0, n, step):
        chunk = data[offset : offset + step]
        out += len(chunk).to_bytes(3, "big")
        out += tail
        out += chunk
    conn.outbound_flow_control_window -= n
    stream.outbound_flow_control_window -= n
    return n
