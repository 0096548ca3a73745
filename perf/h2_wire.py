"""The benchmark client's HTTP/2 (h2c, prior knowledge), sans-I/O, over python-hyper's h2.

Theory of operation: the open-loop driver treats both protocols alike: `request(tag)` queues a
request, `data_to_send()` gives the bytes to write, `receive_data(bytes)` returns `Completed`
responses. Here each request is one stream (HEADERS with END_STREAM: a bodiless GET), and the tag
(its due time) is kept by stream id until the stream ends, whatever order the server answers
in. A request due while the server's MAX_CONCURRENT_STREAMS are all open waits in a queue and
starts when a stream ends (its latency still runs from its due time, as a real client's would).
Received DATA is acknowledged at once so flow control never stalls the measurement; a reset
stream completes with status 0 (counted as an error by the driver); a GOAWAY ends the run with
`BenchProtocolError`, since the requests it strands would silently vanish from the figures.
"""

from __future__ import annotations

from collections import deque
from typing import Generic

import h2.config
import h2.connection
import h2.events
import h2.exceptions

from perf.h1_wire import BenchProtocolError, Completed, Tag


class Http2Client(Generic[Tag]):
    """One h2c connection's worth of requests; the preface is queued on construction."""

    def __init__(self, authority: str, path: str = "/") -> None:
        config = h2.config.H2Configuration(client_side=True, header_encoding=None)
        self.conn = h2.connection.H2Connection(config)
        self.conn.initiate_connection()
        self._headers = [
            (b":method", b"GET"),
            (b":scheme", b"http"),
            (b":authority", authority.encode("ascii")),
            (b":path", path.encode("ascii")),
            (b"user-agent", b"nodemesh-bench"),
        ]
        self._tags: dict[int, Tag] = {}
        self._status: dict[int, int] = {}
        self._waiting: deque[Tag] = deque()  # due, but no stream slot free yet

    @property
    def outstanding(self) -> int:
        return len(self._tags) + len(self._waiting)

    def request(self, tag: Tag) -> None:
        self._waiting.append(tag)
        self._start_waiting()

    def _start_waiting(self) -> None:
        limit = self.conn.remote_settings.max_concurrent_streams
        while self._waiting and self.conn.open_outbound_streams < limit:
            stream_id = self.conn.get_next_available_stream_id()
            self.conn.send_headers(stream_id, self._headers, end_stream=True)
            self._tags[stream_id] = self._waiting.popleft()

    def data_to_send(self) -> bytes:
        return self.conn.data_to_send()

    def receive_data(self, data: bytes) -> list[Completed[Tag]]:
        done: list[Completed[Tag]] = []
        try:
            events = self.conn.receive_data(data)
        except h2.exceptions.ProtocolError as exc:  # the server broke HTTP/2: say so, typed
            raise BenchProtocolError(f"server broke HTTP/2: {exc}") from exc
        for event in events:
            self._on(event, done)
        self._start_waiting()
        return done

    def _on(self, event: h2.events.Event, done: list[Completed[Tag]]) -> None:
        if isinstance(event, h2.events.ResponseReceived):
            status = dict(event.headers or []).get(b":status", b"0")
            self._status[event.stream_id] = int(status)
        elif isinstance(event, h2.events.DataReceived):
            self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
        elif isinstance(event, h2.events.StreamEnded):
            self._complete(event.stream_id, self._status.pop(event.stream_id, 0), done)
        elif isinstance(event, h2.events.StreamReset):
            self._complete(event.stream_id, 0, done)
        elif isinstance(event, h2.events.ConnectionTerminated):
            raise BenchProtocolError(
                f"server sent GOAWAY (error code {event.error_code}) with "
                f"{self.outstanding} request(s) in flight"
            )

    def _complete(self, stream_id: int, status: int, done: list[Completed[Tag]]) -> None:
        tag = self._tags.pop(stream_id, None)
        if tag is not None:
            done.append(Completed(tag, status))
