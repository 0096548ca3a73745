"""The transition table: every (role, state, event) pair either moves as listed or raises."""

from __future__ import annotations

import itertools

import pytest

from waypoint.http1 import (
    ConnectionClosed,
    Data,
    EndOfMessage,
    InformationalResponse,
    LocalProtocolError,
    Request,
    Response,
)
from waypoint.http1.state import (
    _TRANSITIONS,
    CLIENT,
    SERVER,
    ConnectionState,
    Role,
    State,
    SwitchAccepted,
)

KEYS = [
    Request,
    InformationalResponse,
    Response,
    Data,
    EndOfMessage,
    ConnectionClosed,
    SwitchAccepted,
]


def at(client: State, server: State) -> ConnectionState:
    machine = ConnectionState()
    machine.states = {CLIENT: client, SERVER: server}
    return machine


@pytest.mark.parametrize(("role", "state", "key"), list(itertools.product(Role, State, KEYS)))
def test_pairs_outside_the_table_raise_and_change_nothing(role, state, key):
    # The other side sits where the cross-role checks are satisfied, so only the table decides.
    other = State.IDLE if role is CLIENT else State.MIGHT_SWITCH
    machine = at(state, other) if role is CLIENT else at(other, state)
    before = dict(machine.states)
    expected = _TRANSITIONS.get((role, state, key))
    if expected is not None:
        machine.process(role, key)
        # DONE may settle on at once (MIGHT_SWITCH, a new cycle); every other target is exact.
        assert machine.states[role] is expected or expected is State.DONE
        return
    with pytest.raises(LocalProtocolError, match=f"cannot send {key.__name__}"):
        machine.process(role, key)
    assert machine.states == before


def test_a_full_exchange_cycles_back_to_idle():
    machine = ConnectionState()
    machine.process(CLIENT, Request)
    assert machine.states == {CLIENT: State.SEND_BODY, SERVER: State.SEND_RESPONSE}
    machine.process(CLIENT, EndOfMessage)
    machine.process(SERVER, InformationalResponse)
    machine.process(SERVER, Response)
    machine.process(SERVER, Data)
    assert machine.states == {CLIENT: State.DONE, SERVER: State.SEND_BODY}
    machine.process(SERVER, EndOfMessage)
    assert machine.states == {CLIENT: State.IDLE, SERVER: State.IDLE}


def test_without_keep_alive_done_becomes_must_close():
    machine = ConnectionState()
    machine.process(CLIENT, Request)
    machine.disable_keep_alive()
    machine.process(CLIENT, EndOfMessage)
    assert machine.states[CLIENT] is State.MUST_CLOSE
    machine.process(SERVER, Response)
    machine.process(SERVER, EndOfMessage)
    assert machine.states == {CLIENT: State.MUST_CLOSE, SERVER: State.MUST_CLOSE}


def test_a_proposal_waits_in_might_switch_and_acceptance_switches_both():
    machine = ConnectionState()
    machine.process(CLIENT, Request)
    machine.propose_switch("upgrade")
    with pytest.raises(LocalProtocolError):
        machine.process(SERVER, SwitchAccepted)  # the request is not complete yet
    machine.process(CLIENT, EndOfMessage)
    assert machine.states[CLIENT] is State.MIGHT_SWITCH
    machine.process(SERVER, SwitchAccepted)
    assert machine.states == {CLIENT: State.SWITCHED, SERVER: State.SWITCHED}


def test_a_final_response_declines_the_proposal():
    machine = ConnectionState()
    machine.process(CLIENT, Request)
    machine.propose_switch("connect")
    machine.process(CLIENT, EndOfMessage)
    machine.process(SERVER, Response)
    assert machine.states[CLIENT] is State.DONE
    assert machine.pending_switch == ""
    machine.process(SERVER, EndOfMessage)
    assert machine.states == {CLIENT: State.IDLE, SERVER: State.IDLE}


def test_a_request_needs_an_idle_server():
    machine = at(State.IDLE, State.CLOSED)
    with pytest.raises(LocalProtocolError, match="server is in state CLOSED"):
        machine.process(CLIENT, Request)


def test_closing_turns_keep_alive_off_and_errors_stick():
    machine = ConnectionState()
    machine.process(CLIENT, ConnectionClosed)
    assert not machine.keep_alive
    machine.process_error(SERVER)
    assert machine.states[SERVER] is State.ERROR
    with pytest.raises(LocalProtocolError):
        machine.process(SERVER, Response)
