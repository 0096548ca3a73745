"""The server end: parses requests, serializes responses.

Theory of operation: see `connection` for the shared loop. What is particular to a server:

* A request head is validated beyond grammar before anyone sees it: Host (exactly one in 1.1),
  framing (`framing.request_framing`), Connection options, and the body limit (413).
* `Expect: 100-continue`: `client_is_waiting_for_100_continue` says the client holds its body back.
  Send `InformationalResponse(100)` to get it, or a final response to refuse it; a final response
  sent while the client still waits turns keep-alive off (it may or may not send the body now,
  so the only safe next step is to close).
* Tunnels: after a request that asked for an upgrade (Connection: upgrade + Upgrade, HTTP/1.1)
  is complete, `InformationalResponse(101)` switches the connection; so does a 2xx Response to
  CONNECT. Both ends are then SWITCHED, nothing more is parsed, and `trailing_data` holds the
  first tunnel bytes.
* A request that failed to parse can still be answered: `send(Response(400, ...))` works from
  IDLE, is framed as if for GET, and says `Connection: close`. So does a response to no request
  at all (a 408 on an idle connection).
"""

from __future__ import annotations

from waypoint.http1 import framing as fr
from waypoint.http1.body import reader_for, writer_for
from waypoint.http1.connection import Connection, Head
from waypoint.http1.errors import LocalProtocolError
from waypoint.http1.events import Event, InformationalResponse, Request, Response
from waypoint.http1.headers import RequestHeadReader
from waypoint.http1.limits import Limits
from waypoint.http1.outgoing import plan_informational, plan_response
from waypoint.http1.state import Role, State, SwitchAccepted


class ServerConnection(Connection):
    """One client connection, seen from the server (or the proxy's listener)."""

    our_role = Role.SERVER
    their_role = Role.CLIENT
    _head_state = State.IDLE

    def __init__(self, limits: Limits | None = None) -> None:
        super().__init__(limits)
        self._peer_version = b"1.1"
        self._waiting_100 = False

    @property
    def client_is_waiting_for_100_continue(self) -> bool:
        """The client sent Expect: 100-continue and neither a response nor its body followed."""
        return self._waiting_100

    def _new_head_reader(self) -> RequestHeadReader:
        self._request_method = None  # a 400 for an unparsable request is framed as for GET
        return RequestHeadReader(self.limits)

    def _on_head(self, head: Head) -> None:
        assert isinstance(head, Request)
        fields, version = fr.framing_fields(head.headers), head.version
        fr.check_host(fields, version, fr.remote)
        framing = fr.request_framing(fields, version, fr.remote)
        tokens = fr.connection_tokens(fields, fr.remote)
        reader = reader_for(framing, self.limits)
        self._state.process(Role.CLIENT, Request)
        if not fr.keep_alive(version, tokens):
            self._state.disable_keep_alive()
        switch = fr.switch_proposal(head.method, version, fields, tokens)
        if switch:
            self._state.propose_switch(switch)
        self._request_method, self._peer_version = head.method, version
        has_body = framing.kind is not fr.Kind.NONE
        self._waiting_100 = has_body and fr.expects_continue(version, fields)
        self._body_reader = reader

    def _on_body_event(self, event: Event) -> None:
        self._waiting_100 = False  # a body byte (or its end) means the client stopped waiting

    def _send_head(self, event: Event) -> bytes:
        if type(event) is InformationalResponse:
            return self._send_informational(event)
        if type(event) is Response:
            return self._send_response(event)
        raise LocalProtocolError(
            f"a server sends Response, InformationalResponse, Data, EndOfMessage or "
            f"ConnectionClosed, not {type(event).__name__}"
        )

    def _send_informational(self, event: InformationalResponse) -> bytes:
        head = plan_informational(event, self._peer_version)
        if event.status == 101:
            if self._state.pending_switch != "upgrade":
                raise LocalProtocolError(
                    "101 Switching Protocols answers a request with Connection: upgrade and "
                    "Upgrade; this request did not ask for one"
                )
            self._state.process(Role.SERVER, SwitchAccepted)
        else:
            self._state.process(Role.SERVER, InformationalResponse)
        self._waiting_100 = False
        return head

    def _send_response(self, event: Response) -> bytes:
        # A client still waiting for 100 Continue may or may not send the body we now refuse;
        # a response to no request (a 408 on an idle connection) ends the connection too.
        keep_alive = self._state.keep_alive and not (
            (self._waiting_100 and self.their_state is State.SEND_BODY)
            or self.their_state is State.IDLE
        )
        plan = plan_response(event, self._request_method, self._peer_version, keep_alive)
        accepts_tunnel = self._state.pending_switch == "connect" and 200 <= event.status < 300
        self._state.process(Role.SERVER, SwitchAccepted if accepts_tunnel else Response)
        if not plan.keep_alive:
            self._state.disable_keep_alive()
        self._waiting_100 = False
        if not accepts_tunnel:
            method = (self._request_method or b"an unparsed request").decode("ascii")
            self._writer = writer_for(plan.framing, f"a {event.status} response to {method}")
        return plan.head
