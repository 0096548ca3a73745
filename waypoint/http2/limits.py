"""What one waypoint HTTP/2 connection advertises and enforces, and the counters that enforce it.

The waypoint faces clients it does not control, so every resource a peer can make it spend is
bounded: streams (MAX_CONCURRENT_STREAMS), header bytes (MAX_HEADER_LIST_SIZE, and the raw size of a
header block so a CONTINUATION flood is cut before it is buffered), inbound bytes (the flow-control
windows, credited only as the application consumes them), outbound bytes (a per-stream send
buffer), and the frames that cost us work but carry no request: resets (the rapid-reset attack,
CVE-2023-44487) and SETTINGS/PING/empty-DATA floods (CVE-2019-9512, -9515, -9518).

The abuse counters are sliding windows over an injectable clock: "more than N in the last T
seconds". Each keeps at most N+1 timestamps, so its memory is bounded whatever the peer does.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

KiB = 1 << 10
MiB = 1 << 20


@dataclass(frozen=True)
class Http2Limits:
    """Settings advertised to the peer and abuse thresholds; defaults follow Envoy and Istio."""

    # Streams the peer may have open at once (Envoy/Istio waypoints advertise 100).
    max_concurrent_streams: int = 100
    # Decoded header list size (RFC 9113 counts name + value + 32 per field); Envoy's 60 KiB.
    max_header_list_size: int = 60 * KiB
    # Per-stream receive window: how far a client may run ahead of a slow upstream.
    stream_window: int = 1 * MiB
    # Receive window shared by all streams of the connection (raised with WINDOW_UPDATE).
    connection_window: int = 16 * MiB
    # Largest frame we accept. Python's cost is per frame, so large frames keep it off the
    # per-byte path; a header block is bounded separately (`max_header_block`).
    max_frame_size: int = 1 * MiB
    # Bytes `send_data` may queue per stream while the peer's window is shut.
    max_send_buffer: int = 1 * MiB
    # Rapid reset: streams the peer reset before we finished answering, plus requests we had
    # to reject, allowed within `reset_window` seconds before GOAWAY(ENHANCE_YOUR_CALM).
    # (nghttp2's equivalent is a token bucket of 1000 with 33/s refill.)
    max_resets: int = 200
    reset_window: float = 10.0
    # Frames that make us work (an ACK, bookkeeping) but carry no request: SETTINGS, PING,
    # empty DATA. Counted only while we send nothing useful (any HEADERS or DATA we send clears
    # the count, as grpc-go's ping strikes do), so keepalive and BDP pings never trip it.
    max_control_frames: int = 100
    control_window: float = 10.0

    def __post_init__(self) -> None:
        # The flow-control window is a 31-bit quantity (RFC 9113 6.9.1); frames are 2^14..2^24-1.
        if not 65_535 <= self.stream_window <= 2**31 - 1:
            raise ValueError(f"stream_window {self.stream_window} must be in 65535..2^31-1")
        if not 65_535 <= self.connection_window <= 2**31 - 1:
            raise ValueError(f"connection_window {self.connection_window} must be in 65535..2^31-1")
        if not 16_384 <= self.max_frame_size <= 2**24 - 1:
            raise ValueError(f"max_frame_size {self.max_frame_size} must be in 16384..2^24-1")
        for name in ("max_concurrent_streams", "max_header_list_size", "max_send_buffer"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")

    @property
    def max_header_block(self) -> int:
        """Raw bytes of one HEADERS + CONTINUATION sequence we buffer before giving up.

        A sane HPACK encoder never makes a block larger than the list it encodes (a literal costs
        at most its bytes plus a few, the list counts 32 more per field), so twice the list limit
        leaves room for padding while cutting a CONTINUATION flood at a bounded size instead of
        h2's 64 frames of up to `max_frame_size` each.
        """
        return 2 * self.max_header_list_size + 16 * KiB


class SlidingWindow:
    """Counts events over the last `window` seconds; says when more than `limit` happened."""

    def __init__(self, limit: int, window: float, clock: Callable[[], float]) -> None:
        self.limit = limit
        self.window = window
        self._clock = clock
        self._times: deque[float] = deque(maxlen=limit + 1)  # older ones cannot matter

    def hit(self) -> bool:
        """Record one event now; True if more than `limit` fell within the window."""
        now = self._clock()
        times = self._times
        while times and now - times[0] >= self.window:
            times.popleft()
        times.append(now)
        return len(times) > self.limit

    def clear(self) -> None:
        """Forget everything counted so far (the peer did something useful in between)."""
        self._times.clear()

    @property
    def count(self) -> int:
        """Events remembered now (at most limit + 1; some may have aged out of the window)."""
        return len(self._times)
