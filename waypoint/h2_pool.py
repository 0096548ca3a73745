"""Which HTTP/2 connection carries a request to an endpoint, and when to speak HTTP/1.1 instead.

Theory of operation
-------------------
Requests that reached the waypoint over HTTP/2 go upstream over HTTP/2, so gRPC's trailers (its
status) survive the hop; `by_protocol` is the pipeline's `upstream_for` seam that says so.
`Http2Pool` keeps, per endpoint, the multiplexed connections it opened through the same
connector the HTTP/1.1 `UpstreamPool` uses (an HBONE tunnel, or plain TCP):

* A request takes a stream on the first live connection with one to spare; a new connection is
  opened only when none has (closed, GOAWAY'd, or at the upstream's MAX_CONCURRENT_STREAMS).
  Requests that arrive while it is being opened wait for that same connection instead of each
  opening their own; the opening is shielded, so a waiter's timeout does not waste it.
* An endpoint that answers the preface with HTTP/1.1 (most plain web servers) is remembered as
  HTTP/1.1-only for `relearn_after` seconds, and its requests go through the `fallback`
  HTTP/1.1 pool; nothing was sent to it yet, so falling back never repeats a request.
* `acquire` returns either an `H2Exchange` or the fallback's `Http1Upstream`; `release` and
  `discard` hand each back to where it came from, so the pipeline never asks which it holds.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any, Protocol

from nodemesh.tasks import TaskSet
from waypoint import http2
from waypoint.h1_upstream import Connector, Http1Upstream, UpstreamError, UpstreamPool
from waypoint.h2_upstream import Endpoint, H2Exchange, Http2Upstream, NotHttp2

log = logging.getLogger("nodemesh.waypoint.upstream")

HANDSHAKE_TIMEOUT = 10.0  # connect + preface + the server's SETTINGS
RELEARN_AFTER = 600.0  # an HTTP/1.1-only endpoint is probed for HTTP/2 again after this
OPEN_ROUNDS = 3  # fresh connections a request waits for before it gives up on finding a stream


class Upstreams(Protocol):
    """What the pipeline drives: `UpstreamPool` (HTTP/1.1) and `Http2Pool` both are this."""

    async def acquire(self, endpoint: Endpoint) -> Any: ...

    def release(self, upstream: Any) -> None: ...

    def discard(self, upstream: Any) -> None: ...


def by_protocol(http1: Upstreams, http2_pool: Upstreams) -> Callable[[str], Upstreams]:
    """The pipeline's `upstream_for`: a request that came over HTTP/2 leaves over HTTP/2."""

    def upstream_for(protocol: str) -> Upstreams:
        return http2_pool if protocol == "HTTP/2" else http1

    return upstream_for


class Http2Pool:
    """Multiplexed HTTP/2 connections by endpoint, with an HTTP/1.1 fallback per endpoint."""

    def __init__(
        self,
        connector: Connector,
        *,
        fallback: UpstreamPool | None = None,
        limits: http2.Http2Limits | None = None,
        handshake_timeout: float = HANDSHAKE_TIMEOUT,
        relearn_after: float = RELEARN_AFTER,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.connector, self.fallback, self.limits = connector, fallback, limits
        self.handshake_timeout, self.relearn_after, self.clock = (
            handshake_timeout,
            relearn_after,
            clock,
        )
        self.tasks = TaskSet("h2-upstream")
        self._connections: dict[Endpoint, list[Http2Upstream]] = {}
        self._opening: dict[Endpoint, asyncio.Task[Http2Upstream]] = {}
        self._http1_since: dict[Endpoint, float] = {}
        self.opened = 0  # HTTP/2 connections opened, for tests and debugging

    async def acquire(self, endpoint: Endpoint) -> H2Exchange | Http1Upstream:
        """A stream on a connection to `endpoint` (or an HTTP/1.1 connection if it needs one)."""
        if self.fallback is not None and self._http1_only(endpoint):
            return await self.fallback.acquire(endpoint)
        try:
            connection = await self._connection(endpoint)
        except NotHttp2 as error:
            if self.fallback is None:
                raise
            log.info("%s; using HTTP/1.1 for %gs", error, self.relearn_after)
            self._http1_since[endpoint] = self.clock()
            return await self.fallback.acquire(endpoint)
        return connection.reserve()

    def release(self, upstream: H2Exchange | Http1Upstream) -> None:
        """The response was read to its end (an unfinished stream is reset instead)."""
        if isinstance(upstream, H2Exchange):
            upstream.finish()
        elif self.fallback is not None:
            self.fallback.release(upstream)

    def discard(self, upstream: H2Exchange | Http1Upstream) -> None:
        """Abandoned halfway (timeout, retry, client gone): reset its stream."""
        if isinstance(upstream, H2Exchange):
            upstream.abandon()
        elif self.fallback is not None:
            self.fallback.discard(upstream)

    def close(self) -> None:
        for task in self._opening.values():
            task.cancel()
        for connections in self._connections.values():
            for connection in connections:
                connection.close()
        self._connections.clear()

    # --- connections ----------------------------------------------------------------------

    def _http1_only(self, endpoint: Endpoint) -> bool:
        since = self._http1_since.get(endpoint)
        if since is not None and self.clock() - since >= self.relearn_after:
            del self._http1_since[endpoint]
            return False
        return since is not None

    async def _connection(self, endpoint: Endpoint) -> Http2Upstream:
        for _ in range(OPEN_ROUNDS):
            ready = self._ready(endpoint)
            if ready is not None:
                return ready
            opening = self._opening.get(endpoint)
            if opening is None or opening.done():
                opening = self.tasks.spawn(self._open(endpoint), "open", awaited=True)
                opening.add_done_callback(_consume)
                self._opening[endpoint] = opening
            connection = await asyncio.shield(opening)
            if connection.available > 0:
                return connection
        raise UpstreamError(
            f"upstream {endpoint[0]}:{endpoint[1]}: no stream free on {OPEN_ROUNDS} fresh "
            "connections (its MAX_CONCURRENT_STREAMS is too low for this load, or it closes "
            "connections right after opening them)",
            connect=True,
        )

    def _ready(self, endpoint: Endpoint) -> Http2Upstream | None:
        """The first live connection with a free stream; retired ones are dropped here."""
        connections = self._connections.get(endpoint, [])
        for connection in [c for c in connections if c.retired]:
            connections.remove(connection)
            connection.close()
        return next((c for c in connections if c.available > 0), None)

    async def _open(self, endpoint: Endpoint) -> Http2Upstream:
        where = f"upstream {endpoint[0]}:{endpoint[1]}"
        try:
            async with asyncio.timeout(self.handshake_timeout):
                stream = await self.connector(endpoint)
        except Exception as error:
            why = str(error) or type(error).__name__
            raise UpstreamError(f"{where}: {why}", connect=True) from error
        connection = Http2Upstream(endpoint, stream, tasks=self.tasks, limits=self.limits)
        try:
            async with asyncio.timeout(self.handshake_timeout):
                await connection.handshake()
        except NotHttp2:
            stream.close(abort=True)
            raise
        except Exception as error:
            stream.close(abort=True)
            why = str(error) or type(error).__name__
            raise UpstreamError(f"{where}: HTTP/2 handshake failed: {why}", connect=True) from error
        self.opened += 1
        self._connections.setdefault(endpoint, []).append(connection)
        return connection


def _consume(task: asyncio.Task) -> None:
    """An opening whose waiters all gave up (timeouts) failed unseen: that is not a bug."""
    if not task.cancelled():
        task.exception()
