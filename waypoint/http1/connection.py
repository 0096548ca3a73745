"""What the two ends of an HTTP/1.1 connection share: the receive loop and the send path.

Theory of operation
-------------------
A connection object never touches a socket. The shell feeds it what it read
(`receive_data(bytes)`, with b"" for EOF) and gets back a list of events; it hands it events to
send (`send(event)`) and gets back the bytes to write. In between sit three parts:

* the receive buffer (`buffer`), where bytes wait until they make a whole head or body piece;
* the reader for what the peer is sending right now: a head reader (`headers`) while the peer's
  state asks for a head, then the body reader that the head's framing chose (`body`, `chunked`);
* the state machine (`state`), which both directions drive and which refuses anything out of
  order.

`receive_data` parses as far as the bytes and the state allow and ends its list with a marker:
NeedData (read more), Paused (answer first; pipelined bytes stay buffered until `next_events()`
is called after the response is complete) or ConnectionClosed. A RemoteProtocolError puts the
peer's side in ERROR; the shell answers `status_hint` if it can and closes.

`ServerConnection` (`server`) and `ClientConnection` (`client`) fill in what differs: which head
they read, what a head means for the state, and which heads they may send.
"""

from __future__ import annotations

from typing import NoReturn

from waypoint.http1.body import BodyReader, BodyWriter, Part
from waypoint.http1.buffer import ReceiveBuffer
from waypoint.http1.errors import LocalProtocolError, RemoteProtocolError
from waypoint.http1.events import (
    CONNECTION_CLOSED,
    MARKERS,
    NEED_DATA,
    PAUSED,
    ConnectionClosed,
    Data,
    EndOfMessage,
    Event,
    InformationalResponse,
    Request,
    Response,
)
from waypoint.http1.headers import RequestHeadReader, ResponseHeadReader
from waypoint.http1.limits import DEFAULT_LIMITS, Limits
from waypoint.http1.serialize import check_fields
from waypoint.http1.state import ConnectionState, Role, State

Head = Request | Response | InformationalResponse
# Peer states in which bytes wait for our answer rather than being parsed.
_WAITING_ON_US = (State.DONE, State.MIGHT_SWITCH, State.MUST_CLOSE, State.SWITCHED)


