"""Outbound HBONE: a pool of mutual-TLS HTTP/2 connections, each multiplexing many tunnels.

Connections are pooled by (source identity, destination identity, destination address), the key
ztunnel uses: a connection proves one identity at each end, so only tunnels that would present
and expect the same identities may share it. A connection takes tunnels up to the peer's
MAX_CONCURRENT_STREAMS (our own limit is assumed until its SETTINGS arrive); when all are busy a
new connection is opened. Concurrent openers wait for the same connection attempt instead of
each dialling their own. A connection with no tunnels is closed after ``idle_timeout``; one the
peer sent GOAWAY on takes no new tunnels and closes when its last tunnel ends.

The destination's certificate is verified against the trust bundle during the handshake, then
its SPIFFE identity is compared with the one expected before a single byte of HTTP/2 is sent.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass

from cryptography import x509
from h2.errors import ErrorCodes

from nodemesh.controlplane import KeyAndCert
from nodemesh.hbone import events as ev
from nodemesh.hbone.events import HboneError
from nodemesh.hbone.headers import tunnel_key
from nodemesh.hbone.protocol import HboneClientConnection, HboneSettings
from nodemesh.hbone.tls import PeerIdentityError, client_context, reload_identity
from nodemesh.hbone.tunnel import HboneConnectionShell, Tunnel, TunnelResetError
from nodemesh.identity import SpiffeId, identity_of_certificate
from nodemesh.tasks import TaskSet

log = logging.getLogger("nodemesh.hbone.client")


class HboneConnectError(HboneError):
    """No HBONE connection to the peer: unreachable, TLS failed, or no answer in time."""


class PeerIdentityMismatch(PeerIdentityError):
    """The peer's certificate is valid but names another workload than the one we meant."""


@dataclass(frozen=True)
class PoolKey:
    source: SpiffeId
    destination: SpiffeId | None  # None: any identity the trust bundle vouches for
    address: tuple[str, int]  # the peer agent's HBONE endpoint

    @property
    def where(self) -> str:
        host, port = self.address
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class _ClientShell(HboneConnectionShell):
    proto: HboneClientConnection
    silent_close_hint = (
        "it never spoke HTTP/2; most likely it rejected our certificate in the TLS handshake "
        "(issued by a CA it does not trust?)"
    )

    def __init__(self, pool: HbonePool, key: PoolKey, settings: HboneSettings | None) -> None:
        super().__init__(HboneClientConnection(settings), f"peer at {key.where}")
        self.key = key
        self._pool = pool
        self._idle: asyncio.TimerHandle | None = None

    def _check_peer(self, peer: SpiffeId) -> None:
        expected = self.key.destination
        if expected is not None and peer != expected:
            raise PeerIdentityMismatch(
                f"peer at {self.key.where} presented {peer} but {expected} was expected"
            )

    def tunnel_key(self, stream_id: int) -> str | None:
        if self.sockname is None or self.peername is None:
            return None
        return tunnel_key(self.sockname, self.peername, stream_id)

    @property
    def usable(self) -> bool:
        closing = self.transport is None or self.transport.is_closing()
        return not self.is_lost and not closing and self.proto.available_streams > 0

    def open_tunnel(self, authority: str, headers: dict[str, str] | None) -> Tunnel:
        stream_id = self.proto.open_tunnel(authority, headers)
        self.flush()
        tunnel = Tunnel(self, stream_id, authority)
        self.tunnels[stream_id] = tunnel
        if self._idle is not None:
            self._idle.cancel()
            self._idle = None
        return tunnel

    def _on_connection_event(self, event: ev.Event) -> None:
        if isinstance(event, ev.ConnectionClosed):
            log.info("HBONE %s is going away (%s): %s", self.label, event.error_code, event.reason)
            if not self.tunnels:
                self.close("peer went away")

    def _on_tunnel_done(self) -> None:
        if self.tunnels or self.is_lost:
            return
        if self.proto.peer_goaway is not None:
            self.close("peer went away")
        elif self._idle is None:
            loop = asyncio.get_running_loop()
            self._idle = loop.call_later(self._pool.idle_timeout, self._close_if_idle)

    def _close_if_idle(self) -> None:
        self._idle = None
        if not self.tunnels:
            self.close("idle")

    def _on_lost(self) -> None:
        if self._idle is not None:
            self._idle.cancel()
        self._pool._remove(self)


