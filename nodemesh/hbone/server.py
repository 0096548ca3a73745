"""Inbound HBONE: terminate mutual TLS on a listening socket and hand each tunnel to a handler.

The agent creates its listening sockets itself (inside pod network namespaces), so ``serve``
takes a bound socket rather than an address. For every CONNECT the server builds a
``TunnelRequest`` (the client's verified SPIFFE identity, the original destination, the headers)
and runs ``handler(request)`` in its own task. The handler decides: ``refuse(403, reason)``, or
``accept()`` and pump the returned tunnel to the real destination (``Tunnel.splice``). A handler
that returns without answering, or fails, gets the tunnel refused for it, so a client never
waits on a request nobody will answer.

``shutdown(grace)`` drains: stop accepting, send each connection a graceful GOAWAY (requests
already received are served, later ones are refused and retried elsewhere by the client), wait
for the open tunnels up to the deadline, then close what is left.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from nodemesh.controlplane import KeyAndCert
from nodemesh.hbone import events as ev
from nodemesh.hbone.headers import tunnel_key
from nodemesh.hbone.protocol import HboneServerConnection, HboneSettings
from nodemesh.hbone.tls import reload_identity, server_context
from nodemesh.hbone.tunnel import HboneConnectionShell, Tunnel, TunnelResetError
from nodemesh.identity import SpiffeId
from nodemesh.tasks import TaskSet

log = logging.getLogger("nodemesh.hbone.server")


@dataclass
class TunnelRequest:
    """One CONNECT, as a handler sees it; answer with accept() or refuse()."""

    peer_identity: SpiffeId  # from the client's verified certificate: the source workload
    peer_address: tuple[str, int]  # the client agent's address (not the original source)
    authority: str  # original destination, ip:port
    headers: dict[str, str]  # forwarded (original source), traceparent, ...
    stream: Tunnel
    _shell: _ServerShell = field(repr=False)
    answered: bool = False

    def accept(self) -> Tunnel:
        """Answer 200; pump the returned tunnel to the destination (``Tunnel.splice``)."""
        self._answer()
        if self.stream.error is not None:  # the client gave up before we answered
            raise self.stream.error
        self._shell.proto.accept(self.stream.stream_id)
        self._shell.flush()
        return self.stream

    def refuse(self, status: int = 403, reason: str = "") -> None:
        """Refuse with a status and a reason the client logs; denials are never silent."""
        self._answer()
        log.info(
            "HBONE refused %s from %s (%s): %s %s",
            self.authority,
            self.peer_identity,
            self.peer_address[0],
            status,
            reason,
        )
        if not self._shell.is_lost and self.stream.stream_id in self._shell.tunnels:
            self._shell.proto.refuse(self.stream.stream_id, status, reason)
            self._shell.flush()
        # credits back whatever the client sent before the answer, and frees the stream
        self.stream._fail(TunnelResetError(f"refused here: {status} {reason}", remote=False))

    def _answer(self) -> None:
        if self.answered:
            raise RuntimeError(f"the tunnel request for {self.authority} was already answered")
        self.answered = True


Handler = Callable[[TunnelRequest], Awaitable[None]]


class _ServerShell(HboneConnectionShell):
    proto: HboneServerConnection

    def __init__(self, server: HboneServer) -> None:
        super().__init__(HboneServerConnection(server.settings), "client")
        self._server = server
        self.peer_address: tuple[str, int] = ("", 0)
        self.draining = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        peername = transport.get_extra_info("peername") or ("?", 0)
        self.peer_address = (peername[0], peername[1])
        self.label = f"client at {peername[0]}:{peername[1]}"
        self.tasks = TaskSet(f"hbone-server/{self.label}")
        self._server._connections.add(self)
        super().connection_made(transport)

    def _on_connection_event(self, event: ev.Event) -> None:
        match event:
            case ev.TunnelRequested(stream_id=sid, authority=authority, headers=headers):
                assert self.peer is not None  # connection_made verified it before any data
                tunnel = Tunnel(self, sid, authority)
                self.tunnels[sid] = tunnel
                request = TunnelRequest(
                    self.peer, self.peer_address, authority, headers, tunnel, self
                )
                self.tasks.spawn(self._server._handle(request), f"tunnel-{sid}")
            case ev.RequestRejected(status=status, reason=reason):
                log.info(
                    "HBONE %s (%s): rejected a request: %s %s",
                    self.label,
                    self.peer,
                    status,
                    reason,
                )
            case ev.ConnectionClosed():
                if not self.tunnels:
                    self.close("client went away")

    def tunnel_key(self, stream_id: int) -> str | None:
        if self.sockname is None or self.peername is None:
            return None
        return tunnel_key(self.peername, self.sockname, stream_id)

    def start_drain(self) -> None:
        self.draining = True
        self.proto.start_drain("server draining")
        self.flush()
        if not self.tunnels:
            self.close("drained")

    def _on_tunnel_done(self) -> None:
        if self.draining and not self.tunnels:
            self.close("drained")

    def _on_lost(self) -> None:
        self._server._connections.discard(self)


class HboneServer:
    """Terminates HBONE on port 15008 (or any socket it is given)."""

    def __init__(
        self,
        identity: KeyAndCert,
        handler: Handler,
        *,
        settings: HboneSettings | None = None,
        handshake_timeout: float = 10.0,
    ) -> None:
        self.settings = settings
        self._context = server_context(identity)
        self._handler = handler
        self._handshake_timeout = handshake_timeout
        self._connections: set[_ServerShell] = set()
        self._server: asyncio.Server | None = None

    def update_identity(self, identity: KeyAndCert) -> None:
        """A renewed certificate for new connections; open tunnels are untouched."""
        reload_identity(self._context, identity)

    async def serve(self, sock: socket.socket) -> None:
        """Start accepting on ``sock`` (bound; listening or not) and return; the server owns it."""
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _ServerShell(self),
            sock=sock,
            ssl=self._context,
            ssl_handshake_timeout=self._handshake_timeout,
            backlog=1024,
        )

    @property
    def connections(self) -> set[_ServerShell]:
        return set(self._connections)

    async def shutdown(self, grace: float = 10.0) -> None:
        """Drain: stop accepting, GOAWAY, wait up to ``grace`` for tunnels, then close the rest."""
        if self._server is not None:
            self._server.close()
        shells = list(self._connections)
        for shell in shells:
            shell.start_drain()
        if shells:
            await asyncio.wait([shell.lost for shell in shells], timeout=grace)
        for shell in list(self._connections):
            log.warning(
                "HBONE %s: tunnels still open after %gs of draining; closing", shell.label, grace
            )
            shell.abort()
        for shell in shells:  # handlers see their tunnels fail: let them clean up, briefly
            await shell.tasks.finish(timeout=1.0)

    async def _handle(self, request: TunnelRequest) -> None:
        try:
            await self._handler(request)
        except TunnelResetError as error:  # an ordinary end: one side aborted the tunnel
            log.info("HBONE tunnel to %s: %s", request.authority, error)
        except Exception as error:
            log.warning("HBONE handler for %s failed: %s", request.authority, error, exc_info=True)
            if not request.answered:
                request.refuse(502, f"nodemesh could not serve the tunnel: {error}")
        finally:
            if not request.answered:
                request.refuse(500, "nodemesh handler did not answer the tunnel request")
            request.stream.close()
