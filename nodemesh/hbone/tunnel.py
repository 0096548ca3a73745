"""The one asyncio shell that drives an HBONE protocol object, and the Tunnel streams it hands out.

``HboneConnectionShell`` is an ``asyncio.BufferedProtocol`` over the loop's TLS transport: TLS
decrypts straight into one reused 256 KiB buffer, the buffer goes to ``receive_data``, the
events are routed to ``Tunnel`` objects by stream id, and ``data_to_send`` goes back out. All
protocol decisions live in the sans-I/O object; this module only moves bytes and wakes waiters.

Backpressure holds in every direction. Towards the peer, ``Tunnel.write`` waits while the TLS
transport is paused (its buffer is over the high-water mark) and while the HTTP/2 windows are
shut. From the peer, bytes handed out by ``Tunnel.read`` are acknowledged (window credited back)
only on the next ``read``, i.e. after the caller has written them onward and drained: a slow
local reader therefore stalls the remote sender within one stream window.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
from collections import deque
from collections.abc import Coroutine
from typing import Any

from h2.errors import ErrorCodes

from nodemesh.hbone import events as ev
from nodemesh.hbone.events import HboneError, LocalProtocolError, RemoteProtocolError
from nodemesh.hbone.protocol import HboneClientConnection, HboneServerConnection
from nodemesh.hbone.tls import PeerIdentityError, check_alpn, peer_identity
from nodemesh.identity import SpiffeId

log = logging.getLogger("nodemesh.hbone")

READ_BUFFER = 256 << 10  # one TLS read fills up to this much plaintext, without allocating
LOCAL_CHUNK = 256 << 10  # read size on the local (plaintext) side
TLS_HIGH_WATER, TLS_LOW_WATER = 2 << 20, 512 << 10
LOCAL_HIGH_WATER = 1 << 20


class TunnelRefusedError(HboneError):
    """The far end answered our CONNECT with an error status; ``reason`` is its explanation."""

    def __init__(self, message: str, status: int, reason: str) -> None:
        super().__init__(message)
        self.status, self.reason = status, reason


class TunnelResetError(HboneError):
    """The tunnel was aborted: by the peer (``remote``) or because its connection failed."""

    def __init__(self, message: str, error_code: int = ErrorCodes.CANCEL, remote: bool = True):
        super().__init__(message)
        self.error_code, self.remote = int(error_code), remote


class TaskSet:
    """The only way this package starts tasks: keep a reference until done, log failures."""

    def __init__(self, owner: str) -> None:
        self._owner = owner
        self._tasks: set[asyncio.Task[Any]] = set()

    def spawn(
        self, coro: Coroutine[Any, Any, Any], name: str, *, awaited: bool = False
    ) -> asyncio.Task[Any]:
        """``awaited``: the caller collects the result, so a failure is its to report."""
        task = asyncio.get_running_loop().create_task(coro, name=f"{self._owner}/{name}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        if not awaited:
            task.add_done_callback(_log_failure)
        return task

    async def finish(self, timeout: float) -> None:
        """Give running tasks ``timeout`` seconds to end on their own, then cancel the rest."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=timeout)
        for task in list(self._tasks):
            task.cancel()


