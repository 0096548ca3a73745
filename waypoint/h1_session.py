"""Serve HTTP/1.1 on one downstream byte stream: parse, hand each request to the proxy, answer.

The strict codec (`waypoint.http1`) decides what is valid; this shell only moves bytes and time:
- A request's head must arrive within `head_timeout` of its first byte and the connection may
  sit idle between requests for `idle_timeout` (slowloris costs a connection a bounded time).
- Requests are answered in order; while one is in flight the shell stops reading (the codec says
  `Paused`), which is the backpressure against a pipelining client.
- A protocol error (a smuggling shape, an oversized head) is answered with its status and the
  connection is closed: that connection only, every other keeps going.
- A 101 from the upstream turns the connection into a tunnel: the bytes the client already sent
  past the request go first, then both streams are spliced (websocket).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from waypoint import http1 as h1
from waypoint.exchange import Downstream, Reply
from waypoint.http1.convert import request_head
from waypoint.messages import Peer
from waypoint.streams import ByteStream, splice

log = logging.getLogger("nodemesh.waypoint.http1")

Handler = Callable[[Downstream], Awaitable[Reply]]
MAX_BUFFERED_BODY = 8 << 20  # requests are buffered for retries; larger ones get 413
LINGER_SECONDS, LINGER_BYTES = 2.0, 256 << 10  # after an error answer, before closing


class Http1Session:
    def __init__(
        self,
        stream: ByteStream,
        handler: Handler,
        peer: Peer,
        destination: tuple[str, int],
        *,
        head_timeout: float = 10.0,
        idle_timeout: float = 60.0,
        limits: h1.Limits | None = None,
    ) -> None:
        self.stream, self.handler, self.peer, self.destination = stream, handler, peer, destination
        self.head_timeout, self.idle_timeout = head_timeout, idle_timeout
        self.conn = h1.ServerConnection(limits or h1.Limits(max_body=MAX_BUFFERED_BODY))
        self.requests = 0

    async def run(self, initial: bytes = b"") -> None:
        """Serve until the client or a protocol error ends the connection."""
        try:
            events = self.conn.receive_data(initial) if initial else [h1.NEED_DATA]
            while True:
                request = await self._read_request(events)
                if request is None:
                    break
                reply = await self.handler(request)
                if not await self._answer(request, reply):
                    break
                if not self.conn.keep_alive:
                    break
                events = self.conn.next_events()
        except h1.RemoteProtocolError as error:
            await self._refuse(error)
        except (TimeoutError, ConnectionError, OSError) as error:
            log.debug("client %s: %s", self.peer.address, error or type(error).__name__)
            self.stream.close(abort=True)
            return
        self.stream.close()

    # -- reading ---------------------------------------------------------------------------
    async def _read_request(self, events: list[h1.Event]) -> Downstream | None:
        head: h1.Request | None = None
        body = bytearray()
        head_deadline: float | None = None  # set by the first byte of a request head
        loop = asyncio.get_running_loop()
        while True:
            for event in events:
                kind = type(event)
                if kind is h1.Request:
                    head = event
                    if self.conn.client_is_waiting_for_100_continue:
                        await self.stream.write(self.conn.send(h1.InformationalResponse(100)))
                elif kind is h1.Data:
                    body += event.data
                elif kind is h1.EndOfMessage:
                    return self._downstream(head, bytes(body), event.trailers)
                elif kind is h1.ConnectionClosed:
                    return None
            # NeedData: read more, within the time allowed for what we are waiting for
            if head is None and head_deadline is None and self.conn.trailing_data[0]:
                head_deadline = loop.time() + self.head_timeout
            if head is None and head_deadline is not None:
                timeout = head_deadline - loop.time()
                if timeout <= 0:
                    raise h1.RemoteProtocolError(
                        f"request head not complete within {self.head_timeout:g}s", 408
                    )
            else:
                timeout = self.idle_timeout
            try:
                # asyncio.timeout, not wait_for: wait_for wraps the read in a new Task on every
                # call (Python 3.11), a measurable cost per request on a keep-alive connection.
                async with asyncio.timeout(timeout):
                    data = await self.stream.read()
            except TimeoutError:
                if head is None and head_deadline is not None:
                    raise h1.RemoteProtocolError(
                        f"request head not complete within {self.head_timeout:g}s", 408
                    ) from None
                raise
            if head is None and head_deadline is None and data:
                head_deadline = loop.time() + self.head_timeout
            events = self.conn.receive_data(data)

    def _downstream(self, request: h1.Request | None, body: bytes, trailers) -> Downstream:
        assert request is not None
        self.requests += 1
        return Downstream(
            head=request_head(request),
            upgrade=_upgrade_token(request.headers),
            body=body,
            peer=self.peer,
            trailers=tuple((k.decode(), v.decode("latin-1")) for k, v in trailers),
            destination=self.destination,
            head_bytes=sum(len(k) + len(v) + 4 for k, v in request.headers)
            + len(request.method)
            + len(request.target)
            + 12,
        )

    # -- writing ---------------------------------------------------------------------------
    async def _answer(self, request: Downstream, reply: Reply) -> bool:
        """Write the reply; False when the connection must end (error, or it became a tunnel)."""
        sent, error = 0, None
        try:
            headers = [(k.encode(), v.encode("latin-1")) for k, v in reply.head.headers]
            if reply.head.status == 101 and reply.upgraded is not None:
                return await self._switch(reply, headers)
            bodiless = request.head.method == "HEAD" or reply.head.status in (204, 304)
            if reply.chunks is None and not bodiless and not _has(headers, b"content-length"):
                headers.append((b"content-length", str(len(reply.body)).encode()))
            if not self.conn.keep_alive:
                headers.append((b"connection", b"close"))
            # One write per response where possible: head, body and end go out together (each
            # write to a socket costs a syscall and, on loopback or a veth, the peer's receive).
            out = [self.conn.send(h1.Response(reply.head.status, headers=headers))]
            if reply.chunks is None:
                if reply.body and request.head.method != "HEAD":
                    out.append(self.conn.send(h1.Data(reply.body)))
                    sent = len(reply.body)
            else:
                async for chunk in reply.chunks:
                    out.append(self.conn.send(h1.Data(chunk)))
                    await self.stream.write(b"".join(out))
                    out.clear()
                    sent += len(chunk)
            trailers = [(k.encode(), v.encode("latin-1")) for k, v in reply.trailers()]
            out.append(self.conn.send(h1.EndOfMessage(trailers=trailers)))
            await self.stream.write(b"".join(out))
            return True
        except h1.LocalProtocolError as exc:
            error = exc
            log.warning("cannot relay the upstream's response to %s: %s", self.peer.address, exc)
            self.stream.close(abort=True)
            return False
        except Exception as exc:
            error = exc
            raise
        finally:
            reply.done(sent, error)

    async def _switch(self, reply: Reply, headers) -> bool:
        await self.stream.write(self.conn.send(h1.InformationalResponse(101, headers=headers)))
        leftover, _ = self.conn.trailing_data
        upstream = reply.upgraded
        assert upstream is not None
        if leftover:
            await upstream.write(leftover)
        await splice(self.stream, upstream)
        return False

    async def _refuse(self, error: h1.RemoteProtocolError) -> None:
        log.info("client %s broke HTTP/1.1: %s", self.peer.address, error)
        body = f"{error}\n".encode()
        try:
            fresh = h1.ServerConnection()  # the failed one refuses to serialize anything now
            fresh.receive_data(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
            head = h1.Response(
                error.status_hint,
                headers=[
                    (b"content-type", b"text/plain; charset=utf-8"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            )
            await self.stream.write(fresh.send(head) + fresh.send(h1.Data(body)))
            await self._linger()
        except (ConnectionError, OSError, h1.Http1Error):
            pass
        self.stream.close()

    async def _linger(self) -> None:
        """Half-close, then read and drop what the client still sends, briefly (nginx's and
        Envoy's lingering close): closing with its unread bytes pending would reset the
        connection, and the reset can reach the client before the 400 that explains it."""
        self.stream.write_eof()
        dropped, loop = 0, asyncio.get_running_loop()
        deadline = loop.time() + LINGER_SECONDS
        while dropped < LINGER_BYTES and (left := deadline - loop.time()) > 0:
            try:
                data = await asyncio.wait_for(self.stream.read(), left)
            except TimeoutError:
                return
            if not data:
                return
            dropped += len(data)


def _has(headers: h1.Headers, name: bytes) -> bool:
    return any(k == name for k, _ in headers)


UPGRADES = frozenset({"websocket"})  # what may switch protocols through the waypoint


def _upgrade_token(headers: h1.Headers) -> str | None:
    """The token "websocket" when the client asks for it (Connection: upgrade), else None.

    Any other upgrade is dropped, as Envoy does without an upgrade_config: an `h2c` upgrade the
    backend accepted would splice the connection past every L7 layer (routes, authorization,
    telemetry) for all requests that follow."""
    connection = b",".join(v for k, v in headers if k == b"connection").lower()
    if b"upgrade" not in [t.strip() for t in connection.split(b",")]:
        return None
    values = [v for k, v in headers if k == b"upgrade"]
    token = values[0].decode("latin-1").strip() if values else ""
    return token if token.lower() in UPGRADES else None