class Connection:
    """Shared machinery; use `ServerConnection` or `ClientConnection`."""

    our_role: Role
    their_role: Role
    _head_state: State  # the peer's state in which its next bytes are a head
    _peer_blame = 0  # a status that replaces every RemoteProtocolError's hint (0: keep it)

    def __init__(self, limits: Limits | None = None) -> None:
        self.limits = limits or DEFAULT_LIMITS
        self._state = ConnectionState()
        self._buffer = ReceiveBuffer()
        self._head_reader: RequestHeadReader | ResponseHeadReader | None = None
        self._body_reader: BodyReader | None = None
        self._writer: BodyWriter | None = None
        self._eof = False
        self._request_method: bytes | None = None  # of the exchange in progress

    # --- state -------------------------------------------------------------------------------

    @property
    def our_state(self) -> State:
        return self._state.states[self.our_role]

    @property
    def their_state(self) -> State:
        return self._state.states[self.their_role]

    @property
    def keep_alive(self) -> bool:
        """Whether the connection can carry another exchange after this one."""
        return self._state.keep_alive

    @property
    def trailing_data(self) -> tuple[bytes, bool]:
        """(bytes received but not parsed, whether EOF followed them).

        After a switch to a tunnel (101, or 2xx to CONNECT) these are the first tunnel bytes:
        write them to the other side before pumping the socket.
        """
        return bytes(self._buffer), self._eof

    # --- bytes in, events out -----------------------------------------------------------------

    def receive_data(self, data: bytes | bytearray | memoryview) -> list[Event]:
        """Feed bytes read from the peer (b"" at EOF); returns events ending in a marker."""
        self._check_can_receive()
        if self._eof and data:
            raise LocalProtocolError("data fed after EOF (b'') was already fed")
        if self.their_state in _WAITING_ON_US:
            limit = self.limits.max_buffered_while_paused
            if len(self._buffer) + len(data) > limit:
                self._fail(
                    RemoteProtocolError(
                        f"peer sent more than {limit} bytes ahead of our answer; stop reading "
                        "from the socket while the connection is Paused"
                    )
                )
        if data:
            self._buffer.feed(data)
        else:
            self._eof = True
        return self._parse()

    def next_events(self) -> list[Event]:
        """Parse what is already buffered: call it after a Paused, once you sent your part."""
        if State.SWITCHED in (self.their_state, self.our_state):
            return [PAUSED]
        self._check_can_receive()
        return self._parse()

    def _check_can_receive(self) -> None:
        if self.their_state is State.ERROR:
            raise LocalProtocolError("the peer already broke the protocol: close the connection")
        if State.SWITCHED in (self.their_state, self.our_state):
            raise LocalProtocolError(
                "the connection is a tunnel now: take trailing_data, then pump raw bytes"
            )

    def _parse(self) -> list[Event]:
        events: list[Event] = []
        try:
            while True:
                event = self._next_event()
                events.append(event)
                if isinstance(event, MARKERS):
                    return events
        except RemoteProtocolError as error:
            self._fail(error)
        except LocalProtocolError as error:  # the table refused what the peer did
            self._fail(RemoteProtocolError(str(error)))

    def _fail(self, error: RemoteProtocolError) -> NoReturn:
        self._state.process_error(self.their_role)
        if self._peer_blame and error.status_hint != self._peer_blame:
            raise RemoteProtocolError(str(error), self._peer_blame) from error
        raise error

    def _next_event(self) -> Event:
        state = self._state.states[self.their_role]  # their_state, without a property call
        if state is self._head_state:
            return self._read_head()
        if state is State.SEND_BODY:
            return self._read_body()
        if state is State.CLOSED:
            return CONNECTION_CLOSED
        if state is State.IDLE and len(self._buffer):
            raise RemoteProtocolError(
                "the server sent bytes while no request was outstanding (an idle connection it "
                "is closing, often with a 408): discard this connection"
            )
        if self._eof and self._eof_is_final(state):
            self._state.process(self.their_role, ConnectionClosed)
            return CONNECTION_CLOSED
        return PAUSED if state in _WAITING_ON_US else NEED_DATA

    def _eof_is_final(self, state: State) -> bool:
        """Whether EOF can be reported now, rather than after the buffered bytes are parsed.

        Never while a tunnel verdict is pending (the buffered bytes may be the tunnel's, and
        `trailing_data` reports the EOF with them); at once after a `close`, whose followers are
        never parsed; otherwise once pipelined requests are used up.
        """
        if state is State.MIGHT_SWITCH:
            return False
        return state is State.MUST_CLOSE or not len(self._buffer)

    def _read_head(self) -> Event:
        if self._head_reader is None:
            self._head_reader = self._new_head_reader()
        head = self._head_reader.read(self._buffer)
        if head is None:
            if not self._eof:
                return NEED_DATA
            return self._eof_before_head()
        self._head_reader = None
        self._on_head(head)
        return head

    def _eof_before_head(self) -> Event:
        assert self._head_reader is not None
        if self._head_reader.started or len(self._buffer):
            raise RemoteProtocolError("connection closed in the middle of a message head")
        if self.their_state is State.SEND_RESPONSE:
            raise RemoteProtocolError(
                "the server closed the connection before responding; an idempotent request may "
                "be retried on a new connection"
            )
        self._state.process(self.their_role, ConnectionClosed)
        return CONNECTION_CLOSED

    def _read_body(self) -> Event:
        assert self._body_reader is not None
        event = self._body_reader.read(self._buffer)
        if event is None:
            if not self._eof:
                return NEED_DATA
            event = self._body_reader.read_eof()
        self._state.process(self.their_role, type(event))
        if type(event) is EndOfMessage:
            self._body_reader = None
        self._on_body_event(event)
        return event

    # --- events in, bytes out ----------------------------------------------------------------

    def send(self, event: Event) -> bytes:
        """The bytes that put `event` on the wire. LocalProtocolError changes nothing."""
        return b"".join(self.send_parts(event))

    def send_parts(self, event: Event) -> list[Part]:
        """Like `send`, as a list for `writelines`: body payloads are passed through uncopied."""
        kind = type(event)
        if kind is Data:
            return self._send_body(event, Data)
        if kind is EndOfMessage:
            return self._send_body(event, EndOfMessage)
        if kind is ConnectionClosed:
            self._state.process(self.our_role, ConnectionClosed)
            return []
        return [self._send_head(event)]

    def _send_body(self, event: Data | EndOfMessage, kind: type[Event]) -> list[Part]:
        self._state.check(self.our_role, kind)
        assert self._writer is not None
        if isinstance(event, Data):
            parts = self._writer.data(event.data)
        else:
            parts = self._writer.end(check_fields(event.trailers, "trailer"))
            self._writer = None
        self._state.process(self.our_role, kind)
        self._on_sent_body(event)
        return parts

    # --- what the two ends fill in ------------------------------------------------------------

    def _new_head_reader(self) -> RequestHeadReader | ResponseHeadReader:
        raise NotImplementedError

    def _on_head(self, head: Head) -> None:
        """Drive the state with a received head; choose the body reader."""
        raise NotImplementedError

    def _on_body_event(self, event: Event) -> None:
        """A received Data or EndOfMessage was processed."""

    def _send_head(self, event: Event) -> bytes:
        raise NotImplementedError

    def _on_sent_body(self, event: Event) -> None:
        """A Data or EndOfMessage we sent was processed."""
