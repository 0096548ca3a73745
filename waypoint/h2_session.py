"""Serve HTTP/2 (and gRPC) on one downstream byte stream: many streams, each a proxied request.

Theory of operation
-------------------
The client speaks HTTP/2 with prior knowledge (h2c, as inside an HBONE tunnel); `Inbound` has
already read the first bytes to recognise the preface and hands them over. One reader loop feeds
the sans-I/O `ServerConnection` and routes its events by stream id; each request runs in its
own task (kept by a `TaskSet`), so one slow upstream never holds back the other streams.

* Requests are buffered whole, as the HTTP/1.1 session does, so a retry can resend the body.
  Client DATA is acknowledged (its window credited) as soon as it is buffered within
  `max_body`, so a client streaming a large body is never stalled by flow control; past the
  limit the stream is answered 413 (gRPC: RESOURCE_EXHAUSTED) and reset with NO_ERROR, which
  tells the client to stop sending without failing the answer (RFC 9113 8.1).
* Responses stream back within the client's windows (`H2Wire.send_body`): the next chunk is
  pulled from the upstream only once the previous one is framed or queued in the codec's bounded
  backlog, so a slow client slows the upstream instead of filling this process.
* A response whose head carries grpc-status is gRPC's trailers-only form and is sent as one
  HEADERS frame with END_STREAM; otherwise the upstream's trailers end the stream (gRPC status).
* A stream the client resets cancels its task, and with it the upstream attempt in flight.
  `Reply.done(sent, error)` is called exactly once for every reply the handler returned.
* The connection ends on EOF, on a protocol error (the codec's GOAWAY goes out first; every other
  connection is untouched), when drained after `drain()`, or after `idle_timeout` of silence
  while no request is being served (an upload that stalls counts as silence: slowloris).
  Handler tasks still running then are cancelled.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from h2.errors import ErrorCodes

from nodemesh.tasks import TaskSet
from waypoint import http2
from waypoint.exchange import Downstream, Reply
from waypoint.h1_session import MAX_BUFFERED_BODY
from waypoint.h2_wire import H2Wire
from waypoint.http2 import grpc
from waypoint.http2.fields import CONNECTION_SPECIFIC
from waypoint.messages import Headers, Peer, RequestHead, ResponseHead
from waypoint.streams import ByteStream

log = logging.getLogger("nodemesh.waypoint.http2")

Handler = Callable[[Downstream], Awaitable[Reply]]
IDLE_TIMEOUT = 300.0  # silence with no request being served: the connection is closed (GOAWAY)


@dataclass
class _Request:
    """A stream from its request head until its answer is written (or it is reset)."""

    head: RequestHead
    head_bytes: int
    body: bytearray = field(default_factory=bytearray)
    trailers: Headers = ()
    task: asyncio.Task[None] | None = None  # set once the request is complete


@dataclass
class _Sent:
    """Body bytes of a reply handed to the codec so far (telemetry's response size)."""

    body_bytes: int = 0


class Http2Session:
    """The waypoint's end of one client's HTTP/2 connection."""

    def __init__(
        self,
        stream: ByteStream,
        handler: Handler,
        peer: Peer,
        destination: tuple[str, int],
        *,
        limits: http2.Http2Limits | None = None,
        max_body: int = MAX_BUFFERED_BODY,
        idle_timeout: float = IDLE_TIMEOUT,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stream, self.handler, self.peer, self.destination = stream, handler, peer, destination
        self.max_body, self.idle_timeout = max_body, idle_timeout
        self.conn = http2.ServerConnection(limits, clock=clock)
        self.tasks = TaskSet(f"h2-session/{peer.address[0]}:{peer.address[1]}")
        self.wire = H2Wire(stream, self.conn, self.tasks)
        self.requests: dict[int, _Request] = {}
        self.served = 0  # requests handed to the handler
        self._ending = False  # the client's GOAWAY with an error: stop now
        self._write_ended = False  # drained: our side of the stream is closed

    async def run(self, initial: bytes = b"") -> None:
        """Serve until the client, a protocol error, idleness or a drain ends the connection."""
        failed = False
        try:
            await self._serve(initial)
        except (ConnectionError, OSError, EOFError) as error:
            failed = True
            log.debug("client %s: %s", self.peer.address, error or type(error).__name__)
        except Exception as error:  # the stream's own errors (an HBONE reset, say)
            failed = True
            log.info("client %s connection failed: %s", self.peer.address, error)
        finally:
            await self._cancel_all()
            self.stream.close(abort=failed)  # not after our GOAWAY: the client must read it

    def drain(self, reason: str = "the waypoint is shutting down") -> None:
        """Graceful GOAWAY: streams already opened finish, new ones are refused, then close."""
        self.conn.goaway(ErrorCodes.NO_ERROR, reason=reason)
        self.wire.kick()
        self._finish_if_drained()

    # --- the reader loop ----------------------------------------------------------------------

    async def _serve(self, data: bytes) -> None:
        while True:
            if data:
                for event in self.conn.receive_data(data):
                    self._on_event(event)
                await self.wire.flush()
            if self.conn.closed or self._ending or self.conn.drained:
                return
            data = await self._read()
            if not data:
                return

    async def _read(self) -> bytes:
        """The next bytes; with no request being served, at most `idle_timeout` of silence."""
        if any(request.task is not None for request in self.requests.values()):
            return await self.stream.read()
        try:
            return await asyncio.wait_for(self.stream.read(), self.idle_timeout)
        except TimeoutError:
            self.conn.goaway(ErrorCodes.NO_ERROR, reason="idle connection")
            await self.wire.flush()
            return b""

    def _on_event(self, event: http2.Event) -> None:
        match event:
            case http2.RequestReceived():
                self._on_request(event)
            case http2.DataReceived():
                self._on_data(event)
            case http2.TrailersReceived(stream_id=sid, trailers=trailers):
                if (request := self.requests.get(sid)) is not None:
                    request.trailers = trailers
            case http2.StreamEnded(stream_id=sid):
                self._start(sid)
            case http2.StreamReset():
                self._on_reset(event)
            case http2.WindowOpened(stream_id=sid):
                self.wire.window_opened(sid)
            case http2.RequestRejected():
                log.info("refused a request from %s: %s", self.peer.address, event.reason)
            case http2.ConnectionTerminated():
                self._on_terminated(event)

    def _on_request(self, event: http2.RequestReceived) -> None:
        head = event.head
        size = sum(len(k) + len(v) + 32 for k, v in head.headers) + len(head.path) + 128
        self.requests[event.stream_id] = _Request(head, size)
        if event.end_stream:
            self._start(event.stream_id)
        elif (head.header("expect") or "").lower() == "100-continue":  # we buffer: send it
            self.conn.send_informational(event.stream_id, ResponseHead(100))

    def _on_data(self, event: http2.DataReceived) -> None:
        sid = event.stream_id
        request = self.requests.get(sid)
        if request is None or request.task is not None:
            self.conn.acknowledge(sid, event.flow_controlled_length)
            return
        if len(request.body) + len(event.data) > self.max_body:
            self._refuse_body(sid, request)
            return
        request.body += event.data
        self.conn.acknowledge(sid, event.flow_controlled_length)  # buffered: the client may go on

    def _refuse_body(self, sid: int, request: _Request) -> None:
        """413, or RESOURCE_EXHAUSTED for gRPC, then RST_STREAM(NO_ERROR): stop sending."""
        del self.requests[sid]
        why = f"request body exceeds the waypoint's {self.max_body}-byte buffer"
        log.info("client %s: %s (stream %d)", self.peer.address, why, sid)
        if grpc.is_grpc_request(request.head):
            self.conn.send_response(
                sid, grpc.error_response(grpc.GrpcStatus.RESOURCE_EXHAUSTED, why), end_stream=True
            )
        else:
            body = f"{why}\n".encode()
            head = ResponseHead(413, (("content-type", "text/plain; charset=utf-8"),))
            self.conn.send_response(sid, head)
            self.conn.send_data(sid, body, end_stream=True)
        self.conn.reset(sid, ErrorCodes.NO_ERROR)

    def _start(self, sid: int) -> None:
        request = self.requests.get(sid)
        if request is None or request.task is not None:
            return
        downstream = Downstream(
            head=request.head,
            body=bytes(request.body),
            peer=self.peer,
            trailers=request.trailers,
            destination=self.destination,
            head_bytes=request.head_bytes,
        )
        request.body = bytearray()
        self.served += 1
        request.task = self.tasks.spawn(self._exchange(sid, downstream), f"stream-{sid}")

    def _on_reset(self, event: http2.StreamReset) -> None:
        request = self.requests.pop(event.stream_id, None)
        self.wire.forget(event.stream_id)
        if request is not None and request.task is not None:
            request.task.cancel()  # and with it the upstream attempt in flight

    def _on_terminated(self, event: http2.ConnectionTerminated) -> None:
        if not event.remote:
            log.info("closing client %s's connection: %s", self.peer.address, event.reason)
        elif event.error_code != ErrorCodes.NO_ERROR:
            log.info("client %s ended the connection: %s", self.peer.address, event.reason)
            self._ending = True
        self.wire.wake_all()

    # --- one stream ---------------------------------------------------------------------------

    async def _exchange(self, sid: int, request: Downstream) -> None:
        try:
            try:
                reply = await self.handler(request)
            except Exception:  # a handler bug costs this stream, never the connection
                log.exception("handler failed on stream %d from %s", sid, self.peer.address)
                self.conn.reset(sid, ErrorCodes.INTERNAL_ERROR)
                self.wire.kick()
                return
            await self._answer(sid, request.head, reply)
        except Exception as error:  # the client's stream broke; the reader loop ends it
            log.debug("writing to %s failed: %s", self.peer.address, error)
        finally:
            self.requests.pop(sid, None)
            self.wire.forget(sid)
            self._finish_if_drained()

    async def _answer(self, sid: int, request: RequestHead, reply: Reply) -> None:
        """Write the reply on its stream; `reply.done` is called once, whatever happens."""
        sent = _Sent()
        error: BaseException | None = None
        try:
            await self._respond(sid, request, reply, sent)
        except http2.StreamClosedError as exc:  # reset meanwhile: nothing left to write to
            error = exc
        except (UpstreamBroke, http2.LocalProtocolError) as exc:
            error = exc.__cause__ or exc
            log.info("response to %s on stream %d broke off: %s", self.peer.address, sid, error)
            self.conn.reset(sid, ErrorCodes.INTERNAL_ERROR)
            self.wire.kick()
        except BaseException as exc:
            error = exc
            raise
        finally:
            await _close_chunks(reply)
            reply.done(sent.body_bytes, error)

    async def _respond(self, sid: int, request: RequestHead, reply: Reply, sent: _Sent) -> None:
        head = _h2_head(reply.head)
        if reply.upgraded is not None:  # HTTP/2 has no 101; the pipeline never asks for one
            reply.upgraded.close(abort=True)
            raise UpstreamBroke("an upgraded (101) reply cannot be relayed over HTTP/2")
        bodiless = request.method == "HEAD" or head.status in (204, 304)
        if grpc.is_grpc_request(request) and grpc.grpc_status(head.headers) is not None:
            # gRPC trailers-only: the status in one HEADERS frame with END_STREAM
            await _drain(reply)
            self.conn.send_response(sid, head, end_stream=True)
            await self.wire.flush()
            return
        if reply.chunks is None:
            body = b"" if bodiless else reply.body
            self.conn.send_response(sid, head, end_stream=not body)
            await self.wire.flush()
            if body:
                await self.wire.send_body(sid, body, end_stream=True)
                sent.body_bytes = len(body)
            return
        self.conn.send_response(sid, head)
        await self.wire.flush()
        await self._stream_body(sid, reply, bodiless, sent)

    async def _stream_body(self, sid: int, reply: Reply, bodiless: bool, sent: _Sent) -> None:
        assert reply.chunks is not None
        chunks = aiter(reply.chunks)
        while True:
            try:
                chunk = await anext(chunks)
            except StopAsyncIteration:
                break
            except Exception as exc:  # the upstream failed mid-body: the client must see a reset
                raise UpstreamBroke(str(exc)) from exc
            if chunk and not bodiless:
                await self.wire.send_body(sid, chunk, end_stream=False)
                sent.body_bytes += len(chunk)
        trailers = _h2_fields(reply.trailers())
        if trailers:
            self.conn.send_trailers(sid, trailers)
            await self.wire.flush()
        else:
            await self.wire.send_body(sid, b"", end_stream=True)

    def _finish_if_drained(self) -> None:
        """After our graceful GOAWAY, the last stream's end half-closes the connection."""
        if self.conn.drained and not self.requests and not self._write_ended:
            self._write_ended = True
            self.tasks.spawn(self._end_writing(), "drained", awaited=True)

    async def _end_writing(self) -> None:
        with contextlib.suppress(Exception):  # a broken stream: the reader loop sees it too
            await self.wire.flush()
            self.stream.write_eof()  # the client closes in turn, which ends the reader loop

    async def _cancel_all(self) -> None:
        tasks = [r.task for r in self.requests.values() if r.task is not None]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)
        self.requests.clear()
        self.wire.wake_all()


class UpstreamBroke(Exception):
    """The reply could not be completed after its head went out: the stream must be reset."""


def _h2_head(head: ResponseHead) -> ResponseHead:
    """The head without fields HTTP/2 forbids (an HTTP/1.1 upstream's Connection, say)."""
    return ResponseHead(head.status, _h2_fields(head.headers), head.reason)


def _h2_fields(fields: Headers) -> Headers:
    return tuple(
        (name, value)
        for name, value in fields
        if name.encode("latin-1") not in CONNECTION_SPECIFIC
        and not (name == "te" and value.lower() != "trailers")
    )


async def _drain(reply: Reply) -> None:
    """Read a trailers-only reply's (empty) body to its end, so the upstream is released."""
    if reply.chunks is not None:
        try:
            async for _ in reply.chunks:
                pass
        except Exception as exc:  # reset before it ended: the client must see a reset too
            raise UpstreamBroke(str(exc)) from exc


async def _close_chunks(reply: Reply) -> None:
    """Close the body iterator now, so an abandoned upstream stream is reset without delay."""
    aclose = getattr(reply.chunks, "aclose", None)
    if aclose is not None:
        try:
            await aclose()
        except Exception as error:  # closing a broken upstream: already reported
            log.debug("closing the upstream body: %s", error)


def http2_server(handler: Handler, **options) -> Callable[..., Awaitable[None]]:
    """The `Inbound(http2=...)` callable: serve each sniffed HTTP/2 connection with a session."""

    async def serve(
        stream: ByteStream, first: bytes, peer: Peer, destination: tuple[str, int]
    ) -> None:
        await Http2Session(stream, handler, peer, destination, **options).run(first)

    return serve
