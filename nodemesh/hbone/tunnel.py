"""Tunnel: one HBONE CONNECT stream as a byte stream (read / write / write_eof / close / splice).

The shell (``shell``) routes each stream's events here. Backpressure holds in every direction.
Towards the peer, ``Tunnel.write`` waits while the TLS transport is paused and while the HTTP/2
windows are shut. From the peer, bytes handed out by ``Tunnel.read`` are acknowledged (window
credited back) only on the next ``read``, i.e. after the caller has written them onward and
drained: a slow local reader therefore stalls the remote sender within one stream window.

``splice`` is the cheap path (see ``local``): it hands the local connection to a protocol that
the tunnel feeds straight from the event dispatch, with no task in between, and credits the
window back in batches, and only while the local transport is under its high-water mark.

The shell, the task helper and the errors are re-exported here, where callers always found them.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any

from h2.errors import ErrorCodes

from nodemesh.hbone import events as ev
from nodemesh.hbone import local
from nodemesh.hbone.events import HboneError, LocalProtocolError
from nodemesh.hbone.local import LOCAL_CHUNK, LOCAL_HIGH_WATER, LocalPump, abort_with_rst
from nodemesh.hbone.shell import (
    HboneConnectionShell,
    TunnelRefusedError,
    TunnelResetError,
    code_name,
)
from nodemesh.identity import SpiffeId

__all__ = [
    "LOCAL_CHUNK",
    "LOCAL_HIGH_WATER",
    "HboneConnectionShell",
    "Tunnel",
    "TunnelRefusedError",
    "TunnelResetError",
    "abort_with_rst",
]


class Tunnel:
    """One CONNECT stream as a byte stream: read / write / write_eof / close, or splice()."""

    def __init__(self, shell: HboneConnectionShell, stream_id: int, authority: str) -> None:
        self._shell = shell
        self.stream_id = stream_id
        self.authority = authority
        self.bytes_sent = self.bytes_received = 0
        self._inbox: deque[tuple[bytes, int]] = deque()
        self._unacked = 0  # flow-controlled bytes handed out by read() and not yet credited
        self._readable = asyncio.Event()
        self._window = asyncio.Event()
        self._peer_ended = self._local_ended = False
        self._error: HboneError | None = None
        self._sink: LocalPump | None = None  # splice's local side, fed from the dispatch
        self._sink_is_paused = False  # its transport is over the high-water mark: hold credit
        self._credit_batch = shell.proto.credit_batch  # credit the spliced path in batches
        self.response: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self.response.add_done_callback(_consume)

    @property
    def peer(self) -> SpiffeId | None:
        return self._shell.peer

    @property
    def key(self) -> str | None:
        """This CONNECT stream's name at both ends (`headers.tunnel_key`), for flow events."""
        return self._shell.tunnel_key(self.stream_id)

    @property
    def error(self) -> HboneError | None:
        """Why the tunnel ended abnormally (reset, refused, connection lost), else None."""
        return self._error

    # --- events from the shell --------------------------------------------------------------

    def _on_event(self, event: ev.Event) -> None:
        match event:
            case ev.Data(data=data, flow_controlled_length=n):
                self._on_data(data, n)
            case ev.PeerEnded():
                self._peer_ended = True
                self._readable.set()
                if self._sink is not None:
                    self._sink.peer_ended()
                    if not self._sink_is_paused:
                        self._credit(flush=False)  # nothing more comes: give back all held
                self._forget_if_done()
            case ev.WindowOpened():
                self._window.set()
            case ev.TunnelOpened(status=status):
                if not self.response.done():
                    self.response.set_result(status)
            case ev.TunnelRefused(status=status, reason=reason):
                why = f"{status} ({reason or 'no reason given'})"
                message = f"{self._shell.label} refused the tunnel to {self.authority}: {why}"
                self._fail(TunnelRefusedError(message, status, reason))
            case ev.Reset(error_code=code, remote=remote):
                who = self._shell.label if remote else "this side"
                message = f"tunnel to {self.authority} reset by {who} ({code_name(code)})"
                self._fail(TunnelResetError(message, code, remote))

    def _on_data(self, data: bytes, flow_controlled_length: int) -> None:
        if self._sink is not None:
            self._deliver(data, flow_controlled_length)
        else:
            self._inbox.append((data, flow_controlled_length))
            self._readable.set()

    def _fail(self, error: HboneError) -> None:
        if self._error is None:
            self._error = error
        if not self.response.done():
            self.response.set_exception(error)
        self._readable.set()
        self._window.set()
        self._release()
        self._shell.forget(self)
        if self._sink is not None:
            self._sink.tunnel_failed(self._error)

    # --- the spliced path (see ``local``) ---------------------------------------------------

    def _attach(self, sink: LocalPump) -> None:
        """From now on DATA goes straight to ``sink``; what arrived before goes first."""
        self._sink = sink
        while self._inbox:
            self._deliver(*self._inbox.popleft())
        self._credit()
        if self._error is not None:
            sink.tunnel_failed(self._error)
        elif self._peer_ended:
            sink.peer_ended()

    def _deliver(self, data: bytes, flow_controlled_length: int) -> None:
        """Pass DATA on and credit it: in batches (``credit_batch``), and never while the local
        transport is over its high-water mark (backpressure: credit waits for it to drain)."""
        assert self._sink is not None
        self.bytes_received += len(data)
        self._sink.write(data)
        self._unacked += flow_controlled_length
        if not self._sink_is_paused and self._unacked >= self._credit_batch:
            self._credit(flush=False)  # the shell flushes once after the whole dispatch

    def _sink_paused(self, paused: bool) -> None:
        self._sink_is_paused = paused
        if not paused:
            self._credit()

    def _credit(self, flush: bool = True) -> None:
        """Let the peer send what was passed on (after a failure ``_release`` did it already)."""
        if self._unacked and self._error is None and not self._shell.is_lost:
            self._shell.proto.acknowledge(self.stream_id, self._unacked)
            self._unacked = 0
            if flush:
                self._shell.flush()

    def _send_now(self, data: memoryview) -> int:
        """Send what fits without waiting (windows open, TLS not paused); returns how much."""
        if self._error is not None:
            raise self._error
        if not self._shell.can_send_now:
            return 0
        sent = self._send(data)
        if sent:
            self._shell.flush()
            self.bytes_sent += sent
        return sent

    def _send(self, data: memoryview) -> int:
        try:
            return self._shell.proto.send(self.stream_id, data)
        except LocalProtocolError as error:
            raise TunnelResetError(f"tunnel to {self.authority}: {error}", remote=False) from None

    def _release(self) -> None:
        """Credit back all received and not passed on: the connection window is shared."""
        unread = self._unacked + sum(n for _, n in self._inbox)
        self._inbox.clear()
        self._unacked = 0
        if unread and not self._shell.is_lost:
            self._shell.proto.acknowledge(self.stream_id, unread)
            self._shell.flush()

    def _forget_if_done(self) -> None:
        if self._peer_ended and self._local_ended:
            self._shell.forget(self)

    # --- the caller's API -------------------------------------------------------------------

    async def read(self) -> bytes:
        """The next chunk from the peer; b"" once it half-closed. Credits the previous chunk."""
        if self._unacked:
            self._shell.proto.acknowledge(self.stream_id, self._unacked)
            self._unacked = 0
            self._shell.flush()
        while not self._inbox:
            if self._error is not None:
                raise self._error
            if self._peer_ended:
                return b""
            self._readable.clear()
            await self._readable.wait()
        if self._error is not None:
            raise self._error
        data, self._unacked = self._inbox.popleft()
        self.bytes_received += len(data)
        return data

    async def write(self, data: bytes | bytearray | memoryview) -> None:
        """Send all of ``data``, waiting for window and for the TLS transport to drain."""
        view = memoryview(data)
        while view:
            await self._shell.writable()
            if self._error is not None:
                raise self._error
            sent = self._send(view)
            if sent:
                self._shell.flush()
                self.bytes_sent += sent
                view = view[sent:]
            else:
                self._window.clear()
                await self._window.wait()

    def write_eof(self) -> None:
        """Half-close: the peer reads EOF after the bytes already written."""
        if self._local_ended or self._error is not None:
            return
        self._shell.proto.end(self.stream_id)
        self._shell.flush()
        self._local_ended = True
        self._forget_if_done()

    def close(self, error_code: int = ErrorCodes.CANCEL) -> None:
        """Abort unless both sides already ended (then there is nothing left to do)."""
        if self._error is not None or (self._peer_ended and self._local_ended):
            return
        if not self._shell.is_lost:
            self._shell.proto.reset(self.stream_id, error_code)
            self._shell.flush()
        self._fail(TunnelResetError(f"tunnel to {self.authority} closed here", error_code, False))

    async def splice(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> tuple[int, int]:
        """Pump a local stream and this tunnel both ways until both sides have ended.

        Half-closes travel across (local EOF → END_STREAM, END_STREAM → local write_eof); an
        abort on either side aborts the other (a reset tunnel resets the local TCP connection).
        Returns (bytes sent into the tunnel, bytes received from it).
        """
        return await local.splice(self, reader, writer)


def _consume(future: asyncio.Future[Any]) -> None:
    """Mark a response future's error as seen: a tunnel nobody waited on is not a bug."""
    if not future.cancelled():
        future.exception()
