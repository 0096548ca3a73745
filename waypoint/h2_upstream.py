"""One HTTP/2 connection to one upstream endpoint, shared by many requests, one stream each.

Theory of operation
-------------------
An `Http2Upstream` owns a `ClientConnection` (the sans-I/O codec) over a byte stream from the
pool's connector (an HBONE tunnel to the endpoint's agent, or plain TCP), and one reader task
that feeds it and routes its events to the `H2Exchange` of each stream. The pool
(`waypoint.h2_pool`) hands requests an exchange with `reserve()`; the exchange has the shape the
pipeline already drives over HTTP/1.1 (`send(head, body)` → `UpstreamResponse` with a streamed
body and `trailers`), so gRPC's trailers reach the client intact.

* Prior knowledge: the connection opens with the client preface and waits for the server's
  SETTINGS (RFC 9113 3.4) before any request is sent. Anything else (an HTTP/1.1 server answers
  "HTTP/1.1 505" or 400) raises `NotHttp2` while no request has been written, so the pool can
  fall back to HTTP/1.1 at no risk of sending a request twice.
* Flow control end to end: the request body goes out within the upstream's windows, and each
  response chunk is acknowledged only when the consumer asks for the next one, i.e. after the
  session passed it to the client. A slow client stalls this stream's window, not this process.
* An exchange abandoned before its end (the client reset its stream, a timeout, a retry) resets
  its stream with CANCEL, so the upstream stops working on it; the rest of the connection is
  untouched. A stream the upstream refused (REFUSED_STREAM, or the GOAWAY raced our request)
  never reached the application, so it is reported as a connect failure: safe to retry.
* A graceful GOAWAY from the upstream lets streams in flight finish and takes the connection out
  of the pool for new ones; EOF, a broken frame or an error GOAWAY fails every stream on it.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import AsyncIterator

from h2.errors import ErrorCodes

from nodemesh.tasks import TaskSet
from waypoint import http2
from waypoint.h1_upstream import UpstreamError, UpstreamResponse, tunnel_key
from waypoint.h2_wire import H2Wire
from waypoint.messages import Headers, RequestHead
from waypoint.streams import ByteStream

log = logging.getLogger("nodemesh.waypoint.upstream")

Endpoint = tuple[str, int]
_SETTINGS = 0x4


class NotHttp2(UpstreamError):
    """The endpoint answered the HTTP/2 preface with something else: it speaks HTTP/1.1 only."""

    def __init__(self, message: str) -> None:
        super().__init__(message, connect=True)


def settings_first(received: bytes) -> bool | None:
    """Do the server's first bytes open with a SETTINGS frame? None: too few bytes to tell.

    RFC 9113 3.4: the server's connection preface is a SETTINGS frame (not an ACK) on stream 0.
    An HTTP/1.x answer fails at byte 3 ("HTTP"[3] is "P"), so one short read is enough.
    """
    if len(received) > 3 and received[3] != _SETTINGS:
        return False
    if len(received) < 9:
        return None
    length = int.from_bytes(received[0:3], "big")
    stream_id = int.from_bytes(received[5:9], "big") & 0x7FFF_FFFF
    return length % 6 == 0 and not received[4] & 0x1 and stream_id == 0


class Http2Upstream:
    """One multiplexed connection to one endpoint: its codec, reader task and live exchanges."""

    def __init__(
        self,
        endpoint: Endpoint,
        stream: ByteStream,
        *,
        tasks: TaskSet,
        limits: http2.Http2Limits | None,
    ) -> None:
        self.endpoint, self.stream, self.tasks = endpoint, stream, tasks
        self.conn = http2.ClientConnection(limits)
        self.wire = H2Wire(stream, self.conn, tasks)
        self.exchanges: dict[int, H2Exchange] = {}
        self.reserved = 0  # exchanges handed out that have not opened their stream yet
        self.lost: UpstreamError | None = None
        self._reader: asyncio.Task[None] | None = None

    @property
    def where(self) -> str:
        return f"upstream {self.endpoint[0]}:{self.endpoint[1]}"

    async def handshake(self) -> None:
        """Send the preface; return once the server's SETTINGS arrived, else raise `NotHttp2`."""
        await self.wire.flush()
        received = b""
        while (verdict := settings_first(received)) is None:
            chunk = await self.stream.read()
            if not chunk:
                verdict = False
                break
            received += chunk
        if not verdict:
            answer = received[:40].decode("latin-1") or "closing the connection"
            raise NotHttp2(
                f"{self.where} does not speak HTTP/2 with prior knowledge (it answered the "
                f"preface with {answer!r}); it is served over HTTP/1.1"
            )
        self._receive(received)
        await self.wire.flush()
        self._reader = self.tasks.spawn(self._read_loop(), f"reader-{self.where}", awaited=True)

    @property
    def available(self) -> int:
        """Streams a new request may still take here (0 once lost or going away)."""
        if self.lost is not None:
            return 0
        return self.conn.available_streams - self.reserved

    @property
    def retired(self) -> bool:
        """Lost, or going away with nothing left in flight: the pool may drop it."""
        idle = not self.exchanges and not self.reserved
        return self.lost is not None or (self.conn.available_streams == 0 and idle)

    def reserve(self) -> H2Exchange:
        self.reserved += 1
        return H2Exchange(self)

    def open(self, exchange: H2Exchange, head: RequestHead, end_stream: bool) -> int:
        """Open the exchange's stream with its request head (called once per exchange)."""
        if self.lost is not None:
            raise self.lost
        try:
            stream_id = self.conn.send_request(head, end_stream=end_stream)
        except http2.LocalProtocolError as error:  # GOAWAY or the stream limit raced us
            raise UpstreamError(f"{self.where}: {error}", connect=True) from error
        self.exchanges[stream_id] = exchange
        return stream_id

    def forget(self, stream_id: int) -> None:
        self.exchanges.pop(stream_id, None)
        self.wire.forget(stream_id)

    def reset(self, stream_id: int) -> None:
        """Abandon a stream: RST_STREAM(CANCEL) unless it already ended both ways."""
        self.forget(stream_id)
        self.conn.reset(stream_id, ErrorCodes.CANCEL)
        self.wire.kick()

    def close(self) -> None:
        self._lose(UpstreamError(f"{self.where}: the waypoint closed the connection", reset=True))
        if self._reader is not None:
            self._reader.cancel()
        self.stream.close()

    # --- the reader -----------------------------------------------------------------------

    async def _read_loop(self) -> None:
        why = "the connection ended"
        try:
            while not self.conn.closed:
                data = await self.stream.read()
                if not data:
                    why = "it closed the connection"
                    break
                self._receive(data)
                await self.wire.flush()
        except Exception as error:
            why = str(error) or type(error).__name__
        finally:
            self._lose(UpstreamError(f"{self.where}: {why}", reset=True))
            self.stream.close(abort=not self.conn.closed)

    def _receive(self, data: bytes) -> None:
        for event in self.conn.receive_data(data):
            self._dispatch(event)

    def _dispatch(self, event: http2.Event) -> None:
        if isinstance(event, http2.WindowOpened):
            self.wire.window_opened(event.stream_id)
        elif isinstance(event, http2.ConnectionTerminated):
            self._on_goaway(event)
        else:
            sid = getattr(event, "stream_id", 0)
            exchange = self.exchanges.get(sid)
            if exchange is not None:
                exchange.on_event(event)
            elif isinstance(event, http2.DataReceived):  # nobody reads it: credit it back
                self.conn.acknowledge(sid, event.flow_controlled_length)

    def _on_goaway(self, event: http2.ConnectionTerminated) -> None:
        if event.remote and event.error_code == ErrorCodes.NO_ERROR:
            log.info("%s is going away (%s); streams in flight finish", self.where, event.reason)
            return
        who = "it sent GOAWAY" if event.remote else "it broke HTTP/2"
        self._lose(UpstreamError(f"{self.where}: {who}: {event.reason}", reset=True))

    def _lose(self, error: UpstreamError) -> None:
        if self.lost is None:
            self.lost = error
        for exchange in list(self.exchanges.values()):
            exchange.fail(error)
        self.exchanges.clear()
        self.wire.wake_all()


