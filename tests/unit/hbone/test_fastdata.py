"""The DATA fast path must be indistinguishable from h2's own handling: same events, same bytes
on the wire, same windows; and everything outside the plain case must still reach h2."""

from __future__ import annotations

import h2.connection
import h2.stream
import h2.windows
import pytest
from h2.errors import ErrorCodes
from hyperframe.frame import DataFrame, Frame
from hypothesis import given, settings
from hypothesis import strategies as st

from nodemesh.hbone import fastdata
from nodemesh.hbone.events import Data, LocalProtocolError, PeerEnded, RemoteProtocolError
from nodemesh.hbone.protocol import HboneClientConnection, HboneServerConnection, HboneSettings
from tests.unit.hbone.test_protocol import Pair, ack_all, data_of

SMALL = HboneSettings(stream_window=1 << 16, connection_window=1 << 17, max_frame_size=1 << 14)


def h2_of(conn) -> h2.connection.H2Connection:
    return conn._h2


def windows(conn, sid) -> tuple:
    c = h2_of(conn)
    stream = c.streams.get(sid)
    per_stream = (
        (
            stream.outbound_flow_control_window,
            stream._inbound_window_manager.current_window_size,
            stream._inbound_window_manager._bytes_processed,
        )
        if stream
        else None
    )
    inbound = c._inbound_flow_control_window_manager
    return (
        c.outbound_flow_control_window,
        inbound.current_window_size,
        inbound._bytes_processed,
        per_stream,
    )


def frames_of(wire: bytes) -> list[Frame]:
    out, pos = [], 0
    while pos < len(wire):
        frame, length = Frame.parse_frame_header(memoryview(wire[pos : pos + 9]))
        frame.parse_body(memoryview(wire[pos + 9 : pos + 9 + length]))
        out.append(frame)
        pos += 9 + length
    return out


def test_the_h2_internals_the_fast_path_relies_on_are_still_there():
    conn = h2.connection.H2Connection()
    conn.initiate_connection()
    conn.send_headers(1, [(":method", "CONNECT"), (":authority", "1.2.3.4:5")])
    stream = conn.streams[1]
    assert isinstance(conn._data_to_send, bytearray)
    assert isinstance(conn._inbound_flow_control_window_manager, h2.windows.WindowManager)
    assert isinstance(stream._inbound_window_manager, h2.windows.WindowManager)
    assert stream._expected_content_length is None and stream._actual_content_length == 0
    buffer = conn.incoming_buffer
    assert (buffer._data, buffer._preamble_len, buffer._headers_buffer) == (b"", 0, [])
    assert stream.state_machine.state is h2.stream.StreamState.OPEN


def test_plain_data_never_reaches_h2_receive_data(monkeypatch):
    pair = Pair()
    sid = pair.open()
    pair.client.send(sid, b"x" * 100)
    wire = pair.client.data_to_send()
    monkeypatch.setattr(h2_of(pair.server), "receive_data", pytest.fail)
    events = pair.server.receive_data(wire)
    assert events == [Data(sid, b"x" * 100, 100)]


def test_fast_sent_frames_equal_h2_sent_frames(monkeypatch):
    fast = _send_and_capture()
    monkeypatch.setattr(fastdata, "send", lambda conn, stream_id, data: None)
    slow = _send_and_capture()
    assert [(type(f), f.stream_id, f.flags, f.data) for f in fast] == [
        (type(f), f.stream_id, f.flags, f.data) for f in slow
    ]


def _send_and_capture() -> list[Frame]:
    pair = Pair(SMALL)
    sid = pair.open()
    sent = pair.client.send(sid, b"a" * (1 << 14) + b"b" * (1 << 16))
    assert sent == 1 << 16  # the stream window, in frames of the peer's max frame size
    assert pair.client.send(sid, b"c") == 0
    return frames_of(pair.client.data_to_send())


def test_send_stops_at_the_window_and_never_sends_past_it():
    pair = Pair(SMALL)
    sid = pair.open()
    assert pair.client.send(sid, b"z" * (SMALL.stream_window + 5)) == SMALL.stream_window
    assert pair.client.send_window(sid) == 0
    _, server_events = pair.pump()
    assert len(data_of(server_events)) == SMALL.stream_window
    ack_all(pair.server, server_events)
    pair.pump()
    assert pair.client.send(sid, b"more") == 4


def test_sending_after_our_end_is_still_refused():
    pair = Pair()
    sid = pair.open()
    pair.client.end(sid)
    with pytest.raises(LocalProtocolError):
        pair.client.send(sid, b"late")


