"""The receive buffer: bytes the peer sent that no event has claimed yet.

Theory of operation: one `bytearray` grows at the end (`feed`) and is consumed from the front
(`del buf[:n]`, which CPython makes cheap by moving the start pointer). Delimiters are found with
`bytearray.find`, in C, never byte by byte in Python, and every search is bounded twice:

* it resumes where the previous, unsuccessful search stopped (`_scan`), so a peer trickling one
  byte per read costs O(n) in total, not O(n^2) re-scans;
* it never looks past the caller's limit, and a buffer that reaches the limit without the
  delimiter is refused at once. Memory held while waiting for a line end is thus bounded.

Only CRLF ends a line: a LF without its CR, or a CR anywhere inside a line, is refused, because
servers that disagree on line ends is how requests get smuggled past a proxy.
"""

from __future__ import annotations

import re

from waypoint.http1.errors import RemoteProtocolError

_CR = 0x0D
_BARE_LF = re.compile(rb"(?<!\r)\n")


class ReceiveBuffer:
    """A bytearray with bounded, resumable searches for CRLF-terminated lines and blocks."""

    __slots__ = ("_data", "_scan")

    def __init__(self) -> None:
        self._data = bytearray()
        self._scan = 0  # bytes already searched (without success) for the pending delimiter

    def __len__(self) -> int:
        return len(self._data)

    def __bytes__(self) -> bytes:
        return bytes(self._data)

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        self._data += data

    def take(self, n: int) -> bytearray:
        """Up to `n` bytes from the front. Taking everything hands over the buffer, uncopied."""
        data = self._data
        self._scan = 0
        if n >= len(data):
            self._data = bytearray()
            return data
        out = data[:n]
        del data[:n]
        return out

    def skip_crlf(self) -> bool | None:
        """Consume a CRLF at the front: True; None if too few bytes to tell; False if absent."""
        data = self._data
        if len(data) < 2:
            return None if data in (b"", b"\r") else False
        if data[0] == _CR and data[1] == 0x0A:
            del data[:2]
            self._scan = 0
            return True
        return False

    def take_line(self, max_len: int, what: str, status: int) -> bytes | None:
        """One CRLF-terminated line without its CRLF; None until it is complete.

        Raises RemoteProtocolError(status) when no line end appears within `max_len` bytes, and
        a 400 for a bare LF or CR.
        """
        data = self._data
        end = data.find(b"\n", self._scan, max_len + 2)
        if end < 0:
            if len(data) >= max_len + 2:
                raise RemoteProtocolError(f"{what} longer than {max_len} bytes", status)
            self._scan = len(data)
            return None
        if end == 0 or data[end - 1] != _CR:
            raise RemoteProtocolError(f"bare LF in the {what}: only CRLF ends a line")
        line = bytes(data[: end - 1])
        del data[: end + 1]
        self._scan = 0
        if b"\r" in line:
            raise RemoteProtocolError(f"bare CR in the {what}: only CRLF ends a line")
        return line

    def take_block(self, max_len: int, what: str, status: int) -> bytes | None:
        """A section ended by an empty line (header fields, trailers) without its final CRLFCRLF
        (b"" for an empty section); None until the empty line arrives. The section, empty line
        included, may be at most `max_len`.

        A stray CR stays inside the block for the field parser to refuse. A bare LF is refused
        as soon as it is seen: a bare-LF client's empty line is never found, so waiting would
        only let it hold its buffer until the limit.
        """
        started = self.skip_crlf()
        if started is None:
            return None
        if started:
            return b""
        data = self._data
        end = data.find(b"\r\n\r\n", max(0, self._scan - 3), max_len)
        if end < 0:
            if _BARE_LF.search(data, self._scan, max_len):
                raise RemoteProtocolError(f"bare LF in the {what}: only CRLF ends a line")
            if len(data) >= max_len:
                raise RemoteProtocolError(f"{what} larger than {max_len} bytes", status)
            self._scan = len(data)
            return None
        block = bytes(data[:end])
        del data[: end + 4]
        self._scan = 0
        return block