class HbonePool:
    """Opens tunnels to peers' HBONE endpoints, reusing connections as ztunnel does."""

    def __init__(
        self,
        identity: KeyAndCert,
        *,
        settings: HboneSettings | None = None,
        idle_timeout: float = 60.0,
        connect_timeout: float = 10.0,
        socket_factory: Callable[[], socket.socket] | None = None,
    ) -> None:
        """`socket_factory` makes the (unconnected, non-blocking) socket each connection dials
        from: the node agent passes one that creates it inside the source pod's namespace, so
        tunnels leave from the pod's own address as in ztunnel's in-pod mode."""
        self.source = _leaf_identity(identity)
        self._socket_factory = socket_factory
        self.idle_timeout = idle_timeout
        self.connect_timeout = connect_timeout
        self._settings = settings
        self._context = client_context(identity)
        self._pool: dict[PoolKey, list[_ClientShell]] = {}
        self._connecting: dict[PoolKey, asyncio.Task[_ClientShell]] = {}
        self._tasks = TaskSet("hbone-pool")
        self._closed = False

    async def open(
        self,
        dst_addr: tuple[str, int],
        expected_identity: SpiffeId | None,
        authority: str,
        headers: dict[str, str] | None = None,
    ) -> Tunnel:
        """A tunnel to ``authority`` (the original destination ip:port) through the peer agent
        at ``dst_addr``; raises TunnelRefusedError with the peer's reason if it says no."""
        key = PoolKey(self.source, expected_identity, (dst_addr[0], int(dst_addr[1])))
        for attempt in (1, 2):  # a GOAWAY racing our CONNECT refuses it: retry once elsewhere
            shell = await self._connection_for(key)
            tunnel = shell.open_tunnel(authority, headers)
            try:
                await asyncio.wait_for(asyncio.shield(tunnel.response), self.connect_timeout)
            except TunnelResetError as error:
                if attempt == 1 and error.error_code == ErrorCodes.REFUSED_STREAM:
                    continue
                raise
            except TimeoutError:
                tunnel.close()
                raise HboneConnectError(
                    f"{shell.label} did not answer the CONNECT to {authority} within "
                    f"{self.connect_timeout:g}s"
                ) from None
            except BaseException:  # our caller gave up: do not leave the stream half-open
                tunnel.close()
                raise
            return tunnel
        raise AssertionError("unreachable")

    def update_identity(self, identity: KeyAndCert) -> None:
        """A renewed certificate (same SPIFFE identity) for new connections; pooled ones stay."""
        if _leaf_identity(identity) != self.source:
            raise ValueError(
                f"pool of {self.source} cannot take a certificate for {_leaf_identity(identity)}"
            )
        reload_identity(self._context, identity)

    def connections(self, key: PoolKey | None = None) -> list[_ClientShell]:
        """Live connections (of one key, or all): for tests, the admin endpoint and metrics."""
        if key is not None:
            return list(self._pool.get(key, ()))
        return [shell for shells in self._pool.values() for shell in shells]

    async def close(self, grace: float = 5.0) -> None:
        """Open no more tunnels; let open ones finish up to ``grace`` seconds, then abort."""
        self._closed = True
        for task in self._connecting.values():
            task.cancel()
        shells = self.connections()
        for shell in shells:
            if not shell.tunnels:
                shell.close("pool closing")
        if shells:
            await asyncio.wait([shell.lost for shell in shells], timeout=grace)
        for shell in self.connections():
            shell.abort()
        await self._tasks.finish(timeout=0)

    # --- connections ------------------------------------------------------------------------

    async def _connection_for(self, key: PoolKey) -> _ClientShell:
        while True:
            if self._closed:
                raise HboneConnectError("the HBONE pool is closed")
            for shell in self._pool.get(key, ()):
                if shell.usable:
                    return shell
            pending = self._connecting.get(key)
            if pending is None:
                pending = self._tasks.spawn(
                    self._connect(key), f"connect {key.where}", awaited=True
                )
                self._connecting[key] = pending
                pending.add_done_callback(lambda _: self._connecting.pop(key, None))
            shell = await asyncio.shield(pending)  # a waiter giving up must not cancel it
            if shell.usable:
                return shell
            if shell.is_lost or shell.transport is None or shell.transport.is_closing():
                # e.g. the peer rejected our certificate: TLS 1.3 lets the client finish first
                await asyncio.wait([shell.lost], timeout=1.0)
                raise HboneConnectError(
                    f"the peer at {key.where} dropped the new connection"
                    + (f": {shell.error}" if shell.error else "")
                )
            # otherwise other waiters filled it already: look again, maybe dial another

    async def _connect(self, key: PoolKey) -> _ClientShell:
        port = key.address[1]
        try:
            _, shell = await asyncio.wait_for(self._dial(key), self.connect_timeout)
        except ssl.SSLError as error:
            raise HboneConnectError(
                f"TLS handshake with the peer at {key.where} failed: {error}; do both ends "
                "trust the same CA (trust domain and bundle)?"
            ) from None
        except (OSError, TimeoutError) as error:
            raise HboneConnectError(
                f"could not reach the HBONE peer at {key.where}: {error or 'timed out'}; is "
                f"its node agent running, and is port {port} open (a NetworkPolicy may block "
                "HBONE)?"
            ) from None
        if shell.error is not None:  # the handshake worked but the identity did not match
            raise shell.error
        self._pool.setdefault(key, []).append(shell)
        return shell

    async def _dial(self, key: PoolKey):
        host, port = key.address
        loop = asyncio.get_running_loop()
        protocol = lambda: _ClientShell(self, key, self._settings)  # noqa: E731
        if self._socket_factory is None:
            return await loop.create_connection(
                protocol,
                host,
                port,
                ssl=self._context,
                ssl_handshake_timeout=self.connect_timeout,
            )
        sock = self._socket_factory()
        try:
            await loop.sock_connect(sock, (host, port))
        except BaseException:
            sock.close()
            raise
        return await loop.create_connection(
            protocol,
            sock=sock,
            ssl=self._context,
            server_hostname=host,
            ssl_handshake_timeout=self.connect_timeout,
        )

    def _remove(self, shell: _ClientShell) -> None:
        shells = self._pool.get(shell.key)
        if shells and shell in shells:
            shells.remove(shell)
            if not shells:
                del self._pool[shell.key]


def _leaf_identity(identity: KeyAndCert) -> SpiffeId:
    source = identity_of_certificate(x509.load_pem_x509_certificates(identity.chain_pem)[0])
    if not isinstance(source, SpiffeId):
        raise PeerIdentityError(f"HBONE needs a workload certificate, not {source}")
    return source
