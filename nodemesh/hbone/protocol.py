"""HBONE without I/O: HTTP/2 CONNECT tunnels as bytes in, events out.

Theory of operation
-------------------
One HBONE connection is one HTTP/2 connection (inside mutual TLS, which is the shell's business)
multiplexing many tunnels; each tunnel is one CONNECT stream whose DATA frames carry the bytes of
one TCP connection. h2 does framing, HPACK and flow-control bookkeeping; this module adds what
HBONE means on top of it, and nothing here touches a socket or an event loop:

* The client opens a tunnel with ``CONNECT`` and ``:authority`` = the original destination
  ``ip:port``. The server answers 200 (tunnel up) or refuses with a status and a
  ``nodemesh-reason`` header: 403 for a policy denial, 405 for anything but CONNECT, 400 for an
  authority that is not ip:port. A refusal always says why.
* Flow control is end to end. A ``Data`` event is credited back to the sender (WINDOW_UPDATE)
  only when the shell calls ``acknowledge()``, after it has written those bytes onward, so a slow
  destination stops the source instead of filling this process's memory. ``send()`` frames only
  what the peer's windows allow and says how much; the rest waits for ``WindowOpened``.
* Large windows and frames (4 MiB per stream, 16 MiB per connection, 1 MiB frames), as ztunnel
  uses: Python's cost is per frame, so fewer and bigger frames keep it off the per-byte path.
* Graceful GOAWAY. h2 treats any GOAWAY, sent or received, as the end of the connection (it
  refuses to send afterwards), but draining needs the opposite: tunnels in flight carry on. A
  small frame gate in front of h2 takes GOAWAY frames out of the inbound byte stream and reports
  them as ``ConnectionClosed``; ``start_drain()`` writes our own GOAWAY without telling h2.
* Abuse is bounded: streams the peer resets plus requests we had to reject are counted per
  second; past the limit (the HTTP/2 "rapid reset" attack) the connection ends with GOAWAY
  ENHANCE_YOUR_CALM.

Errors say who is to blame: ``LocalProtocolError`` when the caller misused this object,
``RemoteProtocolError`` (raised by ``receive_data``) when the peer misbehaved. After a
RemoteProtocolError the connection is over: write ``data_to_send()`` (it carries the GOAWAY) and
close that one connection.
"""

from __future__ import annotations

from contextlib import suppress

import h2.events
import h2.exceptions
from h2.errors import ErrorCodes
from hyperframe.frame import GoAwayFrame

from nodemesh.hbone.connection import HboneConnection, HboneSettings, Stream, caller_errors
from nodemesh.hbone.events import (
    Event,
    LocalProtocolError,
    RequestRejected,
    TunnelOpened,
    TunnelRefused,
    TunnelRequested,
)
from nodemesh.hbone.headers import REASON_HEADER, header_value, headers_dict, parse_authority

__all__ = ["HboneClientConnection", "HboneServerConnection", "HboneSettings"]


class HboneClientConnection(HboneConnection):
    """The originating end: opens tunnels, learns whether each was accepted."""

    _client = True

    def open_tunnel(self, authority: str, headers: dict[str, str] | None = None) -> int:
        """Send a CONNECT for ``authority`` (ip:port); returns its stream id."""
        try:
            parse_authority(authority)
        except ValueError as error:
            raise LocalProtocolError(str(error)) from None
        if self.available_streams <= 0:
            raise LocalProtocolError(
                "no tunnel can be opened on this connection (peer's stream limit reached, or it "
                "is going away); open another connection"
            )
        block = [(":method", "CONNECT"), (":authority", authority)]
        for name, value in (headers or {}).items():
            if name.startswith(":"):
                raise LocalProtocolError(
                    f"header {name!r}: pseudo-headers are set here, not passed"
                )
            block.append((name.lower(), value))
        with caller_errors():
            stream_id = self._h2.get_next_available_stream_id()
            self._h2.send_headers(stream_id, block)
        self._streams[stream_id] = Stream()
        return stream_id

    @property
    def available_streams(self) -> int:
        """How many more tunnels the peer allows now (its limit is assumed until its SETTINGS)."""
        if self.closed or self.peer_goaway is not None:
            return 0
        limit = self.settings.max_concurrent_streams
        if self._remote_settings_seen:
            limit = self._h2.remote_settings.max_concurrent_streams
        return max(0, limit - self._h2.open_outbound_streams)

    def _translate_request_or_response(self, event: h2.events.Event) -> list[Event]:
        if not isinstance(event, h2.events.ResponseReceived):
            return []  # informational responses, trailers, pings, priorities: nothing to do
        stream = self._streams.get(event.stream_id)
        if stream is None:
            return []
        headers = headers_dict(event.headers)
        status = int(headers.get(":status", "0"))
        if 200 <= status < 300:
            stream.answered = True
            return [TunnelOpened(event.stream_id, status)]
        del self._streams[event.stream_id]
        with suppress(h2.exceptions.StreamClosedError):  # we send nothing more: close our half
            self._h2.reset_stream(event.stream_id, ErrorCodes.CANCEL)
        return [TunnelRefused(event.stream_id, status, headers.get(REASON_HEADER, ""))]


