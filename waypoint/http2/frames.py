"""The frame gate in front of h2: HBONE's GOAWAY gate plus bounds h2 does not apply. Pure.

HBONE's `FrameGate` (see `nodemesh.hbone.gate`) already walks frame headers ahead of h2 to take
GOAWAY frames out of the byte stream (h2 would otherwise stop sending the moment any GOAWAY
arrives, making a graceful drain impossible) and to refuse oversized frames from their header.
This subclass checks two more things from the same 9-byte headers, before h2 buffers a body:

* The raw size of a header block. h2 buffers HEADERS plus up to 64 CONTINUATION frames of up to
  MAX_FRAME_SIZE each before decoding anything, so with large frames a CONTINUATION flood could
  park 64 MiB per connection. The HPACK list limit only applies after all of it is buffered.
* The size of a SETTINGS frame. Each entry costs h2 work and the frame is limited only by
  MAX_FRAME_SIZE; like nghttp2, accept at most 32 entries per frame.
"""

from __future__ import annotations

from h2.errors import ErrorCodes

from nodemesh.hbone.gate import FrameGate, GoAway
from waypoint.http2.events import RemoteProtocolError

__all__ = ["GoAway", "Http2FrameGate"]

_HEADERS, _SETTINGS, _PUSH_PROMISE, _CONTINUATION = 0x1, 0x4, 0x5, 0x9
_SETTING_SIZE = 6
MAX_SETTINGS_ENTRIES = 32


class Http2FrameGate(FrameGate):
    """`FrameGate` that also bounds header blocks and SETTINGS frames by their frame headers."""

    def __init__(self, *, server: bool, max_frame_size: int, max_header_block: int) -> None:
        super().__init__(server=server, max_frame_size=max_frame_size)
        self._max_header_block = max_header_block
        self._header_block = 0  # raw bytes of the header block being received

    def _enter(self, header: bytes | memoryview) -> bool:
        length, kind = int.from_bytes(header[0:3], "big"), header[3]
        if kind in (_HEADERS, _PUSH_PROMISE, _CONTINUATION):
            self._header_block = length + (self._header_block if kind == _CONTINUATION else 0)
            if self._header_block > self._max_header_block:
                raise RemoteProtocolError(
                    f"peer's header block exceeds {self._max_header_block} bytes "
                    "(a CONTINUATION flood, or headers far over MAX_HEADER_LIST_SIZE)",
                    ErrorCodes.ENHANCE_YOUR_CALM,
                )
        elif kind == _SETTINGS and length > MAX_SETTINGS_ENTRIES * _SETTING_SIZE:
            raise RemoteProtocolError(
                f"peer sent a SETTINGS frame with {length // _SETTING_SIZE} entries; "
                f"at most {MAX_SETTINGS_ENTRIES} are accepted",
                ErrorCodes.ENHANCE_YOUR_CALM,
            )
        return super()._enter(header)
