"""The one asyncio shell that drives an HBONE protocol object and routes its events to tunnels.

``HboneConnectionShell`` is an ``asyncio.BufferedProtocol`` over the loop's TLS transport: TLS
decrypts straight into one reused 256 KiB buffer, the buffer goes to ``receive_data``, the
events are routed to ``Tunnel`` objects (``tunnel``) by stream id, and ``data_to_send`` goes back
out once per TLS read, after the whole dispatch. All protocol decisions live in the sans-I/O
object; this module only moves bytes and wakes waiters.

Backpressure towards the peer: ``writable()`` waits while the TLS transport is paused (its buffer
is over the high-water mark), and ``can_send_now`` tells the spliced path not to add to it.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from h2.errors import ErrorCodes

from nodemesh.hbone import events as ev
from nodemesh.hbone.events import HboneError, RemoteProtocolError
from nodemesh.hbone.protocol import HboneClientConnection, HboneServerConnection
from nodemesh.hbone.tls import PeerIdentityError, check_alpn, peer_identity
from nodemesh.identity import SpiffeId
from nodemesh.tasks import TaskSet

if TYPE_CHECKING:
    from nodemesh.hbone.tunnel import Tunnel

log = logging.getLogger("nodemesh.hbone")

READ_BUFFER = 256 << 10  # one TLS read fills up to this much plaintext, without allocating
TLS_HIGH_WATER, TLS_LOW_WATER = 2 << 20, 512 << 10


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
        # the TLS connection's own ends, set once connected: they name its tunnels (`tunnel_key`)
        self.sockname: tuple[str, int] | None = None
        self.peername: tuple[str, int] | None = None
        self._view = memoryview(bytearray(READ_BUFFER))
        self.bytes_in = 0  # plaintext bytes read: none at all says "closed at the handshake"
        self._writable = asyncio.Event()
        self._writable.set()
        self.lost = asyncio.get_running_loop().create_future()

    # --- asyncio callbacks ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it
        self.transport = transport  # type: ignore[assignment]
        self.sockname = _address(transport.get_extra_info("sockname"))
        self.peername = _address(transport.get_extra_info("peername"))
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
        tunnels = self.tunnels
        for event in events:
            if type(event) is ev.Data and (tunnel := tunnels.get(event.stream_id)) is not None:
                tunnel._on_data(event.data, event.flow_controlled_length)  # the per-message case
            else:
                self._dispatch(event)
        self.flush()  # once per TLS read: credits and answers of the whole dispatch together

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

    @property
    def can_send_now(self) -> bool:
        """The TLS transport takes more without waiting (under its high-water mark, not lost)."""
        return self._writable.is_set() and not self.lost.done()

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
                    f"it sent GOAWAY {code_name(event.error_code)}: {event.reason or '-'}"
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

    def tunnel_key(self, stream_id: int) -> str | None:
        """The key both ends give this stream (`headers.tunnel_key`); None before connecting."""
        return None

    def _check_peer(self, peer: SpiffeId) -> None:
        pass

    def _on_connection_event(self, event: ev.Event) -> None:
        pass

    def _on_tunnel_done(self) -> None:
        pass

    def _on_lost(self) -> None:
        pass


def _address(name) -> tuple[str, int] | None:
    """(ip, port) from a transport's sockname/peername (IPv6 adds flow info and scope)."""
    return (str(name[0]), int(name[1])) if name else None


def code_name(code: int) -> str:
    try:
        return ErrorCodes(code).name
    except ValueError:
        return f"error code {code}"
