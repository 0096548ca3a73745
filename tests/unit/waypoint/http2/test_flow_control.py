"""Flow control end to end: nothing is accepted faster than it is consumed, nothing buffers
without bound, and a reset never leaks window."""

from __future__ import annotations

import h2.events
import h2.settings
import pytest
from h2.errors import ErrorCodes

from tests.unit.waypoint.http2.helpers import (
    GET,
    MeshPair,
    MiB,
    ServerPair,
    body,
    of_type,
    raw_ack,
    raw_body,
)
from waypoint.http2 import (
    DataReceived,
    Http2Limits,
    SendBufferFull,
    StreamEnded,
    StreamReset,
    WindowOpened,
)
from waypoint.messages import RequestHead, ResponseHead

RAW_WINDOW = 65_535  # a raw h2 peer keeps the RFC's initial windows


def client_sends_what_fits(pair: ServerPair, stream_id: int, payload: bytes) -> int:
    """The raw client sends as much of `payload` as our windows let it; returns how much."""
    n = min(len(payload), pair.client.local_flow_control_window(stream_id))
    step = pair.client.max_outbound_frame_size
    for offset in range(0, n, step):
        pair.client.send_data(stream_id, payload[offset : min(n, offset + step)])
    return n


def answered(limits: Http2Limits | None = None) -> tuple[ServerPair, int]:
    pair = ServerPair(limits)
    sid, _ = pair.request(end_stream=False)
    pair.server.send_response(sid, ResponseHead(200))
    pair.pump()
    return pair, sid


# --- inbound: the client runs at the pace of the application -----------------------------------


def test_a_large_body_is_not_accepted_faster_than_it_is_acknowledged():
    pair, sid = answered()
    payload = bytes(range(256)) * (16 * 1024)  # 4 MiB
    sent = client_sends_what_fits(pair, sid, payload)
    assert sent == 1 * MiB  # our stream window, not the 16 MiB connection window
    events, _ = pair.pump()
    received = body(events)
    assert received == payload[:sent]
    assert client_sends_what_fits(pair, sid, payload[sent:]) == 0  # stalled: nothing consumed
    while sent < len(payload):
        for event in of_type(events, DataReceived):  # the upstream took them
            pair.server.acknowledge(event.stream_id, event.flow_controlled_length)
        pair.pump()
        more = client_sends_what_fits(pair, sid, payload[sent:])
        assert 0 < more <= 1 * MiB
        sent += more
        events, _ = pair.pump()
        received += body(events)
        assert len(received) == sent
    assert received == payload


def test_over_acknowledging_one_stream_does_not_credit_anothers_unconsumed_bytes():
    limits = Http2Limits(stream_window=RAW_WINDOW, connection_window=RAW_WINDOW)
    pair, a = answered(limits)
    b, _ = pair.request(end_stream=False)
    pair.client.send_data(a, b"a" * 40_000)
    pair.client.send_data(b, b"b" * (RAW_WINDOW - 40_000))  # the connection window is used up
    pair.pump()
    pair.server.acknowledge(a, 10**9)  # more than a ever delivered
    pair.pump()
    assert pair.client.outbound_flow_control_window == 40_000  # b's bytes are still held


def test_a_reset_stream_gives_its_unconsumed_bytes_back_to_the_connection():
    limits = Http2Limits(stream_window=RAW_WINDOW, connection_window=RAW_WINDOW)
    pair, first = answered(limits)
    assert client_sends_what_fits(pair, first, b"x" * RAW_WINDOW) == RAW_WINDOW
    events, _ = pair.pump()
    assert sum(e.flow_controlled_length for e in of_type(events, DataReceived)) == RAW_WINDOW
    second, _ = pair.request(end_stream=False)
    assert pair.client.local_flow_control_window(second) == 0  # the connection is full
    pair.client.reset_stream(first, ErrorCodes.CANCEL)  # never acknowledged by the shell
    events, _ = pair.pump()
    assert events == [StreamReset(first, ErrorCodes.CANCEL, remote=True)]
    assert pair.client.local_flow_control_window(second) == RAW_WINDOW
    pair.server.acknowledge(first, RAW_WINDOW)  # late, after the reset: ignored
    pair.pump()
    assert pair.client.outbound_flow_control_window == RAW_WINDOW


# --- outbound: a slow client slows the upstream ------------------------------------------------


def test_send_data_frames_what_the_window_allows_and_queues_the_rest():
    pair, sid = answered()
    payload = b"".join(i.to_bytes(4, "big") for i in range(60_000))  # 240 000 bytes
    queued = pair.server.send_data(sid, payload, end_stream=True)
    assert queued == len(payload) - RAW_WINDOW
    assert pair.server.queued(sid) == queued
    _, theirs = pair.pump()
    received = raw_body(theirs, sid)
    assert len(received) == RAW_WINDOW
    assert not of_type(theirs, h2.events.StreamEnded)  # the end waits behind the data
    while not of_type(theirs, h2.events.StreamEnded):
        raw_ack(pair.client, theirs)
        events, theirs = pair.pump()
        assert WindowOpened(sid) in events
        received += raw_body(theirs, sid)
    assert received == payload
    assert pair.server.live_streams == 1  # the client has not ended its side
    pair.client.end_stream(sid)
    events, _ = pair.pump()
    assert events == [StreamEnded(sid)] and pair.server.live_streams == 0