class H2Exchange:
    """One request on a pooled connection: `send` it, then stream the response body."""

    def __init__(self, connection: Http2Upstream) -> None:
        self.connection = connection
        self.stream_id: int | None = None
        self.trailers: Headers = ()
        self._reserved = True
        self._head: asyncio.Future[http2.ResponseReceived] = (
            asyncio.get_running_loop().create_future()
        )
        self._head.add_done_callback(_consume)
        self._inbox: deque[tuple[bytes, int]] = deque()
        self._readable = asyncio.Event()
        self._ended = False  # the upstream ended the stream (END_STREAM)
        self._done = False  # we are finished with the stream: read to its end, or abandoned
        self._error: UpstreamError | None = None

    @property
    def tunnel(self) -> str | None:
        """The HBONE tunnel the connection runs in (its key), None over plain TCP."""
        return tunnel_key(self.connection.stream)

    async def send(
        self, head: RequestHead, body: bytes, upgrade: str | None = None
    ) -> UpstreamResponse:
        """Open the stream, send the body, wait for the response head; the body streams after."""
        if upgrade:
            self.abandon()
            raise UpstreamError(f"{self.connection.where}: HTTP/2 has no Upgrade ({upgrade})")
        try:
            self._unreserve()
            self.stream_id = self.connection.open(self, head, end_stream=not body)
            await self.connection.wire.flush()
            if body:
                await self._send_body(body)
            received = await self._head
        except BaseException:
            self.abandon()  # cancelled (client reset, timeout) or failed: stop the upstream
            raise
        # HPACK's size of a field list: name + value + 32 each; ":status" "200" is the 42
        head_bytes = sum(len(k) + len(v) + 32 for k, v in received.head.headers) + 42
        return UpstreamResponse(head=received.head, chunks=self._body(), head_bytes=head_bytes)

    async def _send_body(self, body: bytes) -> None:
        assert self.stream_id is not None
        try:
            await self.connection.wire.send_body(self.stream_id, body, end_stream=True)
        except http2.StreamClosedError:
            pass  # reset or answered early: the head (or its error) says which
        except (ConnectionError, OSError) as error:
            raise UpstreamError(f"{self.connection.where}: {error}", reset=True) from error

    def on_event(self, event: http2.Event) -> None:
        """An event of this stream, from the connection's reader."""
        match event:
            case http2.ResponseReceived():
                if not self._head.done():
                    self._head.set_result(event)
            case http2.DataReceived(data=data, flow_controlled_length=length):
                self._inbox.append((data, length))
                self._readable.set()
            case http2.TrailersReceived(trailers=trailers):
                self.trailers = trailers
            case http2.StreamEnded():
                self._ended = True
                self._readable.set()
            case http2.StreamReset(error_code=code, reason=reason):
                self._on_reset(code, reason)

    def _on_reset(self, code: int, reason: str) -> None:
        where, name = self.connection.where, _code_name(code)
        refused = code == ErrorCodes.REFUSED_STREAM and not self._head.done()
        if refused:  # never processed: as safe to retry as a failed connect
            error = UpstreamError(f"{where} refused the stream ({reason or name})", connect=True)
        else:
            error = UpstreamError(f"{where} reset the stream ({reason or name})", reset=True)
        self.fail(error)
        if self.stream_id is not None:
            self.connection.forget(self.stream_id)

    def fail(self, error: UpstreamError) -> None:
        if self._error is None:
            self._error = error
        if not self._head.done():
            self._head.set_exception(error)
        self._readable.set()

    async def _body(self) -> AsyncIterator[bytes]:
        """The response body; each chunk is acknowledged when the next one is asked for."""
        assert self.stream_id is not None
        try:
            while True:
                while not self._inbox:
                    if self._error is not None:
                        raise self._error
                    if self._ended:
                        self.finish()
                        return
                    self._readable.clear()
                    await self._readable.wait()
                data, length = self._inbox.popleft()
                yield data
                self.connection.conn.acknowledge(self.stream_id, length)
                await self.connection.wire.flush()
        finally:
            self.abandon()  # a no-op once finished

    def finish(self) -> None:
        """Read to the end: the stream is over (or, if it is not, abandon it)."""
        if self._ended and not self._inbox and self.stream_id is not None and not self._done:
            self._done = True
            self.connection.forget(self.stream_id)
        self.abandon()

    def abandon(self) -> None:
        """Stop: reset the stream if it is still open, give back an unused reservation."""
        self._unreserve()
        if self.stream_id is not None and not self._done:
            self._done = True
            self.connection.reset(self.stream_id)

    def _unreserve(self) -> None:
        if self._reserved:
            self._reserved = False
            self.connection.reserved -= 1


def _consume(future: asyncio.Future) -> None:
    """A head nobody waits for any more (the exchange was abandoned) is not an error to log."""
    if not future.cancelled():
        future.exception()


def _code_name(code: int) -> str:
    try:
        return ErrorCodes(code).name
    except ValueError:
        return f"error code {code}"
