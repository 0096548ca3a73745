"""The HTTP/1.1 connection state machine: two roles, one table, nothing implicit.

Theory of operation (after h11's `_state.py`, written for nodemesh): a connection is two
half-conversations, the client's (requests) and the server's (responses), each in a `State`.
Every event either side sends moves its own state through `_TRANSITIONS`, keyed by
(role, state, event type); a key that is not in the table is a protocol error, raised, never
ignored. A few events also move the other side, and those are spelled out in `_react`:

* a Request moves the server from IDLE to SEND_RESPONSE (it now owes an answer);
* a request that asks for a tunnel (CONNECT, or Connection: upgrade + Upgrade) leaves the client
  in MIGHT_SWITCH instead of DONE once it is sent, until the server decides: `SwitchAccepted`
  (101, or 2xx to CONNECT) moves both to SWITCHED, any other final Response declines;
* ConnectionClosed, an error, or a `close` anywhere turns keep-alive off: DONE becomes
  MUST_CLOSE. With keep-alive on, DONE on both sides starts the next cycle: both IDLE again.

The table is pure data; `ConnectionState` checks before it changes anything, so a refused event
leaves the machine exactly as it was.
"""

from __future__ import annotations

import enum

from waypoint.http1.errors import LocalProtocolError
from waypoint.http1.events import (
    ConnectionClosed,
    Data,
    EndOfMessage,
    Event,
    InformationalResponse,
    Request,
    Response,
)


class Role(enum.Enum):
    CLIENT = "client"
    SERVER = "server"

    # Members are singletons compared by identity; Enum's own __hash__ is Python code, and the
    # transition table hashes roles and states several times per event.
    __hash__ = object.__hash__


class State(enum.Enum):
    IDLE = "IDLE"
    SEND_RESPONSE = "SEND_RESPONSE"  # server only: a request arrived, the answer is owed
    SEND_BODY = "SEND_BODY"
    DONE = "DONE"
    MUST_CLOSE = "MUST_CLOSE"
    CLOSED = "CLOSED"
    MIGHT_SWITCH = "MIGHT_SWITCH"  # client only: sent CONNECT/Upgrade, awaiting the verdict
    SWITCHED = "SWITCHED"
    ERROR = "ERROR"

    __hash__ = object.__hash__


class SwitchAccepted:
    """Table key, not an event: the server's 101 to an Upgrade, or its 2xx to a CONNECT."""


Key = type[Event] | type[SwitchAccepted]
CLIENT, SERVER = Role.CLIENT, Role.SERVER
S = State

_TRANSITIONS: dict[tuple[Role, State, Key], State] = {
    (CLIENT, S.IDLE, Request): S.SEND_BODY,
    (CLIENT, S.SEND_BODY, Data): S.SEND_BODY,
    (CLIENT, S.SEND_BODY, EndOfMessage): S.DONE,
    (CLIENT, S.MIGHT_SWITCH, SwitchAccepted): S.SWITCHED,
    (CLIENT, S.MIGHT_SWITCH, ConnectionClosed): S.CLOSED,
    # A server may answer a request it could not parse (400) before the request "happened".
    (SERVER, S.IDLE, Response): S.SEND_BODY,
    (SERVER, S.SEND_RESPONSE, InformationalResponse): S.SEND_RESPONSE,
    (SERVER, S.SEND_RESPONSE, Response): S.SEND_BODY,
    (SERVER, S.SEND_RESPONSE, SwitchAccepted): S.SWITCHED,
    (SERVER, S.SEND_BODY, Data): S.SEND_BODY,
    (SERVER, S.SEND_BODY, EndOfMessage): S.DONE,
    **{
        (role, state, ConnectionClosed): S.CLOSED
        for role in Role
        for state in (S.IDLE, S.DONE, S.MUST_CLOSE, S.CLOSED)
    },
}


_ROLES = tuple(Role)  # iterating the Enum class runs Python code per member


class ConnectionState:
    """Both roles' states, keep-alive, and a pending tunnel proposal ("connect"/"upgrade"/"")."""

    __slots__ = ("keep_alive", "pending_switch", "states")

    def __init__(self) -> None:
        self.states = {CLIENT: S.IDLE, SERVER: S.IDLE}
        self.keep_alive = True
        self.pending_switch = ""

    def check(self, role: Role, key: Key) -> State:
        """The state `key` would move `role` to; LocalProtocolError if the table has no entry."""
        state = self.states[role]
        new = _TRANSITIONS.get((role, state, key))
        if new is None:
            raise LocalProtocolError(
                f"the {role.value} cannot send {key.__name__} in state {state.value}"
            )
        if key is Request and self.states[SERVER] is not S.IDLE:
            raise LocalProtocolError(
                f"no new request while the server is in state {self.states[SERVER].value}"
            )
        if key is SwitchAccepted and role is SERVER:
            self.check(CLIENT, SwitchAccepted)
        return new

    def process(self, role: Role, key: Key) -> None:
        """Apply `key` sent by `role`, then its effects on the other role and on keep-alive."""
        states = self.states
        new = _TRANSITIONS.get((role, states[role], key))
        if new is None or key is Request or key is SwitchAccepted:
            new = self.check(role, key)  # the checks beyond the table, and the error to raise
        states[role] = new
        if key is not Data:  # Data moves nobody else (SEND_BODY -> SEND_BODY)
            self._react(role, key)
            self._settle()

    def propose_switch(self, kind: str) -> None:
        self.pending_switch = kind
        self._settle()

    def disable_keep_alive(self) -> None:
        self.keep_alive = False
        self._settle()

    def process_error(self, role: Role) -> None:
        self.states[role] = S.ERROR
        self.disable_keep_alive()

    def _react(self, role: Role, key: Key) -> None:
        if key is Request:
            self.states[SERVER] = S.SEND_RESPONSE
        elif key is SwitchAccepted and role is SERVER:
            self.states[CLIENT] = S.SWITCHED
        elif key is Response:
            self.pending_switch = ""  # any final answer that is not an acceptance declines
            if self.states[CLIENT] is S.MIGHT_SWITCH:
                self.states[CLIENT] = S.DONE
        elif key is ConnectionClosed:
            self.keep_alive = False

    def _settle(self) -> None:
        states = self.states
        if states[CLIENT] is S.DONE and self.pending_switch:
            states[CLIENT] = S.MIGHT_SWITCH
        if not self.keep_alive:
            for role in _ROLES:
                if states[role] is S.DONE:
                    states[role] = S.MUST_CLOSE
        elif states[CLIENT] is S.DONE and states[SERVER] is S.DONE:
            states[CLIENT] = states[SERVER] = S.IDLE