def test_trailers_wait_behind_queued_data():
    pair, sid = answered()
    pair.server.send_data(sid, b"d" * 100_000)
    pair.server.send_trailers(sid, (("grpc-status", "0"),))
    _, theirs = pair.pump()
    assert not of_type(theirs, h2.events.TrailersReceived)
    heard = theirs
    while not of_type(theirs, h2.events.TrailersReceived):
        raw_ack(pair.client, theirs)
        _, theirs = pair.pump()
        heard += theirs
    data_or_trailers = [
        type(e) for e in heard if isinstance(e, h2.events.DataReceived | h2.events.TrailersReceived)
    ]
    assert data_or_trailers[-1] is h2.events.TrailersReceived
    assert raw_body(heard, sid) == b"d" * 100_000


def test_the_backlog_is_bounded_and_send_capacity_says_how_much_fits():
    pair, sid = answered(Http2Limits(max_send_buffer=100_000))
    capacity = pair.server.send_capacity(sid)
    assert capacity == RAW_WINDOW + 100_000
    with pytest.raises(SendBufferFull, match="send_capacity"):
        pair.server.send_data(sid, b"x" * (capacity + 1))
    assert pair.server.queued(sid) == 0  # all or nothing
    assert pair.server.send_data(sid, b"x" * capacity) == 100_000
    assert pair.server.send_capacity(sid) == 0
    with pytest.raises(SendBufferFull):
        pair.server.send_data(sid, b"x")
    _, theirs = pair.pump()
    raw_ack(pair.client, theirs)
    events, _ = pair.pump()
    assert WindowOpened(sid) in events
    assert pair.server.send_capacity(sid) > 0


def test_queued_bytes_are_copied_so_the_caller_may_reuse_its_buffer():
    pair, sid = answered()
    buffer = bytearray(b"a" * 100_000)
    pair.server.send_data(sid, memoryview(buffer), end_stream=True)
    buffer[:] = b"b" * 100_000  # the shell reads the next chunk into the same buffer
    _, theirs = pair.pump()
    heard = theirs
    while not of_type(theirs, h2.events.StreamEnded):
        raw_ack(pair.client, theirs)
        _, theirs = pair.pump()
        heard += theirs
    assert raw_body(heard, sid) == b"a" * 100_000


def test_streams_share_an_opened_connection_window_round_robin():
    pair = ServerPair()
    pair.client.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 1 * MiB})
    pair.pump()
    a, _ = pair.request(end_stream=False)
    b, _ = pair.request([*GET[:2], (":path", "/b"), GET[3]], end_stream=False)
    for sid in (a, b):
        pair.server.send_response(sid, ResponseHead(200))
    pair.server.send_data(a, b"a" * 200_000)  # takes the whole connection window at once
    pair.server.send_data(b, b"b" * 200_000)  # waits entirely
    _, theirs = pair.pump()
    assert len(raw_body(theirs, a)) == RAW_WINDOW and raw_body(theirs, b) == b""
    raw_ack(pair.client, theirs)
    events, theirs = pair.pump()
    assert {WindowOpened(a), WindowOpened(b)} <= set(events)
    assert len(raw_body(theirs, a)) > 0 and len(raw_body(theirs, b)) > 0  # b is not starved
    assert abs(len(raw_body(theirs, a)) - len(raw_body(theirs, b))) <= 16_384  # one frame


def test_a_reset_drops_the_backlog():
    pair, sid = answered()
    pair.server.send_data(sid, b"x" * 200_000)
    pair.pump()
    pair.client.reset_stream(sid, ErrorCodes.CANCEL)
    events, _ = pair.pump()
    assert events == [StreamReset(sid, ErrorCodes.CANCEL, remote=True)]
    assert pair.server.queued(sid) == 0


# --- both ends ours: a shell-like loop moves 5 MiB each way ------------------------------------


def test_a_capacity_driven_shell_moves_large_bodies_both_ways_intact():
    pair = MeshPair()
    upload = bytes(range(251)) * (5 * MiB // 251)
    sid = pair.client.send_request(RequestHead("POST", "http", "svc:80", "/upload"))
    client_events, server_events = pair.pump()
    pair.server.send_response(sid, ResponseHead(200))
    pending = {"client": upload, "server": upload[::-1]}
    got = {"client": b"", "server": b""}
    ends = {"client": pair.client, "server": pair.server}
    for _ in range(1000):
        for name, conn in ends.items():  # write only what send_capacity allows
            if pending[name]:
                n = min(len(pending[name]), conn.send_capacity(sid), 256 * 1024)
                conn.send_data(sid, pending[name][:n], end_stream=n == len(pending[name]))
                pending[name] = pending[name][n:]
        client_events, server_events = pair.pump()
        for name, conn, events in (
            ("server", pair.server, server_events),
            ("client", pair.client, client_events),
        ):
            got[name] += body(events)
            for event in of_type(events, DataReceived):
                conn.acknowledge(event.stream_id, event.flow_controlled_length)
        if not pending["client"] and not pending["server"] and pair.server.live_streams == 0:
            break
    assert got["server"] == upload
    assert got["client"] == upload[::-1]
    assert pair.client.live_streams == 0
