"""The client end: serializes requests, parses responses (the proxy's upstream side).

Theory of operation: see `connection` for the shared loop. What is particular to a client:

* One request at a time: a new Request is refused until the previous response is complete (the
  state machine cycles both sides back to IDLE). Bytes that arrive while no request is
  outstanding are refused: an upstream writing to an idle connection is closing it.
* The response's framing depends on our request: no body for HEAD, 1xx, 204, 304 and 2xx to
  CONNECT; otherwise Content-Length, chunked, or until the server closes.
* `waiting_for_100_continue` is true after sending a request with Expect: 100-continue until a
  response arrives (or the caller gives up waiting and sends body anyway, as RFC 9110 allows).
* A 101 to our Upgrade request, or a 2xx to our CONNECT, switches to a tunnel; a 101 we did not
  ask for is the server's error. Every RemoteProtocolError here carries status_hint 502: what a
  proxy answers its own client when the upstream breaks HTTP.
"""

from __future__ import annotations

from waypoint.http1 import framing as fr
from waypoint.http1.body import reader_for, writer_for
from waypoint.http1.connection import Connection, Head
from waypoint.http1.errors import LocalProtocolError, RemoteProtocolError
from waypoint.http1.events import Data, Event, InformationalResponse, Request, Response
from waypoint.http1.headers import ResponseHeadReader
from waypoint.http1.limits import Limits
from waypoint.http1.outgoing import plan_request
from waypoint.http1.state import Role, State, SwitchAccepted


class ClientConnection(Connection):
    """One connection to an upstream server, seen from the client (the proxy's upstream side)."""

    our_role = Role.CLIENT
    their_role = Role.SERVER
    _head_state = State.SEND_RESPONSE
    _peer_blame = 502

    def __init__(self, limits: Limits | None = None) -> None:
        super().__init__(limits)
        self._waiting_100 = False

    @property
    def waiting_for_100_continue(self) -> bool:
        """We sent Expect: 100-continue and have neither a response nor sent body since."""
        return self._waiting_100

    def _send_head(self, event: Event) -> bytes:
        if type(event) is not Request:
            raise LocalProtocolError(
                f"a client sends Request, Data, EndOfMessage or ConnectionClosed, not "
                f"{type(event).__name__}"
            )
        plan = plan_request(event)
        self._state.process(Role.CLIENT, Request)
        if not plan.keep_alive:
            self._state.disable_keep_alive()
        if plan.switch:
            self._state.propose_switch(plan.switch)
        self._request_method = event.method
        self._waiting_100 = plan.expects_continue
        self._writer = writer_for(plan.framing, "a request without Content-Length or chunked")
        return plan.head

    def _on_sent_body(self, event: Event) -> None:
        if type(event) is Data:
            self._waiting_100 = False

    def _new_head_reader(self) -> ResponseHeadReader:
        return ResponseHeadReader(self.limits)

    def _on_head(self, head: Head) -> None:
        self._waiting_100 = False
        if isinstance(head, InformationalResponse):
            self._on_informational(head)
        else:
            assert isinstance(head, Response)
            self._on_response(head)

    def _on_informational(self, head: InformationalResponse) -> None:
        if head.status != 101:
            self._state.process(Role.SERVER, InformationalResponse)
            return
        if self._state.pending_switch != "upgrade":
            raise RemoteProtocolError("the server sent 101 Switching Protocols unasked")
        self._state.process(Role.SERVER, SwitchAccepted)

    def _on_response(self, head: Response) -> None:
        fields, version = fr.framing_fields(head.headers), head.version
        framing = fr.response_framing(head.status, fields, version, self._request_method, fr.remote)
        tokens = fr.connection_tokens(fields, fr.remote)
        if self._state.pending_switch == "connect" and head.status < 300:
            self._state.process(Role.SERVER, SwitchAccepted)
            return
        reader = reader_for(framing, self.limits)
        self._state.process(Role.SERVER, Response)
        if not fr.keep_alive(version, tokens) or framing.kind is fr.Kind.CLOSE:
            self._state.disable_keep_alive()
        self._body_reader = reader