class HboneConnectionShell(asyncio.BufferedProtocol):
    """One TLS connection and its protocol object; subclasses add the client or server part."""

    def __init__(self, proto: HboneClientConnection | HboneServerConnection, label: str) -> None:
        self.proto = proto
        self.label = label  # "peer at 10.0.0.2:15008" or "client 10.0.0.1:41234", for messages
        self.tunnels: dict[int, Tunnel] = {}
        self.tasks = TaskSet(label)
        self.peer: SpiffeId | None = None
        self.error: BaseException | None = None  # why the connection ended, if not cleanly
        self.transport: asyncio.Transport | None = None
        self._view = memoryview(bytearray(READ_BUFFER))
        self.bytes_in = 0  # plaintext bytes read: none at all says "closed at the handshake"
        self._writable = asyncio.Event()
        self._writable.set()
        self.lost = asyncio.get_running_loop().create_future()

    # --- asyncio callbacks ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it
        self.transport = transport  # type: ignore[assignment]
        try:
            ssl_object = transport.get_extra_info("ssl_object")
            check_alpn(ssl_object)
            self.peer = peer_identity(ssl_object)
            self._check_peer(self.peer)
        except PeerIdentityError as error:
            self.error = error
            log.warning("HBONE %s: %s; closing", self.label, error)
            transport.abort()
            return
        transport.set_write_buffer_limits(high=TLS_HIGH_WATER, low=TLS_LOW_WATER)
        self.flush()

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._view

    def buffer_updated(self, nbytes: int) -> None:
        self.bytes_in += nbytes
        try:
            events = self.proto.receive_data(self._view[:nbytes])
        except RemoteProtocolError as error:
            log.warning("HBONE %s (%s) broke the protocol: %s", self.label, self.peer, error)
            self.error = error
            self.flush()  # the GOAWAY that says why
            if self.transport is not None:
                self.transport.close()
            return
        for event in events:
            self._dispatch(event)
        self.flush()

    def eof_received(self) -> bool:
        return False  # TLS cannot half-close; tunnels half-close inside HTTP/2 instead

    def pause_writing(self) -> None:
        self._writable.clear()

    def resume_writing(self) -> None:
        self._writable.set()

    def connection_lost(self, exc: Exception | None) -> None:
        self.error = self.error or exc
        if self.error is None and not self.bytes_in:
            self.error = HboneError(self.silent_close_hint)
        if not self.lost.done():
            self.lost.set_result(None)
        failure = TunnelResetError(
            f"HBONE connection to {self.label} was lost"
            + (f": {self.error}" if self.error else ""),
            remote=False,
        )
        for tunnel in list(self.tunnels.values()):
            tunnel._fail(failure)
        self.tunnels.clear()
        self._writable.set()  # wake writers so they see the failure
        self._on_lost()

    # --- the shell's own API ----------------------------------------------------------------

    @property
    def is_lost(self) -> bool:
        return self.lost.done()

    def flush(self) -> None:
        data = self.proto.data_to_send()
        if data and self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    async def writable(self) -> None:
        while not self._writable.is_set():
            await self._writable.wait()
        if self.is_lost:
            raise TunnelResetError(f"HBONE connection to {self.label} is closed", remote=False)

    def close(self, reason: str = "closing") -> None:
        """Final GOAWAY and close; tunnels still open are dropped."""
        self.proto.close(ErrorCodes.NO_ERROR, reason)
        self.flush()
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def forget(self, tunnel: Tunnel) -> None:
        if self.tunnels.get(tunnel.stream_id) is tunnel:
            del self.tunnels[tunnel.stream_id]
            self._on_tunnel_done()

    # --- routing ----------------------------------------------------------------------------

    def _dispatch(self, event: ev.Event) -> None:
        if isinstance(event, ev.WindowOpened) and event.stream_id == 0:
            for tunnel in self.tunnels.values():
                tunnel._window.set()
            return
        if isinstance(event, ev.ConnectionClosed | ev.TunnelRequested | ev.RequestRejected):
            if isinstance(event, ev.ConnectionClosed) and event.error_code:
                self.error = HboneError(  # the reason the tunnels will fail with
                    f"it sent GOAWAY {_code_name(event.error_code)}: {event.reason or '-'}"
                )
            self._on_connection_event(event)
            return
        tunnel = self.tunnels.get(getattr(event, "stream_id", -1))
        if tunnel is None:
            if isinstance(event, ev.Data):  # nobody will read it: credit it back
                self.proto.acknowledge(event.stream_id, event.flow_controlled_length)
            return
        tunnel._on_event(event)

    # hooks for the client and server shells
    silent_close_hint = "closed before a single HTTP/2 frame"

    def _check_peer(self, peer: SpiffeId) -> None:
        pass

    def _on_connection_event(self, event: ev.Event) -> None:
        pass

    def _on_tunnel_done(self) -> None:
        pass

    def _on_lost(self) -> None:
        pass


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
        self.response: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self.response.add_done_callback(_consume)

    @property
    def peer(self) -> SpiffeId | None:
        return self._shell.peer

    @property
    def error(self) -> HboneError | None:
        """Why the tunnel ended abnormally (reset, refused, connection lost), else None."""
        return self._error

    # --- events from the shell --------------------------------------------------------------

    def _on_event(self, event: ev.Event) -> None:
        match event:
            case ev.Data(data=data, flow_controlled_length=n):
                self._inbox.append((data, n))
                self._readable.set()
            case ev.PeerEnded():
                self._peer_ended = True
                self._readable.set()
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
                message = f"tunnel to {self.authority} reset by {who} ({_code_name(code)})"
                self._fail(TunnelResetError(message, code, remote))

    def _fail(self, error: HboneError) -> None:
        if self._error is None:
            self._error = error
        if not self.response.done():
            self.response.set_exception(error)
        self._readable.set()
        self._window.set()
        self._release()
        self._shell.forget(self)

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
            try:
                sent = self._shell.proto.send(self.stream_id, view)
            except LocalProtocolError as error:
                raise TunnelResetError(
                    f"tunnel to {self.authority}: {error}", remote=False
                ) from None
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
        writer.transport.set_write_buffer_limits(high=LOCAL_HIGH_WATER)
        name = f"tunnel-{self.stream_id}"
        up = self._shell.tasks.spawn(self._local_to_tunnel(reader), f"{name}-up", awaited=True)
        down = self._shell.tasks.spawn(self._tunnel_to_local(writer), f"{name}-down", awaited=True)
        try:
            done, _ = await asyncio.wait({up, down}, return_when=asyncio.FIRST_EXCEPTION)
            for task in done:
                if (error := task.exception()) is not None:
                    raise error
        except BaseException:
            up.cancel()
            down.cancel()
            self.close(ErrorCodes.CONNECT_ERROR)
            abort_with_rst(writer)
            raise
        writer.close()
        return self.bytes_sent, self.bytes_received

    async def _local_to_tunnel(self, reader: asyncio.StreamReader) -> None:
        while data := await reader.read(LOCAL_CHUNK):
            await self.write(data)
        self.write_eof()

    async def _tunnel_to_local(self, writer: asyncio.StreamWriter) -> None:
        while data := await self.read():
            writer.write(data)
            await writer.drain()  # the next read() credits this chunk back to the sender
        if writer.can_write_eof():
            writer.write_eof()


def abort_with_rst(writer: asyncio.StreamWriter) -> None:
    """Close a local TCP connection with RST, so an abort on the far side is seen as one here."""
    sock = writer.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


def _log_failure(task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and (error := task.exception()) is not None:
        log.error("task %s failed: %s", task.get_name(), error, exc_info=error)


def _code_name(code: int) -> str:
    try:
        return ErrorCodes(code).name
    except ValueError:
        return f"error code {code}"


def _consume(future: asyncio.Future[Any]) -> None:
    """Mark a response future's error as seen: a tunnel nobody waited on is not a bug."""
    if not future.cancelled():
        future.exception()