def test_padded_and_end_stream_data_go_through_h2():
    pair = Pair()
    sid = pair.open()
    padded = DataFrame(sid, data=b"pad", pad_length=4, flags=["PADDED"]).serialize()
    last = DataFrame(sid, data=b"end", flags=["END_STREAM"]).serialize()
    events = pair.server.receive_data(padded + last)
    assert events == [Data(sid, b"pad", 8), Data(sid, b"end", 3), PeerEnded(sid)]


def test_data_past_the_stream_window_is_a_flow_control_error():
    pair = Pair(SMALL)
    sid = pair.open()
    too_much = b"".join(
        DataFrame(sid, data=b"q" * SMALL.max_frame_size).serialize()
        for _ in range(SMALL.stream_window // SMALL.max_frame_size + 1)
    )
    with pytest.raises(RemoteProtocolError) as raised:
        pair.server.receive_data(too_much)
    assert raised.value.error_code == ErrorCodes.FLOW_CONTROL_ERROR


def test_data_on_a_reset_stream_is_credited_back_and_answered_as_h2_does():
    pair = Pair()
    sid = pair.open()
    pair.server.reset(sid)
    before = windows(pair.server, sid)[1]
    events = pair.server.receive_data(DataFrame(sid, data=b"gone").serialize())
    assert events == []
    assert windows(pair.server, sid)[1] == before - 4  # charged, and credited by h2's rules
    assert pair.server.data_to_send()  # RST_STREAM STREAM_CLOSED (and the earlier reset)


def _exchange(sizes: list[int], acks: list[bool]) -> tuple[list, list, tuple, tuple, bytes]:
    """Client sends chunks, the server acknowledges some; everything h2 would have noticed."""
    pair = Pair(SMALL)
    sid = pair.open()
    wire = bytearray()
    all_events = []
    for size, ack in zip(sizes, acks, strict=False):
        pair.client.send(sid, bytes([size % 251]) * size)
        chunk = pair.client.data_to_send()
        wire += chunk
        events = pair.server.receive_data(chunk)
        all_events += events
        if ack:
            ack_all(pair.server, events)
        pair.client.receive_data(pair.server.data_to_send())
    return (
        all_events,
        frames_of(bytes(wire)),
        windows(pair.client, sid),
        windows(pair.server, sid),
        pair.server.data_to_send(),
    )


SIZES = st.lists(st.integers(1, 3 * SMALL.max_frame_size), min_size=1, max_size=12)


@settings(max_examples=60, deadline=None)
@given(SIZES, st.lists(st.booleans(), min_size=12, max_size=12))
def test_windows_and_events_match_h2_for_any_sequence(sizes, acks):
    fast = _exchange(sizes, acks)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(fastdata, "receive", lambda conn, frame: None)
        patch.setattr(fastdata, "send", lambda conn, stream_id, data: None)
        slow = _exchange(sizes, acks)
    assert fast[0] == slow[0]
    assert [(f.stream_id, f.data) for f in fast[1]] == [(f.stream_id, f.data) for f in slow[1]]
    assert fast[2:] == slow[2:]


def _recorded_data_exchange() -> tuple[bytes, list]:
    """Server-bound bytes of a whole tunnel: preface, CONNECT, DATA of several sizes, END."""
    client = HboneClientConnection()
    sid = client.open_tunnel("127.0.0.1:80", {})
    for size in (1, 9, 64, 1000, 3000):
        client.send(sid, b"d" * size)
    client.end(sid)
    wire = client.data_to_send()
    return wire, HboneServerConnection().receive_data(wire)


def _events_in(chunks: list[bytes]) -> list:
    server = HboneServerConnection()
    events = []
    for chunk in chunks:
        events += server.receive_data(chunk)
    return _merge_data(events)


def _merge_data(events: list) -> list:
    """Data events joined per stream: how bytes were cut may change chunking, never content."""
    merged: list = []
    for event in events:
        if isinstance(event, Data) and merged and isinstance(merged[-1], Data):
            last = merged.pop()
            event = Data(
                last.stream_id,
                last.data + event.data,
                last.flow_controlled_length + event.flow_controlled_length,
            )
        merged.append(event)
    return merged


def test_every_prefix_then_the_rest_yields_the_same_events():
    wire, whole = _recorded_data_exchange()
    assert any(isinstance(e, Data) for e in whole) and isinstance(whole[-1], PeerEnded)
    expected = _merge_data(whole)
    for cut in range(len(wire) + 1):
        assert _events_in([wire[:cut], wire[cut:]]) == expected, cut


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(0, 5_000), max_size=8))
def test_any_random_split_yields_the_same_events(cuts):
    wire, whole = _recorded_data_exchange()
    points = sorted({min(c, len(wire)) for c in cuts})
    chunks = [wire[a:b] for a, b in zip([0, *points], [*points, len(wire)], strict=True)]
    assert _events_in(chunks) == _merge_data(whole)