class HboneServerConnection(HboneConnection):
    """The terminating end: hears tunnel requests; the shell accepts or refuses each."""

    _client = False
    _drain_last_stream_id: int | None = None

    def accept(self, stream_id: int) -> None:
        """Answer 200: the tunnel is up and bytes may flow both ways."""
        stream = self._live(stream_id)
        if stream.answered:
            raise LocalProtocolError(f"tunnel {stream_id} was already answered")
        with caller_errors():
            self._h2.send_headers(stream_id, [(":status", "200")])
        stream.answered = True

    def refuse(self, stream_id: int, status: int, reason: str) -> None:
        """Answer with an error status and a reason the client can log (denials are explained)."""
        stream = self._live(stream_id)
        if stream.answered or not 300 <= status <= 599:
            raise LocalProtocolError(f"tunnel {stream_id}: cannot refuse with {status} now")
        self._answer_and_close(stream_id, status, reason, client_done=stream.remote_ended)
        del self._streams[stream_id]

    def start_drain(self, reason: str = "draining") -> None:
        """Graceful GOAWAY: requests already received are served, later ones are refused.

        Written behind h2's back (see the module docstring) so that tunnels in flight can go on.
        """
        if self._drain_last_stream_id is not None or self.closed:
            return
        last = self._h2.highest_inbound_stream_id
        self._drain_last_stream_id = last
        frame = GoAwayFrame(0, last_stream_id=last, error_code=ErrorCodes.NO_ERROR)
        frame.additional_data = header_value(reason).encode()
        self._behind_h2 += frame.serialize()

    def _translate_request_or_response(self, event: h2.events.Event) -> list[Event]:
        if not isinstance(event, h2.events.RequestReceived):
            return []
        sid, ended = event.stream_id, event.stream_ended is not None
        headers = headers_dict(event.headers)
        method, authority = headers.pop(":method", ""), headers.pop(":authority", "")
        if self._drain_last_stream_id is not None and sid > self._drain_last_stream_id:
            self._h2.reset_stream(sid, ErrorCodes.REFUSED_STREAM)  # retry on a new connection
            return []
        if method != "CONNECT":
            return self._reject(
                sid, 405, f"HBONE carries only CONNECT tunnels, not {method}", ended
            )
        if ":protocol" in headers:
            return self._reject(sid, 400, "extended CONNECT is not HBONE", ended)
        try:
            parse_authority(authority)
        except ValueError as error:
            return self._reject(sid, 400, str(error), ended)
        pseudo_free = {k: v for k, v in headers.items() if not k.startswith(":")}
        self._streams[sid] = Stream()
        return [TunnelRequested(sid, authority, pseudo_free)]

    def _reject(self, stream_id: int, status: int, reason: str, client_done: bool) -> list[Event]:
        self._answer_and_close(stream_id, status, reason, client_done=client_done)
        self._count_abuse(f"rejected stream {stream_id} with {status}")
        return [RequestRejected(stream_id, status, header_value(reason))]

    def _answer_and_close(
        self, stream_id: int, status: int, reason: str, client_done: bool
    ) -> None:
        headers = [(":status", str(status)), (REASON_HEADER, header_value(reason))]
        with caller_errors():
            self._h2.send_headers(stream_id, headers, end_stream=True)
            if not client_done:  # RFC 9113 8.1: stop the client sending a body we will not read
                self._h2.reset_stream(stream_id, ErrorCodes.NO_ERROR)
